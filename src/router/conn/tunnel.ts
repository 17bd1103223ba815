/**
 * The raw pipe after a 101: bytes either way, backpressure from each side pausing the other, and
 * an idle deadline re-armed by traffic in either direction. Made per upgrade (rare), not per request.
 */
import { Deadline } from '../timers';
import { copyOut, type UpstreamConnection } from './upstream';

/** What a tunnel needs from the client connection. */
export interface TunnelClient {
  write(data: Buffer): boolean;
  pause(): void;
  setDeadline(kind: Deadline, inMs: number): void;
}

export class Tunnel {
  /** Bytes sent to the client: the 101's head (counted by the relay) and everything since. */
  bytesOut: number;

  constructor(
    private readonly client: TunnelClient,
    readonly upstream: UpstreamConnection,
    private readonly idleMs: number,
    headBytes: number,
  ) {
    this.bytesOut = headBytes;
    client.setDeadline(Deadline.TunnelIdle, idleMs);
  }

  fromClient(chunk: Buffer): void {
    this.client.setDeadline(Deadline.TunnelIdle, this.idleMs);
    if (!this.upstream.socket.write(chunk)) this.client.pause();
  }

  /** `chunk` may be the shared read buffer: what is written is a copy. */
  fromUpstream(chunk: Buffer): void {
    this.bytesOut += chunk.length;
    this.client.setDeadline(Deadline.TunnelIdle, this.idleMs);
    if (!this.client.write(copyOut(chunk, 0, chunk.length))) this.upstream.socket.pause();
  }

  /** The client can take more: let the dyno side flow again. */
  onClientDrain(): void {
    if (this.upstream.socket.isPaused()) this.upstream.socket.resume();
  }

  /** The dyno side: FIN first (what it sent may still be in flight), destroyed a turn later. */
  close(): void {
    const up = this.upstream;
    up.exchange = null;
    up.socket.end();
    setImmediate(() => up.destroy());
  }
}
