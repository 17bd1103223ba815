/**
 * App → hostnames and web backends, read on every request and replaced atomically while traffic
 * flows: every update builds a new immutable snapshot and swaps one reference, so a request sees
 * either the old table or the new one, never half of an update.
 */
import { EventEmitter } from 'node:events';
import { RouterError } from '../errors';

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

const STATES: ReadonlySet<string> = new Set(['starting', 'up', 'crashed', 'draining']);

function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
}

function parseAddress(address: string, where: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  if (!m || Number(m[3]) > 65535 || Number(m[3]) === 0) throw new RouterError('EROUTES', `${where}: bad address "${address}" (expected host:port)`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

function buildApp(name: string, input: AppInput): AppRoute {
  if (!input || typeof input !== 'object') throw new RouterError('EROUTES', `app ${name}: expected an object`);
  if (!Array.isArray(input.hosts) || input.hosts.some((h) => typeof h !== 'string' || h.length === 0)) {
    throw new RouterError('EROUTES', `app ${name}: "hosts" must be an array of hostnames`);
  }
  const backends: Backend[] = [];
  for (const [i, b] of (input.backends ?? []).entries()) {
    const where = `app ${name} backend ${i}`;
    if (!b || typeof b.dyno !== 'string' || typeof b.address !== 'string') throw new RouterError('EROUTES', `${where}: needs "dyno" and "address"`);
    const state = b.state ?? 'up';
    if (!STATES.has(state)) throw new RouterError('EROUTES', `${where}: bad state "${String(state)}"`);
    backends.push(Object.freeze({ dyno: b.dyno, address: b.address, ...parseAddress(b.address, where), state }));
  }
  const up = backends.filter((b) => b.state === 'up');
  const starting = backends.filter((b) => b.state === 'starting').length;
  let crashed: string | null = null;
  if (input.crashed) crashed = typeof input.crashed === 'object' ? input.crashed.message ?? 'crashed' : 'crashed';
  else if (backends.length > 0 && backends.every((b) => b.state === 'crashed')) crashed = 'all web dynos crashed';
  return Object.freeze({
    name,
    hosts: Object.freeze(input.hosts.map(normalizeHost)),
    backends: Object.freeze(backends),
    up: Object.freeze(up),
    starting,
    maintenance: input.maintenance === true,
    crashed,
  });
}

function snapshotOf(apps: Map<string, AppRoute>): RouteSnapshot {
  const hosts = new Map<string, AppRoute>();
  for (const app of apps.values()) {
    for (const h of app.hosts) {
      const other = hosts.get(h);
      if (other && other.name !== app.name) throw new RouterError('EROUTES', `host ${h} is claimed by both ${other.name} and ${app.name}`);
      hosts.set(h, app);
    }
  }
  return Object.freeze({ apps, hosts });
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

/** Per snapshot: every address some app still has a live (not crashed) backend at. Memoised. */
const snapshotLive = new WeakMap<RouteSnapshot, ReadonlySet<string>>();

/**
 * True when no app of the snapshot has a live backend at `address` any more (backendDropped for
 * every app; addresses are unique across apps). Pure: the router closes such addresses' idle
 * pooled connections, which carry no app.
 */
export function addressDropped(snapshot: RouteSnapshot, address: string): boolean {
  let live = snapshotLive.get(snapshot);
  if (live === undefined) {
    const set = new Set<string>();
    for (const app of snapshot.apps.values()) for (const b of app.backends) if (b.state !== 'crashed') set.add(b.address);
    snapshotLive.set(snapshot, (live = set));
  }
  return !live.has(address);
}

export declare interface RouteTable {
  on(event: 'change', listener: (snapshot: RouteSnapshot) => void): this;
}

export class RouteTable extends EventEmitter {
  #snapshot: RouteSnapshot = snapshotOf(new Map());

  get snapshot(): RouteSnapshot {
    return this.#snapshot;
  }

  /** Route for a Host (lower-case, no port). */
  lookupHost(host: string): AppRoute | undefined {
    return this.#snapshot.hosts.get(host);
  }

  app(name: string): AppRoute | undefined {
    return this.#snapshot.apps.get(name);
  }

  /** Replaces the whole table (e.g. a reloaded routes file). Throws EROUTES and keeps the old table on bad input. */
  replace(file: RoutesFile): void {
    if (!file || typeof file !== 'object' || !file.apps || typeof file.apps !== 'object') {
      throw new RouterError('EROUTES', 'routes must look like {"apps": {"NAME": {"hosts": [...], "backends": [...]}}}');
    }
    const apps = new Map<string, AppRoute>();
    for (const [name, input] of Object.entries(file.apps)) apps.set(name, buildApp(name, input));
    this.#swap(apps);
  }

  setApp(name: string, input: AppInput): void {
    const apps = new Map(this.#snapshot.apps);
    apps.set(name, buildApp(name, input));
    this.#swap(apps);
  }

  removeApp(name: string): void {
    if (!this.#snapshot.apps.has(name)) return;
    const apps = new Map(this.#snapshot.apps);
    apps.delete(name);
    this.#swap(apps);
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

  toJSON(): RoutesFile {
    const apps: Record<string, AppInput> = {};
    for (const [name, app] of this.#snapshot.apps) apps[name] = toInput(app);
    return { apps };
  }

  #swap(apps: Map<string, AppRoute>): void {
    this.#snapshot = snapshotOf(apps);
    this.emit('change', this.#snapshot);
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
