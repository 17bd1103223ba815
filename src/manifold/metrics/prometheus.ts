/**
 * Prometheus metrics (`manifold daemon --metrics HOST:PORT`, docs/metrics.md#prometheus): a registry
 * of this daemon's own (prom-client's global one stays untouched), fed per router request and per
 * supervisor event, the rest read at scrape time (dynos by state from the supervisor, memory from the
 * runtime-metrics sampler, in-flight requests from the router). Labels are bounded by construction:
 * app, process type, dyno name, state, and fixed sets of reasons, status classes and codes; never a
 * path, host or request id.
 */
import http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { parseListen, type RouterLoad } from '../../router';
// the dashboard's checks of a request's target and Host, shared: the same attacks reach both servers
import { hostAllowed, isLoopback, originForm } from '../dashboard/auth';
import type { DynoStatus, SupervisorEvent } from '../supervisor/model';
import type { DynoMetricsSource, RequestSample } from './types';

export class MetricsError extends Error {
  constructor(
    readonly code: 'EMETRICS_ADDRESS' | 'EMETRICS_LISTEN',
    message: string,
  ) {
    super(message);
    this.name = 'MetricsError';
  }
}

/** `--metrics HOST:PORT` as the router's --listen reads it; a clear error otherwise. */
export function parseMetricsListen(spec: string): { host: string; port: number } {
  try {
    return parseListen(spec);
  } catch {
    throw new MetricsError('EMETRICS_ADDRESS', `invalid --metrics '${spec}' (HOST:PORT, e.g. 127.0.0.1:9090)`);
  }
}

export interface PrometheusSources {
  /** This host's supervisor: dynos by state (in a cluster, the dynos this host runs). */
  dynos: { appNames(): string[]; status(app: string): DynoStatus[] };
  /** Memory per dyno, read lazily: undefined (no sampler) leaves the memory series out. */
  memory?: () => DynoMetricsSource | undefined;
  /** What the router is busy with; undefined without a router on this host. */
  routerLoad?: () => RouterLoad | Promise<RouterLoad> | undefined;
  version: string;
  /** Whether an app still exists: a destroyed app's series leave at the next scrape. */
  alive?: (app: string) => boolean;
}

const CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const classIndex = (status: number | null): number => (status === null || status < 100 || status > 599 ? 0 : Math.floor(status / 100));
const typeOf = (dyno: string): string => {
  const dot = dyno.indexOf('.');
  return dot < 0 ? dyno : dyno.slice(0, dot);
};
/** Supervisor event kinds that are Heroku R-errors, with the code they are counted under. */
const R_ERRORS: Partial<Record<SupervisorEvent['kind'], string>> = { r10: 'R10', r12: 'R12', r14: 'R14', r15: 'R15' };

/** Running totals of one app; counters are rebuilt from these at each scrape, so a destroyed app's series go with it. */
interface AppTotals {
  byClass: Float64Array;
  byCode: Map<string, number>;
  bytes: number;
  service: Histogram.Internal<'app'>;
  connect: Histogram.Internal<'app'>;
  /** key `type\0reason` (crashes, restarts) or `type\0code` (R-errors) → count */
  crashes: Map<string, number>;
  restarts: Map<string, number>;
  errors: Map<string, number>;
}

export class PrometheusMetrics {
  readonly registry = new Registry();
  private readonly apps = new Map<string, AppTotals>();
  /** Requests no app took (unknown host, bad request): by class and code, no app label. */
  private readonly unrouted = new Map<string, number>();
  private readonly service: Histogram<'app'>;
  private readonly connect: Histogram<'app'>;
  private readonly startedAt = Date.now();
  /** The router's load, asked once per scrape (with workers it is a round trip to each). */
  private load: Promise<RouterLoad | undefined> = Promise.resolve(undefined);

