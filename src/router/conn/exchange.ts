/**
 * One request/response relay: route (the decisions are dispatch.ts's) → connect (retry/quarantine)
 * → send head + body → read the response head (1xx loop) → stream the body with backpressure →
 * log → keep-alive or close; after a 101 the relay is a Tunnel. Phases change only through to();
 * every ending, success or H-code, goes through end(outcome).
 */
import { randomUUID } from 'node:crypto';
import { BodyFraming } from '../http1/body-framing';
import { analyzeResponse, BodyKind, type RequestInfo, type ResponseInfo } from '../http1/framing';
import { NEED_MORE, type MessageHead } from '../http1/head-parser';
import { ParseError, parseErrorInfo } from '../http1/parse-errors';
import { planClientResponse, type ClientResponsePlan } from '../http1/client-response';
import { buildInterimHead, ClientFraming, clientResponseHeadString, upstreamRequestHeadString } from '../http1/serialize';
import { H_CODES, type HCode } from '../errors';
import { CONTINUE_100, errorResponse, prefersJson } from '../responses';
import { backendDropped, type AppRoute, type Backend, type RouteSnapshot } from '../routing/route-table';
import { Deadline } from '../timers';
import { admit, bootQueueExpired, connectFailureCode, dispatchStep, dynoChosenFor, retryAfterConnectFailure } from './dispatch';
import type { RouterCore } from './context';
import { checkedMove, Phase } from './exchange-phase';
import { Tunnel } from './tunnel';
import { copyOut, type UpstreamConnection } from './upstream';

/** How an exchange ends; end() maps each to what the client gets, the log line and the dyno socket. */
enum Outcome {
  /** The dyno's response went through whole: the dyno socket may be pooled, the client kept. */
  Relayed,
  /** No app for the host: the router's 404. */
  NoApp,
  /** The router answers with the code's page; the client connection stays if the request allows. */
  Refused,
  /** The router answers with the code's page and closes (the request or the dyno's stream broke). */
  RefusedClose,
  /** The client connection is cut: a response was under way. The code, if any, is logged. */
  Cut,
  /** The tunnel after a 101 ended (a side closed, or idle: code H15). */
  TunnelClosed,
  /** The client went away before the end (H27). */
  ClientGone,
}

enum RespPhase {
  Head,
  Body,
  Done,
}

function isIdempotent(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
    case 'PUT':
    case 'DELETE':
      return true;
    default:
      return false;
  }
}

/** Response-side parse errors that are Heroku "HTTP restrictions" (H25, with Heroku's wording) rather than malformed (H17). */
const H25_CAUSES = new Map<ParseError, string>([
  [ParseError.StatusLineTooLong, 'oversized status line'],
  [ParseError.CookieTooLong, 'oversized cookie'],
  [ParseError.ResponseHeaderTooLong, 'oversized header'],
  [ParseError.HeadTooLarge, 'oversized header'],
  [ParseError.InvalidContentLength, 'invalid content length'],
]);

/**
 * What an exchange needs from its client connection (implemented by ClientConnection). Declared
 * here so the exchange does not import the connection that creates it.
 */
export interface ExchangeClient {
  readonly remoteAddress: string;
  readonly localPort: number;
  readonly proto: string | null;
  readonly closed: boolean;
  write(data: Buffer): boolean;
  writeLatin1(head: string): boolean;
  cork(): void;
  uncork(): void;
  pause(): void;
  unpause(): void;
  setDeadline(kind: Deadline, inMs: number): void;
  setDeadlineAt(kind: Deadline, at: number): void;
  clearDeadline(): void;
  drainQueue(): void;
  takeQueue(): Buffer | null;
  bodyStarted(idleUntil: number): void;
  requestComplete(): void;
  enterTunnel(): void;
  exchangeDone(keepAlive: boolean, now?: number): void;
  exchangeAborted(): void;
}

/**
 * The plan of the response being started: filled and read within one synchronous call
 * (startResponse), so one object serves every exchange.
 */
const PLAN: ClientResponsePlan = { framing: ClientFraming.None, contentLength: 0, deChunk: false, keepClient: false, connection: null };

