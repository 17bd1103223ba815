/**
 * One dyno response on its way to the client (mux_h1's response half; the framing decisions are
 * http1/'s pure functions): accumulate and parse the head, pass 1xx interim responses on, plan the
 * client's head, then stream the body (Content-Length, chunked as is or de-chunked for HTTP/1.0,
 * or until close) with backpressure on the dyno socket. It never ends the exchange itself: each
 * call says what happened (RelayStep) and the Exchange maps that to its single end(outcome).
 */
import { analyzeResponse, BodyKind, type RequestInfo, type ResponseInfo } from '../http1/framing';
import { NEED_MORE, type MessageHead } from '../http1/head-parser';
import { ParseError, parseErrorInfo } from '../http1/parse-errors';
import { planClientResponse, type ClientResponsePlan } from '../http1/client-response';
import { buildInterimHead, ClientFraming, clientResponseHeadString } from '../http1/serialize';
import { copyOut, type UpstreamConnection } from './upstream';

/** What the bytes just consumed amount to. */
export enum RelayStep {
  /** More bytes are due from the dyno (head unfinished, or body under way). */
  More,
  /** The response went through whole. */
  Complete,
  /** A 101 went through: the bytes after it (tunnelRest) belong to the new protocol. */
  Upgrade,
  /** The dyno broke HTTP: see `failure`. */
  Failed,
}

export enum RelayPhase {
  Head,
  Body,
  Done,
}

/** How a dyno's broken response is reported (set when a step is Failed). */
export interface RelayFailure {
  code: 'H17' | 'H25';
  cause: string | null;
  /**
   * The client has had no byte of this response, so it can still get the router's page; otherwise
   * its connection is cut (the status already sent is the one logged).
   */
  clean: boolean;
}

/** The client side of a relay. */
export interface RelayClient {
  write(data: Buffer): boolean;
  writeLatin1(head: string): boolean;
  cork(): void;
  uncork(): void;
}

/** What the relay needs to know about the request it answers. */
export interface RelayRequest {
  readonly head: MessageHead;
  readonly info: RequestInfo;
}

/** The router settings a relay reads (the RouterConfig). */
export interface RelaySettings {
  readonly via: string;
  readonly limits: { readonly maxInterimResponses: number };
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
 * The plan of the response being started: filled and read within one synchronous call
 * (startResponse), so one object serves every relay.
 */
const PLAN: ClientResponsePlan = { framing: ClientFraming.None, contentLength: 0, deChunk: false, keepClient: false, connection: null };

export class ResponseRelay {
  phase = RelayPhase.Head;
  /** A byte of the response arrived (so a replay elsewhere is no longer safe). */
  sawByte = false;
  /** The client's head has been planned (it may still wait in pendingHead): a router page is too late. */
  headSent = false;
  /** The final status, once the head is planned. */
  status: number | null = null;
  /** Bytes relayed to the client (head and body). */
  bytesOut = 0;
  /** The client connection carries another request after this response. */
  keepClient = false;
  info: ResponseInfo | null = null;
  failure: RelayFailure | null = null;
  /** After Upgrade: where the tunnel's first bytes start in the buffer passed to consume() (valid during that call only). */
  tunnelRest = 0;

  /** Head bytes from earlier reads (copied out of the shared read buffer). */
  private acc: Buffer | null = null;
  private deChunk = false;
  /** Response head not written yet: it goes out together with the first body bytes (one write). */
  private pendingHead: string | null = null;
  private interim = 0;
  /** Inside consume(): its second write corks the client socket, uncorked when it returns. */
  private consuming = false;
  private writes = 0;

  constructor(
    private readonly client: RelayClient,
    private readonly upstream: UpstreamConnection,
    private readonly request: RelayRequest,
    private readonly settings: RelaySettings,
  ) {}

  /**
   * Consumes dyno bytes `buf[off..]` (only valid during the call: the shared read buffer).
   * `requestBodyDone`: the whole request body has reached the dyno (else the client connection can
   * only close after this response). Writes leave as one segment where there are several.
   */
  consume(buf: Buffer, off: number, requestBodyDone: boolean): RelayStep {
    this.sawByte = true;
    this.consuming = true;
    this.writes = 0;
    try {
      const step = this.consumeAll(buf, off, requestBodyDone);
      if (step === RelayStep.More) this.flushHead();
      return step;
    } finally {
      this.consuming = false;
      if (this.writes > 1) this.client.uncork();
    }
  }

  /** Writes a response head still waiting for body bytes (before a Cut, or at the end of a read). */
  flushHead(): void {
    const h = this.pendingHead;
    if (h !== null) {
      this.pendingHead = null;
      this.out(null, h);
    }
  }

  /** A head has started but not ended: the dyno owes its rest within the idle timeout. */
  get midHead(): boolean {
    return this.acc !== null;
  }

  /** The dyno closed: a close-delimited body is then complete. */
  endsAtClose(): boolean {
    if (this.phase === RelayPhase.Body && this.info!.bodyKind === BodyKind.UntilClose) {
      this.phase = RelayPhase.Done;
      return true;
    }
    return false;
  }

