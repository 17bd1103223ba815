/**
 * N router event loops (worker threads), each accepting on its own SO_REUSEPORT socket of the same
 * port, fed from one route table on the main thread:
 *
 *   const pool = new RouterWorkers({ workers: 2, config: { listen: [{ host: '127.0.0.1', port: 8080 }] } });
 *   new RoutesLoader(pool.table, file).load();   // or pool.table.setApp(…)
 *   await pool.listen();
 *   pool.table.removeApp('web'); await pool.synced();   // every worker has applied the change
 *
 * - Routes: every swap of `table` is posted to every worker as the exact delta (apps and hosts
 *   changed), one at a time (#post); a worker answers with the version it applied. synced() resolves once every running
 *   worker has applied a version: from then on no worker routes by an older table. A (re)started
 *   worker gets the whole table before it listens.
 * - Round-robin turns are shared by the workers (one atomic cursor per app, shared-cursors.ts), so
 *   the pool balances as one router would; least-outstanding counts are per worker (docs/router.md).
 * - Log lines are posted per turn by each worker and emitted here, whole, in each worker's order.
 * - A worker that exits is restarted on the same port; the others keep their connections.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ListenSpec, RouterConfigInput } from '../config';
import { RouterError, type HCode } from '../errors';
import type { RouterLoad } from '../index';
import { encodeDelta } from '../routing/delta-wire';
import { RouteTable, type RouteDelta } from '../routing/route-table';
import { RouterWorkerError } from './errors';
import type { BoundSpec, FromWorker, RouterWorkerData, ToWorker } from './protocol';
import { CursorSlots } from './shared-cursors';

export interface RouterWorkersOptions {
  workers: number;
  config: RouterConfigInput;
  /** Emit 'log' lines (default true); false spares the workers formatting them. */
  log?: boolean;
  /**
   * Per-line records for 'log' (default true). false: only the 'lines' batches, so the workers post
   * nothing but the lines and their times (`manifold router`, which writes them out and keeps no statistics).
   */
  logStats?: boolean;
  /** Wait before restarting a worker that died within a second of starting (a crash loop). */
  restartDelayMs?: number;
}

export interface WorkerLogLine {
  line: string;
  /** ms since the epoch when the worker's router emitted it. */
  time: number;
  /** Which worker slot (0 … workers-1) served the request. */
  worker: number;
  /** App the request was routed to, when known (the daemon files lines under it). */
  app: string | null;
  /** The record's numbers, as RouterLogEntry has them: statistics read these instead of parsing `line`. */
  status: number | null;
  code: HCode | null;
  serviceMs: number | null;
  connectMs: number | null;
  bytes: number | null;
  /** A retry notice, not a request (isRetryNotice). */
  retry: boolean;
}

interface Slot {
  index: number;
  worker: Worker | null;
  /** Source-table version this worker confirmed applying last. */
  applied: number;
  startedAt: number;
  /** Resolves when the worker listens; rejects if it cannot. */
  ready: Promise<BoundSpec[]>;
  /** waitIdle() calls this worker has not answered yet. */
  idle: Set<number>;
  /** load() calls this worker has not answered yet. */
  loads: Set<number>;
  /** Route deltas (and the listen that follows the first) not posted yet: see #post. */
  outbox: ToWorker[];
  /** A 'routes' message is posted and its 'applied' has not come back. */
  awaitingApplied: boolean;
}

