/**
 * Memory of a dyno as the kernel reports it: counters from memory.events (pushed to us by the
 * addon's file watch on every change) and usage from memory.current / memory.stat on demand.
 */
import fs from 'node:fs';
import path from 'node:path';

export type MemoryEventKind = 'low' | 'high' | 'max' | 'oom' | 'oom_kill' | 'oom_group_kill';
export const MEMORY_EVENT_KINDS: readonly MemoryEventKind[] = ['low', 'high', 'max', 'oom', 'oom_kill', 'oom_group_kill'];

export type MemoryCounters = Record<MemoryEventKind, number>;

export interface MemoryEvent {
  kind: MemoryEventKind;
  /** How many new events of this kind since the last report. */
  delta: number;
  /** Total since the dyno started. */
  count: number;
}

export function parseMemoryEvents(text: string): MemoryCounters {
  const counters: MemoryCounters = { low: 0, high: 0, max: 0, oom: 0, oom_kill: 0, oom_group_kill: 0 };
  for (const line of text.split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value && (MEMORY_EVENT_KINDS as readonly string[]).includes(key)) counters[key as MemoryEventKind] = Number(value);
  }
  return counters;
}

/** The events between two readings, in kernel order (high before max before oom before oom_kill). */
export function diffMemoryEvents(before: MemoryCounters, after: MemoryCounters): MemoryEvent[] {
  const events: MemoryEvent[] = [];
  for (const kind of MEMORY_EVENT_KINDS) {
    const delta = after[kind] - before[kind];
    if (delta > 0) events.push({ kind, delta, count: after[kind] });
  }
  return events;
}

export interface MemoryUsage {
  /** memory.current: everything charged to the dyno (RSS + page cache + kernel), bytes. */
  current: number;
  /** anon (RSS-like) and file (cache) from memory.stat. */
  rss: number;
  cache: number;
  /** memory.swap.current, 0 where swap accounting is off. */
  swap: number;
}

function readNumber(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

export function readMemoryUsage(cgroupDir: string): MemoryUsage | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(path.join(cgroupDir, 'memory.stat'), 'utf8');
  } catch {
    return undefined; // no memory controller on this host
  }
  const field = (name: string): number => Number(new RegExp(`^${name} ([0-9]+)$`, 'm').exec(stat)?.[1] ?? 0);
  return {
    current: readNumber(path.join(cgroupDir, 'memory.current')),
    rss: field('anon'),
    cache: field('file'),
    swap: readNumber(path.join(cgroupDir, 'memory.swap.current')),
  };
}
