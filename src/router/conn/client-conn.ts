/**
 * One client connection: reads request heads, hands each request to an Exchange, buffers pipelined
 * bytes (bounded; the socket is paused beyond the cap), and decides keep-alive vs close.
 * It never interprets body bytes itself: the Exchange does.
 */
import type * as net from 'node:net';
import { BodyFraming } from '../http1/body-framing';
import { HeadParser, NEED_MORE, type MessageHead } from '../http1/head-parser';
import { analyzeRequest, BodyKind } from '../http1/framing';
import { ParseError, parseErrorInfo } from '../http1/parse-errors';
import { H_CODES, type HCode } from '../errors';
import { errorResponse } from '../responses';
import { Deadline, type HasDeadline } from '../timers';
import type { RouterCore } from './context';
import { Exchange } from './exchange';
import type { PendingClient } from './context';

export enum ClientPhase {
  /** Reading a request head. */
  Head,
  /** A request is being routed / connected: its body bytes wait in the queue. */
  Waiting,
  /** Request body flows to the dyno. */
  Body,
  /** Request complete; response pending. New bytes are pipelined requests. */
  AwaitResponse,
  /** Raw bidirectional pipe after a 101. */
  Tunnel,
  Closed,
}

const PAUSE_BACKPRESSURE = 1;
const PAUSE_QUEUE_FULL = 2;

/**
 * Bytes read and thrown away after the router has half-closed (lingering close, RFC 9112 §9.6:
 * reading on lets the client see the response rather than a reset). Beyond this the socket stops
 * reading until the client closes or Linger destroys it: every read allocates a buffer the GC
 * reclaims late, and a client flooding a refused connection must not cost the router memory.
 */
const LINGER_DISCARD_BYTES = 16 * 1024;

/**
 * Growable buffer for a head that arrives in several packets (amortised O(n) copying). Capacity
 * doubles but never past `cap` (head size limit + 1: process() appends no more than that), so an
 * unfinished head costs a connection at most the limit, however much the client sends.
 */
class Accumulator {
  buf: Buffer;
  used = 0;
  constructor(
    first: Buffer,
    private readonly cap: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(first.length, Math.min(cap, Math.max(4096, first.length * 2))));
    this.append(first);
  }
  append(src: Buffer): void {
    const needed = this.used + src.length;
    if (needed > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(needed, Math.min(this.cap, this.buf.length * 2)));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    src.copy(this.buf, this.used);
    this.used = needed;
  }
  view(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

/**
 * Socket event handlers shared by every connection (no closures per connection: an idle
 * connection costs as little as possible); the connection hangs off the socket.
 */
const CONN = Symbol('manifold.clientConnection');
type TaggedSocket = net.Socket & { [CONN]: ClientConnection };

function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[CONN].onData(chunk);
}
function onSocketDrain(this: TaggedSocket): void {
  this[CONN].onDrain();
}
function onSocketGone(this: TaggedSocket): void {
  this[CONN].onPeerGone();
}
function onSocketError(): void {
  /* 'close' follows */
}

export class ClientConnection implements HasDeadline, PendingClient {
  /** Its index in the core's clients list (owned by the list). */
  clientSlot = -1;
  deadline = 0;
  deadlineKind = Deadline.None;
  private phase = ClientPhase.Head;
  private exchange: Exchange | null = null;
  /** The head being read; allocated when a head starts, dropped when it is complete. */
  private parser: HeadParser | null = null;
  /** Lazily read from the socket (getpeername/getsockname) when a request needs them. */
  private peerAddress: string | null = null;
  private sockPort = -1;
  requests = 0;
  private headAcc: Accumulator | null = null;
  private queue: Buffer | null = null;
  private pauseReasons = 0;
  private draining = false;
  /** Where each request body ends; made at the first request with a body, reused by the next ones. */
  private requestBody: BodyFraming | null = null;
  /** Bytes discarded since closeAfterFlush (see LINGER_DISCARD_BYTES). */
  private discarded = 0;

  constructor(
    readonly core: RouterCore,
    readonly socket: net.Socket,
    readonly proto: string | null,
  ) {
    // noDelay comes from the server options (net.createServer({ noDelay: true })).
    (socket as TaggedSocket)[CONN] = this;
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('end', onSocketGone);
    socket.on('close', onSocketGone);
    socket.on('error', onSocketError);
    core.clients.add(this);
    this.setDeadline(Deadline.ClientIdle, core.config.timeouts.clientIdleMs);
  }

  /** Client address (IPv4-mapped IPv6 shown as IPv4), for X-Forwarded-For and logs. */
  get remoteAddress(): string {
    if (this.peerAddress === null) {
      const ra = this.socket.remoteAddress ?? '';
      this.peerAddress = ra.startsWith('::ffff:') ? ra.slice(7) : ra;
    }
    return this.peerAddress;
  }

  /** The router port the client connected to (X-Forwarded-Port). */
  get localPort(): number {
    if (this.sockPort < 0) this.sockPort = this.socket.localPort ?? 0;
    return this.sockPort;
  }

