/**
 * The nemesis's checkers (spec §7 Tier 3), pure functions of what was recorded:
 * - safety: at no revision two `run` assignments of one slot on live hosts; every assignment written
 *   by the scheduler leader of its time (its `leaderRev` is the create revision of the lowest
 *   candidate key under the election at that revision: etcd's election order);
 * - availability: failed requests no more than were in flight towards the faulted host at each fault.
 * Liveness and convergence need the live system and are checked by the driver.
 */
import { keys } from '../../../src/cluster/keys';
import type { AssignmentRecord } from '../../../src/cluster/records';
import type { LoadRecord } from '../helpers/load';
import type { HistoryEvent } from './history';

export interface Violation {
  rev: number;
  what: string;
}

/** Replays the history and reports every revision where a safety property fails. */
export function checkSafety(events: readonly HistoryEvent[], initial: ReadonlyMap<string, { value: string; createRev: number }>): Violation[] {
  const state = new Map(initial);
  const out: Violation[] = [];
  const hostsPrefix = keys.hosts();
  const assignPrefix = keys.allAssignments();
  const electionPrefix = keys.election();
  let i = 0;
  while (i < events.length) {
    const rev = events[i]!.rev;
    const batch: HistoryEvent[] = [];
    while (i < events.length && events[i]!.rev === rev) batch.push(events[i++]!);
    for (const e of batch) {
      if (e.type === 'delete') state.delete(e.key);
      else state.set(e.key, { value: e.value, createRev: e.createRev });
    }
    // fence: the leader at this revision is the candidate with the lowest create revision
    let leaderRev = Infinity;
    for (const [k, v] of state) if (k.startsWith(electionPrefix)) leaderRev = Math.min(leaderRev, v.createRev);
    for (const e of batch) {
      if (e.type !== 'put' || !e.key.startsWith(assignPrefix)) continue;
      const rec = JSON.parse(e.value) as AssignmentRecord;
      if (Number(rec.leaderRev) !== leaderRev) out.push({ rev, what: `${e.key} written with leaderRev ${rec.leaderRev}, leader key then had create revision ${leaderRev}` });
    }
    // at most one running assignment of a slot on hosts whose lease is alive
    const live = new Set<string>();
    for (const k of state.keys()) if (k.startsWith(hostsPrefix)) live.add(k.slice(hostsPrefix.length));
    const running = new Map<string, string[]>();
    for (const [k, v] of state) {
      if (!k.startsWith(assignPrefix)) continue;
      const [host, app, slot] = k.slice(assignPrefix.length).split('/');
      if (!host || !live.has(host)) continue;
      const rec = JSON.parse(v.value) as AssignmentRecord;
      if (rec.state !== 'run') continue;
      const id = `${app}/${slot}`;
      running.set(id, [...(running.get(id) ?? []), host]);
    }
    for (const [slot, hosts] of running) if (hosts.length > 1) out.push({ rev, what: `${slot} runs on ${hosts.join(' and ')}` });
  }
  return out;
}

export interface FaultMark {
  name: string;
  /** Epoch ms the fault was injected. */
  at: number;
  /** Dynos that ran on the faulted host then (empty for faults that touch no dynos' host). */
  dynosOnHost: string[];
  /** When the fault had fully struck, if later than `at` (a killed daemon's dynos all dead). */
  until?: number;
}

/**
 * Failed requests against the spec's bound: for each host fault, the requests in flight at the
 * moment of the fault (or until it had fully struck) that went to one of that host's dynos, or whose
 * dyno is unknown (a failed request names none). Returns the failures and the bound.
 */
export function checkAvailability(records: readonly LoadRecord[], faults: readonly FaultMark[]): { failed: number; bound: number; failures: LoadRecord[] } {
  const failures = records.filter((r) => r.status !== 200);
  let bound = 0;
  for (const f of faults) {
    if (f.dynosOnHost.length === 0) continue;
    const on = new Set(f.dynosOnHost);
    const until = Math.max(f.at, f.until ?? f.at);
    bound += records.filter((r) => r.start <= until && r.end >= f.at && (r.dyno === undefined || on.has(r.dyno))).length;
  }
  return { failed: failures.length, bound, failures };
}