export class Exchange {
  private phase = Phase.Routing;
  private readonly receivedAt = Date.now();
  readonly requestId: string;
  readonly forwardedFor: string;
  private app: AppRoute | null = null;
  private backend: Backend | null = null;
  private upstream: UpstreamConnection | null = null;
  private tried: Set<string> | null = null;
  private attempts = 0;
  private lastConnectError: 'timeout' | 'refused' | null = null;
  private retriedStale = false;
  private connectStart = 0;
  private connectMs: number | null = null;
  private appCounted = false;
  private balancerCounted = false;
  private queuedUntil = 0;

  // request body
  private reqBodyDone: boolean;
  /** Where the request body ends (the client connection's, reset for this request); null without a body. */
  private readonly reqBody: BodyFraming | null;

  // response
  private resp = RespPhase.Head;
  private respAcc: Buffer | null = null;
  private respInfo: ResponseInfo | null = null;
  /** Set after a 101: the relay from then on. */
  private tunnel: Tunnel | null = null;
  private deChunk = false;
  private respHeadSent = false;
  /** Response head not written yet: it goes out together with the first body bytes (one write). */
  private pendingHead: string | null = null;
  private sawResponseByte = false;
  private interim = 0;
  private status: number | null = null;
  private bytesOut = 0;
  private keepClient = false;

  constructor(
    readonly core: RouterCore,
    readonly client: ExchangeClient,
    readonly head: MessageHead,
    readonly info: RequestInfo,
    reqBody: BodyFraming | null,
  ) {
    this.requestId = info.requestId ?? randomUUID();
    this.forwardedFor = info.forwardedFor === null ? client.remoteAddress : `${info.forwardedFor}, ${client.remoteAddress}`;
    this.reqBodyDone = info.bodyKind === BodyKind.None;
    reqBody?.begin(info.bodyKind, info.contentLength);
    this.reqBody = reqBody;
  }

  // ───────────────────────────── routing ─────────────────────────────

  start(): void {
    const app = this.core.table.lookupHost(this.info.routeHost);
    const inFlight = app === undefined ? 0 : (this.core.appInFlight.get(app.name) ?? 0);
    const halt = admit(app, inFlight, this.core.config.limits.backlogPerDyno);
    if (app !== undefined) this.app = app;
    if (halt === 'no-app') return this.failNoApp();
    if (halt !== null) return this.fail(halt);
    this.core.appInFlight.set(app!.name, inFlight + 1);
    this.appCounted = true;
    this.dispatch();
  }

  /** Picks a dyno and connects, or queues the request while none is available. */
  dispatch(): void {
    if (this.phase === Phase.Done) return;
    const app = this.app === null ? undefined : this.core.table.app(this.app.name);
    if (app !== undefined) this.app = app;
    const next = dispatchStep(app, this.tried, this.core.quarantine, Date.now, this.core.balancer);
    switch (next) {
      case 'no-app':
        return this.failNoApp();
      case 'queue':
        return this.enqueue();
      case 'exhausted':
        return this.failConnect();
      case 'H80':
      case 'H10':
      case 'H14':
        return this.fail(next);
      default:
        this.leaveQueue();
        this.connect(next);
    }
  }

  private enqueue(): void {
    if (this.phase !== Phase.Queued) {
      this.to(Phase.Queued);
      this.core.waiting.add(this);
      if (this.queuedUntil === 0) this.queuedUntil = Date.now() + this.core.config.timeouts.bootQueueMs;
      this.client.setDeadlineAt(Deadline.BootQueue, this.queuedUntil);
    }
  }

  private leaveQueue(): void {
    if (this.phase === Phase.Queued) {
      this.core.waiting.delete(this);
      this.client.clearDeadline();
    }
  }

