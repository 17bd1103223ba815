/**
 * Compare-and-swap plumbing of the etcd StateStore: reads of several keys at one revision, and the
 * retry loop of a write that lost its compare. Types only from etcd3, so importing this loads nothing.
 */
import type { IKeyValue, IOperation, Namespace } from 'etcd3';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManifoldError } from '../manifold/errors';

/** A write's compare failed: someone else wrote first; read again and recompute. */
export const CONFLICT: unique symbol = Symbol('conflict');

/**
 * Enough for any realistic contention: a writer can lose at most once per other writer that commits
 * meanwhile (each loss means another write went in). Past it, something is wrong; say so rather than spin.
 */
export const MAX_ATTEMPTS = 100;

/** Runs `attempt` until it returns something other than CONFLICT. */
export async function casLoop<T>(what: string, attempt: () => Promise<T | typeof CONFLICT>): Promise<T> {
  for (let n = 1; n <= MAX_ATTEMPTS; n++) {
    const r = await attempt();
    if (r !== CONFLICT) return r;
    // Jitter, growing with the losses: writers that collided do not re-read and collide in lockstep.
    await sleep(Math.random() * Math.min(50, 2 * n));
  }
  throw new ManifoldError('EINTERNAL', `${what}: still conflicting after ${MAX_ATTEMPTS} attempts`);
}

/**
 * Runs `reads` in one Txn guarded on `guardKey` existing: the results are of a single revision (one
 * app's meta, release pointer and ranges agree), or undefined when `guardKey` is absent.
 */
export async function snapshot(client: Namespace, guardKey: string, reads: IOperation[]): Promise<IKeyValue[][] | undefined> {
  const res = await client.if(guardKey, 'Version', '>', 0).then(...reads).commit();
  if (!res.succeeded) return undefined;
  return res.responses.map((r) => r.response_range.kvs);
}

export function parse<T>(kv: IKeyValue): T {
  return JSON.parse(kv.value.toString()) as T;
}

/** Last path segment of a key (a Txn's range answer may carry the namespace prefix; names hold no '/'). */
export function lastSegment(kv: IKeyValue): string {
  const key = kv.key.toString();
  return key.slice(key.lastIndexOf('/') + 1);
}
