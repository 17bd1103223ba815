/**
 * Fault #5's yardstick (spec §7: "scheduler writes resume ≤ 3 s"). While an etcd member is frozen or
 * killed, no write can commit until the survivors elect a leader, and that election is etcd's own
 * time, not ours. This probe tells the two apart: on the surviving members only, every 100 ms, it
 * puts a key outside the Manifold prefix (when did etcd take writes again?) and reads the scheduler's
 * `tick` member-locally (when did each new tick become visible?). Both clients are the test's own,
 * with a 300 ms deadline and no retry, so a probe never waits on a member longer than its round.
 */
import type { Etcd3 } from 'etcd3';
import { keys } from '../../../src/cluster/keys';

const PROBE_KEY = '/mf-test/probe';
const ROUND_MS = 100;
const DEADLINE_MS = 300;

interface Seen {
  at: number;
  value: string;
}

export class EtcdProbe {
  /** Completion time of each successful probe put. */
  readonly writes: number[] = [];
  /** Each change of the visible tick value, with when the probe first saw it. */
  readonly ticks: Seen[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly clients: Etcd3[];

  /** `endpoints`: the surviving members' local endpoints (one client each: a round asks each in turn). */
  constructor(endpoints: readonly string[]) {
    const etcd3: typeof import('etcd3') = require('etcd3');
    const cockatiel: typeof import('cockatiel') = require('cockatiel');
    this.clients = endpoints.map(
      (e) =>
        new etcd3.Etcd3({
          hosts: [e],
          defaultCallOptions: () => ({ deadline: Date.now() + DEADLINE_MS }),
          faultHandling: { host: () => cockatiel.noop, global: cockatiel.noop },
        }),
    );
  }

  start(): this {
    let i = 0;
    const round = (): void => {
      const c = this.clients[i++ % this.clients.length]!;
      c.put(PROBE_KEY)
        .value(String(Date.now()))
        .then(() => this.writes.push(Date.now()))
        .catch(() => undefined);
      c.get(keys.tick())
        .serializable(true)
        .string()
        .then((v) => {
          if (v !== null && v !== this.ticks.at(-1)?.value) this.ticks.push({ at: Date.now(), value: v });
        })
        .catch(() => undefined);
    };
    round();
    this.timer = setInterval(round, ROUND_MS);
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.clients.map((c) => c.delete().key(PROBE_KEY).catch(() => undefined)));
    for (const c of this.clients) c.close();
  }

  /** When etcd committed a write again after `since` (epoch ms), if it did. */
  writableAfter(since: number): number | undefined {
    return this.writes.find((w) => w >= since);
  }

  /**
   * How long after etcd took writes again (first probe write after `since`) the scheduler's first
   * tick written after `since` became visible; 0 if it was already there. Undefined if either never happened.
   */
  tickResume(since: number): { writableMs: number; resumeMs: number } | undefined {
    const writable = this.writableAfter(since);
    const before = [...this.ticks].reverse().find((s) => s.at < since)?.value;
    const next = this.ticks.find((s) => s.at >= since && s.value !== before);
    if (writable === undefined || next === undefined) return undefined;
    return { writableMs: writable - since, resumeMs: Math.max(0, next.at - writable) };
  }
}
