/**
 * A dyno's load average, damped the way the kernel damps the host's (kernel/sched/loadavg.c):
 * every sample, avg = avg·e + n·(1 − e) with e = exp(−Δt / period), for periods of 1, 5 and 15
 * minutes. The kernel samples every 5 s with fixed-point constants; we sample on a timer whose
 * ticks may slip, so the decay is computed from the real Δt instead. Pure.
 */

export interface LoadAverage {
  avg1m: number;
  avg5m: number;
  avg15m: number;
}

export const ZERO_LOAD: LoadAverage = { avg1m: 0, avg5m: 0, avg15m: 0 };

/** The kernel's LOAD_FREQ: how often the host's run queue is sampled. */
export const LOAD_SAMPLE_MS = 5_000;

const PERIODS_MS = { avg1m: 60_000, avg5m: 300_000, avg15m: 900_000 } as const;

function damp(avg: number, active: number, dtMs: number, periodMs: number): number {
  const e = Math.exp(-dtMs / periodMs);
  return avg * e + active * (1 - e);
}

/** The averages after `active` runnable tasks were seen, `dtMs` after the previous sample. */
export function dampLoad(prev: LoadAverage, active: number, dtMs: number): LoadAverage {
  if (!(dtMs > 0) || !Number.isFinite(active) || active < 0) return prev;
  return {
    avg1m: damp(prev.avg1m, active, dtMs, PERIODS_MS.avg1m),
    avg5m: damp(prev.avg5m, active, dtMs, PERIODS_MS.avg5m),
    avg15m: damp(prev.avg15m, active, dtMs, PERIODS_MS.avg15m),
  };
}
