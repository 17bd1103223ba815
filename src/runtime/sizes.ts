/**
 * Dyno sizes as data. `quota` is the memory quota (R14 is reported above it); the kernel's
 * memory.max, the R15 kill limit, is `killFactor × quota`: 3× by default, as the platform we follow
 * specifies (1.5 GB for a 512 MB dyno), configurable per size and per app. CPU shares map to
 * cpu.weight (100 = one share); performance dynos get a large weight instead of dedicated cores.
 */
import type { DynoSpec, ResourceSpec } from './spec';

const MB = 1024 * 1024;

/** One dyno size; the same type serves the runtime, the manifold and the CLI. */
export interface DynoSize {
  /** The key: lower case, as stored in a formation and given to --size: 'standard-1x'. */
  name: string;
  /** Heroku's display name, as `ps` shows it: 'Standard-1X'. */
  label: string;
  /** Memory quota in bytes (R14 above it). */
  quota: number;
  killFactor: number;
  pids: number;
  cpuWeight: number;
  /** Whether memory beyond the quota may go to swap before the kill limit (Heroku: yes, except Private). */
  swap: boolean;
}

export const DEFAULT_KILL_FACTOR = 3;

const size = (name: string, label: string, quotaMb: number, pids: number, cpuWeight: number): DynoSize => ({
  name, label, quota: quotaMb * MB, killFactor: DEFAULT_KILL_FACTOR, pids, cpuWeight, swap: true,
});

export const DYNO_SIZES: readonly DynoSize[] = [
  size('eco', 'Eco', 512, 256, 100),
  size('basic', 'Basic', 512, 256, 100),
  size('standard-1x', 'Standard-1X', 512, 256, 100),
  size('standard-2x', 'Standard-2X', 1024, 512, 200),
  size('performance-m', 'Performance-M', 2560, 16384, 1200),
  size('performance-l', 'Performance-L', 14336, 32768, 5000),
  size('performance-l-ram', 'Performance-L-RAM', 30720, 24576, 2400),
  size('performance-xl', 'Performance-XL', 63488, 32768, 5000),
  size('performance-2xl', 'Performance-2XL', 129024, 65536, 10000),
];

export const DEFAULT_SIZE = 'standard-1x';

/** Heroku CLI's short forms (`ps:scale web=2:1X`). */
const ALIASES: Readonly<Record<string, string>> = {
  '1x': 'standard-1x',
  '2x': 'standard-2x',
  pm: 'performance-m',
  pl: 'performance-l',
  standard1x: 'standard-1x',
  standard2x: 'standard-2x',
};

/** A size by its name, display name or short form, in any case. */
export function findSize(name: string): DynoSize | undefined {
  const key = name.trim().toLowerCase();
  const canonical = ALIASES[key] ?? key;
  return DYNO_SIZES.find((s) => s.name === canonical);
}

export interface SizeOverrides {
  /** Memory quota replacing the size's (an app setting); the kill limit follows it. */
  quota?: number;
  killFactor?: number;
  memoryMax?: number;
  pids?: number;
}

/** The cgroup resources of a size, with per-app or per-run overrides. */
export function resourcesFor(sizeName: string, overrides: SizeOverrides = {}): ResourceSpec {
  const s = findSize(sizeName);
  if (!s) throw new RangeError(`unknown dyno size '${sizeName}' (known: ${DYNO_SIZES.map((d) => d.name).join(', ')})`);
  const quota = overrides.quota ?? s.quota;
  const memoryMax = overrides.memoryMax ?? Math.round(quota * (overrides.killFactor ?? s.killFactor));
  return {
    memoryQuota: quota,
    memoryMax,
    memorySwapMax: s.swap ? memoryMax : 0,
    pidsMax: overrides.pids ?? s.pids,
    cpuWeight: s.cpuWeight,
  };
}

/** Parses "512m", "1.5g", "1073741824" into bytes. */
export function parseBytes(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([kmgKMG]?)[bB]?$/.exec(text.trim());
  if (!m) throw new RangeError(`invalid size '${text}' (e.g. 512m, 1.5g)`);
  const unit = { '': 1, k: 1024, m: MB, g: 1024 * MB }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * unit);
}

/**
 * The size of a dyno's writable layer (the tmpfs under / and /app, where /tmp lives): an explicit
 * `scratchSize`, else the dyno's memory quota (its pages are the dyno's memory: a full /tmp costs
 * the quota, and is reported as such), but at most half of memory.max, so a full layer leaves the
 * app the other half and filling it ends in ENOSPC for the writer, not an OOM kill of the dyno
 * (Heroku sizes keep memory.max at 3 × the quota: the quota it is). Without resources: the default size's quota.
 */
export function scratchBytesFor(spec: Pick<DynoSpec, 'scratchSize' | 'resources'>): number {
  if (spec.scratchSize !== undefined) return parseBytes(spec.scratchSize);
  const r = spec.resources ?? {};
  const quota = r.memoryQuota ?? findSize(DEFAULT_SIZE)?.quota ?? 512 * MB;
  return Math.min(quota, r.memoryMax !== undefined ? Math.floor(r.memoryMax / 2) : Infinity);
}