  setDeadline(kind: Deadline, inMs: number): void {
    this.deadlineKind = kind;
    this.deadline = Date.now() + inMs;
  }

  setDeadlineAt(kind: Deadline, at: number): void {
    this.deadlineKind = kind;
    this.deadline = at;
  }

  clearDeadline(): void {
    this.deadlineKind = Deadline.None;
  }

  get closed(): boolean {
    return this.phase === ClientPhase.Closed;
  }

  onData(chunk: Buffer): void {
    if (this.phase === ClientPhase.Tunnel) {
      this.exchange?.tunnelFromClient(chunk);
      return;
    }
    if (this.phase === ClientPhase.Closed) {
      this.discarded += chunk.length;
      if (this.discarded > LINGER_DISCARD_BYTES) this.socket.pause();
      return;
    }
    this.process(chunk, 0);
  }

  /** Feeds bytes to whatever the connection is doing now; leftovers go to the queue. */
  private process(buf: Buffer, off: number): void {
    for (;;) {
      if (off >= buf.length || this.phase === ClientPhase.Closed) return;
      if (this.phase === ClientPhase.Head) {
        const limit = this.core.config.limits.request.maxHeadBytes;
        let data = buf;
        let base = off;
        // Bytes of this read past the point where the head must have ended (kept out of the accumulator).
        let beyond: Buffer | null = null;
        if (this.headAcc !== null) {
          const chunk = off === 0 ? buf : buf.subarray(off);
          // One byte over the limit is enough for the parser to refuse the head; more is never
          // copied. (After NEED_MORE the accumulator holds at most `limit` bytes: room ≥ 1.)
          const room = limit + 1 - this.headAcc.used;
          if (chunk.length > room) beyond = chunk.subarray(room);
          this.headAcc.append(beyond === null ? chunk : chunk.subarray(0, room));
          data = this.headAcc.view();
          base = 0;
        }
        const parser = (this.parser ??= new HeadParser(true, this.core.config.limits.request));
        const r = parser.execute(data, base);
        if (r === NEED_MORE) {
          if (this.headAcc === null) this.headAcc = new Accumulator(buf.subarray(off), limit + 1);
          if (this.deadlineKind !== Deadline.HeadRead) this.setDeadline(Deadline.HeadRead, this.core.config.timeouts.clientIdleMs);
          return;
        }
        this.headAcc = null;
        this.parser = null;
        if (r < 0) {
          this.rejectRequest(-r as ParseError, null);
          return;
        }
        const head = parser.head;
        this.startRequest(head);
        if (beyond !== null) {
          // The head ended within the limit and this read went on past it: body or pipelined bytes.
          buf = Buffer.concat([data.subarray(base + r), beyond]);
          off = 0;
        } else {
          buf = data;
          off = base + r;
        }
        continue;
      }
      if (this.phase === ClientPhase.Body && this.exchange !== null) {
        const next = this.exchange.feedBody(buf, off);
        if (next < 0) return; // the exchange failed and dealt with the connection
        if (next === off && this.phase === ClientPhase.Body) {
          this.enqueue(buf, off);
          return;
        }
        off = next;
        continue;
      }
      this.enqueue(buf, off);
      return;
    }
  }

  private startRequest(head: MessageHead): void {
    this.clearDeadline();
    const info = analyzeRequest(head);
    if (typeof info === 'number') {
      this.rejectRequest(info, head);
      return;
    }
    this.requests++;
    this.phase = ClientPhase.Waiting;
    const body = info.bodyKind === BodyKind.None ? null : (this.requestBody ??= new BodyFraming(this.core.config.limits.chunked));
    const ex = new Exchange(this.core, this, head, info, body);
    this.exchange = ex;
    ex.start();
  }

  /** 400/414/417/431/505 for a request that failed validation; nothing reached a dyno. Logs H26. */
  private rejectRequest(code: ParseError, head: MessageHead | null): void {
    const e = parseErrorInfo(code);
    const out = errorResponse(e.status, 'bad-request', false, true, null);
    if (this.socket.writable) this.socket.write(out);
    this.logRefused('H26', e.cause, e.status, head);
    this.closeAfterFlush();
  }

  /**
   * 408 for a request head not finished within clientIdleMs. Logged as H28 "Client Connection
   * Idle" (Heroku: the client sent a partial request, then went idle) with the status the client
   * got, 408 rather than H28's usual 499 (that one is for a stalled body, after routing). H26 would
   * call a slow client a malformed one. Method and path are there if the request line arrived.
   */
  private headTimedOut(): void {
    if (this.socket.writable) this.socket.write(errorResponse(408, 'bad-request', false, true, null));
    const head = this.parser?.head ?? null;
    this.logRefused('H28', null, 408, head !== null && head.method !== '' ? head : null);
    this.parser = null;
    this.headAcc = null;
    this.closeAfterFlush();
  }