  private connect(backend: Backend): void {
    this.backend = backend;
    this.attempts++;
    this.to(Phase.Connecting);
    if (!this.balancerCounted) {
      this.core.balancer.acquire(backend.address);
      this.balancerCounted = true;
    }
    // A pooled socket might have been closed by the dyno a moment ago; only requests we may
    // safely replay (idempotent, no body) take that risk.
    const canReuse = this.core.config.upstreamKeepAlive && !this.retriedStale && this.replayable();
    const pooled = canReuse ? this.core.pool.acquire(backend.address, this.client) : null;
    const now = Date.now();
    this.connectStart = now;
    if (pooled !== null) {
      this.upstream = pooled;
      pooled.exchange = this;
      this.sendRequest(now);
      return;
    }
    const conn = this.core.pool.connect(backend);
    conn.exchange = this;
    this.upstream = conn;
    this.core.connecting.add(this);
    this.client.setDeadline(Deadline.Connect, this.core.config.timeouts.connectMs);
  }

  /** Connection refused / timed out: quarantine the dyno and try another. */
  private connectFailed(kind: 'timeout' | 'refused'): void {
    this.core.connecting.delete(this);
    const conn = this.upstream;
    this.upstream = null;
    if (conn !== null) conn.destroy();
    const backend = this.backend!;
    this.connectMs = Date.now() - this.connectStart;
    this.lastConnectError = kind;
    this.core.quarantine.set(backend.address, Date.now() + this.core.config.timeouts.quarantineMs);
    (this.tried ??= new Set()).add(backend.address);
    this.releaseBalancer();
    if (!retryAfterConnectFailure(this.attempts, this.core.config.limits.maxConnectAttempts)) return this.failConnect();
    this.to(Phase.Routing);
    this.dispatch();
  }

  /** Safe to send twice: an idempotent method without a body (pooled sockets, replays). */
  private replayable(): boolean {
    return isIdempotent(this.head.method) && this.info.bodyKind === BodyKind.None;
  }

  /**
   * The route table changed: if this request is still connecting to a dyno the table dropped (its
   * host died and its endpoints were removed), the connect is abandoned and the request goes to
   * another dyno at once instead of waiting for the connect timeout. So does a replayable request
   * already sent to that dyno that has not had a byte of answer (on a cut link it would wait for the
   * first-byte timeout): its socket is destroyed, never pooled. It counts as an attempt; the
   * dropped address is not quarantined (it is gone from the table anyway).
   */
  onTableChange(snapshot: RouteSnapshot): void {
    const backend = this.backend;
    if (this.upstream === null || backend === null || this.app === null) return;
    const connecting = this.phase === Phase.Connecting;
    const unanswered = this.phase === Phase.Sent && !this.sawResponseByte && this.core.awaitingReply.has(this);
    if (!connecting && !unanswered) return;
    if (!backendDropped(snapshot.apps.get(this.app.name), backend.address)) return;
    this.core.connecting.delete(this);
    this.core.awaitingReply.delete(this);
    const conn = this.upstream;
    this.upstream = null;
    conn.destroy();
    if (connecting) this.connectMs = Date.now() - this.connectStart;
    else this.client.clearDeadline(); // the first-byte wait on the dropped dyno
    (this.tried ??= new Set()).add(backend.address);
    this.releaseBalancer();
    this.logRetry(
      backend,
      connecting
        ? 'backend removed from the route table while connecting; retrying on another dyno'
        : 'backend removed from the route table before it answered; retrying on another dyno',
    );
    if (!retryAfterConnectFailure(this.attempts, this.core.config.limits.maxConnectAttempts)) return this.failConnect();
    this.to(Phase.Routing);
    this.dispatch();
  }

  private failConnect(): void {
    this.fail(connectFailureCode(this.lastConnectError));
  }

  // ───────────────────────────── request ─────────────────────────────

  onUpstreamConnected(): void {
    if (this.phase !== Phase.Connecting || this.upstream === null) return;
    this.sendRequest(Date.now());
  }

