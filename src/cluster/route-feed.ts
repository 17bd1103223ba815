/**
 * The router's route table in cluster mode (spec §5 "Router"): one consistent listing of PREFIX,
 * then a watch from the listing's revision + 1, applied per app (RouteTable.setApp swaps one
 * snapshot, so a request sees an app's old or new definition, never half of one).
 *
 * Three ways out of a stream that stopped telling the truth, because a watch can fail silently:
 * - the watcher's 'error'/'end' (compaction, cancel): re-list and re-watch;
 * - a watchdog: no event for `watchdogMs` (the scheduler leader writes `tick` every second) means
 *   the stream is wedged (etcd-io/etcd #8980, microsoft/etcd3 #72): re-list and re-watch;
 * - anti-entropy: a full re-list and diff every `resyncMs`, for updates lost without any sign
 *   (Heroku's missed-update incident, spec [H6]).
 * While etcd doesn't answer, the last table stays as it is and is never pruned (gorouter's
 * `suspend_pruning_if_nats_unavailable`): a router that can't read etcd keeps routing.
 *
 * An app whose every endpoint vanished with its hosts' leases (expired or revoked, the dynos most
 * likely alive) keeps its last backends for a bounded grace, or until fresh endpoints arrive
 * (lease-grace.ts); deliberate removals (scale to 0, destroy, maintenance, stops) apply at once.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, IRangeResponse, IWatchResponse, Lease, Watcher } from 'etcd3';
import type { AppInput, RouteTable } from '../router/routing/route-table';
import { keys, PREFIX } from './keys';
import { graceKeyOf, LeaseGrace, webQuantity } from './lease-grace';
import { deriveApp, groupByApp, routeKeyOf } from './route-state';
import type { RouterRecord } from './records';
import { settleWithin } from './settle';

export interface RouteFeedOptions {
  client: Etcd3;
  table: RouteTable;
  /** Apps are served at `<app>.<domain>`. */
  domain: string;
  log?: (line: string) => void;
  /** No watch event for this long: the stream is presumed wedged. Default 3000 (3 missed ticks). */
  watchdogMs?: number;
  /** Period of the full re-list and diff. Default 30000. */
  resyncMs?: number;
  /** First retry delay of a failed listing; doubles to 1 s. Default 100. */
  retryMs?: number;
  /**
   * A listing not answered by then counts as failed (and is retried). etcd3 retries a unary call on
   * each member, each with its 2 s deadline, so without this an outage would be noticed after ~6 s.
   * Default 3000.
   */
  listTimeoutMs?: number;
  /** Register `routers/<id>` = {admin, appliedRev} under the router's own lease (drain checks need it). */
  router?: { id: string; admin: string; ttlSeconds: number };
  /**
   * Resolves once the table's current contents route every request (RouterWorkers.synced: every
   * worker applied them). A revision counts as applied (appliedRev, 'applied', the registration's
   * appliedRev that drains wait for) only then. Default: at once (an in-thread Router).
   */
  inForce?: () => Promise<void>;
  /**
   * How long an app left without any backend keeps the backends it lost with their hosts' leases
   * (lease-grace.ts); 0 turns it off. Default 2 × router.ttlSeconds (the host TTL in a daemon), else 6000.
   */
  leaseGraceMs?: number;
}

export type ResyncReason = 'start' | 'watch-error' | 'watchdog' | 'periodic';

export declare interface RouteFeed {
  /** After every applied watch batch or listing, with the revision the table now reflects. */
  on(event: 'applied', listener: (rev: number) => void): this;
  /** After every successful listing; `changed` = apps whose route differed from the table's. */
  on(event: 'resync', listener: (reason: ResyncReason, rev: number, changed: number) => void): this;
}

const noop = (): void => undefined;
/** A listing failure this soon after a recovery belongs to the outage just logged. */
const RELAPSE_MS = 10_000;
/** Entries kept for appliedAt(): at ≥ 1 tick a second, minutes of history. */
const APPLIED_LOG = 1024;

