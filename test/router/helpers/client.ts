/** A raw TCP client for tests: write exact bytes, read exact bytes, observe closes. */
import * as net from 'node:net';
import { splitMessage, type RawMessage, type SplitOptions } from './raw-http';
import { Wakeup } from './wakeup';

export class RawClient {
  readonly socket: net.Socket;
  received: Buffer = Buffer.alloc(0);
  /** Offset of the first byte not yet returned by readResponse(). */
  consumed = 0;
  closed = false;
  ended = false;
  private readonly events = new Wakeup();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.events.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.events.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.events.wake();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    return this.events.until(pred, ms, () => `client: timed out waiting for ${what}; got ${JSON.stringify(this.received.toString('latin1').slice(0, 400))}`);
  }

  /** The next complete response (or rejects on timeout). */
  async readResponse(opts: SplitOptions = {}, ms = 5000): Promise<RawMessage> {
    let result: RawMessage | null = null;
    await this.waitFor(
      () => {
        const r = splitMessage(this.received.subarray(this.consumed), { ...opts, closed: this.ended || this.closed });
        if (r === null) return false;
        result = r.message;
        this.consumed += r.message.raw.length;
        return true;
      },
      ms,
      'a complete response',
    );
    return result!;
  }

  async waitClose(ms = 5000): Promise<void> {
    await this.waitFor(() => this.closed || this.ended, ms, 'close');
  }

  /** Text received so far after the consumed responses. */
  get unread(): string {
    return this.received.subarray(this.consumed).toString('latin1');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Sends `data` on a fresh connection and collects everything until the router closes or `ms` passes. */
export async function exchangeRaw(port: number, data: string | Buffer, ms = 3000): Promise<{ text: string; closed: boolean }> {
  const c = await RawClient.connect(port);
  c.write(data);
  try {
    await c.waitClose(ms);
  } catch {
    // not closed: report what we have
  }
  const closed = c.closed || c.ended;
  c.close();
  return { text: c.received.toString('latin1'), closed };
}
