/**
 * Picks a dyno among an app's up backends: round-robin (default), random, or least-outstanding
 * (fewest in-flight requests, round-robin among ties). Cursors and counters are keyed by app
 * name / address so they survive route-table swaps.
 */
import type { BalanceStrategy } from '../config';
import type { AppRoute, Backend } from './route-table';

/** Round-robin cursors kept outside this balancer (shared by a router's workers): the app's next value, or -1. */
export interface SharedCursors {
  next(app: string): number;
}

export class Balancer {
  private readonly cursors = new Map<string, number>();
  /** Set in a router worker: round-robin turns are taken across every worker of the pool. */
  private shared: SharedCursors | null = null;
  private readonly outstanding = new Map<string, number>();
  /** Callers of whenIdle() per address, woken when its in-flight count reaches 0. */
  private readonly idleWaiters = new Map<string, Set<() => void>>();

  constructor(readonly strategy: BalanceStrategy) {}

  /** A backend not rejected by `skip` (null: any), or null. */
  pick(app: AppRoute, skip: ((b: Backend) => boolean) | null): Backend | null {
    const up = app.up;
    const n = up.length;
    if (n === 0) return null;
    let start: number;
    if (this.strategy === 'random') start = Math.floor(Math.random() * n);
    else {
      const turn = this.shared === null ? -1 : this.shared.next(app.name);
      if (turn >= 0) start = turn % n;
      else {
        start = (this.cursors.get(app.name) ?? 0) % n;
        this.cursors.set(app.name, start + 1);
      }
    }
    if (this.strategy === 'least-outstanding') {
      let best: Backend | null = null;
      let bestLoad = Infinity;
      for (let k = 0; k < n; k++) {
        const b = up[(start + k) % n]!;
        if (skip !== null && skip(b)) continue;
        const load = this.outstanding.get(b.address) ?? 0;
        if (load < bestLoad) {
          best = b;
          bestLoad = load;
        }
      }
      return best;
    }
    for (let k = 0; k < n; k++) {
      const b = up[(start + k) % n]!;
      if (skip === null || !skip(b)) return b;
    }
    return null;
  }

  /** In-flight accounting for least-outstanding (kept for every strategy: it is cheap and useful). */
  /** Takes round-robin turns from `cursors` from now on (apps it has no slot for keep a local cursor). */
  shareCursors(cursors: SharedCursors): void {
    this.shared = cursors;
  }

  acquire(address: string): void {
    this.outstanding.set(address, (this.outstanding.get(address) ?? 0) + 1);
  }

  release(address: string): void {
    const v = (this.outstanding.get(address) ?? 1) - 1;
    // A dyno with none in flight keeps its 0 (deleting keys per request churns the Map's tables,
    // which V8 then promotes with everything they held: src/router/member-list.ts); pruneIdle() drops them.
    this.outstanding.set(address, Math.max(0, v));
    if (v > 0) return;
    const waiters = this.idleWaiters.get(address);
    if (waiters !== undefined) {
      this.idleWaiters.delete(address);
      for (const wake of waiters) wake();
    }
  }

  /** Forgets dynos with nothing in flight (on a table change: a dyno that left must not stay forever). */
  pruneIdle(): void {
    for (const [address, n] of this.outstanding) if (n === 0) this.outstanding.delete(address);
  }

  inFlight(address: string): number {
    return this.outstanding.get(address) ?? 0;
  }

  /**
   * Resolves true once no request is in flight to `address` (at once if none is), or false after
   * timeoutMs: how a draining dyno is stopped as soon as its last request has been answered.
   */
  whenIdle(address: string, timeoutMs: number): Promise<boolean> {
    if (this.inFlight(address) === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let waiters = this.idleWaiters.get(address);
      if (waiters === undefined) this.idleWaiters.set(address, (waiters = new Set()));
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        waiters.delete(wake);
        if (waiters.size === 0 && this.idleWaiters.get(address) === waiters) this.idleWaiters.delete(address);
        resolve(false);
      }, timeoutMs);
      timer.unref(); // a pending drain never keeps a stopping process alive
      waiters.add(wake);
    });
  }
}
