/**
 * bench:cluster-faults' timeline of one host fault (issue 11): a watch on the whole `/manifold/v1/`
 * prefix records every put and delete with the epoch ms the bench saw it, and split() reads from it
 * the chain a lost web dyno goes through:
 *
 *   t0 (fault) → hosts/<h> DELETE (lease gone) → assign/<other>/<app>/<slot> put, state run
 *   → endpoints/<app>/<slot>/<other>-<ip> put, state up, same gen → every router applied that revision
 *
 * Events are matched by etcd revision, not by arrival time, so that one watch batch carrying two of
 * them can't reorder them. The router side comes from `/v1/local/applied` (RouteFeed.appliedAt), asked
 * through bench/lib/cluster-probe running in `cl`, because the bench process in the root netns can't
 * reach the hosts' cluster servers. Every clock read is CLOCK_REALTIME of one machine.
 */
import readline from 'node:readline';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { keys, PREFIX } from '../../src/cluster/keys';
import { parseRecord, type AssignmentRecord, type EndpointRecord } from '../../src/cluster/records';
import type { Fabric } from '../../test/cluster/helpers/fabric';
import type { ProbeAnswer } from './cluster-probe';

export interface EtcdEvent {
  /** Epoch ms when the bench's watch delivered it. */
  at: number;
  rev: number;
  type: 'put' | 'delete';
  key: string;
  value: string;
}

/** Every event under PREFIX from start() on, in revision order. */
export class PrefixLog {
  readonly events: EtcdEvent[] = [];
  private constructor(private readonly watcher: Watcher) {
    watcher.on('data', (res: IWatchResponse) => {
      const at = Date.now();
      for (const ev of res.events) {
        this.events.push({ at, rev: Number(ev.kv.mod_revision), type: ev.type === 'Delete' ? 'delete' : 'put', key: ev.kv.key.toString(), value: ev.kv.value.toString() });
      }
    });
  }

  static async start(client: Etcd3): Promise<PrefixLog> {
    const w = await client.watch().prefix(PREFIX).create();
    // a broken watch would make every later split time out; say why at once instead
    w.on('error', (err: Error) => console.error(`prefix watch error: ${err.message}`));
    return new PrefixLog(w);
  }

  /** The first event matching `fn`, waiting up to timeoutMs for it. */
  async first(what: string, fn: (e: EtcdEvent) => boolean, timeoutMs: number): Promise<EtcdEvent> {
    const deadline = Date.now() + timeoutMs;
    for (let from = 0; ; ) {
      for (; from < this.events.length; from++) if (fn(this.events[from]!)) return this.events[from]!;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    await this.watcher.cancel().catch(() => undefined);
  }
}

/** Asks the routers' cluster servers from inside `cl` (see the file comment). */
export class RouterProbe {
  private seq = 0;
  private readonly pending = new Map<number, (a: ProbeAnswer) => void>();
  private readonly child;

  constructor(fabric: Fabric, script: string, token: string) {
    // the token in the environment, not argv, which `ps` shows
    this.child = fabric.node('cl', script, [], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, MF_CLUSTER_TOKEN: token } });
    this.child.stdin!.on('error', () => undefined);
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const a = JSON.parse(line) as ProbeAnswer;
      this.pending.get(a.id)?.(a);
      this.pending.delete(a.id);
    });
  }

  /** `{rev, at}` of one router: when its table first reflected `rev` (waits ≤ 10 s for it). */
  applied(admin: string, rev: number): Promise<{ rev: number; at: number | null }> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`probe: no answer from ${admin} in 15 s`));
      }, 15_000);
      this.pending.set(id, (a) => {
        clearTimeout(t);
        if ('error' in a) reject(new Error(`${admin}/v1/local/applied: ${a.error}`));
        else resolve(a.result as { rev: number; at: number | null });
      });
      this.child.stdin!.write(`${JSON.stringify({ id, addr: admin, path: '/v1/local/applied', body: { rev, timeout: 10_000 }, timeoutMs: 10_000 })}\n`);
    });
  }

  stop(): void {
    this.child.stdin!.end();
  }
}

export interface Split {
  t0: number;
  /** Epoch ms of each step as the bench saw it. */
  deleteAt: number;
  assignAt: number;
  endpointAt: number;
  /** The last router's apply time of the endpoint's revision. */
  routedAt: number;
  newHost: string;
  endpointRev: number;
  /** EndpointRecord.since: the agent's own stamp, just before its Txn (a cross-check of endpointAt). */
  endpointSince: number | undefined;
  perRouter: Record<string, number>;
}