  private sendRequest(now: number): void {
    this.core.connecting.delete(this);
    const upstream = this.upstream!;
    this.connectMs = now - this.connectStart;
    this.client.clearDeadline();
    // The router answers `Expect: 100-continue` itself (Heroku's default) once a dyno is connected.
    if (this.info.expectContinue) this.client.write(CONTINUE_100);
    const head = upstreamRequestHeadString(this.head, this.info, {
      forwardedFor: this.forwardedFor,
      proto: this.client.proto,
      port: this.client.localPort,
      requestStartMs: this.receivedAt,
      requestId: this.requestId,
      via: this.core.config.via,
      connectMs: this.connectMs,
      totalRouteMs: this.connectStart - this.receivedAt,
      keepAlive: this.core.config.upstreamKeepAlive,
    });
    this.to(Phase.Sent);
    const sock = upstream.socket;
    if (this.reqBodyDone) {
      // Head only: one write, no cork needed.
      sock.write(head, 'latin1');
      this.requestSent(now);
      if (isIdempotent(this.head.method)) this.core.awaitingReply.add(this);
      return;
    }
    sock.cork();
    sock.write(head, 'latin1');
    this.client.bodyStarted(now + this.core.config.timeouts.idleMs);
    sock.uncork();
  }

  /** Request body bytes from the client; returns the offset after what it consumed, or -1 if it failed. */
  feedBody(buf: Buffer, off: number): number {
    const up = this.upstream;
    if (up === null || this.phase !== Phase.Sent || this.reqBodyDone) return off;
    const body = this.reqBody!; // a request without a body is done from the start
    const next = body.take(buf, off, null);
    if (next < 0) {
      this.failRequestBody(-next as ParseError);
      return -1;
    }
    if (next > off && !up.socket.write(off === 0 && next === buf.length ? buf : buf.subarray(off, next))) this.client.pause();
    if (body.done) this.requestSent();
    if (!this.reqBodyDone && this.resp === RespPhase.Head) this.client.setDeadline(Deadline.UploadIdle, this.core.config.timeouts.idleMs);
    return next;
  }

  private requestSent(now: number = Date.now()): void {
    this.reqBodyDone = true;
    this.client.requestComplete();
    // Heroku's 30 s starts once the whole request has been sent.
    if (this.resp === RespPhase.Head && !this.sawResponseByte) this.client.setDeadlineAt(Deadline.FirstByte, now + this.core.config.timeouts.firstByteMs);
  }

  private failRequestBody(code: ParseError): void {
    const info = parseErrorInfo(code);
    this.destroyUpstream();
    if (this.respHeadSent) return this.end(Outcome.Cut);
    this.reqBodyDone = true; // nothing more will be read: the connection closes
    this.status = info.status; // H26's status depends on the cause (end() keeps a status already set)
    this.end(Outcome.RefusedClose, 'H26', info.cause);
  }

  onUpstreamDrain(): void {
    this.client.unpause();
  }

  onClientDrain(): void {
    const up = this.upstream;
    if (up !== null && up.socket.isPaused()) up.socket.resume();
  }

  // ───────────────────────────── response ─────────────────────────────

  /** Bytes from the dyno. `chunk` is only valid during this call (shared read buffer): copy what is kept. */
  onUpstreamData(chunk: Buffer): void {
    if (this.phase === Phase.Tunnel) {
      this.bytesOut += chunk.length; // bytes= on the line that ends the tunnel
      this.tunnel!.fromUpstream(chunk);
      return;
    }
    if (this.phase !== Phase.Sent) {
      // Bytes before the request was written: the dyno speaks out of turn; whatever it says, the
      // socket is never pooled (nothing is relayed, the exchange ends as it would have).
      if (this.upstream !== null) this.upstream.broken = true;
      return;
    }
    if (!this.sawResponseByte) {
      this.sawResponseByte = true;
      this.core.awaitingReply.delete(this);
    }
    const client = this.client;
    client.cork();
    try {
      this.consumeResponse(chunk, 0);
    } finally {
      client.uncork();
    }
    this.flushHead();
    // A response body still under way: the dyno has idleMs to send more (one clock read per chunk).
    if (this.resp === RespPhase.Body && this.phase === Phase.Sent) this.client.setDeadline(Deadline.ResponseIdle, this.core.config.timeouts.idleMs);
  }

