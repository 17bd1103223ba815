/**
 * The scheduler role (spec §5): campaigns in the `scheduler` election; while leader, reads the cluster
 * state, computes `plan` (placement.ts) and writes its ops in fenced Txns of ≤ MAX_TXN_OPS, each slot's
 * ops in one Txn (a dead host's assignment is deleted together with its replacement). Passes run on
 * watch events (debounced a few ms: route propagation p99 ≤ 100 ms is the goal) and every fullPassMs;
 * the leader also writes `tick` every second, the routers' watchdog heartbeat.
 *
 * Nothing here may crash the daemon: every etcd call is caught, logged and retried on the next pass.
 * A fenced Txn that fails means another candidate leads: this one stops writing and campaigns again.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, IOperation, Watcher } from 'etcd3';
import { keys, PREFIX } from './keys';
import { Leadership, MAX_TXN_OPS } from './leadership';
import { plan, type PlanApp, type PlanAssignment, type PlanFormation, type PlanHost, type SlotChange, type Unplaced, type UpEndpoint } from './placement';
import { parseRecord, type AssignmentRecord, type EndpointRecord, type HostRecord } from './records';

export interface SchedulerOptions {
  client: Etcd3;
  /** This candidate's id (the host id), the value of its election key. */
  hostId: string;
  /** TTL of the leader lease (10 s in production, 2-3 s in tests). */
  ttlSeconds: number;
  log?: (line: string) => void;
  /** Full pass period, whatever the watch says (a missed event is repaired within it). */
  fullPassMs?: number;
  /** A host whose incarnation changed less than this long ago gets no new slots. */
  probationMs?: number;
  /** Coalesces a burst of watch events into one pass. */
  debounceMs?: number;
  tickMs?: number;
  /** Wait before campaigning again after a lost or failed campaign. */
  recampaignMs?: number;
}

export interface PassReport {
  /** Puts + deletes written. */
  ops: number;
  batches: number;
  ms: number;
  /** Revision of the state the plan was computed from. */
  revision: string;
  unplaced: Unplaced[];
}

/** Key families whose changes can alter the plan; `tick`, `status/`, `routers/`, `dynos/` … are noise. */
const RELEVANT = ['apps/', 'hosts/', 'drain/', 'assign/', 'endpoints/'];

/** The state a pass plans from, parsed from one Txn of range reads (one revision). */
interface ClusterState {
  revision: string;
  apps: PlanApp[];
  hosts: HostRecord[];
  draining: Set<string>;
  assignments: PlanAssignment[];
  endpointsUp: UpEndpoint[];
}

/**
 * Events: 'elected' (leaderRev: string), 'deposed' (reason: string), 'pass' (PassReport),
 * 'tick' (succeeded: boolean). Never 'error': failures are logged, so no listener is required.
 */
