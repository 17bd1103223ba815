/**
 * The etcd3 client of every cluster role, with the settings of spec §5, and the layout-version check.
 *
 * `etcd3` (and gRPC under it, ~40 modules) is required lazily inside the factory: the single-host
 * daemon and the CLI never import this file's runtime dependency, and a type-only import costs nothing.
 */
import type { Etcd3, IOptions } from 'etcd3';
import { keys, LAYOUT_VERSION } from './keys';

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * Exponential watch backoff from 50 ms to 1 s (etcd3's default climbs to 30 s, so a router would stay
 * deaf for that long after a member restart). Written here rather than taken from cockatiel: that is
 * etcd3's dependency, not ours, and its interface is two members.
 */
export class WatchBackoffPolicy implements WatchBackoff {
  constructor(
    readonly duration = 50,
    private readonly maxDelay = 1000,
  ) {}

  next(): WatchBackoffPolicy {
    return new WatchBackoffPolicy(Math.min(this.duration * 2, this.maxDelay), this.maxDelay);
  }
}

/** Deadline of every unary call: a frozen member must not hold a request forever (spec §6). */
export const UNARY_DEADLINE_MS = 2000;

/**
 * Client options of spec §5. gRPC keepalive at 2 s finds a frozen or cut member in ~4 s instead of
 * never (etcd-io/etcd #8980); the members must run with `--grpc-keepalive-min-time=1s` or they answer
 * these pings with GOAWAY "too_many_pings". Streams (watches, lease keepalives) get no deadline: they
 * are meant to live forever.
 */
export function clientOptions(endpoints: readonly string[]): IOptions {
  return {
    hosts: [...endpoints],
    grpcOptions: {
      'grpc.keepalive_time_ms': 2000,
      'grpc.keepalive_timeout_ms': 2000,
      'grpc.keepalive_permit_without_calls': 1,
    },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + UNARY_DEADLINE_MS }),
    faultHandling: {
      // No per-member circuit breaker (etcd3's default opens for 5 s after 3 failures): while the
      // members elect a new leader it opened on the survivors too, and refused every call for ~3 s,
      // lease keepalives included, so 3 s host leases expired with nothing wrong but an election
      // (control-plane fault test, etcd leader killed). Each call still has its 2 s deadline, and
      // the global retry (etcd3's default, 3 attempts) moves to another member.
      host: () => cockatiel().noop,
      watchBackoff: new WatchBackoffPolicy(50, 1000),
    },
  };
}

/** cockatiel (etcd3's fault-handling library, pinned to etcd3's own version), loaded with the client. */
function cockatiel(): typeof import('cockatiel') {
  return require('cockatiel') as typeof import('cockatiel');
}

/** Creates a client on `endpoints` (URLs like http://127.0.0.1:2379). The caller closes it. */
export function createEtcdClient(endpoints: readonly string[]): Etcd3 {
  if (endpoints.length === 0) throw new TypeError('no etcd endpoints given');
  const etcd3: typeof import('etcd3') = require('etcd3');
  return new etcd3.Etcd3(clientOptions(endpoints));
}

/** The cluster's stored layout is one this build doesn't know: refuse rather than misread it. */
export class LayoutVersionError extends Error {
  constructor(readonly found: string) {
    super(`etcd holds Manifold layout version ${JSON.stringify(found)} at ${keys.layout()}; this build knows only version ${LAYOUT_VERSION}`);
    this.name = 'LayoutVersionError';
  }
}

/**
 * Checks the stored layout version, writing it on an empty cluster. One Txn, so two daemons that
 * start together on an empty cluster agree: the first writes "1", the second reads it.
 */
export async function ensureLayout(client: Etcd3): Promise<void> {
  const key = keys.layout();
  const res = await client.if(key, 'Version', '==', 0).then(client.put(key).value(LAYOUT_VERSION)).else(client.get(key)).commit();
  if (res.succeeded) return;
  const kv = res.responses[0]?.response_range?.kvs[0];
  const found = kv ? kv.value.toString() : '';
  if (found !== LAYOUT_VERSION) throw new LayoutVersionError(found);
}
