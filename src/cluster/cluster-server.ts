/**
 * The HTTP server every cluster daemon runs on its uplink (`--cluster-port`, default 7946), for the
 * other hosts only: slugs (GET /v1/slugs/<sha>, POST /v1/slugs/<sha>/fetch), a router's idle check of
 * a draining dyno (GET /v1/idle), and the per-host half of the API's fan-out (POST /v1/local/<method>,
 * GET /v1/local/logs/tail). Every request carries the cluster's bearer token (kept in etcd, so only
 * what may read etcd may call here); dynos can't reach this port at all (host-net.ts forward rules
 * and the bridge's input chain).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';

export type LocalHandler = (params: Record<string, unknown>) => Promise<unknown>;

export interface ClusterServerHandlers {
  /** Path of a slug this host holds, or undefined. */
  slugPath(sha: string): string | undefined;
  serveSlug(dir: string, res: http.ServerResponse): void;
  fetchSlug?(sha: string, sources: string[]): Promise<unknown>;
  /** Router role: resolves once `addr` has no request in flight here (after applying revision `rev`). */
  idle?(app: string, addr: string, rev: string, timeoutMs: number): Promise<void>;
  local: Record<string, LocalHandler>;
  /** Streams log lines (NDJSON) of `app` until the response closes. */
  tail?(params: Record<string, string>, res: http.ServerResponse): void;
  /** An attached one-off relayed by another host's API (the attach handshake of the control API). */
  attach?(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
}

export class ClusterServer {
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly token: () => string,
    private readonly h: ClusterServerHandlers,
  ) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => reply(res, 500, { error: { code: codeOf(err), message: (err as Error).message ?? String(err) } }));
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.authorized(req) || !this.h.attach || new URL(req.url ?? '/', 'http://x').pathname !== '/v1/run') {
        socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      this.h.attach(req, socket, head);
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => {
      this.server.close(() => r());
      for (const s of this.sockets) s.destroy();
    });
  }

  private authorized(req: http.IncomingMessage): boolean {
    const want = Buffer.from(`Bearer ${this.token()}`);
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.authorized(req)) return reply(res, 401, { error: { code: 'EAUTH', message: 'bad or missing cluster token' } });
    const url = new URL(req.url ?? '/', 'http://x');
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && (m = /^\/v1\/slugs\/([0-9a-f]{64})$/.exec(url.pathname))) {
      const dir = this.h.slugPath(m[1]!);
      if (!dir) return reply(res, 404, { error: { code: 'ENOENT', message: 'slug not held here' } });
      return this.h.serveSlug(dir, res);
    }
    if (req.method === 'POST' && (m = /^\/v1\/slugs\/([0-9a-f]{64})\/fetch$/.exec(url.pathname)) && this.h.fetchSlug) {
      const body = await readJson(req);
      const sources = Array.isArray(body.sources) ? body.sources.filter((s): s is string => typeof s === 'string') : [];
      await this.h.fetchSlug(m[1]!, sources);
      return reply(res, 200, { result: true });
    }
    if (req.method === 'GET' && url.pathname === '/v1/idle' && this.h.idle) {
      const q = url.searchParams;
      await this.h.idle(q.get('app') ?? '', q.get('addr') ?? '', q.get('rev') ?? '0', Math.min(Number(q.get('timeout') ?? 30000) || 30000, 3600_000));
      return reply(res, 200, { result: true });
    }
    if (req.method === 'GET' && url.pathname === '/v1/local/logs/tail' && this.h.tail) {
      return this.h.tail(Object.fromEntries(url.searchParams), res);
    }
    if (req.method === 'POST' && (m = /^\/v1\/local\/([a-z:-]+)$/.exec(url.pathname))) {
      const handler = this.h.local[m[1]!];
      if (!handler) return reply(res, 404, { error: { code: 'EINVAL', message: `unknown method ${m[1]}` } });
      try {
        return reply(res, 200, { result: (await handler(await readJson(req))) ?? null });
      } catch (err) {
        return reply(res, 400, { error: { code: codeOf(err), message: (err as Error).message ?? String(err) } });
      }
    }
    reply(res, 404, { error: { code: 'EINVAL', message: `unknown endpoint ${req.method} ${url.pathname}` } });
  }
}

function codeOf(err: unknown): string {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : 'EINTERNAL';
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > 1024 * 1024) throw new Error('request body too large');
    chunks.push(c as Buffer);
  }
  if (n === 0) return {};
  const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** A call to another host's cluster server: `{result}` → result, `{error}` → an Error with its code. */
export async function clusterCall<T>(addr: string, token: string, method: 'GET' | 'POST', pathAndQuery: string, body: unknown, timeoutMs: number): Promise<T> {
  const i = addr.lastIndexOf(':');
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = http.request(
      { hostname: addr.slice(0, i), port: Number(addr.slice(i + 1)), method, path: pathAndQuery, timeout: timeoutMs, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { result?: T; error?: { code: string; message: string } };
            if (v.error) reject(Object.assign(new Error(v.error.message), { code: v.error.code }));
            else resolve(v.result as T);
          } catch {
            reject(new Error(`bad answer from ${addr} (HTTP ${res.statusCode})`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${addr} did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}
