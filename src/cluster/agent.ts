/**
 * The agent of a host with the dynos role (spec §5): runs the slots the scheduler assigned to this
 * host (`assign/<me>/`) with the ordinary Supervisor, so crash restarts, R10, R12, R14/R15, cycling
 * and draining stay local and unchanged; publishes each web instance's address (`endpoints/`) and
 * each dyno's status (`status/`) under the host's lease.
 *
 * A `retire` assignment with `after: g` (a move off this host) keeps its dyno until an instance of
 * generation g of the same slot is up elsewhere; then the dyno drains (every router idle, FleetDrain)
 * and stops, and the agent deletes the assignment (guarded on its mod revision, so a newer one the
 * scheduler wrote meanwhile is never lost).
 */
import type { Etcd3 } from 'etcd3';
import { ManifoldError } from '../manifold/errors';
import type { AppSettings, Release } from '../manifold/store/store';
import type { DynoStatus, SlotAssignment, Supervisor } from '../manifold/supervisor/supervisor';
import type { RouteAppInput, RouteSink } from '../manifold/supervisor/types';
import { keys } from './keys';
import type { LeasedKeys } from './leased-keys';
import { PrefixMirror } from './prefix-mirror';
import { parseRecord, type AssignmentRecord, type EndpointRecord, type SlugRecord, type StatusRecord } from './records';
import { slugDigest, type SlugCache } from './slug-transfer';

export interface AgentOptions {
  client: Etcd3;
  hostId: string;
  supervisor: () => Supervisor;
  out: LeasedKeys;
  slugs: SlugCache;
  /** host:port of the API hosts' cluster servers, for slug fetches when `slugs/<sha>` names none. */
  apiHosts: () => string[];
  /** Maps a holder's host id to its cluster server address. */
  clusterAddress: (hostId: string) => string | undefined;
  domain: string;
  log: (line: string) => void;
}

interface Assigned {
  key: string;
  modRevision: string;
  app: string;
  slot: string;
  rec: AssignmentRecord;
}

export class Agent implements RouteSink {
  private readonly assigned: PrefixMirror;
  /** Every host's status: a move's old host watches its successor come up. */
  readonly statuses: PrefixMirror;
  private applying: Promise<void> | undefined;
  private again = false;
  private statusTimer: NodeJS.Timeout | undefined;
  private statusSoon: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly settingsSeen = new Map<string, string>();
  /** Endpoint key → the state it was last published in and since when (EndpointRecord.since). */
  private readonly endpointSince = new Map<string, { state: string; since: number }>();
  /** Apps whose release could not be loaded (slug missing everywhere): logged once. */
  private readonly failing = new Set<string>();
  /** --stop-after-disconnect tripped: the assigned dynos are stopped and assignments not applied until resume(). */
  private held = false;

  constructor(private readonly o: AgentOptions) {
    this.assigned = new PrefixMirror({ client: o.client, prefix: keys.assignments(o.hostId), log: o.log });
    this.statuses = new PrefixMirror({ client: o.client, prefix: keys.statuses(), log: o.log, resyncMs: 30_000 });
    o.out.beforeRegrant = () => this.fence();
  }

  /**
   * The host lease was lost (a freeze, a partition): the scheduler may have moved our slots away
   * meanwhile. Re-read `assign/<me>/` (the watch may resume late or not at all) and apply it, so the
   * instances whose assignment is gone stop now and their endpoints are not put again on the new lease.
   */
  private async fence(): Promise<void> {
    if (this.stopped) return;
    await this.assigned.relist();
    this.kick();
    await this.applying;
  }

