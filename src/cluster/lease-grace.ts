/**
 * Lease-loss grace for the router feed (docs/cluster.md, Faults: "Two of three etcd members frozen",
 * "The etcd leader frozen 6 s"). When etcd deletes a host's leased keys because the lease expired or
 * was revoked (a keepalive stuck on a frozen member for longer than the TTL; etcd 3.4.23 revoking
 * every lease after a thaw, etcd-io/etcd #15247), the dynos behind those endpoints are usually alive
 * and their agents put the keys back 1–2 s later. If that took an app's last backends, the routers
 * would answer H14 to everything meanwhile. So an app left with no backend keeps the backends it
 * lost that way, for at most `graceMs` after each was lost, or until a fresh endpoint of the app
 * arrives, whichever comes first.
 *
 * How a lease loss is told from a deliberate removal: etcd deletes every key of a lease in one
 * revision, and `hosts/<id>` is on the same lease as the host's endpoints. An endpoint deleted in
 * the very revision that deleted its host's key went with the lease; an agent that stops a dyno
 * (ps:stop, scale-down, drain, release, apps:destroy) deletes the endpoint in a Txn of its own while
 * its host key stays. A listing (re-list after a watch error) has no per-key revisions: an endpoint
 * gone since the last listing whose host key is gone too counts as lost with the lease.
 *
 * Never held: an app without meta (destroyed), in maintenance, or whose web formation is 0 or absent
 * (ps:scale web=0); an app with any backend of its own (a partial loss is applied at once, as before);
 * backends of a host whose key is back beyond HOST_BACK_MS (it has re-published what it runs); an
 * endpoint put again since (fresh) — the hold ends there.
 *
 * Left to the router: a held backend whose host is really dead refuses or times out connects; the
 * router quarantines it and retries another backend, queues the request while all are quarantined,
 * and the swap at the end of the grace (nothing left: H14) or a fresh endpoint re-dispatches it.
 *
 * Pure bookkeeping: no timers, the clock is passed in; the feed arms a timer at nextExpiry().
 */
import type { AppInput, BackendInput } from '../router/routing/route-table';
import { PREFIX } from './keys';
import { parseRecord, type EndpointRecord } from './records';

/** Keys the grace reads besides the route keys: host keys and web formations. */
export type GraceKey = { kind: 'host'; host: string } | { kind: 'web-formation'; app: string };

export function graceKeyOf(key: string): GraceKey | undefined {
  if (!key.startsWith(PREFIX)) return undefined;
  const parts = key.slice(PREFIX.length).split('/');
  if (parts.some((p) => p === '')) return undefined;
  if (parts.length === 2 && parts[0] === 'hosts') return { kind: 'host', host: parts[1]! };
  if (parts.length === 4 && parts[0] === 'apps' && parts[2] === 'formation' && parts[3] === 'web') return { kind: 'web-formation', app: parts[1]! };
  return undefined;
}

/** The quantity of a `formation/web` value; 0 for a value that can't be read (no hold on doubt). */
export function webQuantity(value: string): number {
  const f = parseRecord<{ quantity?: unknown }>(value);
  return f !== undefined && typeof f.quantity === 'number' && Number.isFinite(f.quantity) ? f.quantity : 0;
}

interface Lost {
  readonly host: string;
  readonly backend: BackendInput;
  until: number;
}

/** How long a held backend stays once its host's key is back (its endpoints follow in ms). */
export const HOST_BACK_MS = 1000;

const ENDPOINT_STATES: ReadonlySet<string> = new Set(['starting', 'up', 'draining']);

function slotOf(key: string): string | undefined {
  const parts = key.slice(PREFIX.length).split('/');
  return parts.length === 4 && parts[0] === 'endpoints' ? parts[2] : undefined;
}

export class LeaseGrace {
  /** Host → revision at which its key was deleted, while it stays deleted. */
  readonly #hostGoneAt = new Map<string, number>();
  /** Endpoint deletions since the last settle(): classified once the whole batch is seen. */
  #deleted: { app: string; key: string; value: string; rev: number; retry?: number }[] = [];
  /** App → endpoint key → a backend lost with its host's lease, within its grace. */
  readonly #lost = new Map<string, Map<string, Lost>>();
  /** Apps whose table input carries held backends now: since when, and how many. */
  readonly #holding = new Map<string, { since: number; count: number }>();

