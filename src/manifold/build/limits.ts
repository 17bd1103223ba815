/**
 * The build's size and time limits: their defaults (Heroku's where Heroku has one), reading them
 * from the daemon's environment, and the human-readable sizes the build output reports them in.
 * Pure (no I/O), so that the daemon and the tests read them without starting a builder.
 */

export const MB = 1024 * 1024;

export interface BuildLimits {
  /** Largest slug (Heroku: 500 MB). */
  slugMaxBytes: number;
  /** Largest build cache kept between builds. */
  cacheMaxBytes: number;
  /** Detect + compile + slug (Heroku: 15 minutes). */
  buildTimeoutMs: number;
  /** The release phase command (Heroku: 1 hour). */
  releaseTimeoutMs: number;
  /** How long a build waits for another build of the same app. */
  busyWaitMs: number;
}

export const DEFAULT_BUILD_LIMITS: BuildLimits = {
  slugMaxBytes: 500 * MB,
  cacheMaxBytes: 1024 * MB,
  buildTimeoutMs: 15 * 60_000,
  releaseTimeoutMs: 60 * 60_000,
  busyWaitMs: 5 * 60_000,
};

/** Heroku's slug sizes: 12.3K, 4.5M. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}K`;
  if (n < 1024 ** 3) return `${(n / MB).toFixed(1)}M`;
  return `${(n / 1024 ** 3).toFixed(1)}G`;
}

/**
 * Limits from the daemon's environment (tests and small hosts): MANIFOLD_SLUG_MAX and
 * MANIFOLD_BUILD_CACHE_MAX (bytes, k/m/g suffixes), MANIFOLD_BUILD_TIMEOUT, MANIFOLD_RELEASE_TIMEOUT
 * and MANIFOLD_BUILD_WAIT (seconds). A malformed value is an error, not a silent default.
 */
export function buildLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<BuildLimits> {
  const out: Partial<BuildLimits> = {};
  const bytes = (k: string): number | undefined => {
    const v = env[k];
    if (v === undefined || v === '') return undefined;
    const m = /^([0-9]+)([kmg]?)$/i.exec(v.trim());
    if (!m) throw new Error(`${k}: expected a size such as 500m, got '${v}'`);
    return Number(m[1]) * { '': 1, k: 1024, m: MB, g: 1024 * MB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  };
  const ms = (k: string): number | undefined => {
    const v = env[k];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${k}: expected seconds, got '${v}'`);
    return Math.round(n * 1000);
  };
  const set = <K extends keyof BuildLimits>(key: K, v: number | undefined): void => {
    if (v !== undefined) out[key] = v;
  };
  set('slugMaxBytes', bytes('MANIFOLD_SLUG_MAX'));
  set('cacheMaxBytes', bytes('MANIFOLD_BUILD_CACHE_MAX'));
  set('buildTimeoutMs', ms('MANIFOLD_BUILD_TIMEOUT'));
  set('releaseTimeoutMs', ms('MANIFOLD_RELEASE_TIMEOUT'));
  set('busyWaitMs', ms('MANIFOLD_BUILD_WAIT'));
  return out;
}