export class Scheduler extends EventEmitter {
  private readonly client: Etcd3;
  private readonly log: (line: string) => void;
  private readonly fullPassMs: number;
  private readonly probationMs: number;
  private readonly debounceMs: number;
  private readonly tickMs: number;
  private readonly recampaignMs: number;
  private leadership: Leadership | undefined;
  /** Set while leader: the fence revision of this term. */
  private term: string | undefined;
  private watcher: Watcher | undefined;
  private timers = new Set<NodeJS.Timeout>();
  private intervals: NodeJS.Timeout[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** The leader key's lease, once read: `tick` lives on it, so it vanishes with this term. */
  private leaderLease: string | undefined;
  /** The unplaced slots last logged: the log says when that changes, not on every pass. */
  private lastUnplaced = '';
  private stopped = false;
  /** Host id → the incarnation last seen and when it changed (probation survives the key's absence). */
  private readonly incarnations = new Map<string, { incarnation: string; changedAt: number }>();

  constructor(private readonly opts: SchedulerOptions) {
    super();
    this.client = opts.client;
    this.log = opts.log ?? (() => undefined);
    this.fullPassMs = opts.fullPassMs ?? 5000;
    this.probationMs = opts.probationMs ?? 10_000;
    this.debounceMs = opts.debounceMs ?? 5;
    this.tickMs = opts.tickMs ?? 1000;
    this.recampaignMs = opts.recampaignMs ?? 500;
  }

  get isLeader(): boolean {
    return this.term !== undefined;
  }

  /** The fence revision while leader, else undefined. */
  get leaderRevision(): string | undefined {
    return this.term;
  }

  start(): void {
    if (this.stopped) throw new Error('scheduler stopped');
    if (!this.leadership) this.campaign();
  }

  /** Resigns (a standby takes over at once), stops watch and timers, waits for a pass in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.demote('stopped');
    await this.running?.catch(() => undefined);
  }

  private campaign(): void {
    // One Leadership at a time: a second would hold a candidate key (and a lease) nobody listens to.
    if (this.stopped || this.leadership) return;
    const l = new Leadership({ client: this.client, id: this.opts.hostId, ttlSeconds: this.opts.ttlSeconds });
    this.leadership = l;
    l.on('elected', (rev: string) => {
      if (this.leadership === l && !this.stopped) this.promote(rev);
    });
    l.on('lost', (err: Error) => {
      if (this.leadership !== l) return;
      this.log(`scheduler: leadership lost (${err.message})`);
      void this.demote(`lost: ${err.message}`).then(() => this.later(this.recampaignMs, () => this.campaign()));
    });
  }

  private promote(rev: string): void {
    this.term = rev;
    this.log(`scheduler: elected leader (fence revision ${rev})`);
    this.emit('elected', rev);
    this.intervals.push(
      setInterval(() => this.trigger(), this.fullPassMs),
      setInterval(() => void this.tick(), this.tickMs),
    );
    void this.watch(rev);
    void this.readLeaderLease(rev).finally(() => void this.tick());
    this.trigger();
  }

  /** Leaves leadership: no more writes, no timers, no watch. Idempotent. */
  private async demote(reason: string): Promise<void> {
    const l = this.leadership;
    const wasLeader = this.term !== undefined;
    this.leadership = undefined;
    this.term = undefined;
    this.leaderLease = undefined;
    this.lastUnplaced = '';
    for (const i of this.intervals) clearInterval(i);
    this.intervals = [];
    for (const tm of this.timers) clearTimeout(tm);
    this.timers.clear();
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    if (wasLeader) this.emit('deposed', reason);
    await Promise.all([
      w?.cancel().catch(() => undefined),
      // Revokes the campaign lease (its key goes, a standby is elected now) and stops its keepalive.
      l?.resign().catch((err: unknown) => this.log(`scheduler: resign failed (${String(err)})`)),
    ]);
  }

  /** A timer cleared by demote/stop. */
  private later(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const tm = setTimeout(() => {
      this.timers.delete(tm);
      fn();
    }, ms);
    this.timers.add(tm);
  }

  private async watch(term: string): Promise<void> {
    try {
      const w = await this.client.watch().prefix(PREFIX).create();
      if (this.term !== term) {
        await w.cancel().catch(() => undefined);
        return;
      }
      this.watcher = w;
      const onKv = (kv: IKeyValue): void => {
        const rel = kv.key.toString().slice(PREFIX.length);
        if (!RELEVANT.some((p) => rel.startsWith(p))) return;
        // Our own assign writes come back through the watch: they change nothing the plan reads.
        if (rel.startsWith('assign/') && kv.value.length > 0 && parseRecord<AssignmentRecord>(kv.value)?.leaderRev === term) return;
        this.trigger();
      };
      w.on('put', onKv);
      w.on('delete', onKv);
      // After a reconnect events may have been missed: plan from a fresh read.
      w.on('connected', () => this.trigger());
      w.on('error', (err: Error) => this.log(`scheduler: watch error (${err.message})`));
    } catch (err) {
      this.log(`scheduler: watch failed (${String(err)}); full passes continue`);
    }
  }

  /** Asks for a pass soon; bursts coalesce into one, and a pass asked for during a pass runs after it. */
  private trigger(): void {
    if (!this.term || this.stopped || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.runPass();
    }, this.debounceMs);
  }

