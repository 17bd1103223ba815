/** Measurements of the dashboard shared by its test and bench/dashboard.ts: page weight and a process's CPU. */
import fs from 'node:fs';
import path from 'node:path';

/** The page's own files (index.html, app.js, app.css) may weigh this much together; uPlot is not counted. */
export const PAGE_WEIGHT_MAX = 100 * 1024;

export function pageWeight(dir: string): { files: Record<string, number>; total: number } {
  const files: Record<string, number> = {};
  for (const f of fs.readdirSync(dir)) if (/\.(html|js|css)$/.test(f)) files[f] = fs.statSync(path.join(dir, f)).size;
  return { files, total: Object.values(files).reduce((a, b) => a + b, 0) };
}

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name, which may itself hold spaces and parentheses
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** The share of one core a process used over `ms`. */
export async function cpuFraction(pid: number, ms: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, ms));
  const c1 = cpuSeconds(pid);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (c1 - c0) / s;
}
