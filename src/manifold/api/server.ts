/**
 * Control API: JSON over HTTP/1.1 on a unix socket that only root (and an optional group) can
 * open. `POST /v1/<method>` with a JSON body; answers `{result}` or `{error:{code,message}}`.
 * `logs` with tail streams NDJSON; `run` (attached) upgrades the connection to a framed
 * stdin/stdout/stderr/exit session.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { ReadStream as TtyStream } from 'node:tty';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { native } from '../../runtime/native';
import { userNameOf } from '../author';
import type { Builder } from '../build/builder';
import type { Requester } from '../deploy/build-slug';
import { ManifoldError } from '../errors';
import { apiErrorOf, errorBody } from './errors';
import type { LogHub } from '../logs/hub';
import { BoundedTail } from '../logs/bounded-tail';
import { formatLine, matches, type LogFilter, type LogLine } from '../logs/log-buffer';
import type { Manifold } from '../manifold';
import type { Launcher } from '../supervisor/types';
import { FRAME, frame, FrameReader, LOG_LINES_MAX, type DaemonInfo } from './protocol';

type Params = Record<string, unknown>;

/** A terminal request from `manifold run` on a TTY: {cols, rows, term}; undefined if absent or malformed. */
function ttyParams(v: unknown): { cols: number; rows: number; term: string } | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const t = v as Record<string, unknown>;
  const dim = (x: unknown, d: number): number => (typeof x === 'number' && Number.isInteger(x) && x > 0 && x < 10000 ? x : d);
  const term = typeof t.term === 'string' && /^[A-Za-z0-9._+-]{1,64}$/.test(t.term) ? t.term : 'xterm';
  return { cols: dim(t.cols, 80), rows: dim(t.rows, 24), term };
}
type Handler = (p: Params, req: http.IncomingMessage) => unknown;

export interface ApiOptions {
  manifold: Manifold;
  logs: LogHub;
  launcher: Launcher;
  info: () => DaemonInfo;
  socketPath: string;
  /** Group allowed to use the socket (mode 0660); default root only (0600). */
  socketGid?: number | undefined;
  /** Where `logs` reads: this daemon's LogHub by default; every host's in cluster mode. */
  logSource?: LogSourceOf;
  /** Methods beyond the single-host ones (cluster mode: hosts, hosts:drain, hosts:undrain). */
  extra?: Record<string, (p: Params) => unknown>;
  /**
   * Cluster mode: where an attached one-off of `app` runs when not here (this host has no dynos
   * role): the session is relayed byte for byte to that host's cluster server, which runs it.
   */
  attachElsewhere?: (app: string) => Promise<{ address: string; token: string } | undefined>;
  /** Buildpack builds (`build`, `buildpacks:*`); absent in cluster mode, where they are refused. */
  builder?: Builder;
}

/** `build` and `buildpacks:*` on a daemon without a builder (cluster mode). */
function noBuilds(): never {
  throw new ManifoldError('ECLUSTER', 'buildpack builds are single-host only for now (this daemon runs in cluster mode); use manifold deploy DIR');
}

/** The log lines of an app, wherever they are kept. */
export interface LogSourceOf {
  tail(app: string, n: number, filter: LogFilter): Promise<LogLine[]>;
  /** Calls `onLine` for each new line until the returned function is called. */
  subscribe(app: string, filter: LogFilter, onLine: (l: LogLine) => void): () => void;
}

/** The cluster commands on a single-host daemon. */
function notClustered(): never {
  throw new ManifoldError('ECLUSTER', 'this daemon is not in cluster mode (start it with --etcd URLS --host-id ID --uplink ADDR)');
}

/** The LogHub of this daemon as a LogSourceOf. */
export function localLogSource(hub: LogHub): LogSourceOf {
  return {
    tail: (app, n, filter) => Promise.resolve(hub.get(app).tail(n, filter)),
    subscribe: (app, filter, onLine) =>
      hub.get(app).subscribe((l) => {
        if (matches(l, filter)) onLine(l);
      }),
  };
}

const MAX_BODY = 1024 * 1024;

