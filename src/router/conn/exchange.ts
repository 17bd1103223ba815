/**
 * One request/response exchange, as a chain of units that each say how they ended (vegur's
 * middleware chain; HAProxy's h1.c / mux_h1.c split):
 *   dispatch.ts (pure routing decisions) → connect (retry, quarantine) → RequestBody (the body to
 *   the dyno) → ResponseRelay (the dyno's response to the client) → Tunnel (after a 101).
 * The exchange's state is a discriminated union (a phase and what only that phase has: the dyno
 * connection while connecting or sent, the relay, the tunnel); it changes only through to(), which
 * checks the move (exchange-phase.ts). Every ending, success or H-code, goes through end(outcome),
 * the one place that decides the client's answer, the dyno socket's fate and the log line.
 */
import { randomUUID } from 'node:crypto';
import type { BodyFraming } from '../http1/body-framing';
import { BodyKind, type RequestInfo, type ResponseInfo } from '../http1/framing';
import type { MessageHead } from '../http1/head-parser';
import { type ParseError, parseErrorInfo } from '../http1/parse-errors';
import { upstreamRequestHeadString } from '../http1/serialize';
import { H_CODES, type HCode } from '../errors';
import { CONTINUE_100, errorResponse, prefersJson } from '../responses';
import { backendDropped, type AppRoute, type Backend, type RouteSnapshot } from '../routing/route-table';
import { Deadline } from '../timers';
import { admit, bootQueueExpired, connectFailureCode, dispatchStep, dynoChosenFor, retryAfterConnectFailure } from './dispatch';
import type { RouterCore } from './context';
import { checkedMove, Phase } from './exchange-phase';
import { RequestBody } from './request-body';
import { RelayPhase, RelayStep, ResponseRelay } from './response-relay';
import { Tunnel } from './tunnel';
import type { UpstreamConnection } from './upstream';

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

/** The exchange's state: each phase carries what exists only in it. */
type State =
  | { readonly phase: Phase.Routing }
  | { readonly phase: Phase.Queued }
  | { readonly phase: Phase.Connecting; readonly upstream: UpstreamConnection }
  | { readonly phase: Phase.Sent; readonly upstream: UpstreamConnection; readonly response: ResponseRelay }
  | { readonly phase: Phase.Tunnel; readonly tunnel: Tunnel }
  | { readonly phase: Phase.Done };

const ROUTING: State = { phase: Phase.Routing };
const QUEUED: State = { phase: Phase.Queued };
const DONE: State = { phase: Phase.Done };

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

export class Exchange {
  private state: State = ROUTING;
  private readonly receivedAt = Date.now();
  readonly requestId: string;
  readonly forwardedFor: string;
  private app: AppRoute | null = null;
  /** The dyno chosen last (kept after the connection is gone, for the log line). */
  private backend: Backend | null = null;
  private tried: Set<string> | null = null;
  private attempts = 0;
  private lastConnectError: 'timeout' | 'refused' | null = null;
  private retriedStale = false;
  private connectStart = 0;
  private connectMs: number | null = null;
  private appCounted = false;
  private balancerCounted = false;
  /** Indexes in the core's connecting / awaitingReply lists (-1: not a member); the lists own them. */
  connectingSlot = -1;
  awaitingSlot = -1;
  private queuedUntil = 0;
  /** The request body on its way to the dyno; null for a bodiless request. */
  private readonly body: RequestBody | null;
  private reqBodyDone: boolean;
  /** For the log line: the status the client got (the dyno's, or the router's page's). */
  private status: number | null = null;
  private bytesOut = 0;

  constructor(
    readonly core: RouterCore,
    readonly client: ExchangeClient,
    readonly head: MessageHead,
    readonly info: RequestInfo,
    bodyFraming: BodyFraming | null,
  ) {
    this.requestId = info.requestId ?? randomUUID();
    this.forwardedFor = info.forwardedFor === null ? client.remoteAddress : `${info.forwardedFor}, ${client.remoteAddress}`;
    this.reqBodyDone = info.bodyKind === BodyKind.None;
    this.body = this.reqBodyDone || bodyFraming === null ? null : new RequestBody(bodyFraming, info.bodyKind, info.contentLength);
  }

  private to(next: State): void {
    checkedMove(this.state.phase, next.phase);
    this.state = next;
  }

  // ───────────────────────────── routing ─────────────────────────────

  start(): void {
    const app = this.core.table.lookupHost(this.info.routeHost);
    const inFlight = app === undefined ? 0 : (this.core.appInFlight.get(app.name) ?? 0);
    const halt = admit(app, inFlight, this.core.config.limits.backlogPerDyno);
    if (app !== undefined) this.app = app;
    if (halt === 'no-app') return this.end(Outcome.NoApp);
    if (halt !== null) return this.end(Outcome.Refused, halt);
    this.core.appInFlight.set(app!.name, inFlight + 1);
    this.appCounted = true;
    this.route(app);
  }

