/**
 * Loads a routes file into a RouteTable without stalling requests (issue 12: a 10 000-app reload
 * stalled every request 280-530 ms). The worker (routes-worker.ts) reads, parses, checks the whole
 * file and diffs it; this thread only builds and swaps the apps that changed, a slice per
 * event-loop turn, each app switched whole. A bad file is refused by the worker before any app is
 * sent, and a batch is checked whole before its first slice is committed: the old table stays.
 */
import path from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { RouterError } from '../errors';
import type { RouteBatch, RouteTable } from './route-table';
import type { FromWorker, ToWorker } from './routes-protocol';
import { RoutesError } from './routes-validate';

/**
 * Between two committed slices. Each slice is a delta every router worker mirrors, and what a worker
 * builds survives its next scavenge: committed a turn apart, a 10 000-app reload reached the workers
 * as fast as they could take it and their scavenges grew to 30-50 ms on a 2-core box. Spaced, they
 * take ~50 000 apps a second; a reload of up to 250 apps is one slice and never waits.
 */
const COMMIT_GAP_MS = 5;

export interface LoadResult {
  /** False when the file's text was the one applied last (a watch event without a change). */
  changed: boolean;
  /** Apps added or changed, apps removed, apps in the file. */
  updated: number;
  removed: number;
  total: number;
}

export interface RoutesLoaderOptions {
  /** Apps built or committed per event-loop turn. */
  slice?: number;
}

interface Pending {
  seq: number;
  batch: RouteBatch;
  /** Apps received so far (a full load removes the table's other apps). */
  names: Set<string>;
  /** Why building a received app failed (the worker checked it too, so only if the table moved). */
  failed: unknown;
  /** Parts arrive while earlier ones are still being built: one chain, in order. */
  chain: Promise<void>;
  resolve: (r: FromWorker & { type: 'done' | 'unchanged' | 'error' }) => void;
}

export class RoutesLoader {
  readonly #table: RouteTable;
  readonly #file: string;
  readonly #slice: number;
  readonly #worker: Worker;
  #seq = 0;
  #pending: Pending | null = null;
  /** The table's version after our last commit: if it moved, the worker's diff base is stale. */
  #appliedVersion = -1;
  /** Loads run one at a time; requests during one are folded into one next load. */
  #running: Promise<LoadResult> | null = null;
  #queued: { force: boolean; promise: Promise<LoadResult> } | null = null;
  #dead: string | null = null;

  constructor(table: RouteTable, file: string, o: RoutesLoaderOptions = {}) {
    this.#table = table;
    this.#file = path.resolve(file);
    this.#slice = o.slice ?? 250;
    this.#worker = new Worker(path.join(__dirname, 'routes-worker.js'));
    this.#worker.unref(); // a loader never keeps a stopping router alive
    this.#worker.on('message', (m: FromWorker) => this.#onMessage(m));
    // A dead worker fails the load in progress and every later one, instead of leaving them waiting.
    const fail = (why: string): void => {
      this.#dead ??= why;
      this.#pending?.resolve({ type: 'error', seq: this.#pending.seq, error: { message: this.#dead } });
    };
    this.#worker.on('error', (err) => fail(`routes worker failed: ${err.message}`));
    this.#worker.on('exit', (code) => fail(`routes worker exited (${code})`));
  }

  /** Applies the file if its text changed since the last load (`force`: even if not). Rejects with RouterError EROUTES. */
  load(force = false): Promise<LoadResult> {
    if (this.#running === null) return this.#start(force);
    if (this.#queued !== null) {
      this.#queued.force ||= force;
      return this.#queued.promise;
    }
    const after = this.#running.catch(() => undefined);
    const queued: { force: boolean; promise: Promise<LoadResult> } = {
      force,
      promise: after.then(() => {
        this.#queued = null;
        return this.#start(queued.force);
      }),
    };
    this.#queued = queued;
    return queued.promise;
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }

  #start(force: boolean): Promise<LoadResult> {
    const run = this.#run(force).finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }

  async #run(force: boolean): Promise<LoadResult> {
    if (this.#dead !== null) throw new RouterError('EROUTES', this.#dead);
    // Someone else swapped the table since our last load (or there was none): diff against nothing.
    const full = this.#appliedVersion !== this.#table.version;
    const seq = ++this.#seq;
    const batch = this.#table.batch('routes file');
    let resolve!: Pending['resolve'];
    const done = new Promise<Parameters<Pending['resolve']>[0]>((r) => (resolve = r));
    const pending: Pending = { seq, batch, names: new Set(), failed: undefined, chain: Promise.resolve(), resolve };
    this.#pending = pending;
    this.#post({ type: 'load', seq, file: this.#file, force, full });
    const end = await done;
    await pending.chain;
    this.#pending = null;
    if (end.type === 'unchanged') return { changed: false, updated: 0, removed: 0, total: this.#table.snapshot.apps.size };
    if (end.type === 'error' || pending.failed !== undefined) {
      this.#post({ type: 'ack', seq, ok: false });
      if (end.type !== 'error') throw pending.failed;
      const r = end.error.routes;
      throw r !== undefined ? new RoutesError(r.path, r.problem, r.detail, r.label) : new RouterError('EROUTES', end.error.message);
    }
    let removed: string[];
    try {
      removed = end.full ? [...this.#table.snapshot.apps.keys()].filter((n) => !pending.names.has(n)) : end.removed;
      for (const name of removed) batch.remove(name, this.#table.app(name));
      this.#table.check(batch);
    } catch (err) {
      this.#post({ type: 'ack', seq, ok: false });
      throw err;
    }
    // apps the file names but whose route is unchanged are in a full batch too: not counted
    const updated = batch.changed;
    for (let from = 0; from < batch.size; from += this.#slice) {
      if (from > 0) await sleep(COMMIT_GAP_MS);
      this.#table.commit(batch, from, from + this.#slice);
    }
    this.#appliedVersion = this.#table.version;
    this.#post({ type: 'ack', seq, ok: true });
    return { changed: true, updated, removed: removed.length, total: end.total };
  }

  #onMessage(m: FromWorker): void {
    const p = this.#pending;
    if (p === null || p.seq !== m.seq) return;
    if (m.type !== 'part') return p.resolve(m);
    // Built a slice per turn: an app refused here (the worker checked it too) fails the whole load.
    p.chain = p.chain.then(async () => {
      for (let i = 0; i < m.apps.length && p.failed === undefined; i += this.#slice) {
        await nextTurn();
        try {
          for (const [name, input] of m.apps.slice(i, i + this.#slice)) {
            p.names.add(name);
            p.batch.set(name, input, this.#table.app(name));
          }
        } catch (err) {
          p.failed = err;
        }
      }
      // flow control: the next part is sent (and deserialized here) only now, one per turn at most
      if (this.#pending === p) this.#post({ type: 'next', seq: p.seq });
    });
  }

  #post(m: ToWorker): void {
    this.#worker.postMessage(m);
  }
}