/**
 * Who is on the other end of an API connection (SO_PEERCRED): a deploy reads the source as that
 * user. Node keeps a unix socket's fd on its handle; without one (never on a unix socket) we refuse.
 */
function requesterOf(socket: net.Socket): Requester {
  const fd = (socket as net.Socket & { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new ManifoldError('EINTERNAL', 'cannot tell which user is connected');
  const c = native().peerCredentials(fd);
  return { uid: c.uid, gid: c.gid };
}

/** The unix user name of the API caller: the author of the releases its request makes. */
function authorOf(req: http.IncomingMessage): string {
  return userNameOf(requesterOf(req.socket).uid);
}

function str(p: Params, k: string): string | undefined {
  const v = p[k];
  return typeof v === 'string' ? v : undefined;
}

/** `n` of a logs request (lines from the buffer, also for a tail), 100 when not given. */
function logLinesOf(p: Params): number {
  const n = typeof p.n === 'number' ? p.n : 100;
  if (!Number.isInteger(n) || n < 0 || n > LOG_LINES_MAX) throw new ManifoldError('EINVAL', `-n must be between 0 and ${LOG_LINES_MAX}`);
  return n;
}

export class ApiServer {
  private readonly server: http.Server;
  private readonly handlers: Record<string, Handler>;
  private readonly sockets = new Set<Duplex>();
  private readonly logSource: LogSourceOf;
  /** Only a server that listened removes its socket file: a cluster host without the api role never made one. */
  private listened = false;

  constructor(private readonly o: ApiOptions) {
    const m = o.manifold;
    this.handlers = {
      info: () => o.info(),
      apps: () => m.listApps(),
      'apps:create': (p, req) => m.createApp(p.name, authorOf(req)),
      'apps:destroy': (p) => m.destroyApp(p.app, p.confirm),
      'apps:info': (p) => m.info(p.app),
      'apps:settings': (p) => m.setSettings(p.app, p.settings ?? {}),
      deploy: (p, req) => m.deploy(p.app, p.dir, requesterOf(req.socket)),
      releases: (p) => m.releases(p.app),
      rollback: (p, req) => m.rollback(p.app, p.version, authorOf(req)),
      config: (p) => m.config(p.app),
      'config:update': (p, req) => m.updateConfig(p.app, p.set, p.unset, authorOf(req)),
      'ps:scale': (p) => m.scale(p.app, p.args),
      ps: (p) => m.ps(p.app),
      'ps:restart': (p) => m.restart(p.app, p.target),
      'ps:stop': (p) => m.stop(p.app, p.target),
      'run:detached': async (p) => {
        const one = await m.runOneOff(p.app, p.command, { attach: false });
        await one.started;
        return { name: one.name };
      },
      logs: async (p) => {
        const app = await m.checkApp(p.app);
        return (await this.logSource.tail(app, logLinesOf(p), { source: str(p, 'source'), dyno: str(p, 'dyno') })).map(formatLine);
      },
      build: (p, req) => this.builder().build({ ...p, requester: requesterOf(req.socket) }),
      buildpacks: (p) => this.builder().list(p.app),
      'buildpacks:set': (p) => this.builder().set(p.app, p.buildpacks),
      'buildpacks:add': (p) => this.builder().add(p.app, p.buildpack, p.index),
      'buildpacks:remove': (p) => this.builder().remove(p.app, p.buildpack, p.index),
      'buildpacks:clear': (p) => this.builder().clear(p.app),
      hosts: notClustered,
      'hosts:drain': notClustered,
      'hosts:undrain': notClustered,
      ...(o.extra ?? {}),
    };
    this.logSource = o.logSource ?? localLogSource(o.logs);
    this.server = http.createServer((req, res) => void this.onRequest(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      // a failing attach must never take the daemon (and every app with it) down
      try {
        this.onUpgrade(req, socket, head).catch((err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))));
      } catch (err) {
        socket.destroy(err instanceof Error ? err : new Error(String(err)));
      }
    });
    this.server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  private builder(): Builder {
    return this.o.builder ?? noBuilds();
  }

  async listen(): Promise<void> {
    const p = this.o.socketPath;
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(p, () => {
          this.server.off('error', reject);
          this.listened = true;
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    if (this.o.socketGid !== undefined) {
      fs.chownSync(p, 0, this.o.socketGid);
      fs.chmodSync(p, 0o660);
    } else {
      fs.chmodSync(p, 0o600);
    }
  }

  async close(): Promise<void> {
    // running builds end first (their dynos killed), so their callers hear why
    await this.o.builder?.close();
    await new Promise<void>((r) => {
      this.server.close(() => r());
      for (const s of this.sockets) s.destroy();
    });
    if (!this.listened) return;
    try {
      fs.unlinkSync(this.o.socketPath);
    } catch {
      /* already gone */
    }
  }

  private async readBody(req: http.IncomingMessage): Promise<Params> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > MAX_BODY) throw new ManifoldError('EINVAL', 'request body too large');
      chunks.push(c as Buffer);
    }
    if (n === 0) return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new ManifoldError('EINVAL', 'request body is not JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ManifoldError('EINVAL', 'request body must be a JSON object');
    return parsed as Params;
  }

  private send(res: http.ServerResponse, status: number, body: unknown): void {
    const data = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    res.end(data);
  }

  private sendError(res: http.ServerResponse, err: unknown): void {
    const e = apiErrorOf(err);
    this.send(res, e.status, errorBody(e));
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const m = /^\/v1\/([a-z:-]+)$/.exec(req.url ?? '');
      if (!m || req.method !== 'POST') throw new ManifoldError('EINVAL', `unknown endpoint ${req.method} ${req.url}`);
      const method = m[1]!;
      const params = await this.readBody(req);
      if (method === 'logs' && params.tail === true) return await this.tailLogs(params, res);
      if (method === 'deploy' && params.progress === true) return await this.deployWithProgress(params, req, res);
      if (method === 'build' && params.progress === true) return await this.buildWithProgress(params, req, res);
      const h = this.handlers[method];
      if (!h) throw new ManifoldError('EINVAL', `unknown method ${method}`);
      const result = await h(params, req);
      this.send(res, 200, { result: result ?? null });
    } catch (err) {
      this.sendError(res, err);
    }
  }

  /**
   * A deploy that reports its copy as it goes: NDJSON `{progress:{files,bytes}}` lines, then one
   * `{result}` or `{error}` line (the status is 200 once streaming has begun).
   */
  private async deployWithProgress(p: Params, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requester = requesterOf(req.socket);
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const line = (v: unknown): void => void res.write(`${JSON.stringify(v)}\n`);
    try {
      const result = await this.o.manifold.deploy(p.app, p.dir, requester, (progress) => line({ progress }));
      line({ result });
    } catch (err) {
      line(errorBody(apiErrorOf(err)));
    }
    res.end();
  }

  /** A build streams its output: NDJSON `{progress:{line}}` lines, then `{result}` or `{error}` (build/builder.ts). */
  private async buildWithProgress(p: Params, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const builder = this.builder();
    const requester = requesterOf(req.socket);
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const line = (v: unknown): void => void res.write(`${JSON.stringify(v)}\n`);
    try {
      const result = await builder.build({ ...p, requester }, (l) => line({ progress: { line: l } }));
      line({ result });
    } catch (err) {
      line(errorBody(apiErrorOf(err)));
    }
    res.end();
  }

  private async tailLogs(p: Params, res: http.ServerResponse): Promise<void> {
    const app = await this.o.manifold.checkApp(p.app);
    const n = logLinesOf(p);
    const filter = { source: str(p, 'source'), dyno: str(p, 'dyno') };
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // bounded: a reader that stops reading loses lines (and is told, L10), the daemon keeps its memory
    const tail = new BoundedTail(res, (line) => `${JSON.stringify(line)}\n`);
    // subscribed before the backlog is read, so no line falls between the two; ones seen twice are dropped
    const early: LogLine[] = [];
    let live = false;
    const off = this.logSource.subscribe(app, filter, (l) => {
      if (live) tail.offer(formatLine(l));
      else early.push(l);
    });
    res.on('close', off);
    const backlog = await this.logSource.tail(app, n, filter);
    for (const l of backlog) tail.offer(formatLine(l));
    const last = backlog[backlog.length - 1];
    for (const l of early) if (!last || l.time > last.time || (l.time === last.time && l.seq > last.seq)) tail.offer(formatLine(l));
    live = true;
  }

  /** The attach handshake of another host's API relayed here (cluster server, already authenticated). */
  attach(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    this.onUpgrade(req, socket, head, false).catch((err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))));
  }

  /** Attached one-off dyno: the client's terminal streams go through frames on the upgraded socket. */
  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, mayRelay = true): Promise<void> {
    const fail = (err: unknown): void => {
      const e = apiErrorOf(err);
      const body = JSON.stringify(errorBody(e));
      socket.end(`HTTP/1.1 ${e.status} Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };
    if (req.url !== '/v1/run' || (req.headers.upgrade ?? '').toLowerCase() !== 'manifold-attach') return fail(new ManifoldError('EINVAL', 'bad upgrade'));
    let params: Params;
    try {
      params = JSON.parse(Buffer.from(String(req.headers['x-manifold-params'] ?? ''), 'base64').toString('utf8')) as Params;
    } catch {
      return fail(new ManifoldError('EINVAL', 'bad run parameters'));
    }
    if (mayRelay && this.o.attachElsewhere) {
      let target: { address: string; token: string } | undefined;
      try {
        await this.o.manifold.checkApp(params.app);
        target = await this.o.attachElsewhere(String(params.app));
      } catch (err) {
        return fail(err);
      }
      if (target) return relayAttach(req, socket, head, target);
    }
    const tty = ttyParams(params.tty);
    if (tty && !this.o.launcher.openPty) return fail(new ManifoldError('EINVAL', 'terminals are not supported by this daemon'));
    const closeFds = (fds: number[]): void => fds.forEach((fd) => { try { fs.closeSync(fd); } catch { /* closed */ } });
    // With a terminal, the dyno's stdin, stdout and stderr are the pty's slave and we relay its
    // master (stderr arrives merged, as on a real terminal); otherwise three pipes.
    let fds: { inR: number; inW: number; outR: number; outW: number; errR: number; errW: number };
    let master = -1;
    try {
      if (tty) {
        const [m, slave] = this.o.launcher.openPty!(tty.cols, tty.rows);
        master = m;
        fds = { inR: slave, inW: -1, outR: -1, outW: slave, errR: -1, errW: slave };
      } else {
        const [inR, inW] = this.o.launcher.pipe();
        const [outR, outW] = this.o.launcher.pipe();
        const [errR, errW] = this.o.launcher.pipe();
        fds = { inR, inW, outR, outW, errR, errW };
      }
    } catch (err) {
      return fail(err);
    }
    const env = tty ? { TERM: tty.term } : undefined;
    let one: Awaited<ReturnType<Manifold['runOneOff']>>;
    try {
      // the client sends nothing before our 101, so no frame arrives during this await
      one = await this.o.manifold.runOneOff(params.app, params.command, { attach: true, stdio: { stdin: fds.inR, stdout: fds.outW, stderr: fds.errW }, ...(env ? { env } : {}) });
    } catch (err) {
      closeFds([...new Set(Object.values(fds))].filter((fd) => fd >= 0).concat(master >= 0 ? [master] : []));
      return fail(err);
    }
    // the dyno has its own copies now (spawn dups them synchronously)
    closeFds([...new Set([fds.inR, fds.outW, fds.errW])]);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: manifold-attach\r\nconnection: upgrade\r\n\r\n');
    // net.Socket refuses TTY fds; a tty.ReadStream is a duplex socket over the pty master
    const terminal = master >= 0 ? new TtyStream(master) : undefined;
    const stdin = terminal ?? new net.Socket({ fd: fds.inW, readable: false, writable: true });
    const stdout = terminal ?? new net.Socket({ fd: fds.outR, readable: true, writable: false });
    const stderr = terminal ? undefined : new net.Socket({ fd: fds.errR, readable: true, writable: false });
    stdin.on('error', () => undefined);
    let open = terminal ? 1 : 2;
    let exitStatus: unknown;
    let sentExit = false;
    const maybeExit = (): void => {
      if (open === 0 && exitStatus !== undefined && !sentExit) {
        sentExit = true;
        socket.end(frame(FRAME.EXIT, JSON.stringify(exitStatus)));
      }
    };
    for (const [s, type] of [[stdout, FRAME.STDOUT], [stderr, FRAME.STDERR]] as const) {
      if (!s) continue;
      s.on('data', (d: Buffer) => socket.write(frame(type, d)));
      s.on('error', () => undefined);
      s.on('close', () => {
        open--;
        maybeExit();
      });
    }
    const reader = new FrameReader((type, payload) => {
      if (type === FRAME.STDIN) stdin.write(payload);
      else if (type === FRAME.STDIN_EOF) {
        // a terminal has no EOF of its own: ^D is just a byte the line discipline interprets
        if (!terminal) stdin.end();
      } else if (type === FRAME.RESIZE && terminal) {
        const size = ttyParams(JSON.parse(payload.toString('utf8')));
        if (size) this.o.launcher.resizePty?.(master, size.cols, size.rows);
      }
      else if (type === FRAME.SIGNAL) one.stop();
    });
    if (head.length) reader.push(head);
    socket.on('data', (d: Buffer) => reader.push(d));
    // The client is gone (kill -9, SIGHUP, a dropped ssh session) once its side of the stream ends:
    // it never half-closes (stdin EOF is a frame), and as the server's sockets allow half-open ones,
    // 'close' may not come until we end ours. As with `heroku run`, the dyno gets SIGHUP, which an
    // interactive shell does not ignore (it does SIGTERM), then the grace and SIGKILL; the output
    // and exit frame still go out, for a client that only half-closed. run:detached outlives clients.
    const hangUp = (): void => {
      if (!sentExit) one.stop('SIGHUP');
    };
    socket.on('end', hangUp);
    socket.on('error', hangUp);
    socket.on('close', () => {
      stdin.destroy();
      hangUp();
    });
    // gone while the dyno was being set up (its events came before these listeners)
    if (socket.destroyed || socket.readableEnded) {
      stdin.destroy();
      hangUp();
    }
    one.started.then(
      () => socket.write(frame(FRAME.STARTED, JSON.stringify({ name: one.name }))),
      (err: unknown) => socket.write(frame(FRAME.ERROR, err instanceof Error ? err.message : String(err))),
    );
    void one.exited.then((s) => {
      exitStatus = s;
      // a terminal closes by itself once the last slave fd is gone (read gets EIO): keep reading it
      if (!terminal) stdin.destroy();
      // output already written by the dyno is still read; force close after a short while
      setTimeout(() => {
        stdout.destroy();
        stderr?.destroy();
      }, 500).unref();
      maybeExit();
    });
  }
}

/**
 * Relays an attach session to another host's cluster server: the same upgrade request with the
 * cluster token, then bytes both ways (its 101 and frames go straight back to the client).
 */
function relayAttach(req: http.IncomingMessage, socket: Duplex, head: Buffer, target: { address: string; token: string }): void {
  const i = target.address.lastIndexOf(':');
  const upstream = net.connect({ host: target.address.slice(0, i), port: Number(target.address.slice(i + 1)) });
  const params = String(req.headers['x-manifold-params'] ?? '');
  upstream.on('connect', () => {
    upstream.write(`POST /v1/run HTTP/1.1\r\nhost: manifold\r\nconnection: upgrade\r\nupgrade: manifold-attach\r\nauthorization: Bearer ${target.token}\r\nx-manifold-params: ${params}\r\n\r\n`);
    if (head.length) upstream.write(head);
    socket.pipe(upstream);
    upstream.pipe(socket);
  });
  const close = (): void => {
    upstream.destroy();
    socket.destroy();
  };
  upstream.on('error', () => {
    const body = JSON.stringify(errorBody(new ManifoldError('EINTERNAL', `the host chosen for the one-off dyno (${target.address}) did not answer`)));
    socket.end(`HTTP/1.1 502 Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  upstream.on('close', close);
  socket.on('close', close);
  socket.on('error', close);
}