  private consumeAll(buf: Buffer, off: number, requestBodyDone: boolean): RelayStep {
    const up = this.upstream;
    while (off < buf.length) {
      if (this.phase === RelayPhase.Head) {
        let data = buf;
        let base = off;
        if (this.acc !== null) {
          data = Buffer.concat([this.acc, off === 0 ? buf : buf.subarray(off)]);
          base = 0;
          this.acc = null;
        }
        const r = up.parser.execute(data, base);
        if (r === NEED_MORE) {
          this.acc = copyOut(data, base, data.length); // `data` may be the shared read buffer
          return RelayStep.More;
        }
        if (r < 0) return this.failHead(-r as ParseError);
        const head = up.parser.head;
        up.parser.reset();
        const info = analyzeResponse(head, this.request.head.method, this.request.info.upgrade !== null);
        if (typeof info === 'number') return this.failHead(info);
        buf = data;
        off = base + r;
        if (head.status < 200 && head.status !== 101) {
          if (++this.interim > this.settings.limits.maxInterimResponses) return this.failHead(ParseError.InvalidStatusLine);
          // 1xx go to HTTP/1.1 clients only (RFC 9110 §15.2).
          if (this.request.head.versionMinor === 1) this.out(buildInterimHead(head, this.settings.via), null);
          continue;
        }
        // A final response without a body ends here: any byte after it in this read belongs to no
        // request (a late body, or junk); the socket is not reused.
        if (info.bodyKind === BodyKind.None && off < buf.length) up.broken = true;
        this.startResponse(head, info, requestBodyDone);
        if (info.bodyKind === BodyKind.Tunnel) {
          this.tunnelRest = off;
          return RelayStep.Upgrade;
        }
        if (info.bodyKind === BodyKind.None) return RelayStep.Complete;
        continue;
      }
      // A body that goes on has consumed all of this read.
      if (this.phase === RelayPhase.Body) return this.relayBody(buf, off);
      // Response done but bytes remain: the dyno broke framing; never reuse this connection.
      up.broken = true;
      return RelayStep.Complete;
    }
    return this.phase === RelayPhase.Done ? RelayStep.Complete : RelayStep.More;
  }

  private startResponse(head: MessageHead, info: ResponseInfo, requestBodyDone: boolean): void {
    this.info = info;
    this.status = head.status;
    const plan = PLAN;
    planClientResponse(plan, head.status, info, this.request.head.versionMinor, this.request.info.keepAlive, requestBodyDone);
    if (info.bodyKind !== BodyKind.None && info.bodyKind !== BodyKind.Tunnel) this.upstream.body.begin(info.bodyKind, info.contentLength);
    this.deChunk = plan.deChunk;
    this.keepClient = plan.keepClient;
    const out = clientResponseHeadString(head, info, {
      framing: plan.framing,
      contentLength: plan.contentLength,
      connection: plan.connection,
      via: this.settings.via,
    });
    this.bytesOut += out.length; // latin1: one byte per char
    this.headSent = true;
    if (info.bodyKind === BodyKind.Tunnel || info.bodyKind === BodyKind.None || this.deChunk) this.out(null, out);
    else this.pendingHead = out; // written with the first body bytes, or at the end of this read
    this.phase = info.bodyKind === BodyKind.None || info.bodyKind === BodyKind.Tunnel ? RelayPhase.Done : RelayPhase.Body;
  }

  /** Streams body bytes of `buf[off..]`; the body's end (and junk after it) ends the step. */
  private relayBody(buf: Buffer, off: number): RelayStep {
    const up = this.upstream;
    const body = up.body;
    const next = body.take(buf, off, this.deChunk ? this.deChunkSink : null);
    if (next < 0) return this.failBody('bad chunk');
    if (!this.deChunk && next > off) {
      this.bytesOut += next - off;
      if (!this.relayToClient(buf, off, next)) up.socket.pause();
    }
    if (!body.done) return RelayStep.More;
    this.phase = RelayPhase.Done;
    if (next < buf.length) up.broken = true;
    return RelayStep.Complete;
  }

  /**
   * Writes `buf[start..end)` (copied: it may sit in the shared read buffer) to the client, preceded
   * by the pending response head if any, as one Buffer.
   */
  private relayToClient(buf: Buffer, start: number, end: number): boolean {
    const h = this.pendingHead;
    if (h === null) return this.out(copyOut(buf, start, end), null);
    this.pendingHead = null;
    const out = Buffer.allocUnsafe(h.length + end - start);
    out.write(h, 0, 'latin1');
    buf.copy(out, h.length, start, end);
    return this.out(out, null);
  }

  private readonly deChunkSink = (b: Buffer, s: number, e: number): void => {
    this.bytesOut += e - s;
    if (!this.out(copyOut(b, s, e), null)) this.upstream.socket.pause();
  };

  /** One write to the client (a Buffer, or a latin1 head); a second one in the same read corks. */
  private out(data: Buffer | null, head: string | null): boolean {
    if (this.consuming && ++this.writes === 2) this.client.cork();
    return data !== null ? this.client.write(data) : this.client.writeLatin1(head!);
  }

  /**
   * The body broke its framing. H17 "Poorly formatted HTTP response" is Heroku's code for a dyno that
   * answered but not in valid HTTP (H13 is a close without any answer, H18 an answer cut by the dyno
   * closing). If the head still waits in pendingHead the client has had nothing: it is dropped, so
   * the client gets H17's page as for a bad head. Otherwise the client connection is cut.
   */
  private failBody(cause: string): RelayStep {
    const clean = this.pendingHead !== null;
    if (clean) {
      this.pendingHead = null;
      this.headSent = false;
      this.status = null;
      this.bytesOut = 0;
    }
    this.failure = { code: 'H17', cause, clean };
    return RelayStep.Failed;
  }

  /** A head the router refuses: H25 for Heroku's HTTP restrictions, else H17. */
  private failHead(code: ParseError): RelayStep {
    const h25Cause = H25_CAUSES.get(code);
    const h25 = h25Cause !== undefined;
    const cause = h25Cause ?? parseErrorInfo(code).cause;
    const clean = !this.headSent;
    this.failure = { code: h25 ? 'H25' : 'H17', cause: clean ? (h25 ? `HTTP restriction: ${cause}` : null) : cause, clean };
    return RelayStep.Failed;
  }
}
