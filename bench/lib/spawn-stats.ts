// Summaries of per-run start→exit times (milliseconds) for the spawn benchmark.
export interface TimeSummary {
  n: number;
  min: number;
  median: number;
  p90: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile on a sorted copy (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  if (p <= 0) return v[0] as number;
  const rank = Math.ceil((p / 100) * v.length);
  return v[Math.min(v.length, Math.max(1, rank)) - 1] as number;
}

export function summarize(xs: readonly number[]): TimeSummary {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, min: Number.NaN, median: Number.NaN, p90: Number.NaN, mean: Number.NaN, max: Number.NaN };
  const m = v.length >> 1;
  const median = v.length % 2 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
  return {
    n: v.length,
    min: v[0] as number,
    median,
    p90: percentile(v, 90),
    mean: v.reduce((a, b) => a + b, 0) / v.length,
    max: v[v.length - 1] as number,
  };
}