  private consumeResponse(buf: Buffer, off: number): void {
    const up = this.upstream!;
    while (off < buf.length && this.phase === Phase.Sent) {
      if (this.resp === RespPhase.Head) {
        let data = buf;
        let base = off;
        if (this.respAcc !== null) {
          data = Buffer.concat([this.respAcc, off === 0 ? buf : buf.subarray(off)]);
          base = 0;
          this.respAcc = null;
        }
        const r = up.parser.execute(data, base);
        if (r === NEED_MORE) {
          this.respAcc = copyOut(data, base, data.length); // `data` may be the shared read buffer
          this.client.setDeadline(Deadline.ResponseIdle, this.core.config.timeouts.idleMs);
          return;
        }
        if (r < 0) return this.failResponse(-r as ParseError);
        const head = up.parser.head;
        up.parser.reset();
        const info = analyzeResponse(head, this.head.method, this.info.upgrade !== null);
        if (typeof info === 'number') return this.failResponse(info);
        buf = data;
        off = base + r;
        if (head.status < 200 && head.status !== 101) {
          if (++this.interim > this.core.config.limits.maxInterimResponses) return this.failResponse(ParseError.InvalidStatusLine);
          // 1xx go to HTTP/1.1 clients only (RFC 9110 §15.2).
          if (this.head.versionMinor === 1) this.client.write(buildInterimHead(head, this.core.config.via));
          continue;
        }
        // A final response without a body ends here: any byte after it in this read belongs to no
        // request (a late body, or junk); the socket is not reused (end() sees `broken`).
        if (info.bodyKind === BodyKind.None && off < buf.length) up.broken = true;
        this.startResponse(head, info);
        if ((this.phase as Phase) === Phase.Tunnel) {
          if (off < buf.length) {
            this.bytesOut += buf.length - off;
            this.tunnel!.fromUpstream(buf.subarray(off)); // copied there
          }
          return;
        }
        continue;
      }
      if (this.resp === RespPhase.Body) {
        off = this.relayBody(buf, off);
        if (off < 0) return;
        continue;
      }
      // Response done but bytes remain: the dyno broke framing; never reuse this connection.
      up.broken = true;
      return;
    }
  }

  private startResponse(head: MessageHead, info: ResponseInfo): void {
    this.respInfo = info;
    this.status = head.status;
    const plan = PLAN;
    planClientResponse(plan, head.status, info, this.head.versionMinor, this.info.keepAlive, this.reqBodyDone);
    if (info.bodyKind !== BodyKind.None && info.bodyKind !== BodyKind.Tunnel) this.upstream!.body.begin(info.bodyKind, info.contentLength);
    this.deChunk = plan.deChunk;
    this.keepClient = plan.keepClient;
    const out = clientResponseHeadString(head, info, {
      framing: plan.framing,
      contentLength: plan.contentLength,
      connection: plan.connection,
      via: this.core.config.via,
    });
    this.bytesOut += out.length; // latin1: one byte per char
    this.respHeadSent = true;
    if (info.bodyKind === BodyKind.Tunnel || info.bodyKind === BodyKind.None || this.deChunk) this.client.writeLatin1(out);
    else this.pendingHead = out; // written with the first body bytes, or at the end of this chunk (flushHead)
    if (info.bodyKind === BodyKind.Tunnel) return this.startTunnel();
    if (info.bodyKind === BodyKind.None) {
      this.resp = RespPhase.Done;
      return this.end(Outcome.Relayed);
    }
    // The ResponseIdle deadline is armed once per chunk, in onUpstreamData, if the body goes on.
    this.resp = RespPhase.Body;
  }

  /** Writes a response head still waiting for body bytes. */
  private flushHead(): void {
    const h = this.pendingHead;
    if (h !== null) {
      this.pendingHead = null;
      this.client.writeLatin1(h);
    }
  }

  /**
   * Writes `buf[start..end)` (upstream bytes: copied, since they may sit in the shared read
   * buffer) to the client, preceded by the pending response head if any, as one Buffer.
   */
  private relayToClient(buf: Buffer, start: number, end: number): boolean {
    const h = this.pendingHead;
    if (h === null) return this.client.write(copyOut(buf, start, end));
    this.pendingHead = null;
    const out = Buffer.allocUnsafe(h.length + end - start);
    out.write(h, 0, 'latin1');
    buf.copy(out, h.length, start, end);
    return this.client.write(out);
  }

