/** Bench settings from the environment (BENCH_SECONDS=10 …): every bench reads its knobs the same way. */

/** The non-negative number in `$name`, or `dflt` when unset or empty; anything else is an error naming the variable. */
export function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v} is not a non-negative number`);
  return n;
}