  /** Picks a dyno and connects, or queues the request while none is available (the table may have changed since). */
  dispatch(): void {
    if (this.state.phase === Phase.Done) return;
    const app = this.app === null ? undefined : this.core.table.app(this.app.name);
    if (app !== undefined) this.app = app;
    this.route(app);
  }

  /** One dispatch decision for `app` as the table has it now. */
  private route(app: AppRoute | undefined): void {
    const next = dispatchStep(app, this.tried, this.core.quarantine, Date.now, this.core.balancer);
    switch (next) {
      case 'no-app':
        return this.end(Outcome.NoApp);
      case 'queue':
        return this.enqueue();
      case 'exhausted':
        return this.failConnect();
      case 'H80':
      case 'H10':
      case 'H14':
        return this.end(Outcome.Refused, next);
      default:
        this.leaveQueue();
        this.connect(next);
    }
  }

  private enqueue(): void {
    if (this.state.phase !== Phase.Queued) {
      this.to(QUEUED);
      this.core.waiting.add(this);
      if (this.queuedUntil === 0) this.queuedUntil = Date.now() + this.core.config.timeouts.bootQueueMs;
      this.client.setDeadlineAt(Deadline.BootQueue, this.queuedUntil);
    }
  }

  private leaveQueue(): void {
    if (this.state.phase === Phase.Queued) {
      this.core.waiting.delete(this);
      this.client.clearDeadline();
    }
  }

  private connect(backend: Backend): void {
    this.backend = backend;
    this.attempts++;
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
    const upstream = pooled ?? this.core.pool.connect(backend);
    upstream.exchange = this;
    this.to({ phase: Phase.Connecting, upstream });
    if (pooled !== null) return this.sendRequest(pooled, now);
    this.joinConnecting();
    this.client.setDeadline(Deadline.Connect, this.core.config.timeouts.connectMs);
  }

  /** Connection refused / timed out: quarantine the dyno and try another. */
  private connectFailed(kind: 'timeout' | 'refused'): void {
    const st = this.state;
    if (st.phase !== Phase.Connecting) return;
    this.leaveConnecting();
    st.upstream.destroy();
    const backend = this.backend!;
    this.connectMs = Date.now() - this.connectStart;
    this.lastConnectError = kind;
    this.core.quarantine.set(backend.address, Date.now() + this.core.config.timeouts.quarantineMs);
    (this.tried ??= new Set()).add(backend.address);
    this.releaseBalancer();
    if (!retryAfterConnectFailure(this.attempts, this.core.config.limits.maxConnectAttempts)) return this.failConnect();
    this.to(ROUTING);
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
    const st = this.state;
    const backend = this.backend;
    if (backend === null || this.app === null) return;
    let upstream: UpstreamConnection;
    if (st.phase === Phase.Connecting) upstream = st.upstream;
    else if (st.phase === Phase.Sent && !st.response.sawByte && this.awaitingSlot >= 0) upstream = st.upstream;
    else return;
    if (!backendDropped(snapshot.apps.get(this.app.name), backend.address)) return;
    const connecting = st.phase === Phase.Connecting;
    this.leaveConnecting();
    this.leaveAwaitingReply();
    upstream.destroy();
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
    this.to(ROUTING);
    this.dispatch();
  }

  private failConnect(): void {
    this.end(Outcome.Refused, connectFailureCode(this.lastConnectError));
  }

  // ───────────────────────────── request ─────────────────────────────

  onUpstreamConnected(): void {
    const st = this.state;
    if (st.phase === Phase.Connecting) this.sendRequest(st.upstream, Date.now());
  }

  private sendRequest(upstream: UpstreamConnection, now: number): void {
    this.leaveConnecting();
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
    this.to({ phase: Phase.Sent, upstream, response: new ResponseRelay(this.client, upstream, this, this.core.config) });
    const sock = upstream.socket;
    if (this.reqBodyDone) {
      // Head only: one write, no cork needed.
      sock.write(head, 'latin1');
      this.requestSent(now);
      if (isIdempotent(this.head.method)) this.joinAwaitingReply();
      return;
    }
    sock.cork();
    sock.write(head, 'latin1');
    this.client.bodyStarted(now + this.core.config.timeouts.idleMs);
    sock.uncork();
  }