  private readonly deChunkSink = (b: Buffer, s: number, e: number): void => {
    this.bytesOut += e - s;
    if (!this.client.write(copyOut(b, s, e))) this.upstream?.socket.pause();
  };

  /** Streams response body bytes; returns the offset after them, or -1 when the exchange ended badly. */
  private relayBody(buf: Buffer, off: number): number {
    const up = this.upstream!;
    const body = up.body;
    const next = body.take(buf, off, this.deChunk ? this.deChunkSink : null);
    if (next < 0) {
      this.failBody('bad chunk');
      return -1;
    }
    if (!this.deChunk && next > off) {
      this.bytesOut += next - off;
      if (!this.relayToClient(buf, off, next)) up.socket.pause();
    }
    if (body.done) this.resp = RespPhase.Done;
    if (this.resp === RespPhase.Done) {
      if (next < buf.length) this.upstream!.broken = true;
      this.end(Outcome.Relayed);
      return buf.length;
    }
    return next;
  }

  /**
   * The dyno's response body broke its framing. H17 "Poorly formatted HTTP response" is Heroku's
   * code for a dyno that answered but not in valid HTTP (H13 is a close without any answer, H18 an
   * answer cut by the dyno closing); it is what a malformed response head gets too (failResponse).
   * If the response head still waits in `pendingHead` (it goes out with the first body bytes),
   * the client has had nothing: it is dropped and the client gets H17's 503 page, as for a bad
   * head. Otherwise the head is out and the client connection is cut, the log saying H17.
   */
  private failBody(cause: string): void {
    this.destroyUpstream();
    if (this.pendingHead !== null) {
      this.pendingHead = null;
      this.respHeadSent = false;
      this.status = null;
      this.bytesOut = 0;
      return this.end(Outcome.RefusedClose, 'H17', cause);
    }
    this.end(Outcome.Cut, 'H17', cause);
  }

  private failResponse(code: ParseError): void {
    const h25Cause = H25_CAUSES.get(code);
    const h25 = h25Cause !== undefined;
    const cause = h25Cause ?? parseErrorInfo(code).cause;
    this.destroyUpstream();
    if (this.respHeadSent) return this.end(Outcome.Cut, h25 ? 'H25' : 'H17', cause);
    this.end(Outcome.RefusedClose, h25 ? 'H25' : 'H17', h25 ? `HTTP restriction: ${cause}` : null);
  }

  /** The dyno's socket ended or errored while this exchange owned it. */
  onUpstreamEof(conn: UpstreamConnection): void {
    if (conn !== this.upstream) return;
    conn.exchange = null;
    this.core.awaitingReply.delete(this);
    switch (this.phase) {
      case Phase.Connecting:
        this.connectFailed(conn.errorCode === 'ETIMEDOUT' ? 'timeout' : 'refused');
        return;
      case Phase.Tunnel:
        this.end(Outcome.TunnelClosed);
        return;
      case Phase.Sent:
        break;
      default:
        return;
    }
    this.upstream = null;
    conn.destroy();
    if (this.resp === RespPhase.Body && this.respInfo!.bodyKind === BodyKind.UntilClose) {
      this.resp = RespPhase.Done;
      this.end(Outcome.Relayed);
      return;
    }
    if (this.respHeadSent) return this.end(Outcome.Cut, 'H18');
    if (!this.sawResponseByte) {
      // A pooled socket that dies before answering was probably closed by the dyno while idle:
      // replay once on a fresh connection (only bodiless idempotent requests reuse sockets).
      if (conn.reused && !this.retriedStale) {
        this.retriedStale = true;
        // Same dyno, same request: it stays counted in flight (releasing and re-acquiring would
        // tell a draining dyno's waitIdle it is idle while the retry is about to reach it).
        this.to(Phase.Routing);
        this.connect(this.backend!);
        return;
      }
      return this.end(Outcome.RefusedClose, 'H13');
    }
    this.end(Outcome.RefusedClose, 'H18');
  }