export declare interface RouterWorkers {
  on(event: 'log', listener: (entry: WorkerLogLine) => void): this;
  /** One worker's turn of log lines at once, in order, with when each was emitted (ms since the epoch). */
  on(event: 'lines', listener: (lines: readonly string[], times: readonly number[]) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  /** A worker exited unexpectedly (it is restarted). */
  on(event: 'worker-exit', listener: (index: number, code: number) => void): this;
  /** A restarted worker listens again. */
  on(event: 'worker-restart', listener: (index: number, threadId: number) => void): this;
}

/**
 * Fails as one router would when something already holds a port. The workers bind with SO_REUSEPORT,
 * and a socket bound with it joins any group another process of the same user made with it (a second
 * daemon's router, another `manifold router`), silently taking a share of its connections. A plain
 * bind fails on any holder, with or without SO_REUSEPORT; it is closed again before the workers bind,
 * so only two starts racing on one port in that instant could still share it.
 */
async function refuseHeldPorts(specs: readonly ListenSpec[]): Promise<void> {
  for (const spec of specs) {
    if (spec.port === 0) continue; // a port the kernel picks is nobody else's
    await new Promise<void>((resolve, reject) => {
      const probe = net.createServer();
      probe.once('error', (err) => reject(new RouterError('ELISTEN', err.message)));
      probe.listen({ host: spec.host, port: spec.port }, () => probe.close(() => resolve()));
    });
  }
}

export class RouterWorkers extends EventEmitter {
  readonly table = new RouteTable();
  readonly #opts: RouterWorkersOptions;
  readonly #slots: Slot[] = [];
  /** The listen specs with concrete ports, once the first worker bound them. */
  #specs: ListenSpec[] | null = null;
  #closing = false;
  #synced: { version: number; resolve: () => void }[] = [];
  #idleSeq = 0;
  readonly #idle = new Map<number, () => void>();
  readonly #loads = new Map<number, (answer: Extract<FromWorker, { type: 'load' }> | null) => void>();
  readonly #restarts = new Set<NodeJS.Timeout>();
  /** Round-robin cursors shared by the workers, a slot per app. */
  readonly #cursors = new CursorSlots();

