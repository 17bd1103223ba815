/**
 * The router: `createRouter(config)` → `{ listen(), close(), table, on('log') }`.
 *
 *   const router = createRouter({ listen: [{ host: '127.0.0.1', port: 8080 }], timeouts: { firstByteMs: 30_000 } });
 *   router.table.replace({ apps: { web: { hosts: ['web.localhost'], backends: [{ dyno: 'web.1', address: '127.0.0.1:5001' }] } } });
 *   router.on('log', (r) => console.log(r.line));
 *   await router.listen();
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as os from 'node:os';
import { resolveConfig, type ListenSpec, type RouterConfig, type RouterConfigInput } from './config';
import { ClientConnection } from './conn/client-conn';
import type { PendingClient, PendingRequest, RouterCore } from './conn/context';
import type { Exchange } from './conn/exchange';
import { UpstreamPool } from './conn/upstream';
import { RouterError } from './errors';
import { formatLogLine, type RouterLogRecord } from './log';
import { Balancer } from './routing/balancer';
import { addressDropped, RouteTable } from './routing/route-table';
import { MemberList } from './member-list';
import { fireIfDue, Sweeper } from './timers';

export type { RouterConfig, RouterConfigInput, ListenSpec, BalanceStrategy, RouterTimeouts } from './config';
export { resolveConfig, parseTimeouts, parseListen } from './config';
export { RouteTable, RouteBatch } from './routing/route-table';
export { RoutesError, validateRoutes, validateApp } from './routing/routes-validate';
export type { RoutesProblem } from './routing/routes-validate';
export { RoutesLoader } from './routing/routes-loader';
export type { LoadResult, RoutesLoaderOptions } from './routing/routes-loader';
export type { AppInput, BackendInput, BackendState, RoutesFile, AppRoute, Backend } from './routing/route-table';
export { H_CODES, RouterError } from './errors';
export type { HCode } from './errors';
export { formatLogLine, isRetryNotice } from './log';

/** A log record plus its formatted Heroku line. */
export interface RouterLogEntry extends RouterLogRecord {
  line: string;
}

/** What a router is busy with now (the metrics read it at scrape time). */
export interface RouterLoad {
  /** Requests in flight per app: admitted and not yet ended (the H11 count), app names with none left out. */
  inFlight: Map<string, number>;
  /** Requests in the boot queue, waiting for a dyno to come up or out of quarantine (all apps). */
  queued: number;
}

export interface BoundAddress {
  host: string;
  port: number;
}

/**
 * What the manifold and the cluster need of a router, whether it runs on this thread (Router) or in
 * worker threads (RouterWorkers).
 */
export interface RoutingMesh {
  readonly table: RouteTable;
  waitIdle(app: string, address: string, timeoutMs: number): Promise<void>;
  /** Resolves once every event loop routes by the table as it is now. */
  synced(): Promise<void>;
}

/** Router event loops an operator gets by default: one per core, at most 8 (nginx's `worker_processes auto`, capped). */
export function defaultRouterWorkers(): number {
  return Math.min(os.availableParallelism(), 8);
}