  // ───────────────────────────── tunnel ─────────────────────────────

  private startTunnel(): void {
    this.to(Phase.Tunnel);
    this.client.enterTunnel();
    this.log(null, null);
    this.tunnel = new Tunnel(this.client, this.upstream!, this.core.config.timeouts.idleMs);
    // Bytes the client sent after its upgrade request belong to the new protocol.
    const early = this.client.takeQueue();
    if (early !== null) this.tunnel.fromClient(early);
  }

  /** Client bytes after a 101 (the client connection is in its tunnel phase). */
  tunnelFromClient(chunk: Buffer): void {
    if (this.tunnel !== null && this.upstream !== null) this.tunnel.fromClient(chunk);
  }

  // ───────────────────────────── client side events ─────────────────────────────

  onClientGone(): void {
    this.end(Outcome.ClientGone, 'H27');
  }

  onDeadline(kind: Deadline): void {
    switch (kind) {
      case Deadline.BootQueue: {
        this.leaveQueue();
        return this.fail(bootQueueExpired(this.app));
      }
      case Deadline.Connect:
        if (this.phase === Phase.Connecting) this.connectFailed('timeout');
        return;
      case Deadline.FirstByte:
        // The dyno connection is closed so the app can notice (unlike Heroku, which leaves it).
        return this.end(Outcome.Refused, 'H12');
      case Deadline.UploadIdle:
        return this.end(Outcome.Cut, 'H28');
      case Deadline.ResponseIdle:
        return this.end(Outcome.RefusedClose, 'H15');
      case Deadline.TunnelIdle:
        // Nothing either way for idleMs. H15 "Idle connection" is Heroku's code for its idle
        // timeout on an open connection; H28 is a client that sent part of a request and stalled,
        // which a tunnel's silence is not (either side may owe the next message). Status stays 101.
        return this.end(Outcome.TunnelClosed, 'H15');
      default:
        // the client connection's own deadlines (idle, head read, linger) never reach an exchange
        return;
    }
  }

  // ───────────────────────────── endings ─────────────────────────────

  /**
   * The one way an exchange finishes. `code` is the H-code its log line carries (null: none, or the
   * plain access line of a relayed response / 404). A router answer asked for once the client has
   * a response head becomes a cut: the status already sent is the one logged.
   */
  private end(outcome: Outcome, code: HCode | null = null, cause: string | null = null): void {
    const phase = this.phase;
    if (phase === Phase.Done) return;
    if (outcome === Outcome.ClientGone && phase === Phase.Tunnel) {
      outcome = Outcome.TunnelClosed; // a closed side ends a tunnel quietly
      code = null;
    } else if ((outcome === Outcome.Refused || outcome === Outcome.RefusedClose) && this.respHeadSent) outcome = Outcome.Cut;
    this.leaveQueue();
    // The dyno socket: pooled after a clean response, half-closed after a tunnel, else destroyed.
    if (outcome === Outcome.Relayed) {
      this.flushHead();
      this.releaseUpstream();
    } else if (outcome === Outcome.TunnelClosed) {
      this.tunnel!.close();
      this.upstream = null;
    }
    else {
      if (outcome === Outcome.Cut) this.flushHead();
      this.destroyUpstream();
    }
    // What the client gets.
    let keepClient = false;
    if (outcome === Outcome.Relayed) keepClient = this.keepClient;
    else if (outcome === Outcome.NoApp || outcome === Outcome.Refused || outcome === Outcome.RefusedClose) {
      const close = outcome === Outcome.RefusedClose || !this.reqBodyDone || !this.info.keepAlive;
      const json = prefersJson(this.info.accept);
      if (outcome === Outcome.NoApp) {
        this.status = 404;
        this.client.write(errorResponse(404, 'no-such-app', json, close, null));
      } else {
        const h = H_CODES[code!];
        const status = (this.status ??= h.status);
        this.client.write(errorResponse(status, h.page, json, close, code));
      }
      keepClient = !close;
    }
    this.to(Phase.Done);
    const now = Date.now();
    if (code !== null) this.logError(code, cause, now);
    else if (outcome === Outcome.Relayed || outcome === Outcome.NoApp) this.log(null, null, now);
    this.releaseCounters();
    if (outcome === Outcome.Cut || outcome === Outcome.ClientGone) this.client.exchangeAborted();
    else this.client.exchangeDone(keepClient, now);
  }