  constructor(private readonly src: PrometheusSources) {
    const register = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.service = new Histogram({ name: 'manifold_router_service_seconds', help: 'Router service time (first byte sent to the dyno until the response ended), per app', labelNames: ['app'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: register });
    this.connect = new Histogram({ name: 'manifold_router_connect_seconds', help: 'Router connect time to the dyno, per app', labelNames: ['app'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: register });
    const self = this;
    new Counter({
      name: 'manifold_router_requests_total', help: 'Router requests by app and status class (none: no status was sent)', labelNames: ['app', 'status_class'], registers: register,
      collect() {
        this.reset();
        for (const [app, a] of self.apps) for (let i = 0; i < CLASSES.length; i++) if (a.byClass[i]! > 0) this.inc({ app, status_class: CLASSES[i]! }, a.byClass[i]!);
      },
    });
    new Counter({
      name: 'manifold_router_errors_total', help: 'Router requests that ended with an H-code, by app and code', labelNames: ['app', 'code'], registers: register,
      collect() {
        this.reset();
        for (const [app, a] of self.apps) for (const [code, n] of a.byCode) this.inc({ app, code }, n);
      },
    });
    new Counter({
      name: 'manifold_router_response_bytes_total', help: 'Bytes the router sent to clients from dynos, per app', labelNames: ['app'], registers: register,
      collect() {
        this.reset();
        for (const [app, a] of self.apps) if (a.bytes > 0) this.inc({ app }, a.bytes);
      },
    });
    new Counter({
      name: 'manifold_router_unrouted_requests_total', help: 'Requests no app took (unknown host, bad request), by status class and code', labelNames: ['status_class', 'code'], registers: register,
      collect() {
        this.reset();
        for (const [key, n] of self.unrouted) {
          const [cls, code] = key.split('\0') as [string, string];
          this.inc({ status_class: cls, code }, n);
        }
      },
    });
    new Gauge({
      name: 'manifold_router_in_flight_requests', help: 'Requests the router has in flight, per app', labelNames: ['app'], registers: register,
      async collect() {
        this.reset();
        const load = await self.load;
        if (load === undefined) return;
        for (const app of self.apps.keys()) this.set({ app }, load.inFlight.get(app) ?? 0);
        for (const [app, n] of load.inFlight) if (!self.apps.has(app)) this.set({ app }, n);
      },
    });
    new Gauge({
      name: 'manifold_router_boot_queue_requests', help: "Requests in the router's boot queue, waiting for a dyno to come up (all apps)", registers: register,
      async collect() {
        this.reset();
        const load = await self.load;
        if (load !== undefined) this.set(load.queued);
      },
    });
    this.supervisorCounters(register);
    this.dynoGauges(register);
    this.memoryGauges(register);
    new Gauge({
      name: 'manifold_daemon_uptime_seconds', help: 'Seconds since this daemon started', registers: register,
      collect() {
        this.set((Date.now() - self.startedAt) / 1000);
      },
    });
    new Gauge({ name: 'manifold_build_info', help: 'The daemon version (the value is always 1)', labelNames: ['version'], registers: register }).set({ version: src.version }, 1);
  }

  /** One router request (or retry notice: skip those before calling). O(1): a few increments and two bucket lookups. */
  request(app: string | null, s: Readonly<Omit<RequestSample, 'app'>>): void {
    const cls = classIndex(s.status);
    if (app === null) {
      const key = `${CLASSES[cls]}\0${s.code ?? ''}`;
      this.unrouted.set(key, (this.unrouted.get(key) ?? 0) + 1);
      return;
    }
    const a = this.totals(app);
    a.byClass[cls]!++;
    if (s.code !== null) a.byCode.set(s.code, (a.byCode.get(s.code) ?? 0) + 1);
    if (s.bytes !== null) a.bytes += s.bytes;
    if (s.serviceMs !== null) a.service.observe(Math.max(0, s.serviceMs) / 1000);
    if (s.connectMs !== null) a.connect.observe(Math.max(0, s.connectMs) / 1000);
  }

  /** The supervisor's onEvent: crashes and restarts by reason, R-errors by code. */
  event(ev: SupervisorEvent): void {
    let into: Map<string, number>;
    let label: string;
    if (ev.kind === 'crashed') [into, label] = [this.totals(ev.app).crashes, ev.reason];
    else if (ev.kind === 'restart') [into, label] = [this.totals(ev.app).restarts, ev.reason];
    else {
      const code = R_ERRORS[ev.kind];
      if (code === undefined) return;
      [into, label] = [this.totals(ev.app).errors, code];
    }
    const key = `${typeOf(ev.dyno)}\0${label}`;
    into.set(key, (into.get(key) ?? 0) + 1);
  }

  /** Forgets apps `alive` says are gone (destroyed): their series leave the next scrape. */
  retain(alive: (app: string) => boolean): void {
    for (const app of [...this.apps.keys()]) {
      if (alive(app)) continue;
      this.apps.delete(app);
      this.service.remove({ app });
      this.connect.remove({ app });
    }
  }

  /** The scrape: Prometheus text format. */
  metrics(): Promise<string> {
    if (this.src.alive) this.retain(this.src.alive);
    this.load = Promise.resolve(this.src.routerLoad?.());
    return this.registry.metrics();
  }

  private totals(app: string): AppTotals {
    let a = this.apps.get(app);
    if (a === undefined) {
      a = { byClass: new Float64Array(CLASSES.length), byCode: new Map(), bytes: 0, service: this.service.labels({ app }), connect: this.connect.labels({ app }), crashes: new Map(), restarts: new Map(), errors: new Map() };
      this.apps.set(app, a);
    }
    return a;
  }

  private supervisorCounters(register: Registry[]): void {
    const self = this;
    const counter = (name: string, help: string, pick: (a: AppTotals) => Map<string, number>, label: 'reason' | 'code'): void => {
      new Counter({
        name, help, labelNames: ['app', 'type', label], registers: register,
        collect() {
          this.reset();
          for (const [app, a] of self.apps) {
            for (const [key, n] of pick(a)) {
              const [type, value] = key.split('\0') as [string, string];
              this.inc({ app, type, [label]: value }, n);
            }
          }
        },
      });
    };
    counter('manifold_dyno_crashes_total', 'Formation dyno crashes by app, process type and reason (R10, R15, signal, exit, start-failed)', (a) => a.crashes, 'reason');
    counter('manifold_dyno_restarts_total', 'Formation dyno (re)starts by app, process type and reason (crash, restart, stop, release, cycle, reassign)', (a) => a.restarts, 'reason');
    counter('manifold_dyno_errors_total', 'Heroku R-errors logged by app, process type and code (R10, R12, R14, R15)', (a) => a.errors, 'code');
  }

  private dynoGauges(register: Registry[]): void {
    const src = this.src;
    const statuses = (): { app: string; dynos: DynoStatus[] }[] =>
      src.dynos.appNames().flatMap((app) => {
        try {
          return [{ app, dynos: src.dynos.status(app) }];
        } catch {
          return []; // destroyed between the two calls
        }
      });
    new Gauge({
      name: 'manifold_dynos', help: 'Dynos on this host by app, process type and state', labelNames: ['app', 'type', 'state'], registers: register,
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const { app, dynos } of statuses()) for (const d of dynos) {
          const key = `${app}\0${d.type}\0${d.state}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counts) {
          const [app, type, state] = key.split('\0') as [string, string, string];
          this.set({ app, type, state }, n);
        }
      },
    });
    new Gauge({
      name: 'manifold_boot_queue_dynos', help: 'Dynos starting (launched, not up yet) per app', labelNames: ['app'], registers: register,
      collect() {
        this.reset();
        for (const { app, dynos } of statuses()) this.set({ app }, dynos.filter((d) => d.state === 'starting').length);
      },
    });
  }

  private memoryGauges(register: Registry[]): void {
    const src = this.src;
    const gauge = (name: string, help: string, pick: (m: { total: number; rss: number; cache: number; swap: number }, quota: number) => number): void => {
      new Gauge({
        name, help, labelNames: ['app', 'type', 'dyno'], registers: register,
        collect() {
          this.reset();
          const source = src.memory?.();
          if (source === undefined) return;
          for (const d of source.dynos()) {
            const last = d.memory[d.memory.length - 1];
            if (last === undefined) continue;
            this.set({ app: d.app, type: typeOf(d.dyno), dyno: d.dyno }, pick(last, d.quota));
          }
        },
      });
    };
    gauge('manifold_dyno_memory_bytes', "A running dyno's memory (RSS + swap + page cache: what R14 compares), last sample", (m) => m.total);
    gauge('manifold_dyno_memory_rss_bytes', "A running dyno's resident memory, last sample", (m) => m.rss);
    gauge('manifold_dyno_memory_swap_bytes', "A running dyno's swap, last sample", (m) => m.swap);
    gauge('manifold_dyno_memory_cache_bytes', "A running dyno's page cache, last sample", (m) => m.cache);
    gauge('manifold_dyno_memory_quota_bytes', "A running dyno's memory quota (R14 above it)", (_m, quota) => quota);
  }
}

/**
 * Connections at once: anyone on the host can connect, and each is a descriptor of the root daemon
 * (measured: 300 idle connections were 300 descriptors); a Prometheus server or two need a few.
 */
export const METRICS_MAX_CONNECTIONS = 32;

/** The /metrics endpoint: GET and HEAD only, 404 for any other path. */
export class MetricsServer {
  private readonly server: http.Server;
  private address: { host: string; port: number } | undefined;
  /** Bound to loopback: only loopback names in Host (see handle). */
  private loopback = false;

  constructor(private readonly metrics: PrometheusMetrics) {
    // Node's defaults let a slow-header connection live 60 s (plus a 30 s sweep) and a slow body 300 s;
    // a scrape is one small GET: 10 s for the headers, 30 s for the whole request, swept every second
    this.server = http.createServer({ connectionsCheckingInterval: 1000, headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => void this.handle(req, res));
    // a scraper keeps its connection; the daemon's stop must not wait for it
    this.server.keepAliveTimeout = 5_000;
    this.server.maxConnections = METRICS_MAX_CONNECTIONS;
  }

  async listen(spec: string): Promise<{ host: string; port: number }> {
    const { host, port } = parseMetricsListen(spec);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => reject(new MetricsError('EMETRICS_LISTEN', `--metrics ${spec}: ${err.code ?? err.message}`)));
      this.server.listen({ host, port }, () => resolve());
    });
    const a = this.server.address() as { address: string; port: number };
    this.address = { host: a.address, port: a.port };
    this.loopback = isLoopback(a.address);
    return this.address;
  }

  url(): string | undefined {
    if (this.address === undefined) return undefined;
    const h = this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host;
    return `http://${h}:${this.address.port}/metrics`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // refusals close the connection: a body announced with them is not read (a slow one held it 300 s)
    const refuse = (status: number, text: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { ...headers, 'content-type': 'text/plain', connection: 'close' }).end(text);
    };
    if (!originForm(req.url)) return refuse(400, 'bad request\n');
    // no token here: a web page that rebinds its name to 127.0.0.1 could read every app's numbers;
    // it sends its own name as Host. A non-loopback bind has names we cannot know: no check there.
    if (this.loopback && !hostAllowed(req.headers.host, this.address?.host ?? '127.0.0.1')) return refuse(421, 'misdirected request: scrape by a loopback address\n');
    const path = req.url!.split('?')[0];
    if (path !== '/metrics') return refuse(404, 'not found: try /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'method not allowed\n', { allow: 'GET, HEAD' });
    try {
      const body = await this.metrics.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}
