/**
 * The JSON values stored under the cluster keys (keys.ts, docs/cluster.md "Key layout"). Shared by
 * every role: the agent writes hosts/endpoints/status, the scheduler writes assign, the router and
 * the API read them. Pure types and tiny parsers: no etcd code.
 */

import type { DynoStatus } from '../manifold/supervisor/model';

export type Role = 'dynos' | 'router' | 'scheduler' | 'api';
export const ROLES: readonly Role[] = ['dynos', 'router', 'scheduler', 'api'];

/** `hosts/<id>`, under the host's lease: present = alive. */
export interface HostRecord {
  id: string;
  /** Changes on every daemon start: a new incarnation is a new lease and a new set of dynos. */
  incarnation: string;
  /** The address other hosts route this host's dyno subnet through, and reach its cluster port on. */
  uplink: string;
  /** `10.200.<n>.0/24` for a host with the dynos role, else null. */
  subnet: string | null;
  roles: Role[];
  /** Port of the host's cluster HTTP server (slugs, idle checks, fan-out), on `uplink`. */
  clusterPort: number;
  /** Memory the scheduler may place dynos against (bytes). */
  memBytes: number;
  startedAt: number;
}

/** `drain/<id>` (no lease, written by the API): the scheduler moves every slot off this host. */
export interface DrainRecord {
  since: number;
}

/** `assign/<host>/<app>/<slot>`, written by the scheduler leader only, fenced. */
export interface AssignmentRecord {
  type: string;
  /** Bumped on every new placement of the slot: a different gen asks the agent for a new instance. */
  gen: number;
  release: number;
  size: string;
  /**
   * run: keep an instance of this generation running. retire: stop it; with `after`, only once an
   * instance of generation `after` of the same slot is `up` on another host (a voluntary move).
   */
  state: 'run' | 'retire';
  after?: number;
  /** The leader's fence revision when it wrote this (history checks). */
  leaderRev: string;
}

/** `endpoints/<app>/<slot>/<dynoId>`, under the agent's lease: a web instance the routers may use. */
export interface EndpointRecord {
  host: string;
  /** host:port the routers connect to. */
  address: string;
  state: 'starting' | 'up' | 'draining';
  gen: number;
  release: number;
  /** Epoch ms when this host first published the instance in `state` (bench:cluster measures route propagation from it). */
  since?: number;
}

/** `status/<app>/<slot>/<host>`, under the agent's lease: the dyno's `ps` status and its host (H10 for the routers). */
export type StatusRecord = DynoStatus & { host: string };

/** `routers/<id>`, under the router's own lease: where agents ask whether a draining dyno is idle. */
export interface RouterRecord {
  /** host:port of the cluster HTTP server that answers `GET /v1/idle`. */
  admin: string;
  appliedRev: string;
}

/** `slugs/<sha256>`: which API hosts hold the slug (the blob itself never goes into etcd). */
export interface SlugRecord {
  bytes: number;
  holders: string[];
}

/** Parses a stored JSON value, or undefined when it is not an object (a foreign or torn write). */
export function parseRecord<T extends object>(raw: string | Buffer): T | undefined {
  try {
    const v: unknown = JSON.parse(raw.toString());
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}