  /** A router-generated error response (nothing final sent yet). */
  private fail(code: HCode): void {
    this.end(Outcome.Refused, code);
  }

  private failNoApp(): void {
    this.end(Outcome.NoApp);
  }

  /** After a complete response: back to the pool if the dyno and the request allow, else closed. */
  private releaseUpstream(): void {
    const up = this.upstream;
    this.upstream = null;
    if (up === null) return;
    const info = this.respInfo;
    if (info !== null && !info.upstreamClose && this.reqBodyDone && !up.broken && !up.dead) {
      this.core.pool.release(up, info.bodyMayFollow ? this.client : null);
    } else up.destroy();
  }

  private to(next: Phase): void {
    this.phase = checkedMove(this.phase, next);
  }

  private destroyUpstream(): void {
    const up = this.upstream;
    this.upstream = null;
    if (up !== null) up.destroy();
  }

  private releaseBalancer(): void {
    if (this.balancerCounted && this.backend !== null) {
      this.core.balancer.release(this.backend.address);
      this.balancerCounted = false;
    }
  }

  private releaseCounters(): void {
    this.core.connecting.delete(this);
    this.core.awaitingReply.delete(this);
    this.releaseBalancer();
    this.core.waiting.delete(this);
    if (this.appCounted && this.app !== null) {
      this.appCounted = false;
      const n = (this.core.appInFlight.get(this.app.name) ?? 1) - 1;
      if (n <= 0) this.core.appInFlight.delete(this.app.name);
      else this.core.appInFlight.set(this.app.name, n);
    }
  }

  // ───────────────────────────── logging ─────────────────────────────

  /** Logs an H-code; the status is the one already sent (mid-response) or the code's own. */
  private logError(code: HCode, cause: string | null, now: number): void {
    if (code === 'H27' || code === 'H28') this.status = 499;
    else if (this.status === null) this.status = H_CODES[code].status;
    this.log(code, cause, now);
  }

  /** A warning line (no H-code, no status) for a connect or an unanswered request abandoned and retried elsewhere. */
  private logRetry(backend: Backend, cause: string): void {
    if (!this.core.logging) return;
    this.core.log({
      at: 'warning',
      code: null,
      desc: null,
      cause,
      sock: 'backend',
      app: this.app?.name ?? null,
      method: this.head.method,
      path: this.head.target,
      host: this.info.host,
      requestId: this.requestId,
      fwd: this.forwardedFor,
      dyno: backend.dyno,
      connectMs: this.connectMs,
      serviceMs: null,
      status: null,
      bytes: null,
      protocol: this.core.config.protocol,
    });
  }

  private log(code: HCode | null, cause: string | null, now: number = Date.now()): void {
    if (!this.core.logging) return;
    const h = code === null ? null : H_CODES[code];
    const dynoChosen = this.backend !== null && dynoChosenFor(code);
    this.core.log({
      at: h === null ? 'info' : h.at,
      code,
      desc: h === null ? null : h.desc,
      cause,
      sock: h === null ? null : h.sock,
      app: this.app?.name ?? null,
      method: this.head.method,
      path: this.head.target,
      host: this.info.host,
      requestId: this.requestId,
      fwd: this.forwardedFor,
      dyno: dynoChosen ? this.backend!.dyno : '',
      connectMs: dynoChosen ? this.connectMs : null,
      serviceMs: dynoChosen && this.connectMs !== null ? now - this.connectStart - this.connectMs : null,
      status: this.status,
      bytes: dynoChosen ? this.bytesOut : null,
      protocol: this.core.config.protocol,
    });
  }
}