  /** Request body bytes from the client; returns the offset after what it consumed, or -1 if it failed. */
  feedBody(buf: Buffer, off: number): number {
    const st = this.state;
    const body = this.body;
    if (st.phase !== Phase.Sent || body === null || this.reqBodyDone) return off;
    const next = body.forward(buf, off, st.upstream.socket);
    if (next < 0) {
      this.failRequestBody(-next as ParseError, st.response);
      return -1;
    }
    if (body.blocked) {
      body.blocked = false;
      this.client.pause();
    }
    if (body.done) this.requestSent();
    if (!this.reqBodyDone && st.response.phase === RelayPhase.Head) this.client.setDeadline(Deadline.UploadIdle, this.core.config.timeouts.idleMs);
    return next;
  }

  private requestSent(now: number = Date.now()): void {
    this.reqBodyDone = true;
    this.client.requestComplete();
    // Heroku's 30 s starts once the whole request has been sent.
    const st = this.state;
    if (st.phase === Phase.Sent && st.response.phase === RelayPhase.Head && !st.response.sawByte) {
      this.client.setDeadlineAt(Deadline.FirstByte, now + this.core.config.timeouts.firstByteMs);
    }
  }

  /** The request body broke its framing (H26; the status depends on the cause). */
  private failRequestBody(code: ParseError, relay: ResponseRelay): void {
    if (relay.headSent) return this.end(Outcome.Cut);
    const info = parseErrorInfo(code);
    this.reqBodyDone = true; // nothing more will be read: the connection closes
    this.status = info.status;
    this.end(Outcome.RefusedClose, 'H26', info.cause);
  }

  onUpstreamDrain(): void {
    this.client.unpause();
  }

  onClientDrain(): void {
    const st = this.state;
    if (st.phase === Phase.Sent) {
      if (st.upstream.socket.isPaused()) st.upstream.socket.resume();
    } else if (st.phase === Phase.Tunnel) st.tunnel.onClientDrain();
  }

  // ───────────────────────────── response ─────────────────────────────

  /** Bytes from the dyno. `chunk` is only valid during this call (shared read buffer): copy what is kept. */
  onUpstreamData(chunk: Buffer): void {
    const st = this.state;
    if (st.phase === Phase.Tunnel) return st.tunnel.fromUpstream(chunk);
    if (st.phase !== Phase.Sent) {
      // Bytes before the request was written: the dyno speaks out of turn; whatever it says, the
      // socket is never pooled (nothing is relayed, the exchange ends as it would have).
      if (st.phase === Phase.Connecting) st.upstream.broken = true;
      return;
    }
    const relay = st.response;
    if (!relay.sawByte) this.leaveAwaitingReply();
    switch (relay.consume(chunk, 0, this.reqBodyDone)) {
      case RelayStep.More:
        // A head or body under way: the dyno has idleMs to send more (one clock read per read).
        if (relay.phase === RelayPhase.Body || relay.midHead) this.client.setDeadline(Deadline.ResponseIdle, this.core.config.timeouts.idleMs);
        return;
      case RelayStep.Complete:
        return this.end(Outcome.Relayed);
      case RelayStep.Upgrade:
        return this.startTunnel(st.upstream, relay, chunk);
      case RelayStep.Failed: {
        const f = relay.failure!;
        return this.end(f.clean ? Outcome.RefusedClose : Outcome.Cut, f.code, f.cause);
      }
    }
  }

  /** The dyno's socket ended or errored while this exchange owned it. */
  onUpstreamEof(conn: UpstreamConnection): void {
    const st = this.state;
    if (st.phase === Phase.Tunnel) {
      if (conn === st.tunnel.upstream) this.end(Outcome.TunnelClosed);
      return;
    }
    if ((st.phase !== Phase.Connecting && st.phase !== Phase.Sent) || conn !== st.upstream) return;
    conn.exchange = null;
    this.leaveAwaitingReply();
    if (st.phase === Phase.Connecting) return this.connectFailed(conn.errorCode === 'ETIMEDOUT' ? 'timeout' : 'refused');
    const relay = st.response;
    if (relay.endsAtClose()) return this.end(Outcome.Relayed);
    if (relay.headSent) return this.end(Outcome.Cut, 'H18');
    if (relay.sawByte) return this.end(Outcome.RefusedClose, 'H18');
    // A pooled socket that dies before answering was probably closed by the dyno while idle:
    // replay once on a fresh connection (only bodiless idempotent requests reuse sockets). Same
    // dyno, same request: it stays counted in flight (releasing and re-acquiring would tell a
    // draining dyno's waitIdle it is idle while the retry is about to reach it).
    if (conn.reused && !this.retriedStale) {
      this.retriedStale = true;
      conn.destroy();
      this.to(ROUTING);
      return this.connect(this.backend!);
    }
    this.end(Outcome.RefusedClose, 'H13');
  }

  // ───────────────────────────── tunnel ─────────────────────────────