export declare interface Router {
  on(event: 'log', listener: (entry: RouterLogEntry) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export class Router extends EventEmitter implements RouterCore {
  readonly config: RouterConfig;
  readonly table = new RouteTable();
  readonly balancer: Balancer;
  readonly pool: UpstreamPool;
  readonly quarantine = new Map<string, number>();
  readonly waiting = new Set<Exchange>();
  readonly connecting = new MemberList<PendingRequest>('connectingSlot');
  readonly awaitingReply = new MemberList<PendingRequest>('awaitingSlot');
  readonly clients = new MemberList<PendingClient>('clientSlot');
  readonly appInFlight = new Map<string, number>();
  private readonly servers: net.Server[] = [];
  private readonly sweeper: Sweeper;

  constructor(input: RouterConfigInput = {}) {
    super();
    this.config = resolveConfig(input);
    this.balancer = new Balancer(this.config.balance);
    this.pool = new UpstreamPool(this.config);
    this.sweeper = new Sweeper(this.config.sweepMs, (now) => this.sweep(now));
    // Connects to a dyno the table no longer has are aborted and retried elsewhere at once (a dead
    // host's endpoints were removed), so are replayable requests it has not answered a byte of; its
    // idle pooled connections are closed; requests waiting for a dyno retry as soon as the table changes.
    this.table.on('change', (snapshot) => {
      this.pool.closeIdleWhere((address) => addressDropped(snapshot, address));
      // Zero counts are kept between requests (no Map churn per request) and dropped here.
      this.balancer.pruneIdle();
      for (const [app, n] of this.appInFlight) if (n === 0) this.appInFlight.delete(app);
      if (this.connecting.size > 0) for (const ex of this.connecting.toArray()) ex.onTableChange(snapshot);
      if (this.awaitingReply.size > 0) for (const ex of this.awaitingReply.toArray()) ex.onTableChange(snapshot);
      for (const ex of [...this.waiting]) ex.dispatch();
    });
  }

  /**
   * Resolves once no request is in flight to `address` (a draining dyno), or after timeoutMs: the
   * manifold stops a replaced dyno as soon as its last request is answered. `app` is part of the
   * manifold's DrainWatcher contract; addresses are unique across apps.
   */
  async waitIdle(_app: string, address: string, timeoutMs: number): Promise<void> {
    await this.balancer.whenIdle(address, timeoutMs);
  }

  /** A copy of the in-flight counts this router keeps for H11 anyway, and the boot queue's length. */
  load(): RouterLoad {
    const inFlight = new Map<string, number>();
    for (const [app, n] of this.appInFlight) if (n > 0) inFlight.set(app, n);
    return { inFlight, queued: this.waiting.size };
  }

  /** One event loop: the table is in force as soon as it changes. */
  synced(): Promise<void> {
    return Promise.resolve();
  }

  get logging(): boolean {
    return this.listenerCount('log') > 0;
  }

  log(record: RouterLogRecord): void {
    if (!this.logging) return;
    const entry = record as RouterLogEntry;
    entry.line = formatLogLine(record);
    this.emit('log', entry);
  }

  /** Listens on `specs` (default: config.listen). Resolves with the bound addresses (port 0 → real port). */
  async listen(specs: ListenSpec[] = this.config.listen, opts: { reusePort?: boolean } = {}): Promise<BoundAddress[]> {
    if (specs.length === 0) throw new RouterError('ELISTEN', 'no listen address given');
    const bound: BoundAddress[] = [];
    for (const spec of specs) {
      const proto = spec.proto ?? 'http';
      const server = net.createServer({ noDelay: true }, (socket) => {
        new ClientConnection(this, socket, proto);
        this.sweeper.start(); // idle, the sweep stops itself (below)
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // reusePort (SO_REUSEPORT): router workers each accept on their own socket of one port (workers/).
        server.listen({ host: spec.host, port: spec.port, backlog: 4096, reusePort: opts.reusePort === true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.emit('error', err));
      this.servers.push(server);
      const a = server.address() as net.AddressInfo;
      bound.push({ host: a.address, port: a.port });
    }
    this.sweeper.start();
    return bound;
  }

  addresses(): BoundAddress[] {
    return this.servers.map((s) => {
      const a = s.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
  }

  /** Stops listening, closes every client and pooled dyno connection. */
  async close(): Promise<void> {
    this.sweeper.stop();
    const closing = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    this.servers.length = 0;
    for (const c of this.clients.toArray()) c.destroy();
    this.pool.closeAll();
    await Promise.all(closing);
  }

  private sweep(now: number): void {
    this.clients.forEachRemovable((c) => fireIfDue(c, now));
    this.pool.sweep(now);
    // Quarantines lapse with time, not with table changes: let waiting requests look again.
    if (this.waiting.size > 0) for (const ex of [...this.waiting]) ex.dispatch();
    // Nothing holds a deadline: no wake-up every sweep period on an idle router (a daemon's router
    // workers each woke 100 times a second with no traffic); the next client starts it again.
    if (this.clients.size === 0 && this.waiting.size === 0 && this.pool.empty()) this.sweeper.stop();
  }
}

export function createRouter(config: RouterConfigInput = {}): Router {
  return new Router(config);
}
