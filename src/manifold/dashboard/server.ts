/**
 * `manifold daemon --dashboard HOST:PORT`: one page (dashboard/ at the package root) with the
 * apps, their dynos, charts and the live log stream (docs/dashboard.md). node:http, GET only;
 * every response but the token exchange needs the session cookie (auth.ts). State and metrics
 * are pushed as server-sent events when they change; logs stream like `logs --tail`.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { BoundedTail, l10Line, TAIL_LIMITS } from '../logs/bounded-tail';
import type { LogFilter, LogLine } from '../logs/log-buffer';
import type { DynoMetricsSource, TrafficSource } from '../metrics/types';
import { COOKIE_NAME, cookieValue, hostAllowed, isLoopback, newToken, originForm, sessionCookie, tokenMatches, writeTokenFile, type DashboardListen } from './auth';
import { metricsView, stateView, type DashboardModel, type MetricsView } from './data';
import { Feed, sseHead } from './sse';

/** The log lines of an app (the API's LogSourceOf: this daemon's LogHub, or every host's in a cluster). */
export interface DashboardLogs {
  tail(app: string, n: number, filter: LogFilter): Promise<LogLine[]>;
  subscribe(app: string, filter: LogFilter, onLine: (l: LogLine) => void): () => void;
}

export interface DashboardOptions {
  listen: DashboardListen;
  /** Where the token file goes (the daemon's run directory). */
  tokenDir: string;
  model: DashboardModel;
  logs: DashboardLogs;
  /** Read at every build: the sources may be attached after the dashboard starts. */
  memory?: () => DynoMetricsSource | undefined;
  traffic?: () => TrafficSource | undefined;
  log?: (line: string) => void;
  /** The static files (default: dashboard/ at the package root). */
  assetsDir?: string;
  /** ms between state builds while a page is open (default 1000) and between metrics builds (5000). */
  stateEveryMs?: number;
  metricsEveryMs?: number;
}

/** The package root: this file is dist/src/manifold/dashboard/server.js (or src/… under a TS runner). */
const PACKAGE_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../../..' : '../../..');

/** Scripts and styles only from the daemon; no inline code, no frames, no forms, nothing elsewhere. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/**
 * Connections at once. Anyone on the host can connect before any token is checked; without a cap a
 * local user holding thousands of idle sockets uses up the root daemon's descriptors (measured: 3000
 * idle connections were 3000 descriptors of the daemon, whose limit is 20000), and with them its
 * dynos' and API's. One person's browser needs a handful (6 per host in HTTP/1.1).
 */
export const MAX_CONNECTIONS = 64;
/** Open event streams (state and logs together): each may hold a slow reader's bounded queue (4 MB of log lines). */
export const MAX_STREAMS = 16;

interface Asset {
  type: string;
  body: Buffer;
}