export interface SplitTarget {
  t0: number;
  /** The faulted host. */
  host: string;
  app: string;
  /** The web slot (web.N) that ran on it. */
  slot: string;
  /** Router host → its cluster server host:port. */
  routers: ReadonlyMap<string, string>;
  timeoutMs?: number;
}

/** Waits for the chain of the file comment after t0 and returns its times. */
export async function split(log: PrefixLog, probe: RouterProbe, o: SplitTarget): Promise<Split> {
  const timeout = o.timeoutMs ?? 30_000;
  const del = await log.first(`DELETE of ${keys.host(o.host)}`, (e) => e.at >= o.t0 && e.type === 'delete' && e.key === keys.host(o.host), timeout);
  let assign: AssignmentRecord | undefined;
  let newHost = '';
  const asg = await log.first(`run assignment of ${o.slot} on another host`, (e) => {
    if (e.rev <= del.rev || e.type !== 'put' || !e.key.startsWith(keys.allAssignments())) return false;
    const [host, app, slot] = e.key.slice(keys.allAssignments().length).split('/');
    const rec = parseRecord<AssignmentRecord>(e.value);
    if (host === o.host || app !== o.app || slot !== o.slot || rec?.state !== 'run') return false;
    assign = rec;
    newHost = host!;
    return true;
  }, timeout);
  const epPrefix = `${keys.endpoints()}${o.app}/${o.slot}/`;
  let since: number | undefined;
  const ep = await log.first(`endpoint of ${o.slot} up on ${newHost}`, (e) => {
    if (e.rev <= asg.rev || e.type !== 'put' || !e.key.startsWith(epPrefix)) return false;
    const rec = parseRecord<EndpointRecord>(e.value);
    if (rec?.host !== newHost || rec.state !== 'up' || rec.gen < assign!.gen) return false;
    since = rec.since;
    return true;
  }, timeout);
  const perRouter: Record<string, number> = {};
  await Promise.all(
    [...o.routers].map(async ([host, admin]) => {
      const a = await probe.applied(admin, ep.rev);
      if (a.at === null) throw new Error(`router ${host} had not applied revision ${ep.rev} (at ${a.rev})`);
      perRouter[host] = a.at;
    }),
  );
  return {
    t0: o.t0,
    deleteAt: del.at,
    assignAt: asg.at,
    endpointAt: ep.at,
    routedAt: Math.max(...Object.values(perRouter)),
    newHost,
    endpointRev: ep.rev,
    endpointSince: since,
    perRouter,
  };
}

/** The parts the issue asks for, ms. Propagation may come out ≤ 0: a router can apply a put before the bench's own watch delivers it. */
export function parts(s: Split): { detection: number; reschedule: number; boot: number; propagation: number; total: number } {
  return {
    detection: s.deleteAt - s.t0,
    reschedule: s.assignAt - s.deleteAt,
    boot: s.endpointAt - s.assignAt,
    propagation: s.routedAt - s.endpointAt,
    total: s.routedAt - s.t0,
  };
}

/** Requests started in [from, to) per dyno that answered ('none' for a failure): shows the load did reach the faulted host. */
export function servedBy(records: readonly { start: number; dyno?: string }[], from: number, to: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) if (r.start >= from && r.start < to) out[r.dyno ?? 'none'] = (out[r.dyno ?? 'none'] ?? 0) + 1;
  return out;
}

/**
 * Requests started in [t0 − 1 s, t1) that answered 200 only after more than `heldMs`, and the longest
 * latency among them all. The router replays a bodiless request already sent to a dyno it drops from
 * its table (src/router, commit 94ec220), so a request caught by a link cut is answered by another dyno
 * after detection: analyzeFault then counts it for the dyno that answered, neither failed nor in its
 * bound. These two figures show what such a rescue cost.
 */
export function held(records: readonly { start: number; end: number; status: number }[], t0: number, t1: number, heldMs = 1000): { held: number; maxMs: number } {
  let n = 0;
  let maxMs = 0;
  for (const r of records) {
    if (r.start < t0 - 1000 || r.start >= t1) continue;
    if (r.status === 200 && r.end - r.start > heldMs) n++;
    maxMs = Math.max(maxMs, r.end - r.start);
  }
  return { held: n, maxMs };
}
