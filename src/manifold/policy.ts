/**
 * Supervision policy as data (docs/dyno-lifecycle.md#policy-defaults): restart cool-off, boot and stop timers,
 * cycling and memory-log cadence. The supervisor reads these numbers and nothing else.
 */
export interface RestartPolicy {
  /** Delay before the second restart; the first one is immediate. */
  initialMs: number;
  /** Each later restart waits factor × the previous delay. */
  factor: number;
  /** Upper bound of the delay. */
  maxMs: number;
  /** An instance up this long resets the crash count. */
  stableMs: number;
}

export interface SupervisionPolicy {
  restart: RestartPolicy;
  /** R10: a web dyno must bind $PORT within this time. */
  bootTimeoutMs: number;
  /** R12: time between SIGTERM and SIGKILL. */
  stopGraceMs: number;
  stopSignal: NodeJS.Signals;
  /** Daily cycling: base interval and the random jitter added per dyno (0 base disables). */
  cycleMs: number;
  cycleJitterMs: number;
  /** At most one R14 pair per dyno per this interval while over quota. */
  r14IntervalMs: number;
  /**
   * How long a replaced web dyno stays draining (no new requests) before SIGTERM, at most: with the
   * router in the daemon it is stopped as soon as its last in-flight request is answered, so the
   * cap only matters for requests that run long (Heroku's own limit for a request is 30 s).
   */
  drainMs: number;
}

export const DEFAULT_POLICY: SupervisionPolicy = {
  restart: { initialMs: 20_000, factor: 2, maxMs: 20 * 60_000, stableMs: 10 * 60_000 },
  bootTimeoutMs: 60_000,
  stopGraceMs: 30_000,
  stopSignal: 'SIGTERM',
  cycleMs: 24 * 3600_000,
  cycleJitterMs: 216 * 60_000,
  r14IntervalMs: 20_000,
  drainMs: 30_000,
};

/**
 * Delay before restarting after the `crashes`-th consecutive crash (1-based): the first restart
 * is immediate, then initial, initial·factor, … capped at max.
 */
export function restartDelay(crashes: number, p: RestartPolicy): number {
  if (crashes <= 1) return 0;
  const d = p.initialMs * Math.pow(p.factor, crashes - 2);
  return Math.min(p.maxMs, Number.isFinite(d) ? d : p.maxMs);
}

/** The schedule as a list, for docs and `ps`: delays for crashes 1..n. */
export function restartSchedule(n: number, p: RestartPolicy): number[] {
  return Array.from({ length: n }, (_, i) => restartDelay(i + 1, p));
}

export function cycleDelay(p: SupervisionPolicy, random: () => number = Math.random): number | null {
  if (p.cycleMs <= 0) return null;
  return p.cycleMs + Math.floor(random() * p.cycleJitterMs);
}

/** Parses durations like 500ms, 20s, 20m, 24h, or a bare number of milliseconds. */
export function parseDuration(s: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`invalid duration '${s}' (e.g. 500ms, 20s, 20m, 24h)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const mult = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3600_000;
  return Math.round(n * mult);
}
