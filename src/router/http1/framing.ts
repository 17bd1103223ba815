/**
 * Message semantics the router needs, derived from a parsed head: body framing (RFC 9112 §6.3),
 * Host, connection options, upgrade and expectation. One decision per message, or a ParseError.
 */
import { HTAB, REQUEST_ID, SP, TCHAR } from './chars';
import { FieldKind } from './fields';
import { F_KIND, F_VALUE_END, F_VALUE_START, FIELD_STRIDE, MessageHead } from './head-parser';
import { ParseError } from './parse-errors';

export enum BodyKind {
  /** No body bytes follow the head. */
  None = 0,
  /** Exactly `contentLength` bytes. */
  Length,
  Chunked,
  /** Response body delimited by the upstream closing its connection. */
  UntilClose,
  /** 101 to an upgrade request: raw bytes both ways from here on. */
  Tunnel,
}

/** What the router needs to know about a valid request. */
export interface RequestInfo {
  bodyKind: BodyKind;
  contentLength: number;
  /** Host header value as received. */
  host: string;
  /** Lower-cased host without port, used for routing. */
  routeHost: string;
  /** Port from the Host header, or -1. */
  hostPort: number;
  /** Target to forward (origin-form, no fragment). */
  forwardTarget: string;
  /** The client wants the connection to persist after this exchange. */
  keepAlive: boolean;
  /** Upgrade protocol requested (Connection: upgrade + Upgrade), else null. */
  upgrade: string | null;
  /** The router must answer `100 Continue` before reading the body. */
  expectContinue: boolean;
  /** Lower-cased field names listed in Connection (other than close/keep-alive/upgrade), to strip. */
  connectionNames: string[] | null;
  /** Client X-Request-Id if it is valid (20–200 chars of [A-Za-z0-9+/=-]), else null. */
  requestId: string | null;
  /** Existing X-Forwarded-For values, joined with ", ", or null. */
  forwardedFor: string | null;
  /** Accept header (for choosing an HTML or JSON error page), or null. */
  accept: string | null;
}

export interface ResponseInfo {
  bodyKind: BodyKind;
  contentLength: number;
  /** Upstream asked to close (Connection: close, HTTP/1.0 without keep-alive, close-delimited, TE+CL). */
  upstreamClose: boolean;
  /** Lower-cased field names listed in Connection, to strip. */
  connectionNames: string[] | null;
  /** Content-Length as declared (merged), -1 if absent: relayed on HEAD/304 responses that carry no body. */
  declaredLength: number;
  /** Transfer-Encoding ends in chunked (relayed on HEAD responses to HTTP/1.1 clients). */
  declaredChunked: boolean;
  /**
   * A body-less response (HEAD, 204, 304) whose head still describes a body: a dyno that gets
   * HEAD/204/304 wrong sends that body anyway, possibly late, so its connection may only carry later
   * requests of the same client (see UpstreamPool.release), never another client's.
   */
  bodyMayFollow: boolean;
}

const MAX_CL_DIGITS = 15;

function isRequestIdValid(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (len < 20 || len > 200) return false;
  for (let i = start; i < end; i++) if (REQUEST_ID[buf[i]!] !== 1) return false;
  return true;
}

/** Parses `1*DIGIT` (≤ 15 digits), or -1. */
function parseContentLength(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len === 0 || len > MAX_CL_DIGITS) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Visits the comma-separated tokens of a list value; returns false on an empty element or a non-token. */
function forEachToken(buf: Buffer, start: number, end: number, visit: (tokenStart: number, tokenEnd: number) => void): boolean {
  let i = start;
  for (;;) {
    while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
    const ts = i;
    while (i < end && TCHAR[buf[i]!] === 1) i++;
    if (i === ts) return false;
    visit(ts, i);
    while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
    if (i === end) return true;
    if (buf[i] !== 0x2c) return false;
    i++;
  }
}

