/**
 * One sample of a dyno's memory and run queue, and Heroku's `log-runtime-metrics` lines for it
 * (docs/metrics.md#runtime-metrics). The parsers and the formatter are pure; the readers read the
 * dyno's cgroup v2 files, or, where this host's cgroup v2 lacks the memory controller, its
 * processes under /proc (the pids come from the v2 leaf's cgroup.procs, which every v2 cgroup has).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LoadAverage } from './load-average';

const MB = 1024 * 1024;
/** Heroku's pgpgin/pgpgout are counted in pages; x86-64 and arm64 (4K) pages. */
export const PAGE_BYTES = 4096;

export type SampleSource = 'cgroup' | 'proc';

/** Which fallback a sample needed: the sampler says each one once in the daemon's log. */
export type SampleNote =
  /** memory.stat is missing: rss/cache/swap come from /proc/PID/status of the dyno's processes. */
  | 'no-memory-controller'
  /** memory.swap.current is missing (swap accounting off): swap comes from VmSwap. */
  | 'no-swap-accounting'
  /** memory.stat has no pgpgin/pgpgout (cgroup v2 never has): pages come from /proc/PID/io. */
  | 'pgpg-from-proc-io';

export interface MemorySample {
  /** Bytes. */
  total: number;
  rss: number;
  cache: number;
  swap: number;
  /** Pages (cumulative). */
  pgpgin: number;
  pgpgout: number;
}

export interface DynoSample {
  source: SampleSource;
  memory: MemorySample;
  notes: SampleNote[];
}

/** ENOCGROUP: the dyno's cgroup is gone; ENOPROCS: it is still there but empty (the dyno is ending). */
export type MetricsErrorCode = 'ENOCGROUP' | 'ENOPROCS';

export class MetricsError extends Error {
  constructor(readonly code: MetricsErrorCode, message: string) {
    super(message);
    this.name = 'MetricsError';
  }
}

// ---- pure parsers ----

/** `key value` lines (memory.stat, cpu.stat) → numbers; malformed lines are skipped. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\d+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export interface ProcStatus {
  /** Bytes. */
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  swap: number;
}

/** /proc/PID/status memory fields (kB) → bytes. Kernel threads have none: all 0. */
export function parseProcStatus(text: string): ProcStatus {
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rssAnon: kb('RssAnon'), rssFile: kb('RssFile'), rssShmem: kb('RssShmem'), swap: kb('VmSwap') };
}

/** /proc/PID/io → bytes read from and written to storage (what caused I/O, not what was asked). */
export function parseProcIo(text: string): { readBytes: number; writeBytes: number } {
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { readBytes: field('read_bytes'), writeBytes: field('write_bytes') };
}

/** The state letter of /proc/PID/stat (field 3; the command in field 2 may hold spaces and parentheses). */
export function parseStatState(text: string): string | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  return text.slice(close + 2, close + 3) || undefined;
}

/** Newline-separated ids (cgroup.procs, cgroup.threads). */
export function parseIds(text: string): number[] {
  return text.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
}

// ---- the lines ----

const mb = (bytes: number): string => `${(bytes / MB).toFixed(2)}MB`;

/** Heroku's load line: `source=web.1 dyno=ID sample#load_avg_1m=0.02 sample#load_avg_5m=0.01 sample#load_avg_15m=0.00`. */
export function formatLoadLine(source: string, dynoId: string, load: LoadAverage): string {
  return `source=${source} dyno=${dynoId} sample#load_avg_1m=${load.avg1m.toFixed(2)} sample#load_avg_5m=${load.avg5m.toFixed(2)} sample#load_avg_15m=${load.avg15m.toFixed(2)}`;
}

/** Heroku's memory line, MB with two decimals (MB = 2^20 bytes: a 512 MB quota is 512.00MB), pages as integers. */
export function formatMemoryLine(source: string, dynoId: string, m: MemorySample, quota: number): string {
  return (
    `source=${source} dyno=${dynoId} sample#memory_total=${mb(m.total)} sample#memory_rss=${mb(m.rss)} sample#memory_cache=${mb(m.cache)} ` +
    `sample#memory_swap=${mb(m.swap)} sample#memory_pgpgin=${Math.round(m.pgpgin)}pages sample#memory_pgpgout=${Math.round(m.pgpgout)}pages sample#memory_quota=${mb(quota)}`
  );
}

// ---- readers ----

function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // a process or file that went away between listing and reading: nothing to count
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'ENODEV' || code === 'EACCES') return undefined;
    throw err;
  }
}

/** The dyno's leaf and any cgroups below it (an app cannot make any, but counting them costs nothing). */
function cgroupDirs(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(out[i]!, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory()) out.push(path.join(out[i]!, e.name));
  }
  return out;
}

