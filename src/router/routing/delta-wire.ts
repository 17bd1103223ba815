/**
 * A route table's delta as it crosses to the router workers: one JSON string of plain arrays,
 * encoded once per swap whatever the number of workers. postMessage of the RouteDelta objects
 * themselves ran V8's structured-clone serializer once per worker over every route, backend and
 * array (the main thread's top self-time entry in `--cpu-prof` of a 10 000-app reload with 2
 * workers). A string is copied, not walked, and JSON.parse on the worker builds plain objects fast:
 * main thread 295 → 258 ms per such reload, each router worker ~135 → ~120 ms.
 */
import type { AppRoute, Backend, BackendState, RouteDelta } from './route-table';

/** [dyno, address, host, port, state] */
type WireBackend = [string, string, string, number, BackendState];
/** [name, hosts, backends, starting, maintenance, crashed] */
type WireRoute = [string, string[], WireBackend[], number, boolean, string | null];

export interface WireDelta {
  version: number;
  /** JSON of [apps: [name, WireRoute | 0][], hosts: [host, app name | 0][]] (0: removed). */
  json: string;
}

export function encodeDelta(delta: RouteDelta): WireDelta {
  const apps = delta.apps.map(([name, r]) => [name, r === undefined ? 0 : encodeRoute(r)] as const);
  const hosts = delta.hosts.map(([h, name]) => [h, name ?? 0] as const);
  return { version: delta.version, json: JSON.stringify([apps, hosts]) };
}

function encodeRoute(r: AppRoute): WireRoute {
  return [r.name, r.hosts as string[], r.backends.map((b) => [b.dyno, b.address, b.host, b.port, b.state]), r.starting, r.maintenance, r.crashed];
}

/** The delta with every route built and frozen, as the source table had it (`up` rebuilt from `backends`). */
export function decodeDelta(wire: WireDelta): RouteDelta {
  const [apps, hosts] = JSON.parse(wire.json) as [[string, WireRoute | 0][], [string, string | 0][]];
  return {
    version: wire.version,
    apps: apps.map(([name, r]) => [name, r === 0 ? undefined : decodeRoute(r)]),
    hosts: hosts.map(([h, name]) => [h, name === 0 ? undefined : name]),
  };
}

function decodeRoute([name, hosts, wireBackends, starting, maintenance, crashed]: WireRoute): AppRoute {
  const backends: Backend[] = wireBackends.map(([dyno, address, host, port, state]) => Object.freeze({ dyno, address, host, port, state }));
  return Object.freeze({
    name,
    hosts: Object.freeze(hosts),
    backends: Object.freeze(backends),
    up: Object.freeze(backends.filter((b) => b.state === 'up')),
    starting,
    maintenance,
    crashed,
  });
}