  /** A 101 went through: `chunk[relay.tunnelRest..]` are the dyno's first bytes of the new protocol. */
  private startTunnel(upstream: UpstreamConnection, relay: ResponseRelay, chunk: Buffer): void {
    this.status = relay.status;
    this.bytesOut = relay.bytesOut;
    this.client.enterTunnel();
    this.log(null, null);
    const tunnel = new Tunnel(this.client, upstream, this.core.config.timeouts.idleMs, relay.bytesOut);
    this.to({ phase: Phase.Tunnel, tunnel });
    // Bytes the client sent after its upgrade request belong to the new protocol.
    const early = this.client.takeQueue();
    if (early !== null) tunnel.fromClient(early);
    if (relay.tunnelRest < chunk.length) tunnel.fromUpstream(chunk.subarray(relay.tunnelRest)); // copied there
  }

  /** Client bytes after a 101 (the client connection is in its tunnel phase). */
  tunnelFromClient(chunk: Buffer): void {
    const st = this.state;
    if (st.phase === Phase.Tunnel) st.tunnel.fromClient(chunk);
  }

  // ───────────────────────────── client side events ─────────────────────────────

  onClientGone(): void {
    this.end(Outcome.ClientGone, 'H27');
  }

  onDeadline(kind: Deadline): void {
    switch (kind) {
      case Deadline.BootQueue: {
        this.leaveQueue();
        return this.end(Outcome.Refused, bootQueueExpired(this.app));
      }
      case Deadline.Connect:
        return this.connectFailed('timeout');
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
    const st = this.state;
    if (st.phase === Phase.Done) return;
    const relay = st.phase === Phase.Sent ? st.response : null;
    if (outcome === Outcome.ClientGone && st.phase === Phase.Tunnel) {
      outcome = Outcome.TunnelClosed; // a closed side ends a tunnel quietly
      code = null;
    } else if ((outcome === Outcome.Refused || outcome === Outcome.RefusedClose) && relay !== null && relay.headSent) outcome = Outcome.Cut;
    this.leaveQueue();
    // The dyno socket: pooled after a clean response, half-closed after a tunnel, else destroyed.
    switch (st.phase) {
      case Phase.Sent:
        if (relay!.status !== null) this.status = relay!.status;
        this.bytesOut = relay!.bytesOut;
        if (outcome === Outcome.Relayed || outcome === Outcome.Cut) relay!.flushHead();
        if (outcome === Outcome.Relayed) this.releaseUpstream(st.upstream, relay!.info);
        else st.upstream.destroy();
        break;
      case Phase.Connecting:
        st.upstream.destroy();
        break;
      case Phase.Tunnel:
        this.bytesOut = st.tunnel.bytesOut;
        st.tunnel.close();
        break;
      default:
        break;
    }
    // What the client gets.
    let keepClient = false;
    if (outcome === Outcome.Relayed) keepClient = relay!.keepClient;
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
    this.to(DONE);
    const now = Date.now();
    if (code !== null) this.logError(code, cause, now);
    else if (outcome === Outcome.Relayed || outcome === Outcome.NoApp) this.log(null, null, now);
    this.releaseCounters();
    if (outcome === Outcome.Cut || outcome === Outcome.ClientGone) this.client.exchangeAborted();
    else this.client.exchangeDone(keepClient, now);
  }

  /** After a complete response: back to the pool if the dyno and the request allow, else closed. */
  private releaseUpstream(up: UpstreamConnection, info: ResponseInfo | null): void {
    if (info !== null && !info.upstreamClose && this.reqBodyDone && !up.broken && !up.dead) {
      this.core.pool.release(up, info.bodyMayFollow ? this.client : null);
    } else up.destroy();
  }

  private joinConnecting(): void {
    this.core.connecting.add(this);
  }

  private leaveConnecting(): void {
    this.core.connecting.delete(this);
  }

  private joinAwaitingReply(): void {
    this.core.awaitingReply.add(this);
  }

  private leaveAwaitingReply(): void {
    this.core.awaitingReply.delete(this);
  }

  private releaseBalancer(): void {
    if (this.balancerCounted && this.backend !== null) {
      this.core.balancer.release(this.backend.address);
      this.balancerCounted = false;
    }
  }

  private releaseCounters(): void {
    this.leaveConnecting();
    this.leaveAwaitingReply();
    this.releaseBalancer();
    // the boot queue was left at the start of end() (leaveQueue)
    if (this.appCounted && this.app !== null) {
      this.appCounted = false;
      // An app with none in flight keeps its 0: deleting keys churns the Map (see member-list.ts).
      this.core.appInFlight.set(this.app.name, Math.max(0, (this.core.appInFlight.get(this.app.name) ?? 1) - 1));
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