function errText(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

export class RouteFeed extends EventEmitter {
  readonly #o: Required<Omit<RouteFeedOptions, 'router' | 'log' | 'inForce' | 'leaseGraceMs'>> & Pick<RouteFeedOptions, 'router' | 'inForce'>;
  readonly #log: (line: string) => void;
  /** Route keys by app (app → full key → value): what the table is derived from. */
  #byApp = new Map<string, Map<string, string>>();
  /** The route input last given to the table per app (JSON), so unchanged apps aren't swapped. */
  #inputs = new Map<string, string>();
  /** Hosts whose `hosts/<id>` key exists, and each app's web formation quantity (for the grace). */
  #hosts = new Set<string>();
  #webQty = new Map<string, number>();
  readonly #grace: LeaseGrace;
  #graceTimer: NodeJS.Timeout | undefined;
  #rev = 0;
  /** The revision in force: #rev once the router's workers all route by it (see inForce). */
  #forceRev = 0;
  /** Revision of the listing the state was last built from: watch events at or below it are in it already. */
  #listedRev = 0;
  #running = false;
  #watcher: Watcher | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  /** A pending listing: its reason and whether the watch must be re-created from it. */
  #pending: { reason: ResyncReason; rewatch: boolean } | undefined;
  #loop: Promise<void> | undefined;
  #firstListing: { resolve: () => void; promise: Promise<void> };
  /** The current outage (listings failing); `logged` false for a blip right after a recovery. */
  #outage: { since: number; logged: boolean } | undefined;
  #recoveredAt = -Infinity;
  /** Since when the watchdog has found the watch silent (undefined: events flow). */
  #silentSince: number | undefined;
  #sleep: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  readonly #registration: RouterRegistration | undefined;
  /**
   * The last APPLIED_LOG [revision, epoch ms] pairs, one per 'applied' event, oldest first: when this
   * router's table came to reflect a revision (bench:cluster measures route propagation with it).
   */
  #appliedLog: [number, number][] = [];

  constructor(o: RouteFeedOptions) {
    super();
    this.#o = { client: o.client, table: o.table, domain: o.domain, watchdogMs: o.watchdogMs ?? 3000, resyncMs: o.resyncMs ?? 30_000, retryMs: o.retryMs ?? 100, listTimeoutMs: o.listTimeoutMs ?? 3000, router: o.router, inForce: o.inForce };
    this.#log = o.log ?? noop;
    let resolve = noop;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#firstListing = { resolve, promise };
    if (o.router) this.#registration = new RouterRegistration(o.client, o.router, () => this.#forceRev, this.#log);
    this.#grace = new LeaseGrace(o.leaseGraceMs ?? (o.router ? 2 * o.router.ttlSeconds * 1000 : 6000), this.#log);
  }

  /** The etcd revision the router routes by (0 before the first listing): see RouteFeedOptions.inForce. */
  get appliedRev(): number {
    return this.#forceRev;
  }

  /**
   * Epoch ms at which the table first reflected revision `rev` (the first 'applied' at or above it);
   * undefined if not applied yet or older than the log keeps.
   */
  appliedAt(rev: number): number | undefined {
    const log = this.#appliedLog;
    if (log.length === 0 || log[log.length - 1]![0] < rev) return undefined;
    if (log.length === APPLIED_LOG && log[0]![0] >= rev) return undefined; // the first one ≥ rev may have been dropped
    return log.find(([r]) => r >= rev)![1];
  }

  /** The table reflects `rev`: recorded and emitted once it is in force (at once without workers). */
  #applied(rev: number): void {
    const inForce = this.#o.inForce;
    if (inForce === undefined) return this.#inForce(rev);
    // synced() promises resolve in table-version order, so revisions come into force in order
    void inForce().then(() => this.#inForce(rev));
  }

  /** Records an 'applied' in the log (a bounded ring) and emits it. */
  #inForce(rev: number): void {
    if (rev < this.#forceRev) return;
    this.#forceRev = rev;
    this.#appliedLog.push([rev, Date.now()]);
    if (this.#appliedLog.length > APPLIED_LOG) this.#appliedLog.shift();
    this.emit('applied', rev);
  }

  /**
   * Lists, fills the table, watches. Resolves once the table reflects etcd; while etcd doesn't answer
   * it keeps retrying (stop() ends the wait).
   */
  async start(): Promise<void> {
    if (this.#running) return this.#firstListing.promise;
    this.#running = true;
    this.#registration?.start();
    this.#request('start', true);
    this.#resyncTimer = setInterval(() => this.#request('periodic', false), this.#o.resyncMs);
    return this.#firstListing.promise;
  }

  /** Cancels the watch and the timers and revokes the router's lease; the table keeps its last state. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#resyncTimer);
    clearTimeout(this.#graceTimer);
    this.#dropWatch();
    this.#pending = undefined;
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    this.#firstListing.resolve();
    await settleWithin(this.#loop, STOP_WAIT_MS);
    await this.#registration?.stop();
  }

  /** Asks for a listing; requests made while one runs are merged into the next. */
  #request(reason: ResyncReason, rewatch: boolean): void {
    if (!this.#running) return;
    this.#merge({ reason, rewatch });
    this.#loop ??= this.#runListings()
      .catch((err: unknown) => this.#log(`route feed: listing loop failed: ${errText(err)}`))
      .finally(() => (this.#loop = undefined));
  }

  #merge(req: { reason: ResyncReason; rewatch: boolean }): void {
    if (this.#pending) this.#pending.rewatch ||= req.rewatch;
    else this.#pending = { ...req };
  }

  async #runListings(): Promise<void> {
    let delay = this.#o.retryMs;
    while (this.#running && this.#pending) {
      const req = this.#pending;
      this.#pending = undefined;
      // Dropped before listing, so that no event of the old stream lands between listing and watch.
      if (req.rewatch) this.#dropWatch();
      let kvs: IKeyValue[];
      let rev: number;
      try {
        const res = await this.#list();
        kvs = res.kvs;
        rev = Number(res.header.revision);
      } catch (err) {
        if (!this.#running) return;
        this.#merge(req);
        // etcd3's circuit breaker can refuse a call or two just after a recovery: not worth a new line,
        // unless that relapse lasts
        this.#outage ??= { since: Date.now(), logged: false };
        const relapse = this.#outage.since - this.#recoveredAt <= RELAPSE_MS;
        if (!this.#outage.logged && (!relapse || Date.now() - this.#outage.since > RELAPSE_MS)) {
          this.#outage.logged = true;
          this.#log(`route feed: etcd unreachable (${errText(err)}); keeping the last route table (${this.#o.table.snapshot.apps.size} apps), not pruning`);
        }
        await this.#pause(delay);
        delay = Math.min(delay * 2, 1000);
        continue;
      }
      if (!this.#running) return;
      const { reason, rewatch } = req;
      delay = this.#o.retryMs;
      if (this.#outage !== undefined) {
        if (this.#outage.logged) this.#log(`route feed: etcd answers again after ${Date.now() - this.#outage.since} ms; re-listed at revision ${rev}`);
        this.#outage = undefined;
        this.#recoveredAt = Date.now();
      }
      // A periodic listing racing a live watch may be older than what the watch already applied.
      if (rewatch || this.#watcher === undefined || rev > this.#rev) this.#install(reason, rev, kvs);
      if (rewatch || this.#watcher === undefined) this.#watch(rev);
      this.#firstListing.resolve();
    }
  }

  /** Replaces the state with a listing at `rev`, swapping only the apps whose route changed. */
  #install(reason: ResyncReason, rev: number, kvs: IKeyValue[]): void {
    const pairs = kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const);
    const byApp = groupByApp(pairs);
    const hosts = new Set<string>();
    const webQty = new Map<string, number>();
    for (const [key, value] of pairs) {
      const gk = graceKeyOf(key);
      if (gk?.kind === 'host') hosts.add(gk.host);
      else if (gk?.kind === 'web-formation') webQty.set(gk.app, webQuantity(value));
    }
    if (this.#listedRev > 0) this.#noteListingLosses(rev, byApp, hosts);
    const apps = new Set([...this.#byApp.keys(), ...byApp.keys()]);
    this.#byApp = byApp;
    this.#hosts = hosts;
    this.#webQty = webQty;
    this.#rev = rev;
    this.#listedRev = rev;
    let changed = 0;
    if (reason === 'start') {
      this.#replaceAll();
    } else {
      const names: string[] = [];
      for (const app of new Set([...apps, ...this.#grace.holdingApps()])) if (this.#applyApp(app)) names.push(app);
      changed = names.length;
      if (changed > 0 && reason !== 'watch-error') this.#log(`route feed: ${reason} re-list at revision ${rev} changed ${changed} app(s): ${names.slice(0, 5).join(', ')}`);
    }
    this.#armGrace();
    this.emit('resync', reason, rev, changed);
    this.#applied(rev);
  }

  /**
   * A listing has no per-key revisions: an endpoint gone since the state last known, whose host's key
   * is gone too, went with the lease (both count as deleted at the listing's revision).
   */
  #noteListingLosses(rev: number, byApp: Map<string, Map<string, string>>, hosts: Set<string>): void {
    for (const host of this.#hosts) if (!hosts.has(host)) this.#grace.hostDeleted(host, rev);
    for (const host of hosts) if (!this.#hosts.has(host)) this.#grace.hostPut(host, Date.now());
    for (const [app, entries] of this.#byApp) {
      const now = byApp.get(app);
      for (const [key, value] of entries) if (!now?.has(key) && routeKeyOf(key)?.kind === 'endpoint') this.#grace.endpointDeleted(app, key, value, rev);
    }
    for (const [app, entries] of byApp) {
      const before = this.#byApp.get(app);
      for (const key of entries.keys()) if (!before?.has(key) && routeKeyOf(key)?.kind === 'endpoint') this.#grace.endpointPut(app, key);
    }
    this.#grace.settle(Date.now());
  }

  /** The input the table gets for `app`: its keys' derivation, with the lease-loss grace applied. */
  #effective(app: string): AppInput | undefined {
    const input = deriveApp(app, this.#byApp.get(app) ?? new Map(), this.#o.domain);
    return this.#grace.overlay(app, input, this.#webQty.get(app), Date.now());
  }

  /** A timer at the earliest end of a hold: the apps held are applied again then. */
  #armGrace(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    const next = this.#grace.nextExpiry();
    if (next === undefined || !this.#running) return;
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      if (!this.#running) return;
      for (const app of this.#grace.holdingApps()) this.#applyApp(app);
      this.#armGrace();
    }, Math.max(0, next - Date.now()) + 1);
  }

  #replaceAll(): void {
    const apps: Record<string, AppInput> = {};
    this.#inputs.clear();
    for (const app of this.#byApp.keys()) {
      const input = this.#effective(app);
      if (!input) continue;
      apps[app] = input;
      this.#inputs.set(app, JSON.stringify(input));
    }
    try {
      this.#o.table.replace({ apps });
    } catch (err) {
      // one bad app must not keep every other app out: fall back to app by app
      this.#log(`route feed: table refused the listing (${errText(err)}); applying app by app`);
      for (const name of this.#o.table.snapshot.apps.keys()) if (!this.#byApp.has(name)) this.#o.table.removeApp(name);
      for (const app of this.#byApp.keys()) this.#applyApp(app);
    }
  }

  /** Brings one app of the table in line with its keys: one atomic swap, or none (false) if unchanged. */
  #applyApp(app: string): boolean {
    const input = this.#effective(app);
    const json = input === undefined ? undefined : JSON.stringify(input);
    if (json === this.#inputs.get(app) && (input === undefined) === !this.#o.table.app(app)) return false;
    try {
      if (input === undefined) {
        this.#inputs.delete(app);
        this.#o.table.removeApp(app);
      } else {
        this.#o.table.setApp(app, input);
        this.#inputs.set(app, json!);
      }
    } catch (err) {
      this.#log(`route feed: app ${app} not updated: ${errText(err)}`);
    }
    return true;
  }

  #watch(rev: number): void {
    const w = this.#o.client.watch().prefix(PREFIX).startRevision(String(rev + 1)).watcher();
    this.#watcher = w;
    // 'error' without a listener would throw; the listener stays after the watcher is dropped.
    w.on('error', (err: Error) => {
      if (this.#watcher !== w) return;
      // etcd3 has already detached it; a cancel now would wait forever for an answer etcd never sends
      this.#watcher = undefined;
      this.#log(`route feed: watch ended (${errText(err)}); re-listing`);
      this.#request('watch-error', true);
    });
    w.on('end', () => {
      if (this.#watcher === w) this.#request('watch-error', true);
    });
    w.on('data', (res: IWatchResponse) => {
      if (this.#watcher === w) this.#onEvents(res);
    });
    this.#watchdog = setTimeout(() => {
      if (this.#watcher !== w) return;
      // Logged once per silence: without a scheduler leader no tick comes, and the feed re-lists every
      // watchdogMs (the safe choice: it can't tell a quiet cluster from a wedged stream).
      if (this.#silentSince === undefined) {
        this.#silentSince = Date.now();
        this.#log(`route feed: no watch event for ${this.#o.watchdogMs} ms; re-listing and re-watching (every ${this.#o.watchdogMs} ms until events flow)`);
      }
      this.#request('watchdog', true);
    }, this.#o.watchdogMs);
  }

  /** Stops listening to the current watcher. Its cancel may never complete on a wedged stream, so it isn't awaited. */
  #dropWatch(): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) w.cancel().catch(noop);
  }

  #onEvents(res: IWatchResponse): void {
    this.#watchdog?.refresh();
    if (this.#silentSince !== undefined) {
      this.#log(`route feed: watch events flow again after ${Date.now() - this.#silentSince} ms`);
      this.#silentSince = undefined;
    }
    const touched = new Set<string>();
    let rev = this.#rev;
    let fresh = false;
    for (const ev of res.events) {
      const evRev = Number(ev.kv.mod_revision);
      // Compared with the listing, not with the last event: one revision's events may span responses.
      if (evRev <= this.#listedRev) continue;
      fresh = true;
      rev = Math.max(rev, evRev);
      const key = ev.kv.key.toString();
      const put = ev.type === 'Put';
      const gk = graceKeyOf(key);
      if (gk?.kind === 'host') {
        if (put) {
          this.#hosts.add(gk.host);
          for (const app of this.#grace.hostPut(gk.host, Date.now())) touched.add(app);
        } else {
          this.#hosts.delete(gk.host);
          this.#grace.hostDeleted(gk.host, evRev);
        }
        continue;
      }
      if (gk?.kind === 'web-formation') {
        if (put) this.#webQty.set(gk.app, webQuantity(ev.kv.value.toString()));
        else this.#webQty.delete(gk.app);
        touched.add(gk.app);
        continue;
      }
      const rk = routeKeyOf(key);
      if (!rk) continue;
      let entries = this.#byApp.get(rk.app);
      if (put) {
        if (!entries) this.#byApp.set(rk.app, (entries = new Map()));
        entries.set(key, ev.kv.value.toString());
        if (rk.kind === 'endpoint') this.#grace.endpointPut(rk.app, key);
      } else if (entries) {
        const was = entries.get(key);
        if (was !== undefined && rk.kind === 'endpoint') this.#grace.endpointDeleted(rk.app, key, was, evRev);
        entries.delete(key);
        if (entries.size === 0) this.#byApp.delete(rk.app);
      }
      touched.add(rk.app);
    }
    if (!fresh) return;
    // after the whole batch: a lease's keys come in one revision, the host key after its endpoints
    for (const app of this.#grace.settle(Date.now(), rev)) touched.add(app);
    this.#rev = rev;
    for (const app of touched) this.#applyApp(app);
    this.#armGrace();
    this.#applied(rev);
  }

  /** One range read of PREFIX (one revision), or a rejection after listTimeoutMs. */
  async #list(): Promise<IRangeResponse> {
    let timer: NodeJS.Timeout | undefined;
    const call = this.#o.client.getAll().prefix(PREFIX).exec();
    call.catch(noop); // abandoned after a timeout, its late rejection is nobody's
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to the listing in ${this.#o.listTimeoutMs} ms`)), this.#o.listTimeoutMs);
    });
    try {
      return await Promise.race([call, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#sleep = { timer: setTimeout(resolve, ms), resolve };
    });
    this.#sleep = undefined;
  }
}

/**
 * `routers/<id>` under the router's own lease: agents find live routers there to ask whether a
 * draining dyno is idle. Written again at most once a second when the applied revision moved, and
 * under a new lease when etcd3 reports the old one lost (re-granted at most once a second, so an
 * etcd outage doesn't turn into a grant loop).
 */
class RouterRegistration {
  #lease: Lease | undefined;
  #written: { lease: Lease; rev: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> | undefined;
  #failing = false;
  #running = false;

  constructor(
    private readonly client: Etcd3,
    private readonly o: { id: string; admin: string; ttlSeconds: number },
    private readonly rev: () => number,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.#running = true;
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#tick();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearInterval(this.#timer);
    // bounded: a lease whose grant never got an answer (etcd away) makes etcd3's revoke wait for that
    // grant, and a stop that never ends keeps the daemon (and a test process) alive
    await settleWithin(this.#busy, STOP_WAIT_MS);
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease) {
      await settleWithin(lease.revoke(), STOP_WAIT_MS);
      lease.release();
    }
  }

  #tick(): void {
    if (this.#busy || !this.#running) return;
    this.#busy = this.#refresh()
      .catch((err: unknown) => {
        if (!this.#failing) this.log(`route feed: router registration ${keys.router(this.o.id)} failing: ${errText(err)}`);
        this.#failing = true;
      })
      .finally(() => (this.#busy = undefined));
  }

  async #refresh(): Promise<void> {
    if (!this.#lease) {
      const lease = this.client.lease(this.o.ttlSeconds);
      lease.on('lost', () => {
        if (this.#lease !== lease) return;
        this.#lease = undefined;
        lease.release();
      });
      this.#lease = lease;
    }
    const lease = this.#lease;
    const rev = this.rev();
    if (this.#written?.lease === lease && this.#written.rev === rev) return;
    const record: RouterRecord = { admin: this.o.admin, appliedRev: String(rev) };
    await lease.put(keys.router(this.o.id)).value(JSON.stringify(record)).exec();
    this.#written = { lease, rev };
    if (this.#failing) this.log(`route feed: router registration ${keys.router(this.o.id)} written again`);
    this.#failing = false;
  }
}

/** Longest a stop waits for one etcd call before going on without it. */
const STOP_WAIT_MS = 2500;
