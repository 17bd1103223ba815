/**
 * The key layout of cluster mode (docs/cluster.md, spec distribution.md §3). Every key lives under one
 * versioned prefix so that a future layout can sit beside this one and a build can tell which it reads.
 * Pure string helpers: no etcd code, so anything may import this file.
 */

/** Root of every Manifold key in etcd. */
export const PREFIX = '/manifold/v1/';

/** The layout this build reads and writes; stored at `${PREFIX}layout`. */
export const LAYOUT_VERSION = '1';

/** Name of the scheduler election (etcd3 puts its candidates under `<namespace>election/<name>/`). */
export const SCHEDULER_ELECTION = 'scheduler';

/**
 * One path segment. A '/' inside a name would make one app's keys a prefix of another's and let a
 * prefix watch or delete reach keys it must not, so it is refused here rather than escaped.
 */
function seg(kind: string, value: string): string {
  if (value === '' || value.includes('/')) throw new TypeError(`invalid ${kind} for an etcd key: ${JSON.stringify(value)}`);
  return value;
}

/** Release numbers are zero-padded so that a range read of `releases/` returns them in numeric order. */
export function releaseSegment(version: number): string {
  if (!Number.isSafeInteger(version) || version < 0 || version > 9_999_999_999) throw new RangeError(`invalid release version ${version}`);
  return String(version).padStart(10, '0');
}

/** Full keys (with PREFIX). Prefix helpers end in '/' so that `app` never matches `app2`. */
export const keys = {
  layout: (): string => `${PREFIX}layout`,
  tick: (): string => `${PREFIX}tick`,
  apps: (): string => `${PREFIX}apps/`,
  app: (app: string): string => `${PREFIX}apps/${seg('app', app)}/`,
  appMeta: (app: string): string => `${keys.app(app)}meta`,
  appRelease: (app: string): string => `${keys.app(app)}release`,
  releases: (app: string): string => `${keys.app(app)}releases/`,
  release: (app: string, version: number): string => `${keys.releases(app)}${releaseSegment(version)}`,
  formations: (app: string): string => `${keys.app(app)}formation/`,
  formation: (app: string, type: string): string => `${keys.formations(app)}${seg('process type', type)}`,
  slug: (sha256: string): string => {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new TypeError(`invalid slug sha256 ${JSON.stringify(sha256)}`);
    return `${PREFIX}slugs/${sha256}`;
  },
  subnets: (): string => `${PREFIX}subnets/`,
  /** `10.200.<n>.0-24`: a '/' cannot appear in a segment, so the CIDR's '/' becomes '-' (as flannel does). */
  subnet: (n: number): string => {
    if (!Number.isInteger(n) || n < 1 || n > 254) throw new RangeError(`invalid subnet index ${n}`);
    return `${PREFIX}subnets/10.200.${n}.0-24`;
  },
  hosts: (): string => `${PREFIX}hosts/`,
  /** `drain/<id>`: written by `hosts:drain`, removed by `hosts:undrain`; no lease (it outlives restarts). */
  drains: (): string => `${PREFIX}drain/`,
  drain: (id: string): string => `${PREFIX}drain/${seg('host id', id)}`,
  /** Every host's assignments (the scheduler reads them all). */
  allAssignments: (): string => `${PREFIX}assign/`,
  /** The bearer token of the cluster HTTP servers (slugs, idle, fan-out), made by the first daemon. */
  secret: (): string => `${PREFIX}secret`,
  host: (id: string): string => `${PREFIX}hosts/${seg('host id', id)}`,
  /** Per-host so that each agent watches only its own work (fleet's lesson, spec §3). */
  assignments: (host: string): string => `${PREFIX}assign/${seg('host id', host)}/`,
  assignment: (host: string, app: string, slot: string): string => `${keys.assignments(host)}${seg('app', app)}/${seg('slot', slot)}`,
  /**
   * Live dyno records of one host (StateStore.recordDyno): the host's own crash-cleanup list. Not under
   * `hosts/<id>`, which is the host's leased record and whose prefix is read to list hosts; and on no
   * lease, since a restarted daemon needs exactly the records its killed predecessor left.
   */
  dynos: (host: string): string => `${PREFIX}dynos/${seg('host id', host)}/`,
  dyno: (host: string, id: string): string => `${keys.dynos(host)}${seg('dyno id', id)}`,
  endpoints: (): string => `${PREFIX}endpoints/`,
  endpoint: (app: string, slot: string, instance: string): string =>
    `${PREFIX}endpoints/${seg('app', app)}/${seg('slot', slot)}/${seg('instance', instance)}`,
  statuses: (app?: string): string => (app === undefined ? `${PREFIX}status/` : `${PREFIX}status/${seg('app', app)}/`),
  /**
   * Per host as well as per slot: during a move (hosts:drain) the old and the new host each run an
   * instance of the slot and each reports its own, so neither overwrites the other's.
   */
  status: (app: string, slot: string, host: string): string => `${PREFIX}status/${seg('app', app)}/${seg('slot', slot)}/${seg('host id', host)}`,
  routers: (): string => `${PREFIX}routers/`,
  router: (id: string): string => `${PREFIX}routers/${seg('router id', id)}`,
  /** Where etcd3's `election(SCHEDULER_ELECTION)` on a PREFIX namespace keeps its candidates. */
  election: (name: string = SCHEDULER_ELECTION): string => `${PREFIX}election/${seg('election', name)}/`,
};