function loadAssets(dir: string): Map<string, Asset> {
  const uplot = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const files: [string, string, string][] = [
    ['/', path.join(dir, 'index.html'), 'text/html; charset=utf-8'],
    ['/app.js', path.join(dir, 'app.js'), 'text/javascript; charset=utf-8'],
    ['/app.css', path.join(dir, 'app.css'), 'text/css; charset=utf-8'],
    ['/uPlot.min.js', path.join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['/uPlot.min.css', path.join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  // read once at start: a missing file stops the dashboard at start, not at the first visit
  return new Map(files.map(([url, file, type]) => [url, { type, body: fs.readFileSync(file) }]));
}

export class DashboardServer {
  private readonly server: http.Server;
  private readonly assets: Map<string, Asset>;
  private readonly token = newToken();
  private readonly state: Feed;
  private readonly metrics: Feed;
  /** Every open event stream (/events and /events/logs), for the cap and for close(). */
  private readonly streams = new Set<http.ServerResponse>();
  private readonly log: (line: string) => void;
  tokenFile = '';
  address: DashboardListen | undefined;

  constructor(private readonly o: DashboardOptions) {
    this.log = o.log ?? (() => undefined);
    this.assets = loadAssets(o.assetsDir ?? path.join(PACKAGE_ROOT, 'dashboard'));
    const host = os.hostname();
    this.state = new Feed(
      'state',
      async () => {
        const v = await stateView(o.model, host);
        // `now` changes every build; leave it out of the comparison by sending it apart
        return JSON.stringify({ ...v, now: 0 });
      },
      o.stateEveryMs ?? 1000,
      (err) => this.log(`dashboard state: ${String(err)}`),
    );
    this.metrics = new Feed('metrics', async () => JSON.stringify({ ...(await this.metricsNow()), now: 0 }), o.metricsEveryMs ?? 5000, (err) => this.log(`dashboard metrics: ${String(err)}`));
    // headersTimeout is enforced by a sweep every connectionsCheckingInterval (30 s by default): a
    // slow-header connection was measured held 18 s for a 10 s timeout; a sweep each second keeps it ~10 s
    this.server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
      try {
        this.onRequest(req, res);
      } catch (err) {
        this.log(`dashboard: ${String(err)}`);
        if (!res.headersSent) this.plain(res, 500, 'internal error');
        else res.destroy();
      }
    });
    // a dashboard visitor is one person: no need for Node's generous defaults
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 0; // event streams stay open
    this.server.maxHeadersCount = 50;
    this.server.maxConnections = MAX_CONNECTIONS;
  }

  async listen(): Promise<DashboardListen> {
    this.tokenFile = writeTokenFile(this.o.tokenDir, this.token);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.listen.port, this.o.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    const port = typeof a === 'object' && a ? a.port : this.o.listen.port;
    // the address bound, not the name given: `localhost` is 127.0.0.1 and ::1 to a browser, and
    // another user may listen on the family the daemon did not bind and get the printed /?token=
    this.address = { host: typeof a === 'object' && a ? a.address : this.o.listen.host, port };
    return this.address;
  }

  /** `http://HOST:PORT/` (brackets around an IPv6 host). */
  url(): string | null {
    if (!this.address) return null;
    const h = this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host;
    return `http://${h}:${this.address.port}/`;
  }

  async close(): Promise<void> {
    this.state.close();
    this.metrics.close();
    for (const s of this.streams) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    fs.rmSync(this.tokenFile, { force: true });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    // `//x/app.js` or `http://x/…` would be read by URL as a host, not a path (and `//?t` threw: a 500)
    if (!originForm(req.url)) return this.plain(res, 400, 'bad request');
    // DNS rebinding: a page of another site whose name now resolves to 127.0.0.1 sends its own name;
    // on a loopback address only loopback names are served (--dashboard-public: the cookie alone)
    if (isLoopback(this.o.listen.host) && !hostAllowed(req.headers.host, this.o.listen.host)) return this.plain(res, 421, 'misdirected request: open the dashboard by its loopback address');
    if (req.method !== 'GET') {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: 'GET', 'content-type': 'text/plain', connection: 'close' });
      res.end('only GET\n');
      return;
    }
    const url = new URL(req.url!, 'http://dashboard');
    const presented = url.searchParams.get('token');
    if (url.pathname === '/' && presented !== null) {
      if (!tokenMatches(presented, this.token)) return this.plain(res, 401, 'unauthorized');
      // the token leaves the address bar (and the history) at once
      res.writeHead(303, { ...SECURITY_HEADERS, 'set-cookie': sessionCookie(this.token), location: '/', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    if (!tokenMatches(cookieValue(req.headers.cookie, COOKIE_NAME), this.token)) return this.plain(res, 401, 'unauthorized');
    const asset = this.assets.get(url.pathname);
    if (asset) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'content-length': asset.body.length, 'cache-control': 'no-cache' });
      res.end(asset.body);
      return;
    }
    switch (url.pathname) {
      case '/api/state':
        void this.json(res, async () => stateView(this.o.model, os.hostname()));
        return;
      case '/api/metrics':
        void this.json(res, () => this.metricsNow());
        return;
      case '/events':
        if (!this.holdStream(res)) return;
        sseHead(res, SECURITY_HEADERS);
        this.state.add(res);
        this.metrics.add(res);
        return;
      case '/events/logs':
        if (!this.holdStream(res)) return;
        void this.logStream(url.searchParams, res).catch((err: unknown) => {
          this.log(`dashboard logs: ${String(err)}`);
          res.destroy();
        });
        return;
      default:
        this.plain(res, 404, 'not found');
    }
  }

  /** Counts an event stream against MAX_STREAMS (a 503 past it) until its connection closes. */
  private holdStream(res: http.ServerResponse): boolean {
    if (this.streams.size >= MAX_STREAMS) {
      this.plain(res, 503, `too many open event streams (${MAX_STREAMS}): close other dashboard tabs`);
      return false;
    }
    this.streams.add(res);
    res.once('close', () => this.streams.delete(res));
    return true;
  }

  private async metricsNow(): Promise<MetricsView> {
    return metricsView(await this.o.model.listApps(), this.o.memory?.(), this.o.traffic?.());
  }

  private plain(res: http.ServerResponse, status: number, text: string): void {
    // a refusal closes the connection: Node would otherwise read a body announced with it to the end,
    // with no timeout (requestTimeout is off for the event streams); measured held as long as it dripped
    const close: Record<string, string> = status >= 400 ? { connection: 'close' } : {};
    res.writeHead(status, { ...SECURITY_HEADERS, ...close, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${text}\n`);
  }

  private async json(res: http.ServerResponse, f: () => Promise<unknown>): Promise<void> {
    try {
      const body = JSON.stringify(await f());
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(body);
    } catch (err) {
      this.log(`dashboard: ${String(err)}`);
      this.plain(res, 500, 'internal error');
    }
  }

  /**
   * `logs --tail` for a page: the last lines, then live ones, with the same source and dyno filters
   * and the same bound on a slow reader (BoundedTail, L10). Each connection starts with `reset`, so
   * a reconnecting page replaces its lines instead of showing the backlog twice.
   */
  private async logStream(q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    const app = q.get('app') ?? '';
    const names = await this.o.model.listApps();
    // the page may have gone while the apps were read: its close has passed, so nothing would unsubscribe
    if (!this.streams.has(res)) return;
    if (!names.includes(app)) return this.plain(res, 404, 'no such app');
    const filter: LogFilter = { source: q.get('source') ?? '', dyno: q.get('dyno') ?? '' };
    const n = Math.min(Math.max(Number(q.get('n') ?? 200) || 0, 0), 1500);
    sseHead(res, SECURITY_HEADERS);
    res.write('event: reset\ndata: {}\n\n');
    const tail = new BoundedTail(res, (line) => `data: ${line}\n\n`);
    const encode = (l: LogLine): string => JSON.stringify({ time: l.time, source: l.source, dyno: l.dyno, message: l.message });
    // subscribed before the backlog is read, so no line falls between the two (as the API's tail)
    // bounded as the tail's queue: reading the backlog may take a while (every host of a cluster), and
    // a flood meanwhile was all kept (dashboard-attack.test: 78 MB for 200 000 lines); past it they are counted
    const early: LogLine[] = [];
    let earlyDropped = 0;
    let earlySince = 0;
    let live = false;
    const off = this.o.logs.subscribe(app, filter, (l) => {
      if (live) tail.offer(encode(l));
      else if (early.length < TAIL_LIMITS.lines) early.push(l);
      else if (earlyDropped++ === 0) earlySince = Date.now() * 1000;
    });
    res.on('close', off);
    const backlog = await this.o.logs.tail(app, n, filter);
    for (const l of backlog) tail.offer(encode(l));
    const last = backlog[backlog.length - 1];
    for (const l of early) if (!last || l.time > last.time || (l.time === last.time && l.seq > last.seq)) tail.offer(encode(l));
    if (earlyDropped > 0) tail.offer(l10Line(earlyDropped, earlySince));
    live = true;
  }
}