  /** The log line for a request the router answered itself before routing it (no host, no dyno). */
  private logRefused(code: HCode, cause: string | null, status: number, head: MessageHead | null): void {
    if (!this.core.logging) return;
    const h = H_CODES[code];
    this.core.log({
      at: h.at,
      code,
      desc: h.desc,
      cause,
      sock: h.sock,
      app: null,
      method: head?.method ?? '',
      path: head?.target ?? '',
      host: '',
      requestId: '',
      fwd: this.remoteAddress,
      dyno: '',
      connectMs: null,
      serviceMs: null,
      status,
      bytes: null,
      protocol: this.core.config.protocol,
    });
  }

  private enqueue(buf: Buffer, off: number): void {
    const rest = off === 0 ? buf : buf.subarray(off);
    this.queue = this.queue === null ? rest : Buffer.concat([this.queue, rest]);
    if (this.queue.length > this.core.config.limits.clientBufferBytes) this.pause(PAUSE_QUEUE_FULL);
  }

  /** Re-feeds queued bytes (after a dyno connected, or a response finished). */
  drainQueue(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      // process() consumes everything in the Head and Body phases; in any other phase it re-queues.
      while (this.queue !== null && (this.phase === ClientPhase.Head || this.phase === ClientPhase.Body)) {
        const q = this.queue;
        this.queue = null;
        this.process(q, 0);
      }
    } finally {
      this.draining = false;
    }
    if (this.queue === null || this.queue.length <= this.core.config.limits.clientBufferBytes) this.unpause(PAUSE_QUEUE_FULL);
  }

  /** Bytes queued behind the current request (e.g. sent after an upgrade request). */
  takeQueue(): Buffer | null {
    const q = this.queue;
    this.queue = null;
    this.unpause(PAUSE_QUEUE_FULL);
    return q;
  }

  pause(reason: number = PAUSE_BACKPRESSURE): void {
    if (this.pauseReasons === 0) this.socket.pause();
    this.pauseReasons |= reason;
  }

  unpause(reason: number = PAUSE_BACKPRESSURE): void {
    if ((this.pauseReasons & reason) === 0) return;
    this.pauseReasons &= ~reason;
    if (this.pauseReasons === 0 && !this.closed) this.socket.resume();
  }

  write(data: Buffer): boolean {
    return this.socket.write(data);
  }

  /** A head built as a string (one byte per char). */
  writeLatin1(head: string): boolean {
    return this.socket.write(head, 'latin1');
  }

  /** Writes between cork() and uncork() leave as one segment where they can. */
  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  // ── intents of the request under way (the Exchange says what happened; the connection decides) ──

  /** The request's head reached a dyno and its body follows: queued body bytes flow now, and at most idleMs apart. */
  bodyStarted(idleUntil: number): void {
    this.phase = ClientPhase.Body;
    this.setDeadlineAt(Deadline.UploadIdle, idleUntil);
    this.drainQueue();
  }

  /** The whole request was read: further bytes are pipelined requests, queued until the response ends. */
  requestComplete(): void {
    if (this.phase === ClientPhase.Body || this.phase === ClientPhase.Waiting) this.phase = ClientPhase.AwaitResponse;
  }

  /** The request ended in a way that leaves the connection unusable (a response cut, a client gone): close it now. */
  exchangeAborted(): void {
    this.exchange = null;
    this.destroy();
  }

  /** Called by the Exchange when it is over. */
  exchangeDone(keepAlive: boolean, now: number = Date.now()): void {
    this.exchange = null;
    if (this.closed) return;
    const max = this.core.config.limits.maxRequestsPerConnection;
    if (!keepAlive || (max > 0 && this.requests >= max)) {
      this.closeAfterFlush();
      return;
    }
    this.phase = ClientPhase.Head;
    this.unpause(PAUSE_BACKPRESSURE);
    this.setDeadlineAt(Deadline.ClientIdle, now + this.core.config.timeouts.clientIdleMs);
    this.drainQueue();
  }

  enterTunnel(): void {
    this.phase = ClientPhase.Tunnel;
  }

  /** Half-close after pending writes; destroy if the peer lingers. */
  closeAfterFlush(): void {
    if (this.closed) return;
    this.phase = ClientPhase.Closed;
    this.queue = null;
    this.socket.end();
    this.setDeadline(Deadline.Linger, 2000);
  }

  destroy(): void {
    this.phase = ClientPhase.Closed;
    this.queue = null;
    this.socket.destroy();
    this.core.clients.delete(this);
  }

  onDrain(): void {
    this.exchange?.onClientDrain();
  }

  onPeerGone(): void {
    if (this.socket.destroyed) this.core.clients.delete(this);
    const ex = this.exchange;
    if (ex !== null) {
      ex.onClientGone();
      return;
    }
    if (this.phase !== ClientPhase.Closed) this.destroy();
  }

  onDeadline(kind: Deadline): void {
    switch (kind) {
      case Deadline.ClientIdle:
      case Deadline.Linger:
        this.destroy();
        return;
      case Deadline.HeadRead:
        this.headTimedOut();
        return;
      default:
        this.exchange?.onDeadline(kind);
    }
  }
}
