/**
 * App → hostnames and web backends, read on every request and replaced atomically while traffic
 * flows: every update builds a new immutable snapshot and swaps one reference, so a request sees
 * either the old table or the new one, never half of an update. Snapshots share every part an
 * update did not touch (bucket-map.ts), so a swap costs O(changed apps), and a big reload can be
 * committed in slices (RouteBatch) with each app switched whole.
 */
import { EventEmitter } from 'node:events';
import { RouterError } from '../errors';
import { BucketMap } from './bucket-map';
import { addressParts, normalizeHost, pathKey, RoutesError, validateApp, validateRoot } from './routes-validate';

export type BackendState = 'starting' | 'up' | 'crashed' | 'draining';

export interface BackendInput {
  dyno: string;
  /** `host:port` of the dyno's web process. */
  address: string;
  /** Default 'up'. */
  state?: BackendState;
}

export interface AppInput {
  hosts: string[];
  backends?: BackendInput[];
  /** Maintenance mode: every request gets H80. */
  maintenance?: boolean;
  /** Set by the manifold when the web process crashed; the message is kept for operators. */
  crashed?: boolean | { message?: string };
}

export interface Backend {
  readonly dyno: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly state: BackendState;
}

export interface AppRoute {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly backends: readonly Backend[];
  /** Backends in state 'up', the only ones that get new requests. */
  readonly up: readonly Backend[];
  readonly starting: number;
  readonly maintenance: boolean;
  /** Crash message when the app (or every dyno) is crashed, else null. */
  readonly crashed: string | null;
}

export interface RouteSnapshot {
  readonly apps: ReadonlyMap<string, AppRoute>;
  readonly hosts: ReadonlyMap<string, AppRoute>;
}

export interface RoutesFile {
  apps: Record<string, AppInput>;
}

/**
 * Builds an app's route from its input, sharing every part equal to `current`'s (the hosts array,
 * each backend, the backends and up arrays), and returning `current` itself when nothing differs:
 * an unchanged app keeps its object (memos keyed by it survive a reload), and a reload of 10 000
 * apps whose backends changed leaves their hosts alone instead of building copies that the
 * scavenger then moves twice (what survives young collections is what a reload's pauses cost).
 */
function buildApp(name: string, input: AppInput, current: AppRoute | undefined): AppRoute {
  const inputs = input.backends ?? [];
  const was = current?.backends;
  let sameBackends = was !== undefined && was.length === inputs.length;
  const backends: Backend[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const b = inputs[i]!;
    const state = b.state ?? 'up';
    const old = was?.[i];
    if (old !== undefined && old.dyno === b.dyno && old.address === b.address && old.state === state) {
      backends.push(old);
      continue;
    }
    sameBackends = false;
    const { host, port } = addressParts(b.address)!;
    backends.push(Object.freeze({ dyno: b.dyno, address: b.address, host, port, state }));
  }
  let hosts: readonly string[] = input.hosts.map(normalizeHost);
  const wasHosts = current?.hosts;
  if (wasHosts !== undefined && wasHosts.length === hosts.length && hosts.every((h, i) => h === wasHosts[i])) hosts = wasHosts;
  let crashed: string | null = null;
  if (input.crashed) crashed = typeof input.crashed === 'object' ? input.crashed.message ?? 'crashed' : 'crashed';
  else if (backends.length > 0 && backends.every((b) => b.state === 'crashed')) crashed = 'all web dynos crashed';
  const maintenance = input.maintenance === true;
  if (current !== undefined && sameBackends && hosts === wasHosts && current.maintenance === maintenance && current.crashed === crashed) return current;
  const shared = sameBackends && current !== undefined;
  return Object.freeze({
    name,
    hosts: hosts === wasHosts ? hosts : Object.freeze(hosts),
    backends: shared ? current.backends : Object.freeze(backends),
    up: shared ? current.up : Object.freeze(backends.filter((b) => b.state === 'up')),
    starting: shared ? current.starting : backends.filter((b) => b.state === 'starting').length,
    maintenance,
    crashed,
  });
}

/** Addresses of an app's backends that may take a connection (not crashed), with repeats. */
function liveOf(app: AppRoute | undefined): string[] {
  return app === undefined ? [] : app.backends.filter((b) => b.state !== 'crashed').map((b) => b.address);
}

interface Snapshot extends RouteSnapshot {
  readonly apps: BucketMap<AppRoute>;
  readonly hosts: BucketMap<AppRoute>;
  /** Live backend address → how many backends (any app) have it; kept per swap for addressDropped. */
  readonly live: BucketMap<number>;
}

