/**
 * Connections to dynos and the per-dyno keep-alive pool: a LIFO idle stack per address (the most
 * recently used socket is the least likely to have been closed by the dyno), idle expiry below the
 * dyno's own keep-alive timeout, and no reuse of anything that saw a protocol surprise.
 */
import * as net from 'node:net';
import { BodyFraming } from '../http1/body-framing';
import { HeadParser } from '../http1/head-parser';
import type { RouterConfig } from '../config';
import type { Backend } from '../routing/route-table';

/** Who reads a dyno connection's events while it serves a request (an Exchange). */
export interface UpstreamUser {
  onUpstreamConnected(): void;
  onUpstreamDrain(): void;
  /** `chunk` is only valid during the call (it may be the shared read buffer). */
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEof(conn: UpstreamConnection): void;
}

/** A client connection a pooled socket may be reserved for (see UpstreamConnection.owner). */
export interface PoolOwner {
  readonly closed: boolean;
}

/**
 * One read buffer shared by every dyno socket (net `onread`): no Buffer/ArrayBuffer is allocated per
 * read and the Readable machinery is skipped. Reads are synchronous on the main thread, so sharing is
 * safe as long as nothing keeps a view of it past the read callback: the Exchange copies every byte
 * it forwards or keeps (`copyOut`), and parses heads synchronously.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** A copy of `buf[start..end)` that may outlive the read callback. */
export function copyOut(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

export class UpstreamConnection {
  readonly socket: net.Socket;
  readonly parser: HeadParser;
  private bodyFraming: BodyFraming | null = null;
  exchange: UpstreamUser | null = null;
  connected = false;
  /** Served at least one exchange before the current one (so it may be stale). */
  reused = false;
  /** Saw something that forbids reuse (extra bytes, parse error, early response). */
  broken = false;
  /**
   * The only client connection whose requests may still use this socket, once it answered a
   * body-less response whose head described a body (ResponseInfo.bodyMayFollow): if the dyno sends
   * that body late, it can only ever reach the client that asked. Null: any client.
   */
  owner: PoolOwner | null = null;
  dead = false;
  idleSince = 0;
  /** Last socket error code (ECONNREFUSED, ECONNRESET…). */
  errorCode: string | null = null;

  constructor(
    readonly pool: UpstreamPool,
    readonly backend: Backend,
  ) {
    this.parser = new HeadParser(false, pool.config.limits.response);
    this.socket = net.connect({
      host: backend.host,
      port: backend.port,
      noDelay: true,
      onread: {
        buffer: SHARED_READ_BUFFER,
        callback: (n: number, buf: Uint8Array): boolean => {
          this.onRead(buf as Buffer, n);
          return true; // keep reading; backpressure goes through pause()
        },
      },
    });
    this.socket.on('connect', () => {
      this.connected = true;
      this.exchange?.onUpstreamConnected();
    });
    this.socket.on('drain', () => this.exchange?.onUpstreamDrain());
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.errorCode = err.code ?? 'EUNKNOWN';
    });
    this.socket.on('close', () => this.onEnd());
  }

  /** Where the response body being relayed ends (reset per response; made at the first body on this connection). */
  get body(): BodyFraming {
    return (this.bodyFraming ??= new BodyFraming(this.pool.config.limits.chunked));
  }

  /** `buf[0..n)` is only valid during this call (it may be the shared read buffer). */
  private onRead(buf: Buffer, n: number): void {
    if (this.exchange !== null) this.exchange.onUpstreamData(n === buf.length ? buf : buf.subarray(0, n));
    else this.destroy(); // unsolicited bytes on an idle connection: never reuse it
  }

  private onEnd(): void {
    this.dead = true;
    const ex = this.exchange;
    if (ex !== null) ex.onUpstreamEof(this);
  }

  destroy(): void {
    this.dead = true;
    this.exchange = null;
    this.socket.destroy();
  }
}

export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConnection[]>();

  constructor(readonly config: RouterConfig) {}

  /**
   * A pooled, live connection to `address` that `client` may use (the most recent one), or null.
   * Connections owned by another client are skipped, and dropped once their owner is gone.
   */
  acquire(address: string, client: PoolOwner): UpstreamConnection | null {
    const stack = this.idle.get(address);
    if (stack === undefined) return null;
    for (let i = stack.length - 1; i >= 0; i--) {
      const conn = stack[i]!;
      if (conn.dead || conn.socket.destroyed || (conn.owner !== null && conn.owner.closed)) {
        stack.splice(i, 1);
        conn.destroy();
        continue;
      }
      if (conn.owner !== null && conn.owner !== client) continue;
      if (i === stack.length - 1) stack.pop(); // the usual case: the top of the stack
      else stack.splice(i, 1);
      return conn;
    }
    return null;
  }

  connect(backend: Backend): UpstreamConnection {
    return new UpstreamConnection(this, backend);
  }

  /**
   * Returns a healthy connection to the idle stack (or closes it if the stack is full). `owner`
   * restricts its reuse to that client for the rest of its life (see UpstreamConnection.owner).
   */
  release(conn: UpstreamConnection, owner: PoolOwner | null = null): void {
    conn.exchange = null;
    if (owner !== null) conn.owner = owner;
    conn.reused = true;
    conn.parser.reset();
    if (conn.dead || conn.broken || !this.config.upstreamKeepAlive) {
      conn.destroy();
      return;
    }
    let stack = this.idle.get(conn.backend.address);
    if (stack === undefined) this.idle.set(conn.backend.address, (stack = []));
    if (stack.length >= this.config.maxIdlePerBackend) {
      conn.destroy();
      return;
    }
    conn.idleSince = Date.now();
    if (conn.socket.isPaused()) conn.socket.resume();
    stack.push(conn);
  }

  /** No idle connection is kept (so none needs sweeping). */
  empty(): boolean {
    return this.idle.size === 0;
  }

  /** Closes idle connections older than the idle expiry, and drops dead ones. */
  sweep(now: number): void {
    const limit = now - this.config.timeouts.upstreamIdleMs;
    for (const [address, stack] of this.idle) {
      // Oldest first: the stack bottom holds the longest-idle sockets.
      let keepFrom = 0;
      while (keepFrom < stack.length && (stack[keepFrom]!.dead || stack[keepFrom]!.idleSince <= limit)) {
        stack[keepFrom]!.destroy();
        keepFrom++;
      }
      if (keepFrom > 0) stack.splice(0, keepFrom);
      // Connections reserved for a client that has gone can serve nobody.
      for (let i = stack.length - 1; i >= 0; i--) {
        const owner = stack[i]!.owner;
        if (owner !== null && owner.closed) stack.splice(i, 1)[0]!.destroy();
      }
      if (stack.length === 0) this.idle.delete(address);
    }
  }

  /** Closes every idle connection to an address `dropped` says is gone (no request may be sent on them). */
  closeIdleWhere(dropped: (address: string) => boolean): void {
    for (const [address, stack] of this.idle) {
      if (!dropped(address)) continue;
      for (const c of stack) c.destroy();
      this.idle.delete(address);
    }
  }

  closeAll(): void {
    for (const stack of this.idle.values()) for (const c of stack) c.destroy();
    this.idle.clear();
  }
}