function tokenEquals(buf: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((buf[start + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

interface ConnectionOptions {
  close: boolean;
  keepAlive: boolean;
  upgrade: boolean;
  names: string[] | null;
}

function parseConnection(buf: Buffer, start: number, end: number, into: ConnectionOptions): boolean {
  return forEachToken(buf, start, end, (ts, te) => {
    if (tokenEquals(buf, ts, te, 'close')) into.close = true;
    else if (tokenEquals(buf, ts, te, 'keep-alive')) into.keepAlive = true;
    else if (tokenEquals(buf, ts, te, 'upgrade')) into.upgrade = true;
    else (into.names ??= []).push(buf.toString('latin1', ts, te).toLowerCase());
  });
}

/** reg-name bytes: unreserved / pct-encoded / sub-delims, minus ',' (a Host that looks like a list is refused). */
const REG_NAME = (() => {
  const t = new Uint8Array(128);
  for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+;=%") t[c.charCodeAt(0)] = 1;
  return t;
})();

/** Parses `:1*5DIGIT` at `from` to the end of `s`; the port, or -1. */
function parsePort(s: string, from: number): number {
  const n = s.length - from;
  if (n < 1 || n > 5) return -1;
  let port = 0;
  for (let i = from; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    port = port * 10 + d;
  }
  return port;
}

interface HostParts {
  routeHost: string;
  hostPort: number;
}

/** Host = uri-host [ ":" port ]; reg-name or IP-literal. No userinfo, no path. False when invalid. */
function validateHost(host: string, into: HostParts): boolean {
  const len = host.length;
  if (len === 0 || len > 255) return false;
  let hostEnd = len;
  let port = -1;
  if (host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf(']');
    if (close < 2) return false;
    for (let i = 1; i < close; i++) {
      const c = host.charCodeAt(i);
      const ok = (c >= 0x30 && c <= 0x3a) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) || c === 0x2e;
      if (!ok) return false;
    }
    hostEnd = close + 1;
    if (hostEnd < len) {
      if (host.charCodeAt(hostEnd) !== 0x3a) return false;
      port = parsePort(host, hostEnd + 1);
      if (port < 0) return false;
    }
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) {
      port = parsePort(host, colon + 1);
      if (port < 0) return false;
      hostEnd = colon;
    }
    if (hostEnd === 0) return false;
    for (let i = 0; i < hostEnd; i++) {
      const c = host.charCodeAt(i);
      if (c >= 128 || REG_NAME[c] !== 1) return false;
    }
  }
  if (port > 65535) return false;
  // A fully qualified name may end in the root's empty label ("a.test."): the same host, as the
  // route table stores it (RFC 3986 §3.2.2). One dot only; "a.test.." stays unroutable.
  const nameEnd = hostEnd > 1 && host.charCodeAt(hostEnd - 1) === 0x2e ? hostEnd - 1 : hostEnd;
  const hostPart = nameEnd === len ? host : host.slice(0, nameEnd);
  into.routeHost = hostPart.toLowerCase();
  into.hostPort = port;
  return true;
}

/**
 * Validates a request head and decides its framing. Strict: anything ambiguous is an error, which
 * the connection answers with 400 (or 414/417/505) and a closed connection.
 */
export function analyzeRequest(head: MessageHead): RequestInfo | ParseError {
  const buf = head.buf;
  const base = head.base;
  const f = head.fields;
  let hostField = -1;
  let clValue = -1;
  let clCount = 0;
  let teCount = 0;
  let teChunked = false;
  let teValid = true;
  let upgradeValue: string | null = null;
  let expectContinue = false;
  let expectPresent = false;
  let requestId: string | null = null;
  let forwardedFor: string | null = null;
  let accept: string | null = null;
  const conn: ConnectionOptions = { close: false, keepAlive: false, upgrade: false, names: null };

  for (let i = 0, o = 0; i < head.fieldCount; i++, o += FIELD_STRIDE) {
    const kind = f[o + F_KIND]!;
    if (kind === FieldKind.Other) continue;
    const vs = base + f[o + F_VALUE_START]!;
    const ve = base + f[o + F_VALUE_END]!;
    switch (kind) {
      case FieldKind.Host:
        if (hostField >= 0) return ParseError.DuplicateHost;
        hostField = i;
        break;
      case FieldKind.ContentLength:
        clCount++;
        clValue = parseContentLength(buf, vs, ve);
        if (clValue < 0) return ParseError.InvalidContentLength;
        break;
      case FieldKind.TransferEncoding:
        teCount++;
        // Exactly one field whose value is exactly `chunked`: every TE obfuscation falls out here.
        if (!tokenEquals(buf, vs, ve, 'chunked')) teValid = false;
        teChunked = true;
        break;
      case FieldKind.Connection:
        if (!parseConnection(buf, vs, ve, conn)) return ParseError.InvalidHeaderValue;
        break;
      case FieldKind.Upgrade:
        if (upgradeValue !== null) return ParseError.InvalidHeaderValue;
        upgradeValue = buf.toString('latin1', vs, ve);
        break;
      case FieldKind.Expect:
        if (ve === vs) break; // an empty Expect is ignored (vegur 2.0.5)
        if (expectPresent) return ParseError.UnsupportedExpectation;
        expectPresent = true;
        if (tokenEquals(buf, vs, ve, '100-continue')) expectContinue = true;
        else return ParseError.UnsupportedExpectation;
        break;
      case FieldKind.XRequestId:
        requestId = isRequestIdValid(buf, vs, ve) ? buf.toString('latin1', vs, ve) : null;
        break;
      case FieldKind.XForwardedFor: {
        const v = buf.toString('latin1', vs, ve);
        forwardedFor = forwardedFor === null ? v : `${forwardedFor}, ${v}`;
        break;
      }
      case FieldKind.Accept:
        accept = buf.toString('latin1', vs, ve);
        break;
      default:
        break;
    }
  }

  const http10 = head.versionMinor === 0;
  let bodyKind = BodyKind.None;
  let contentLength = 0;
  if (teCount > 0) {
    if (http10) return ParseError.TransferEncodingInHttp10;
    if (clCount > 0) return ParseError.TransferEncodingWithContentLength;
    if (teCount > 1 || !teValid || !teChunked) return ParseError.InvalidTransferEncoding;
    bodyKind = BodyKind.Chunked;
    contentLength = -1;
  } else if (clCount > 1) {
    return ParseError.DuplicateContentLength;
  } else if (clCount === 1 && clValue > 0) {
    bodyKind = BodyKind.Length;
    contentLength = clValue;
  }

  if (hostField < 0) return ParseError.MissingHost;
  const host = head.value(hostField);
  const hostInfo: HostParts = { routeHost: '', hostPort: -1 };
  if (!validateHost(host, hostInfo)) return ParseError.InvalidHost;

  // Request target forms (RFC 9112 §3.2): origin, absolute, asterisk (OPTIONS only).
  let target = head.target;
  const c0 = target.charCodeAt(0);
  if (c0 !== 0x2f) {
    if (target === '*' && head.method === 'OPTIONS') {
      // asterisk-form is forwarded as is
    } else {
      const m = /^https?:\/\/([^/?#]+)(.*)$/i.exec(target);
      if (m === null) return ParseError.InvalidTarget;
      // We route on the Host header; an absolute-form authority that disagrees with it is refused
      // rather than silently preferring one of the two (a deliberate strict choice).
      if (m[1]!.toLowerCase() !== host.toLowerCase()) return ParseError.InvalidHost;
      target = m[2]!.length === 0 || m[2]!.charCodeAt(0) !== 0x2f ? `/${m[2]!}` : m[2]!;
    }
  }
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);

  let upgrade: string | null = null;
  if (conn.upgrade && !http10) {
    if (upgradeValue === null || upgradeValue.length === 0) return ParseError.UpgradeWithoutUpgradeHeader;
    upgrade = upgradeValue;
  }

  return {
    bodyKind,
    contentLength,
    host,
    routeHost: hostInfo.routeHost,
    hostPort: hostInfo.hostPort,
    forwardTarget: target,
    keepAlive: http10 ? conn.keepAlive && !conn.close : !conn.close,
    upgrade,
    // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
    expectContinue: expectContinue && !http10 && bodyKind !== BodyKind.None,
    connectionNames: conn.names,
    requestId,
    forwardedFor,
    accept,
  };
}

/**
 * Whether a final response that carries no body (RFC 9112 §6.3 rule 1) has framing headers that
 * describe one: Transfer-Encoding, a Content-Length above 0, or, to HEAD, no framing at all (the
 * same response to GET would run until close). A 204/304 without framing headers describes nothing:
 * no sender may give those a body, so one that does is broken beyond what reuse rules can fix.
 */
function describesBody(head: boolean, te: boolean, contentLength: number): boolean {
  if (te || contentLength > 0) return true;
  return head && contentLength < 0;
}

/**
 * Decides how a response body is delimited (RFC 9112 §6.3), given the request method and whether
 * the request asked to upgrade. Response-side errors map to 502 (H25 for limits, H17 otherwise).
 */
export function analyzeResponse(head: MessageHead, requestMethod: string, upgradeRequested: boolean): ResponseInfo | ParseError {
  const buf = head.buf;
  const base = head.base;
  const f = head.fields;
  let clValue = -1;
  let clCount = 0;
  let teCount = 0;
  let teChunkedLast = false;
  let teChunkedCount = 0;
  let teValid = true;
  const conn: ConnectionOptions = { close: false, keepAlive: false, upgrade: false, names: null };

  for (let i = 0, o = 0; i < head.fieldCount; i++, o += FIELD_STRIDE) {
    const kind = f[o + F_KIND]!;
    if (kind === FieldKind.Other) continue;
    const vs = base + f[o + F_VALUE_START]!;
    const ve = base + f[o + F_VALUE_END]!;
    if (kind === FieldKind.ContentLength) {
      const v = parseContentLength(buf, vs, ve);
      if (v < 0) return ParseError.InvalidContentLength;
      // Identical duplicates are merged (RFC 9110 §8.6); differing ones are fatal.
      if (clCount > 0 && v !== clValue) return ParseError.InvalidContentLength;
      clValue = v;
      clCount++;
    } else if (kind === FieldKind.TransferEncoding) {
      teCount++;
      const ok = forEachToken(buf, vs, ve, (ts, te) => {
        if (tokenEquals(buf, ts, te, 'chunked')) {
          teChunkedCount++;
          teChunkedLast = true;
        } else teChunkedLast = false;
      });
      if (!ok) teValid = false;
    } else if (kind === FieldKind.Connection) {
      if (!parseConnection(buf, vs, ve, conn)) return ParseError.InvalidHeaderValue;
    }
  }

  const status = head.status;
  const http10 = head.versionMinor === 0;
  const keepAliveByVersion = http10 ? conn.keepAlive && !conn.close : !conn.close;
  const info: ResponseInfo = {
    bodyKind: BodyKind.None,
    contentLength: 0,
    upstreamClose: !keepAliveByVersion,
    connectionNames: conn.names,
    declaredLength: clCount > 0 ? clValue : -1,
    declaredChunked: teCount > 0 && teChunkedLast,
    bodyMayFollow: false,
  };

  if (status === 101) {
    if (!upgradeRequested) return ParseError.InvalidStatusLine;
    info.bodyKind = BodyKind.Tunnel;
    info.upstreamClose = true;
    return info;
  }
  if (status < 200 || status === 204 || status === 304 || requestMethod === 'HEAD') {
    // Framing headers describe a body that is not sent (RFC 9112 §6.3 rule 1).
    if (status === 204 && teCount > 0 && requestMethod !== 'HEAD') {
      // A 204 must not carry TE; tolerate it but never reuse the connection.
      info.upstreamClose = true;
    }
    if (status >= 200) info.bodyMayFollow = describesBody(requestMethod === 'HEAD', teCount > 0, clValue);
    return info;
  }
  if (teCount > 0) {
    if (!teValid || teChunkedCount > 1 || http10) return ParseError.InvalidHeaderValue;
    if (teChunkedLast) {
      info.bodyKind = BodyKind.Chunked;
      info.contentLength = -1;
      // TE + CL: TE wins, CL is dropped, and the connection is not reused (RFC 9112 §6.1).
      if (clCount > 0) info.upstreamClose = true;
    } else {
      info.bodyKind = BodyKind.UntilClose;
      info.contentLength = -1;
      info.upstreamClose = true;
    }
    return info;
  }
  if (clCount > 0) {
    info.bodyKind = clValue > 0 ? BodyKind.Length : BodyKind.None;
    info.contentLength = clValue;
    return info;
  }
  info.bodyKind = BodyKind.UntilClose;
  info.contentLength = -1;
  info.upstreamClose = true;
  return info;
}
