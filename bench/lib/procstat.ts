// /proc readers for the benchmark: CPU time (utime+stime) and RSS of a process tree.
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clkTck = 0;
let pageSize = 0;

function sysconf(name: string, fallback: number): number {
  try {
    const v = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

export function ticksPerSecond(): number {
  if (clkTck === 0) clkTck = sysconf('CLK_TCK', 100);
  return clkTck;
}

export function pageBytes(): number {
  if (pageSize === 0) pageSize = sysconf('PAGESIZE', 4096);
  return pageSize;
}

export interface StatFields {
  pid: number;
  ppid: number;
  utime: number; // clock ticks
  stime: number; // clock ticks
  rssPages: number;
}

/** Parse /proc/PID/stat; the comm field may contain spaces and parentheses. */
export function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Fields after comm start at field 3 (state); index 0 here = field 3.
  const f = text.slice(close + 2).trim().split(' ');
  const num = (field: number): number => Number(f[field - 3]);
  return { pid, ppid: num(4), utime: num(14), stime: num(15), rssPages: num(24) };
}

/** pid and every descendant (scans /proc once). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st === null) continue;
    const list = children.get(st.ppid);
    if (list) list.push(st.pid);
    else children.set(st.ppid, [st.pid]);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** CPU seconds (user+system, all threads) summed over pids. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const st = readStat(pid);
    if (st) ticks += st.utime + st.stime;
  }
  return ticks / ticksPerSecond();
}

/** Resident set size in bytes, summed over pids (VmRSS from /proc/PID/status, kB precision). */
export function rssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // process gone
    }
  }
  return total;
}

/** A sampled CPU meter over a fixed set of pids. */
export class CpuMeter {
  private start = 0;
  constructor(private readonly pids: readonly number[]) {}
  begin(): void {
    this.start = cpuSeconds(this.pids);
  }
  /** CPU seconds used since begin(). */
  end(): number {
    return cpuSeconds(this.pids) - this.start;
  }
}