  async start(): Promise<void> {
    await this.statuses.start();
    await this.assigned.start();
    this.assigned.on('change', () => this.kick());
    this.statuses.on('change', () => {
      if (this.hasPendingMove()) this.kick();
    });
    this.statusTimer = setInterval(() => {
      this.publishStatus();
      this.refreshSettings().catch(() => undefined);
    }, 1000);
    this.statusTimer.unref();
    this.kick();
    await this.applying;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.statusSoon) clearTimeout(this.statusSoon);
    await this.assigned.stop();
    await this.statuses.stop();
    await this.applying?.catch(() => undefined);
  }

  // ---- RouteSink: the supervisor's web instances become endpoint keys ----

  setApp(name: string, input: RouteAppInput): void {
    const prefix = `${keys.endpoints()}${name}/`;
    const want = new Map<string, string>();
    for (const b of input.backends) {
      if (b.state === 'crashed') continue;
      const ip = b.address.slice(0, b.address.lastIndexOf(':'));
      const key = keys.endpoint(name, b.dyno, `${this.o.hostId}-${ip}`);
      // `since` changes only with the state, so an unchanged backend keeps an identical value (no re-put)
      let seen = this.endpointSince.get(key);
      if (seen?.state !== b.state) this.endpointSince.set(key, (seen = { state: b.state, since: Date.now() }));
      const rec: EndpointRecord = { host: this.o.hostId, address: b.address, state: b.state, gen: b.gen ?? 0, release: b.release ?? 0, since: seen.since };
      want.set(key, JSON.stringify(rec));
    }
    for (const k of this.endpointSince.keys()) if (k.startsWith(prefix) && !want.has(k)) this.endpointSince.delete(k);
    for (const k of this.o.out.keysUnder(prefix)) if (!want.has(k)) this.o.out.delete(k);
    for (const [k, v] of want) this.o.out.set(k, v);
    this.statusSoonish();
  }

  removeApp(name: string): void {
    for (const k of this.endpointSince.keys()) if (k.startsWith(`${keys.endpoints()}${name}/`)) this.endpointSince.delete(k);
    for (const k of this.o.out.keysUnder(`${keys.endpoints()}${name}/`)) this.o.out.delete(k);
    for (const k of this.o.out.keysUnder(keys.statuses(name))) this.o.out.delete(k);
  }

  /** A one-off dyno's app on this host even without assignments here: its current release, its slug fetched. */
  async ensureApp(app: string): Promise<void> {
    const sup = this.o.supervisor();
    const v = await this.o.client.get(keys.appRelease(app)).string();
    if (v === null) throw new ManifoldError('ENOAPP', `no such app: ${app}`);
    if (sup.has(app) && sup.releaseOf(app)?.slug) return;
    const rel = await this.loadRelease(app, Number(v));
    if (!rel?.slug) throw new ManifoldError('ENORELEASE', `app ${app} has nothing deployed (run: manifold deploy DIR -a ${app})`);
    if (!sup.has(app)) {
      sup.addApp(app, [`${app}.${this.o.domain}`], rel, [], await this.settingsOf(app));
      sup.setSlots(app, []);
    } else sup.setRelease(app, rel);
  }

  /**
   * --stop-after-disconnect (DisconnectGuard): etcd has been silent too long, so every assigned dyno
   * stops Heroku's way (SIGTERM, grace, SIGKILL); apps stay known (release, settings) and one-off
   * dynos run on. Nothing is applied until resume().
   */
  hold(): void {
    if (this.held || this.stopped) return;
    this.held = true;
    const sup = this.o.supervisor();
    for (const app of sup.appNames()) {
      try {
        sup.setSlots(app, []);
      } catch (err) {
        this.o.log(`${app}: cannot stop its dynos: ${(err as Error).message}`);
      }
    }
  }

  /** etcd answers again: re-read `assign/<me>/` and start what is still assigned here. */
  async resume(): Promise<void> {
    if (!this.held) return;
    await this.assigned.relist();
    this.held = false;
    this.kick();
    await this.applying;
  }

  // ---- assignments → supervisor ----

  private kick(): void {
    if (this.stopped || this.held) return;
    if (this.applying) {
      this.again = true;
      return;
    }
    this.applying = (async () => {
      do {
        this.again = false;
        try {
          await this.apply();
        } catch (err) {
          this.o.log(`applying assignments: ${(err as Error).message}`);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.applying = undefined;
    });
  }

  private current(): Map<string, Assigned[]> {
    const byApp = new Map<string, Assigned[]>();
    const base = keys.assignments(this.o.hostId);
    for (const [key, v] of this.assigned.entries) {
      const [app, slot] = key.slice(base.length).split('/');
      const rec = parseRecord<AssignmentRecord>(v.value);
      if (!app || !slot || !rec) continue;
      const list = byApp.get(app) ?? [];
      list.push({ key, modRevision: v.modRevision, app, slot, rec });
      byApp.set(app, list);
    }
    return byApp;
  }

  private async apply(): Promise<void> {
    const sup = this.o.supervisor();
    const byApp = this.current();
    for (const app of new Set([...byApp.keys(), ...sup.appNames()])) {
      if (this.held) return; // hold() came while this pass ran: it stopped everything, keep it so
      const list = byApp.get(app) ?? [];
      if (list.length === 0) {
        // an app here only for its one-off dynos stays until the last one ends
        if (sup.has(app) && sup.status(app).some((d) => d.oneoff)) {
          sup.setSlots(app, []);
        } else if (sup.has(app)) {
          this.o.log(`${app}: no assignment left on this host`);
          void sup.removeApp(app).then(() => this.removeApp(app));
        }
        continue;
      }
      const release = Math.max(...list.map((a) => a.rec.release));
      if (!sup.has(app) || sup.releaseOf(app)?.version !== release) {
        let rel: Release | undefined;
        try {
          rel = await this.loadRelease(app, release);
          this.failing.delete(app);
        } catch (err) {
          if (!this.failing.has(app)) this.o.log(`${app}: cannot run release v${release}: ${(err as Error).message}`);
          this.failing.add(app);
          setTimeout(() => this.kick(), 2000).unref();
          continue;
        }
        if (!rel) continue;
        if (!sup.has(app)) sup.addApp(app, [`${app}.${this.o.domain}`], rel, [], await this.settingsOf(app));
        else sup.setRelease(app, rel);
      }
      const slots: SlotAssignment[] = [];
      for (const a of list) {
        const keep = a.rec.state === 'run' || (a.rec.state === 'retire' && a.rec.after !== undefined && !this.successorUp(app, a.slot, a.rec.after));
        if (keep) slots.push({ name: a.slot, type: a.rec.type, size: a.rec.size, gen: a.rec.gen });
      }
      if (this.held) return;
      try {
        sup.setSlots(app, slots);
      } catch (err) {
        this.o.log(`${app}: bad assignment: ${(err as Error).message}`);
      }
    }
    this.publishStatus();
  }

  private hasPendingMove(): boolean {
    for (const list of this.current().values()) for (const a of list) if (a.rec.state === 'retire' && a.rec.after !== undefined) return true;
    return false;
  }

  /** An instance of generation ≥ `gen` of the slot is up on another host. */
  private successorUp(app: string, slot: string, gen: number): boolean {
    const prefix = `${keys.statuses(app)}${slot}/`;
    for (const [key, v] of this.statuses.entries) {
      if (!key.startsWith(prefix) || key.endsWith(`/${this.o.hostId}`)) continue;
      const s = parseRecord<StatusRecord>(v.value);
      if (s && s.state === 'up' && (s.gen ?? 0) >= gen) return true;
    }
    return false;
  }

  /** The release with its slug on this host (fetched from an API host that holds it if needed). */
  private async loadRelease(app: string, version: number): Promise<Release | undefined> {
    const raw = await this.o.client.get(keys.release(app, version)).string();
    if (raw === null) return undefined;
    const rel = JSON.parse(raw) as Release;
    const sha = slugDigest(rel.slug);
    if (!sha) {
      if (rel.slug !== null) throw new ManifoldError('ENORELEASE', `release v${version} names a slug without a content address (${rel.slug})`);
      return rel;
    }
    const local = await this.o.slugs.ensure(sha, async () => {
      const rec = parseRecord<SlugRecord>((await this.o.client.get(keys.slug(sha)).string()) ?? '');
      const holders = (rec?.holders ?? []).map((h) => this.o.clusterAddress(h)).filter((a): a is string => a !== undefined);
      return [...new Set([...holders, ...this.o.apiHosts()])];
    });
    return { ...rel, slug: local };
  }

  private async settingsOf(app: string): Promise<AppSettings> {
    const raw = await this.o.client.get(keys.appMeta(app)).string();
    if (raw !== null) this.settingsSeen.set(app, raw);
    return parseRecord<{ settings?: AppSettings }>(raw ?? '')?.settings ?? {};
  }

  /** `apps:settings` changes reach running apps within a second (meta is small: one read per app). */
  private async refreshSettings(): Promise<void> {
    const sup = this.o.supervisor();
    for (const app of sup.appNames()) {
      const raw = await this.o.client.get(keys.appMeta(app)).string();
      if (raw === null || raw === this.settingsSeen.get(app)) continue;
      this.settingsSeen.set(app, raw);
      const s = parseRecord<{ settings?: AppSettings }>(raw)?.settings;
      if (s && sup.has(app)) sup.setSettings(app, s);
    }
  }

  // ---- status out, and retired assignments cleaned up ----

  /** Publishes every dyno's status now and resolves once it is in etcd. */
  async publishNow(): Promise<void> {
    this.publishStatus();
    await this.o.out.flushed();
  }

  private statusSoonish(): void {
    if (this.statusSoon) return;
    this.statusSoon = setTimeout(() => {
      this.statusSoon = undefined;
      this.publishStatus();
    }, 5);
  }

  private publishStatus(): void {
    if (this.stopped) return;
    const sup = this.o.supervisor();
    const want = new Map<string, string>();
    const live = new Map<string, Set<string>>();
    for (const app of sup.appNames()) {
      let list: DynoStatus[];
      try {
        list = sup.status(app);
      } catch {
        continue;
      }
      live.set(app, new Set(list.map((d) => d.name)));
      for (const d of list) {
        const rec: StatusRecord = { ...d, host: this.o.hostId };
        want.set(keys.status(app, d.name, this.o.hostId), JSON.stringify(rec));
      }
    }
    for (const k of this.o.out.keysUnder(keys.statuses())) if (!want.has(k)) this.o.out.delete(k);
    for (const [k, v] of want) this.o.out.set(k, v);
    // retired assignments whose dyno is gone: the agent that ran them removes them
    for (const list of this.current().values()) {
      for (const a of list) {
        if (a.rec.state !== 'retire' || live.get(a.app)?.has(a.slot)) continue;
        if (a.rec.after !== undefined && !this.successorUp(a.app, a.slot, a.rec.after) && sup.has(a.app)) continue;
        this.o.client
          .if(a.key, 'Mod', '==', a.modRevision)
          .then(this.o.client.delete().key(a.key))
          .commit()
          .catch(() => undefined);
      }
    }
  }
}
