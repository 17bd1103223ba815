/**
 * The router's table derived from etcd keys (spec §5 "Router"): pure functions from the key/values
 * under `apps/<app>/meta`, `endpoints/` and `status/` to the RouteTable's per-app input. The feed
 * (route-feed.ts) keeps the keys and calls these; tests drive them with plain tables.
 */
import type { AppInput, BackendInput, RoutesFile } from '../router/routing/route-table';
import { PREFIX } from './keys';
import { parseRecord, type EndpointRecord, type StatusRecord } from './records';

/** A key the routes depend on, and which app it belongs to. */
export interface RouteKey {
  app: string;
  kind: 'meta' | 'endpoint' | 'status';
  /** Slot name (`web.1`) of an endpoint or status key. */
  slot?: string;
}

/** The app a key feeds, or undefined for keys the routes don't read (tick, assign/, releases...). */
export function routeKeyOf(key: string): RouteKey | undefined {
  if (!key.startsWith(PREFIX)) return undefined;
  const parts = key.slice(PREFIX.length).split('/');
  if (parts.some((p) => p === '')) return undefined;
  if (parts.length === 3 && parts[0] === 'apps' && parts[2] === 'meta') return { app: parts[1]!, kind: 'meta' };
  if (parts.length === 4 && parts[0] === 'endpoints') return { app: parts[1]!, kind: 'endpoint', slot: parts[2]! };
  if (parts.length === 4 && parts[0] === 'status') return { app: parts[1]!, kind: 'status', slot: parts[2]! };
  return undefined;
}

/** The route keys grouped by app: app → (full key → value). Other keys are dropped. */
export function groupByApp(kvs: Iterable<readonly [string, string]>): Map<string, Map<string, string>> {
  const byApp = new Map<string, Map<string, string>>();
  for (const [key, value] of kvs) {
    const rk = routeKeyOf(key);
    if (!rk) continue;
    let m = byApp.get(rk.app);
    if (!m) byApp.set(rk.app, (m = new Map()));
    m.set(key, value);
  }
  return byApp;
}

const ENDPOINT_STATES: ReadonlySet<string> = new Set(['starting', 'up', 'draining']);
/** Same shape RouteTable accepts: a bad record must not make the whole app's update throw. */
const ADDRESS = /^(?:\[[^\]]+\]|[^:/\s]+):([1-9]\d{0,4})$/;

function validAddress(address: unknown): address is string {
  if (typeof address !== 'string') return false;
  const m = ADDRESS.exec(address);
  return m !== null && Number(m[1]) <= 65535;
}

interface MetaValue {
  maintenance?: unknown;
}

/** The crash line of one status, as the single-host router shows it (supervisor/routes.ts crashLine). */
function crashLine(slot: string, s: StatusRecord): string {
  const restart = typeof s.restartAt === 'number' ? `, restart at ${new Date(s.restartAt).toISOString()}` : '';
  return `${typeof s.name === 'string' && s.name !== '' ? s.name : slot} ${s.reason ?? 'crashed'}${restart}`;
}

function isWebStatus(slot: string, s: StatusRecord): boolean {
  if (s.oneoff === true) return false;
  return typeof s.type === 'string' ? s.type === 'web' : slot.startsWith('web.');
}

/**
 * One app's route input from its keys (full key → value), or undefined when the app has no meta
 * (it doesn't exist, or is being deleted: its leftover endpoints must not be routed).
 *
 * Backends: every endpoint, named by its slot (old `draining` and new `starting` instances of one slot
 * during a move are both listed), in key order so that the result doesn't depend on arrival order.
 * Crashed: the app has web statuses and, in every web slot, every status is `crashed` (one host's
 * instance still up or restarting means the app serves, or soon will).
 */
export function deriveApp(app: string, entries: ReadonlyMap<string, string>, domain: string): AppInput | undefined {
  let meta: MetaValue | undefined;
  const backends: [string, BackendInput][] = [];
  const webStatuses = new Map<string, [string, StatusRecord][]>();
  for (const [key, value] of entries) {
    const rk = routeKeyOf(key);
    if (!rk || rk.app !== app) continue;
    if (rk.kind === 'meta') {
      meta = parseRecord<MetaValue>(value) ?? {};
    } else if (rk.kind === 'endpoint') {
      const e = parseRecord<EndpointRecord>(value);
      if (!e || !validAddress(e.address) || !ENDPOINT_STATES.has(e.state)) continue;
      backends.push([key, { dyno: rk.slot!, address: e.address, state: e.state }]);
    } else {
      const s = parseRecord<StatusRecord>(value);
      if (!s || !isWebStatus(rk.slot!, s)) continue;
      let list = webStatuses.get(rk.slot!);
      if (!list) webStatuses.set(rk.slot!, (list = []));
      list.push([key, s]);
    }
  }
  if (!meta) return undefined;
  backends.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const input: AppInput = { hosts: [`${app}.${domain}`], backends: backends.map(([, b]) => b), maintenance: meta.maintenance === true, crashed: false };
  const slots = [...webStatuses.keys()].sort();
  const allCrashed = slots.length > 0 && slots.every((slot) => webStatuses.get(slot)!.every(([, s]) => s.state === 'crashed'));
  if (allCrashed) {
    const lines: string[] = [];
    for (const slot of slots) {
      const list = webStatuses.get(slot)!.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      for (const [, s] of list) lines.push(crashLine(slot, s));
    }
    input.crashed = { message: lines.join('; ') };
  }
  return input;
}

/** The whole table from a listing of the prefix. */
export function deriveRoutes(kvs: Iterable<readonly [string, string]>, domain: string): RoutesFile {
  const apps: Record<string, AppInput> = {};
  for (const [app, entries] of groupByApp(kvs)) {
    const input = deriveApp(app, entries, domain);
    if (input) apps[app] = input;
  }
  return { apps };
}