const EMPTY: Snapshot = Object.freeze({ apps: BucketMap.empty<AppRoute>(), hosts: BucketMap.empty<AppRoute>(), live: BucketMap.empty<number>() });

/**
 * A set of app changes validated and built against the table, not applied yet: RouteTable.batch()
 * fills it app by app (a reload spreads that over event-loop turns), check() looks for hosts
 * claimed twice once the whole batch is in, commit() applies it, whole or in slices. Host claims
 * are recorded as apps are added, so check() only looks at hosts taken from apps outside the batch
 * (usually none): with 10 000 changed apps a whole-batch check stalled one turn for ~25 ms.
 */
export class RouteBatch {
  /** name → new route, or null to remove the app. */
  readonly routes = new Map<string, AppRoute | null>();
  /** Apps set to a route that differs from the table's when they were added (removals not counted). */
  changed = 0;
  /** Host → the app of this batch that will own it. */
  readonly #claims = new Map<string, string>();
  /** The first host two apps of the batch claim. */
  #conflict: RoutesError | undefined;
  /** [host, app, index, owner]: hosts the batch takes from an app that was not in it when added. */
  readonly #taken: [string, string, number, string][] = [];
  #list: (readonly [string, AppRoute | null])[] | undefined;

  constructor(
    readonly label: string,
    private readonly snapshot: () => RouteSnapshot,
  ) {}

  get size(): number {
    return this.routes.size;
  }

  /** Validates and builds one app (throws RoutesError); an app equal to `current` keeps that object. */
  set(name: string, input: unknown, current: AppRoute | undefined): void {
    const route = buildApp(name, validateApp(name, input, this.label), current);
    this.#put(name, route, current);
    const hosts = this.snapshot().hosts;
    for (let i = 0; i < route.hosts.length; i++) {
      const h = route.hosts[i]!;
      const other = this.#claims.get(h);
      if (other !== undefined && other !== name) {
        this.#conflict ??= new RoutesError(`${pathKey('apps', name)}.hosts[${i}]`, 'duplicate-host', `host ${h} is claimed by both ${other} and ${name}`, this.label);
      }
      this.#claims.set(h, name);
      const owner = hosts.get(h);
      if (owner !== undefined && owner.name !== name && !this.routes.has(owner.name)) this.#taken.push([h, name, i, owner.name]);
    }
  }

  remove(name: string, current: AppRoute | undefined): void {
    this.#put(name, null, current);
  }

  #put(name: string, route: AppRoute | null, current: AppRoute | undefined): void {
    if (this.#list !== undefined) throw new Error('RouteBatch: changed after its first commit');
    if (this.routes.has(name)) throw new Error(`RouteBatch: app ${name} given twice`);
    this.routes.set(name, route);
    if (route !== null && route !== current) this.changed++;
  }