function idsOf(dir: string, file: 'cgroup.procs' | 'cgroup.threads'): number[] {
  if (!fs.existsSync(dir)) throw new MetricsError('ENOCGROUP', `dyno cgroup ${dir} is gone`);
  return cgroupDirs(dir).flatMap((d) => parseIds(readOptional(path.join(d, file)) ?? ''));
}

/** How many of the dyno's threads are runnable (state R: running or waiting for a CPU) now. */
export function countRunnable(cgroupDir: string, procRoot = '/proc'): number {
  let n = 0;
  for (const tid of idsOf(cgroupDir, 'cgroup.threads')) {
    const stat = readOptional(path.join(procRoot, String(tid), 'stat'));
    if (stat !== undefined && parseStatState(stat) === 'R') n++;
  }
  return n;
}

/**
 * Summed over the dyno's live processes: /proc/PID/io storage bytes, and /proc/PID/status memory
 * when `memory` (the cgroup files cover memory where the controller and swap accounting are there).
 */
function procTotals(pids: number[], procRoot: string, memory: boolean): ProcStatus & { readBytes: number; writeBytes: number } {
  const sum = { rssAnon: 0, rssFile: 0, rssShmem: 0, swap: 0, readBytes: 0, writeBytes: 0 };
  for (const pid of pids) {
    if (memory) {
      const status = readOptional(path.join(procRoot, String(pid), 'status'));
      if (status === undefined) continue;
      const s = parseProcStatus(status);
      sum.rssAnon += s.rssAnon;
      sum.rssFile += s.rssFile;
      sum.rssShmem += s.rssShmem;
      sum.swap += s.swap;
    }
    // a reaped child's I/O is added to its parent's (and dyno-init reaps every orphan), so the
    // live processes' sum is the dyno's cumulative I/O
    const io = readOptional(path.join(procRoot, String(pid), 'io'));
    if (io === undefined) continue;
    const r = parseProcIo(io);
    sum.readBytes += r.readBytes;
    sum.writeBytes += r.writeBytes;
  }
  return sum;
}

/**
 * The dyno's memory now. With the memory controller: memory.current (+ swap) as the total, anon as
 * rss, file (page cache and tmpfs) as cache. Without: the processes' RssAnon, RssFile + RssShmem
 * and VmSwap (shared pages counted once per process that maps them). Throws ENOCGROUP once the
 * dyno's cgroup is gone, ENOPROCS once its processes are.
 */
export function sampleMemory(cgroupDir: string, procRoot = '/proc'): DynoSample {
  const pids = idsOf(cgroupDir, 'cgroup.procs');
  // dyno-init is in the cgroup for as long as the dyno lives: an empty one is ending, and a sample
  // of it would report a dying dyno as using no memory at all
  if (pids.length === 0) throw new MetricsError('ENOPROCS', `dyno cgroup ${cgroupDir} has no processes`);
  const stat = readOptional(path.join(cgroupDir, 'memory.stat'));
  const swapText = stat === undefined ? undefined : readOptional(path.join(cgroupDir, 'memory.swap.current'));
  const notes: SampleNote[] = [];
  // the processes' memory only where a cgroup file is missing for it
  const proc = procTotals(pids, procRoot, stat === undefined || swapText === undefined);
  let pgpgin = Math.round(proc.readBytes / PAGE_BYTES);
  let pgpgout = Math.round(proc.writeBytes / PAGE_BYTES);
  if (stat === undefined) {
    notes.push('no-memory-controller', 'pgpg-from-proc-io');
    const cache = proc.rssFile + proc.rssShmem;
    return { source: 'proc', memory: { total: proc.rssAnon + cache + proc.swap, rss: proc.rssAnon, cache, swap: proc.swap, pgpgin, pgpgout }, notes };
  }
  const s = parseFlatKeyed(stat);
  let swap: number;
  if (swapText === undefined) {
    notes.push('no-swap-accounting');
    swap = proc.swap;
  } else {
    swap = Number(swapText.trim()) || 0;
  }
  if (s.has('pgpgin') && s.has('pgpgout')) {
    pgpgin = s.get('pgpgin')!;
    pgpgout = s.get('pgpgout')!;
  } else {
    notes.push('pgpg-from-proc-io');
  }
  const rss = s.get('anon') ?? 0;
  const cache = s.get('file') ?? 0;
  const current = Number(readOptional(path.join(cgroupDir, 'memory.current'))?.trim()) || rss + cache;
  return { source: 'cgroup', memory: { total: current + swap, rss, cache, swap, pgpgin, pgpgout }, notes };
}
