/**
 * Scripted fake dynos: a net.Server on 127.0.0.1 that records the exact bytes of every connection
 * and answers each complete request with whatever the script says (bytes, nothing, close…).
 */
import * as net from 'node:net';
import { splitMessage, type RawMessage } from './raw-http';
import { Wakeup } from './wakeup';

export interface DynoConn {
  readonly socket: net.Socket;
  /** Every byte received on this connection. */
  received: Buffer;
  /** Complete requests parsed so far on this connection. */
  readonly requests: RawMessage[];
  closed: boolean;
}

/** Decides what to do with a request: return bytes to write, or handle the socket yourself and return null. */
export type DynoScript = (req: RawMessage, conn: DynoConn, dyno: FakeDyno) => string | Buffer | null | void;

export class FakeDyno {
  readonly server: net.Server;
  readonly conns: DynoConn[] = [];
  readonly requests: RawMessage[] = [];
  port = 0;
  private readonly events = new Wakeup();

  constructor(
    public script: DynoScript = () => okResponse('ok'),
    readonly name = 'web.1',
  ) {
    this.server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
  }

  static async start(script?: DynoScript, name?: string): Promise<FakeDyno> {
    const d = new FakeDyno(script, name);
    await new Promise<void>((resolve) => d.server.listen(0, '127.0.0.1', resolve));
    d.port = (d.server.address() as net.AddressInfo).port;
    return d;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private onConnection(socket: net.Socket): void {
    const conn: DynoConn = { socket, received: Buffer.alloc(0) as Buffer, requests: [], closed: false };
    this.conns.push(conn);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      conn.received = Buffer.concat([conn.received, chunk]);
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const r = splitMessage(pending, { request: true });
        if (r === null) break;
        pending = Buffer.from(r.rest);
        conn.requests.push(r.message);
        this.requests.push(r.message);
        const out = this.script(r.message, conn, this);
        if (out !== null && out !== undefined && !socket.destroyed) socket.write(out);
      }
      this.events.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      this.events.wake();
    });
    this.events.wake();
  }

  /** Resolves once `pred` holds (checked on every event), or rejects after `ms`. */
  waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    return this.events.until(pred, ms, () => `fake dyno ${this.name}: timed out waiting for ${what}`);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function okResponse(body: string, extra = ''): string {
  return `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

/** A port on 127.0.0.1 with nothing listening (connection refused). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