  /** Throws RoutesError if the whole batch would leave a host claimed by two apps. O(hosts taken from other apps). */
  check(): void {
    if (this.#conflict !== undefined) throw this.#conflict;
    const hosts = this.snapshot().hosts;
    for (const [h, name, i, owner] of this.#taken) {
      // the owner keeps the host unless the batch changes it too (then its new hosts were claimed above)
      if (this.routes.has(owner) || hosts.get(h)?.name !== owner) continue;
      throw new RoutesError(`${pathKey('apps', name)}.hosts[${i}]`, 'duplicate-host', `host ${h} is claimed by both ${owner} and ${name}`, this.label);
    }
  }

  /** Host → the app of this batch that will own it, for hosts moving between apps in slices. */
  claimant(host: string): string | undefined {
    return this.#claims.get(host);
  }

  /** The entries in order, for committing in slices (the batch is fixed from the first commit on). */
  list(): readonly (readonly [string, AppRoute | null])[] {
    return (this.#list ??= [...this.routes]);
  }
}

/** Per-snapshot app: addresses of its backends that may still take a connection (not crashed). Memoised. */
const liveAddresses = new WeakMap<AppRoute, ReadonlySet<string>>();

/**
 * True when a connect to `address` has lost its reason to exist: the app is gone from the table, or
 * none of its backends has that address any more (or only a crashed one). Pure: the router aborts
 * such pending connects and re-dispatches the request (a dead host's endpoints were removed).
 */
export function backendDropped(app: AppRoute | undefined, address: string): boolean {
  if (app === undefined) return true;
  let live = liveAddresses.get(app);
  if (live === undefined) {
    live = new Set(app.backends.filter((b) => b.state !== 'crashed').map((b) => b.address));
    liveAddresses.set(app, live);
  }
  return !live.has(address);
}

/** Per foreign snapshot (not built by a RouteTable): every live address. Memoised. */
const snapshotLive = new WeakMap<RouteSnapshot, ReadonlySet<string>>();

/**
 * True when no app of the snapshot has a live backend at `address` any more (backendDropped for
 * every app; addresses are unique across apps). Pure: the router closes such addresses' idle
 * pooled connections, which carry no app. O(1) on a table's snapshots: they carry the live count.
 */
export function addressDropped(snapshot: RouteSnapshot, address: string): boolean {
  if ((snapshot as Partial<Snapshot>).live instanceof BucketMap) return !(snapshot as Snapshot).live.has(address);
  let live = snapshotLive.get(snapshot);
  if (live === undefined) {
    const set = new Set<string>();
    for (const app of snapshot.apps.values()) for (const b of app.backends) if (b.state !== 'crashed') set.add(b.address);
    snapshotLive.set(snapshot, (live = set));
  }
  return !live.has(address);
}

/**
 * What one swap changed, in a form postMessage can carry: app name → its new route (undefined:
 * removed), host → the name of its app (undefined: unrouted). `version` is the source table's.
 */
export interface RouteDelta {
  version: number;
  apps: [string, AppRoute | undefined][];
  hosts: [string, string | undefined][];
}

export declare interface RouteTable {
  on(event: 'change', listener: (snapshot: RouteSnapshot) => void): this;
  on(event: 'delta', listener: (delta: RouteDelta) => void): this;
}

export class RouteTable extends EventEmitter {
  #snapshot: Snapshot = EMPTY;
  /** Bumped on every swap: a batch prepared over several turns knows whether the table moved meanwhile. */
  #version = 0;

  get snapshot(): RouteSnapshot {
    return this.#snapshot;
  }

  get version(): number {
    return this.#version;
  }

  /** Route for a Host (lower-case, no port). */
  lookupHost(host: string): AppRoute | undefined {
    return this.#snapshot.hosts.get(host);
  }

  app(name: string): AppRoute | undefined {
    return this.#snapshot.apps.get(name);
  }

  /** An empty batch of changes to fill (batch.set / batch.remove), check() and commit(). */
  batch(label = 'routes'): RouteBatch {
    return new RouteBatch(label, () => this.#snapshot);
  }

  /** Throws RoutesError if committing the whole batch would leave a host claimed by two apps. */
  check(batch: RouteBatch): void {
    batch.check();
  }

  /**
   * Applies batch entries [from, to) in one swap: each app is switched whole, so a request sees an
   * app's old route or its new one. A checked batch committed in slices never claims a host twice
   * and never leaves one unrouted: a host moving to an app is taken over when that app commits, and
   * the app it left only drops it if it still owns it and no app of the batch takes it.
   */
  commit(batch: RouteBatch, from = 0, to = batch.size): void {
    const old = this.#snapshot;
    const apps: [string, AppRoute | undefined][] = [];
    const hostDrops: [string, undefined][] = [];
    const hostSets: [string, AppRoute][] = [];
    const liveDelta = new Map<string, number>();
    const list = batch.list();
    for (let i = from; i < Math.min(to, list.length); i++) {
      const [name, route] = list[i]!;
      const prev = old.apps.get(name);
      if (prev === route || (prev === undefined && route === null)) continue;
      apps.push([name, route ?? undefined]);
      // A host moving to an app of a later slice keeps its old route until that slice: never unrouted.
      if (prev !== undefined) {
        for (const h of prev.hosts) {
          if (old.hosts.get(h) !== prev) continue;
          const next = batch.claimant(h);
          if (next === undefined || next === name) hostDrops.push([h, undefined]);
        }
      }
      if (route !== null) for (const h of route.hosts) hostSets.push([h, route]);
      for (const a of liveOf(prev)) liveDelta.set(a, (liveDelta.get(a) ?? 0) - 1);
      for (const a of liveOf(route ?? undefined)) liveDelta.set(a, (liveDelta.get(a) ?? 0) + 1);
    }
    const live: [string, number | undefined][] = [];
    for (const [a, d] of liveDelta) {
      if (d === 0) continue;
      const n = (old.live.get(a) ?? 0) + d;
      live.push([a, n > 0 ? n : undefined]);
    }
    const hosts: [string, AppRoute | undefined][] = [...hostDrops, ...hostSets];
    this.#swap(Object.freeze({ apps: old.apps.with(apps), hosts: old.hosts.with(hosts), live: old.live.with(live) }));
    // Router workers mirror this table: they get exactly what this swap changed (workers/table-sync.ts).
    if (this.listenerCount('delta') > 0) this.emit('delta', { version: this.#version, apps, hosts: hosts.map(([h, r]) => [h, r?.name]) } satisfies RouteDelta);
  }

  /**
   * Applies a delta another table emitted (a router worker mirroring the main thread's table):
   * no validation or host checks, the source table did them; hosts name their app in `delta.apps`
   * or in this table. The result has the source's apps and hosts; the version is this table's own.
   * Routes are taken as they are: frozen, `up` made of the backend objects (decodeDelta builds them so).
   */
  mirror(delta: RouteDelta): void {
    const old = this.#snapshot;
    const apps: [string, AppRoute | undefined][] = [];
    const liveDelta = new Map<string, number>();
    for (const [name, route] of delta.apps) {
      apps.push([name, route]);
      for (const a of liveOf(old.apps.get(name))) liveDelta.set(a, (liveDelta.get(a) ?? 0) - 1);
      for (const a of liveOf(route)) liveDelta.set(a, (liveDelta.get(a) ?? 0) + 1);
    }
    const nextApps = old.apps.with(apps);
    const hosts: [string, AppRoute | undefined][] = delta.hosts.map(([h, name]) => [h, name === undefined ? undefined : nextApps.get(name)]);
    const live: [string, number | undefined][] = [];
    for (const [a, d] of liveDelta) {
      if (d === 0) continue;
      const n = (old.live.get(a) ?? 0) + d;
      live.push([a, n > 0 ? n : undefined]);
    }
    this.#swap(Object.freeze({ apps: nextApps, hosts: old.hosts.with(hosts), live: old.live.with(live) }));
  }

  /** The whole table as one delta from an empty table (a new router worker starts from it). */
  fullDelta(): RouteDelta {
    const s = this.#snapshot;
    return { version: this.#version, apps: [...s.apps], hosts: [...s.hosts].map(([h, r]) => [h, r.name]) };
  }

  /** Replaces the whole table (e.g. a reloaded routes file). Throws EROUTES and keeps the old table on bad input. */
  replace(file: RoutesFile, label = 'routes'): void {
    const doc = validateRoot(file, label);
    const batch = this.batch(label);
    for (const name of Object.keys(doc.apps)) batch.set(name, doc.apps[name], this.app(name));
    for (const [name, app] of this.#snapshot.apps) if (!Object.hasOwn(doc.apps, name)) batch.remove(name, app);
    this.check(batch);
    this.commit(batch);
  }

  setApp(name: string, input: AppInput): void {
    const batch = this.batch();
    batch.set(name, input, this.app(name));
    this.check(batch);
    this.commit(batch);
  }

  removeApp(name: string): void {
    if (!this.#snapshot.apps.has(name)) return;
    const batch = this.batch();
    batch.remove(name, this.app(name));
    this.commit(batch);
  }

  /** Applies a change to one app's current definition. */
  updateApp(name: string, change: (current: AppInput) => AppInput): void {
    const current = this.#snapshot.apps.get(name);
    if (!current) throw new RouterError('EROUTES', `no app ${name}`);
    this.setApp(name, change(toInput(current)));
  }

  setBackends(name: string, backends: BackendInput[]): void {
    this.updateApp(name, (a) => ({ ...a, backends }));
  }

  setBackendState(name: string, dyno: string, state: BackendState): void {
    this.updateApp(name, (a) => ({ ...a, backends: (a.backends ?? []).map((b) => (b.dyno === dyno ? { ...b, state } : b)) }));
  }

  setMaintenance(name: string, maintenance: boolean): void {
    this.updateApp(name, (a) => ({ ...a, maintenance }));
  }

  setCrashed(name: string, crashed: false | { message?: string }): void {
    this.updateApp(name, (a) => ({ ...a, crashed }));
  }

  /** Apps sorted by name: the order no longer follows insertion (the table is hashed), so make it stable. */
  toJSON(): RoutesFile {
    const apps: Record<string, AppInput> = {};
    for (const name of [...this.#snapshot.apps.keys()].sort()) apps[name] = toInput(this.#snapshot.apps.get(name)!);
    return { apps };
  }

  #swap(snapshot: Snapshot): void {
    this.#snapshot = snapshot;
    this.#version++;
    this.emit('change', snapshot);
  }
}

function toInput(app: AppRoute): AppInput {
  const input: AppInput = {
    hosts: [...app.hosts],
    backends: app.backends.map((b) => ({ dyno: b.dyno, address: b.address, state: b.state })),
  };
  if (app.maintenance) input.maintenance = true;
  if (app.crashed !== null && app.crashed !== 'all web dynos crashed') input.crashed = { message: app.crashed };
  return input;
}