  private runPass(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    const term = this.term;
    if (!term) return;
    this.running = this.pass(term)
      .catch((err: unknown) => this.log(`scheduler: pass failed (${err instanceof Error ? err.message : String(err)}); retrying on the next pass`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  private async pass(term: string): Promise<void> {
    const t0 = performance.now();
    const state = await this.readState();
    if (this.term !== term) return;
    const now = Date.now();
    const hosts: PlanHost[] = state.hosts.map((record) => ({ record, draining: state.draining.has(record.id), probation: this.onProbation(record, now) }));
    const ops = plan({ apps: state.apps, hosts, assignments: state.assignments, endpointsUp: state.endpointsUp, leaderRev: term });
    let written = 0;
    const batches = packBatches(ops.changes);
    for (const batch of batches) {
      const txnOps = batch.flatMap((c) => this.toOps(c));
      const l = this.leadership;
      if (this.term !== term || !l) return;
      if (!(await l.fencedTxn(txnOps))) {
        await this.deposed(term, 'a fenced write failed');
        return;
      }
      written += txnOps.length;
    }
    const unplaced = ops.unplaced.map((u) => `${u.app} ${u.slot} (${u.size}): ${u.reason}`).join('; ');
    if (unplaced !== this.lastUnplaced) this.log(unplaced ? `scheduler: unplaced: ${unplaced}` : 'scheduler: every slot placed');
    this.lastUnplaced = unplaced;
    const report: PassReport = { ops: written, batches: batches.length, ms: performance.now() - t0, revision: state.revision, unplaced: ops.unplaced };
    this.emit('pass', report);
  }

  /**
   * Another candidate leads (our fence failed): stop writing and stand again. Once per term: a tick and
   * a pass of the same term may both find out.
   */
  private async deposed(term: string, reason: string): Promise<void> {
    if (this.term !== term) return;
    this.log(`scheduler: deposed (${reason}); campaigning again`);
    await this.demote(reason);
    this.later(this.recampaignMs, () => this.campaign());
  }

  private async readLeaderLease(term: string): Promise<void> {
    const key = this.leadership?.leaderKey;
    if (!key) return;
    try {
      const kv = (await this.client.get(key).exec()).kvs[0];
      if (kv && this.term === term) this.leaderLease = kv.lease;
    } catch (err) {
      this.log(`scheduler: reading the leader lease failed (${String(err)}); tick written without it`);
    }
  }

  private async tick(): Promise<void> {
    const l = this.leadership;
    const term = this.term;
    if (!l || !term) return;
    // A frozen or cut etcd member holds a call until its deadline (gRPC keepalive takes ~4 s to give
    // up on it). The tick is a fenced put of a timestamp, safe to apply twice, so it gets one tick
    // interval as its deadline and one more try at once (etcd3 picks the member at random per call):
    // the routers' watchdog (3 s) keeps its heartbeat while one member is frozen.
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        const put = this.client.put(keys.tick()).value(String(Date.now()));
        // On the leader lease (spec §3), so a dead leader's last tick goes with it. The fence holds the
        // lease alive at commit: its key still exists with this term's create revision.
        if (this.leaderLease) put.lease(this.leaderLease);
        const ok = await l.fencedTxn([put], this.tickMs);
        this.emit('tick', ok);
        if (!ok) await this.deposed(term, 'the tick write failed');
        return;
      } catch (err) {
        if (attempt === 2 || this.term !== term) {
          this.log(`scheduler: tick failed (${err instanceof Error ? err.message : String(err)})`);
          return;
        }
      }
    }
  }

  /** Probation per spec §5: a host that came back with a new incarnation flaps until proven otherwise. */
  private onProbation(h: HostRecord, now: number): boolean {
    const seen = this.incarnations.get(h.id);
    if (!seen) {
      // First sight (a new host, or a new leader): no history to hold against it.
      this.incarnations.set(h.id, { incarnation: h.incarnation, changedAt: -Infinity });
      return false;
    }
    if (seen.incarnation !== h.incarnation) {
      seen.incarnation = h.incarnation;
      seen.changedAt = now;
      // Plan again when probation ends rather than at the next full pass.
      this.later(this.probationMs + 1, () => this.trigger());
    }
    return now - seen.changedAt < this.probationMs;
  }

  private toOps(c: SlotChange): IOperation[] {
    return [
      ...c.deletes.map((d) => this.client.delete().key(keys.assignment(d.host, d.app, d.slot))),
      ...c.puts.map((p) => this.client.put(keys.assignment(p.host, p.app, p.slot)).value(JSON.stringify(p.record))),
    ];
  }

  /** One Txn of range reads: every prefix at the same revision. */
  private async readState(): Promise<ClusterState> {
    const c = this.client;
    const prefixes = [keys.apps(), keys.hosts(), keys.drains(), keys.allAssignments(), keys.endpoints()];
    // An always-true compare (a Version is never negative): etcd3 builds a Txn only from a compare.
    const res = await c
      .if(keys.layout(), 'Version', '>', -1)
      .then(...prefixes.map((p) => c.getAll().prefix(p)))
      .commit();
    const [apps, hosts, drains, assigns, endpoints] = res.responses.map((r) => r.response_range?.kvs ?? []);
    return {
      revision: res.header.revision,
      apps: parseApps(apps ?? []),
      hosts: (hosts ?? []).map((kv) => parseRecord<HostRecord>(kv.value)).filter((h): h is HostRecord => h !== undefined && Array.isArray(h.roles)),
      draining: new Set((drains ?? []).map((kv) => rest(kv, keys.drains()))),
      assignments: parseAssignments(assigns ?? []),
      endpointsUp: parseEndpoints(endpoints ?? []),
    };
  }
}

/** Whole slot changes into batches of ≤ MAX_TXN_OPS ops (a slot's ops never span two Txns). */
export function packBatches(changes: readonly SlotChange[]): SlotChange[][] {
  const batches: SlotChange[][] = [];
  let cur: SlotChange[] = [];
  let n = 0;
  for (const c of changes) {
    const k = c.puts.length + c.deletes.length;
    if (n + k > MAX_TXN_OPS && cur.length > 0) {
      batches.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(c);
    n += k;
  }
  if (cur.length > 0) batches.push(cur);
  return batches;
}

/** The key below `root`, split on '/'. */
function rest(kv: IKeyValue, root: string): string {
  const key = kv.key.toString();
  return key.startsWith(root) ? key.slice(root.length) : key;
}

interface StoredRelease {
  slug: string | null;
  procfile: Record<string, string>;
}

/** apps/<app>/{release, releases/<v>, formation/<type>} → one PlanApp per app with a current release. */
function parseApps(kvs: IKeyValue[]): PlanApp[] {
  const pointer = new Map<string, number>();
  const releases = new Map<string, StoredRelease>();
  const formation = new Map<string, PlanFormation[]>();
  for (const kv of kvs) {
    const [app, kind, name] = rest(kv, keys.apps()).split('/');
    if (!app || !kind) continue;
    if (kind === 'release' && name === undefined) pointer.set(app, Number(kv.value.toString()));
    else if (kind === 'releases' && name) {
      const r = parseRecord<StoredRelease>(kv.value);
      if (r) releases.set(`${app}/${Number(name)}`, r);
    } else if (kind === 'formation' && name) {
      const f = parseRecord<{ quantity: number; size: string }>(kv.value);
      if (f && Number.isInteger(f.quantity) && typeof f.size === 'string') formation.set(app, [...(formation.get(app) ?? []), { type: name, quantity: f.quantity, size: f.size }]);
    }
  }
  const out: PlanApp[] = [];
  for (const [name, version] of pointer) {
    const r = releases.get(`${name}/${version}`);
    if (!Number.isSafeInteger(version) || !r) continue;
    // Without a slug there is nothing to run, whatever the formation says.
    const types = r.slug !== null && r.procfile && typeof r.procfile === 'object' ? Object.keys(r.procfile) : [];
    out.push({ name, release: version, types, formation: formation.get(name) ?? [] });
  }
  return out;
}

function parseAssignments(kvs: IKeyValue[]): PlanAssignment[] {
  const out: PlanAssignment[] = [];
  for (const kv of kvs) {
    const [host, app, slot] = rest(kv, keys.allAssignments()).split('/');
    const record = parseRecord<AssignmentRecord>(kv.value);
    if (host && app && slot && record && typeof record.gen === 'number') out.push({ host, app, slot, record });
  }
  return out;
}

function parseEndpoints(kvs: IKeyValue[]): UpEndpoint[] {
  const out: UpEndpoint[] = [];
  for (const kv of kvs) {
    const [app, slot] = rest(kv, keys.endpoints()).split('/');
    const e = parseRecord<EndpointRecord>(kv.value);
    if (app && slot && e && e.state === 'up') out.push({ app, slot, gen: e.gen, host: e.host });
  }
  return out;
}