  constructor(
    readonly graceMs: number,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /**
   * A host's key was put: it is re-publishing what it runs, maybe over several Txns (leased-keys.ts
   * writes ≤128 ops each), so its held backends get HOST_BACK_MS more at most rather than none: an
   * app whose endpoint comes in a later Txn is never left without a backend in between. Returns the
   * apps that hold some of them.
   */
  hostPut(host: string, now: number): string[] {
    this.#hostGoneAt.delete(host);
    const apps: string[] = [];
    for (const [app, lost] of this.#lost) {
      let hit = false;
      for (const l of lost.values()) {
        if (l.host !== host) continue;
        l.until = Math.min(l.until, now + HOST_BACK_MS);
        hit = true;
      }
      if (hit) apps.push(app);
    }
    return apps;
  }

  hostDeleted(host: string, rev: number): void {
    this.#hostGoneAt.set(host, rev);
  }

  endpointPut(app: string, key: string): void {
    const lost = this.#lost.get(app);
    if (!lost?.delete(key)) return;
    if (lost.size === 0) this.#lost.delete(app);
  }

  /** An endpoint key deleted at `rev`, with the value it had. */
  endpointDeleted(app: string, key: string, value: string, rev: number): void {
    if (this.graceMs > 0) this.#deleted.push({ app, key, value, rev });
  }

  /**
   * After a watch batch or a listing: the endpoints deleted in the revision their host's key was
   * deleted in are kept as lost with the lease. Returns the apps that got some. `openRev`: a revision
   * whose events may go on in the next watch response (etcd sends a revision whole, but nothing here
   * depends on it): a deletion at it whose host key is still there is looked at once more next time.
   */
  settle(now: number, openRev?: number): Set<string> {
    const apps = new Set<string>();
    const deleted = this.#deleted;
    this.#deleted = [];
    for (const d of deleted) {
      const e = parseRecord<EndpointRecord>(d.value);
      const slot = slotOf(d.key);
      if (!e || typeof e.host !== 'string' || typeof e.address !== 'string' || !ENDPOINT_STATES.has(e.state) || slot === undefined) continue;
      if (this.#hostGoneAt.get(e.host) !== d.rev) {
        // deleted on purpose (its host key stayed), unless the rest of its revision is still to come
        if (d.rev === openRev && d.rev !== d.retry) this.#deleted.push({ ...d, retry: d.rev });
        continue;
      }
      let lost = this.#lost.get(d.app);
      if (!lost) this.#lost.set(d.app, (lost = new Map()));
      lost.set(d.key, { host: e.host, backend: { dyno: slot, address: e.address, state: e.state }, until: now + this.graceMs });
      apps.add(d.app);
    }
    return apps;
  }

  /** The app's meta is gone (apps:destroy): nothing of it is held. */
  forget(app: string): void {
    this.#lost.delete(app);
    this.#end(app, 'the app is gone');
  }

  /**
   * What the table gets for `app`: `input` (its own keys' derivation) unchanged, or, when that has no
   * backend and the app lost backends with a lease within the grace, `input` with those backends.
   * `webQty`: the app's web formation quantity (undefined: no formation/web key).
   */
  overlay(app: string, input: AppInput | undefined, webQty: number | undefined, now: number): AppInput | undefined {
    const lost = this.#lost.get(app);
    if (lost) {
      for (const [key, l] of lost) if (l.until <= now) lost.delete(key);
      if (lost.size === 0) this.#lost.delete(app);
    }
    if (input === undefined) {
      this.forget(app);
      return input;
    }
    if (input.maintenance === true || webQty === undefined || webQty <= 0) {
      this.#lost.delete(app);
      this.#end(app, input.maintenance === true ? 'maintenance' : 'the web formation is 0');
      return input;
    }
    if ((input.backends?.length ?? 0) > 0) {
      // backends of its own again: what it lost is history, never to be routed to by a later hold
      this.#lost.delete(app);
      this.#end(app, 'fresh endpoints arrived');
      return input;
    }
    const left = this.#lost.get(app);
    if (!left) {
      this.#end(app, `its grace of ${this.graceMs} ms is over or its host's key is back without it`);
      return input;
    }
    const held = [...left].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const was = this.#holding.get(app);
    if (!was || was.count !== held.length) {
      const hosts = [...new Set(held.map(([, l]) => l.host))].sort();
      const lastUntil = Math.max(...held.map(([, l]) => l.until));
      this.log(
        `route feed: app ${app}: its endpoints vanished with host lease(s) of ${hosts.join(', ')}; ${was ? 'now ' : ''}routing to its ${held.length} last backend(s) for at most ${lastUntil - now} ms more, until fresh endpoints arrive`,
      );
    }
    this.#holding.set(app, { since: was?.since ?? now, count: held.length });
    return { ...input, backends: held.map(([, l]) => ({ ...l.backend })) };
  }

  #end(app: string, why: string): void {
    const h = this.#holding.get(app);
    if (!h) return;
    this.#holding.delete(app);
    this.log(`route feed: app ${app}: stopped holding its ${h.count} lost backend(s) after ${Date.now() - h.since} ms (${why})`);
  }

  /** Apps whose table input carries held backends now. */
  holdingApps(): string[] {
    return [...this.#holding.keys()];
  }

  /** When the earliest held backend's grace ends (the app must then be applied again), if any. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const app of this.#holding.keys()) {
      for (const l of this.#lost.get(app)?.values() ?? []) if (next === undefined || l.until < next) next = l.until;
    }
    return next;
  }
}