  constructor(opts: RouterWorkersOptions) {
    super();
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new RouterError('ECONFIG', `workers must be a positive integer (got ${opts.workers})`);
    this.#opts = opts;
    this.table.on('delta', (delta: RouteDelta) => {
      const cursors = this.#cursors.update(delta.apps.map(([app, route]) => [app, route !== undefined]));
      const wire = encodeDelta(delta); // once, whatever the number of workers
      for (const s of this.#slots) this.#post(s, { type: 'routes', delta: wire, cursors });
    });
  }

  get workers(): number {
    return this.#opts.workers;
  }

  /** Thread ids of the running workers, by slot (null while one restarts). */
  threadIds(): (number | null)[] {
    return this.#slots.map((s) => s.worker?.threadId ?? null);
  }

  /**
   * Starts the workers. The first binds config.listen (port 0 picks a port); the others bind the
   * same concrete ports. Rejects with RouterError ELISTEN if a worker cannot listen.
   */
  async listen(): Promise<BoundSpec[]> {
    const specs = this.#opts.config.listen ?? [];
    if (specs.length === 0) throw new RouterError('ELISTEN', 'no listen address given');
    await refuseHeldPorts(specs);
    const first = this.#start(0, specs);
    const bound = await first.ready;
    this.#specs = specs.map((s, i) => ({ ...s, host: s.host, port: bound[i]!.port }));
    for (let i = 1; i < this.#opts.workers; i++) this.#start(i, this.#specs);
    await Promise.all(this.#slots.map((s) => s.ready));
    return bound;
  }

  /** Resolves once every running worker has applied table version `version` (default: the current one). */
  synced(version = this.table.version): Promise<void> {
    if (this.#isSynced(version)) return Promise.resolve();
    return new Promise((resolve) => this.#synced.push({ version, resolve }));
  }

  /**
   * Resolves once no worker has a request in flight to `address`, or after timeoutMs: the
   * manifold's drain contract (Router.waitIdle), across every worker.
   */
  async waitIdle(_app: string, address: string, timeoutMs: number): Promise<void> {
    const waits = this.#slots.map((s) => {
      const w = s.worker;
      if (w === null) return Promise.resolve();
      const id = ++this.#idleSeq;
      return new Promise<void>((resolve) => {
        this.#idle.set(id, resolve);
        s.idle.add(id);
        w.postMessage({ type: 'wait-idle', id, address, timeoutMs } satisfies ToWorker);
      });
    });
    await Promise.all(waits);
  }

  /**
   * Every worker's in-flight requests per app, summed, and their boot queues: the numbers each
   * worker's router keeps anyway (Router.load). A worker that does not answer within timeoutMs (or
   * is restarting) counts as idle.
   */
  async load(timeoutMs = 1000): Promise<RouterLoad> {
    const answers = await Promise.all(
      this.#slots.map((s) => {
        const w = s.worker;
        if (w === null) return null;
        const id = ++this.#idleSeq;
        return new Promise<Extract<FromWorker, { type: 'load' }> | null>((resolve) => {
          const timer = setTimeout(() => done(null), timeoutMs);
          const done = (a: Extract<FromWorker, { type: 'load' }> | null): void => {
            clearTimeout(timer);
            s.loads.delete(id);
            this.#loads.delete(id);
            resolve(a);
          };
          this.#loads.set(id, done);
          s.loads.add(id);
          w.postMessage({ type: 'load', id } satisfies ToWorker);
        });
      }),
    );
    const inFlight = new Map<string, number>();
    let queued = 0;
    for (const a of answers) {
      if (a === null) continue;
      queued += a.queued;
      for (let i = 0; i < a.apps.length; i++) inFlight.set(a.apps[i]!, (inFlight.get(a.apps[i]!) ?? 0) + a.inFlight[i]!);
    }
    return { inFlight, queued };
  }

  /** Test hook: stops worker `index` as a crash would (no close); the pool restarts it. */
  async terminateWorker(index: number): Promise<void> {
    await this.#slots[index]?.worker?.terminate();
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const t of this.#restarts) clearTimeout(t);
    this.#restarts.clear();
    await Promise.all(
      this.#slots.map(async (s) => {
        const w = s.worker;
        if (w === null) return;
        const closed = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000); // a stuck close must not keep the process
          w.on('message', (m: FromWorker) => m.type === 'closed' && (clearTimeout(timer), resolve()));
          w.once('exit', () => (clearTimeout(timer), resolve()));
        });
        w.postMessage({ type: 'close' } satisfies ToWorker);
        await closed;
        await w.terminate();
      }),
    );
    for (const s of this.#synced) s.resolve();
    this.#synced = [];
  }

  #start(index: number, specs: ListenSpec[]): Slot {
    const data: RouterWorkerData = { config: this.#opts.config, log: this.#opts.log ?? true, stats: this.#opts.logStats ?? true, cursors: this.#cursors.buffer };
    const worker = new Worker(path.join(__dirname, 'router-worker.js'), { workerData: data });
    let settle!: { resolve: (b: BoundSpec[]) => void; reject: (e: Error) => void };
    const ready = new Promise<BoundSpec[]>((resolve, reject) => (settle = { resolve, reject }));
    ready.catch(() => undefined); // handled by whoever awaits it; a restart reports via 'error'
    const slot: Slot = { index, worker, applied: -1, startedAt: Date.now(), ready, idle: new Set(), loads: new Set(), outbox: [], awaitingApplied: false };
    this.#slots[index] = slot;
    worker.on('message', (m: FromWorker) => this.#onMessage(slot, m, settle));
    worker.on('error', (err) => this.emit('error', new RouterWorkerError(index, err.message)));
    worker.on('exit', (code) => {
      settle.reject(new RouterError('ELISTEN', `router worker ${index} exited (${code}) before listening`));
      this.#onExit(slot, code);
    });
    // In order: the whole table, then listen (so it never routes by an empty table), then later deltas.
    this.#post(slot, { type: 'routes', delta: encodeDelta(this.table.fullDelta()), cursors: this.#cursors.all() });
    this.#post(slot, { type: 'listen', specs });
    return slot;
  }

  /**
   * Posts route deltas (and listen) in order, the next only once the worker applied the last: Node
   * delivers every queued message of a port in one turn, so the ~40 deltas of a 10 000-app reload,
   * posted a turn apart, were deserialized and mirrored back to back by a busy worker (stalls of
   * 200-400 ms in bench/router-reload.ts). One delta per worker turn keeps each at a slice's cost.
   */
  #post(slot: Slot, m: ToWorker): void {
    slot.outbox.push(m);
    this.#flush(slot);
  }

  #flush(slot: Slot): void {
    const w = slot.worker;
    if (w === null) return;
    while (!slot.awaitingApplied && slot.outbox.length > 0) {
      const m = slot.outbox.shift()!;
      w.postMessage(m);
      if (m.type === 'routes') slot.awaitingApplied = true;
    }
  }

  #onMessage(slot: Slot, m: FromWorker, settle: { resolve: (b: BoundSpec[]) => void; reject: (e: Error) => void }): void {
    switch (m.type) {
      case 'applied':
        slot.applied = m.version;
        slot.awaitingApplied = false;
        this.#flush(slot);
        this.#checkSynced();
        return;
      case 'listening':
        settle.resolve(m.bound);
        return;
      case 'listen-error':
        settle.reject(new RouterError('ELISTEN', `router worker ${slot.index}: ${m.message}`));
        return;
      case 'log': {
        this.emit('lines', m.lines, m.times);
        const st = m.stats;
        if (st === null || m.apps === null) return;
        for (let i = 0; i < m.lines.length; i++) {
          this.emit('log', { line: m.lines[i]!, time: m.times[i]!, worker: slot.index, app: m.apps[i] ?? null, status: st.status[i] ?? null, code: st.code[i] ?? null, serviceMs: st.serviceMs[i] ?? null, connectMs: st.connectMs[i] ?? null, bytes: st.bytes[i] ?? null, retry: st.retry[i] === true } satisfies WorkerLogLine);
        }
        return;
      }
      case 'load':
        this.#loads.get(m.id)?.(m);
        return;
      case 'error':
        this.emit('error', new RouterWorkerError(slot.index, m.message));
        return;
      case 'idle':
        slot.idle.delete(m.id);
        this.#wake(m.id);
        return;
      case 'closed':
        return;
    }
  }

  #onExit(slot: Slot, code: number): void {
    if (this.#slots[slot.index] !== slot) return;
    slot.worker = null;
    // a dead worker has nothing in flight and routes nothing: it holds back no drain and no sync
    for (const id of slot.idle) this.#wake(id);
    slot.idle.clear();
    for (const id of [...slot.loads]) this.#loads.get(id)?.(null);
    this.#checkSynced();
    if (this.#closing) return;
    this.emit('worker-exit', slot.index, code);
    if (this.#specs === null) return; // died during the first listen(): that call fails instead
    const specs = this.#specs;
    const delay = Date.now() - slot.startedAt < 1000 ? this.#opts.restartDelayMs ?? 1000 : 0;
    // Kept referenced (a pool whose every worker died must not let the process exit); close() clears it.
    const timer = setTimeout(() => {
      this.#restarts.delete(timer);
      if (this.#closing) return;
      const next = this.#start(slot.index, specs);
      next.ready.then(
        () => this.emit('worker-restart', slot.index, next.worker?.threadId ?? -1),
        (err: Error) => this.emit('error', err),
      );
    }, delay);
    this.#restarts.add(timer);
  }

  #wake(id: number): void {
    const resolve = this.#idle.get(id);
    if (resolve === undefined) return;
    this.#idle.delete(id);
    resolve();
  }

  #isSynced(version: number): boolean {
    return this.#slots.every((s) => s.worker === null || s.applied >= version);
  }

  #checkSynced(): void {
    if (this.#synced.length === 0) return;
    const waiting = this.#synced;
    this.#synced = waiting.filter((w) => !this.#isSynced(w.version));
    for (const w of waiting) if (this.#isSynced(w.version)) w.resolve();
  }
}
