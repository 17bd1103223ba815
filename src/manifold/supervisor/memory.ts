/**
 * Memory decisions (docs/dyno-lifecycle.md#memory-r14-and-r15). R14: over the quota the dyno keeps running (it swaps)
 * and a `Process running mem=…` + `Error R14` pair is logged at most once per interval. R15: the
 * kernel OOM-killed a process at the kill limit (memory.max = kill factor × quota): the dyno is
 * killed with SIGKILL and crashes. Pure functions; the supervisor applies the result.
 */
import type { MemoryUsage } from '../../runtime/memory';
import { sizeOf } from '../sizes';
import type { AppSettings } from '../store/store';

const MB = 1024 * 1024;

/** R14 threshold of a dyno: the app's own setting, else its size's quota. */
export function quotaOf(settings: AppSettings, size: string): number {
  return settings.memoryQuota ?? sizeOf(size).quota;
}

/** Memory event kinds that mean "over the quota" (kernel memory.high/max, or the periodic sweep). */
const OVER_QUOTA = new Set(['high', 'max', 'over-quota']);
const OOM_KILL = new Set(['oom_kill', 'oom_group_kill']);

export type MemoryReaction =
  | { action: 'none' }
  /** Log the lines; the dyno keeps running. */
  | { action: 'warn'; lines: string[] }
  /** Log the lines, then SIGKILL the dyno: it crashes with R15. */
  | { action: 'kill'; lines: string[] };

export interface MemoryHistory {
  /** Already killed for R15: a second OOM event of the same dyno says nothing new. */
  r15: boolean;
  /** When the last R14 pair was logged (ms since epoch). */
  lastR14: number;
}

/**
 * What to do about one memory event of a running dyno. `usage` is undefined when the host has no
 * memory controller: the error lines are still logged, without the `Process running` line.
 */
export function reactToMemory(
  event: string,
  history: MemoryHistory,
  usage: MemoryUsage | undefined,
  quota: number,
  now: number,
  r14IntervalMs: number,
): MemoryReaction {
  if (OOM_KILL.has(event)) {
    if (history.r15) return { action: 'none' };
    // R15 counts RSS + swap: page cache is dropped before the kernel kills
    const lines = usage ? [usageLine(usage.rss + usage.swap, quota)] : [];
    return { action: 'kill', lines: [...lines, 'Error R15 (Memory quota vastly exceeded)', 'Stopping process with SIGKILL'] };
  }
  if (!OVER_QUOTA.has(event)) return { action: 'none' };
  if (now - history.lastR14 < r14IntervalMs) return { action: 'none' };
  // R14 counts RSS + swap + cache: memory.current
  const lines = usage ? [usageLine(usage.current, quota)] : [];
  return { action: 'warn', lines: [...lines, 'Error R14 (Memory quota exceeded)'] };
}

/** Heroku's `Process running mem=1028MB(103.3%)`: MB rounded, share of the quota to 0.1 %. */
export function usageLine(bytes: number, quota: number): string {
  return `Process running mem=${Math.round(bytes / MB)}MB(${((bytes / quota) * 100).toFixed(1)}%)`;
}
