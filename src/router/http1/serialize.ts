/**
 * Builds the heads the router sends: the request head to a dyno and the response head to a client.
 * Field lines the router does not own are copied as raw bytes, in order, case preserved; hop-by-hop
 * fields are dropped (RFC 9110 §7.6.1) and framing is re-emitted from the router's own decision.
 */
import { FieldKind } from './fields';
import { F_KIND, F_LINE_END, F_LINE_START, F_NAME_END, F_NAME_START, FIELD_STRIDE, F_VALUE_END, F_VALUE_START, MessageHead } from './head-parser';
import { BodyKind, type RequestInfo, type ResponseInfo } from './framing';

function kindSet(kinds: FieldKind[]): Uint8Array {
  const t = new Uint8Array(32);
  for (const k of kinds) t[k] = 1;
  return t;
}

/** Dropped from requests: hop-by-hop, framing (re-emitted), and fields the router sets itself. */
const REQUEST_DROP = kindSet([
  FieldKind.ContentLength, FieldKind.TransferEncoding, FieldKind.Connection, FieldKind.Upgrade, FieldKind.Expect,
  FieldKind.TE, FieldKind.KeepAlive, FieldKind.ProxyConnection, FieldKind.ProxyAuthorization, FieldKind.XForwardedFor,
  FieldKind.XForwardedProto, FieldKind.XForwardedPort, FieldKind.XRequestId, FieldKind.XRequestStart, FieldKind.Via,
  FieldKind.ConnectTime, FieldKind.TotalRouteTime,
]);

/** Dropped from responses: hop-by-hop and framing (re-emitted); Via is merged. */
const RESPONSE_DROP = kindSet([
  FieldKind.ContentLength, FieldKind.TransferEncoding, FieldKind.Connection, FieldKind.Upgrade, FieldKind.TE,
  FieldKind.KeepAlive, FieldKind.ProxyConnection, FieldKind.Via,
]);

/** The kept field lines of `head` as one latin1 string (one slice per run of kept lines; usually one). */
function keptLinesString(head: MessageHead, drop: Uint8Array, connectionNames: string[] | null): string {
  const f = head.fields;
  const buf = head.buf;
  const base = head.base;
  let out = '';
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0, o = 0; i < head.fieldCount; i++, o += FIELD_STRIDE) {
    const kind = f[o + F_KIND]!;
    let keep = drop[kind] !== 1;
    if (keep && connectionNames !== null && kind === FieldKind.Other) {
      const name = buf.toString('latin1', base + f[o + F_NAME_START]!, base + f[o + F_NAME_END]!).toLowerCase();
      keep = !connectionNames.includes(name);
    }
    if (!keep) continue;
    const ls = base + f[o + F_LINE_START]!;
    const le = base + f[o + F_LINE_END]!;
    if (ls === runEnd) {
      runEnd = le;
      continue;
    }
    if (runStart >= 0) out += buf.toString('latin1', runStart, runEnd);
    runStart = ls;
    runEnd = le;
  }
  if (runStart >= 0) out += buf.toString('latin1', runStart, runEnd);
  return out;
}

/** Joined values of every field of `kind`, or null. */
export function joinedValues(head: MessageHead, kind: FieldKind): string | null {
  let out: string | null = null;
  const f = head.fields;
  for (let i = 0, o = 0; i < head.fieldCount; i++, o += FIELD_STRIDE) {
    if (f[o + F_KIND] !== kind) continue;
    const v = head.buf.toString('latin1', head.base + f[o + F_VALUE_START]!, head.base + f[o + F_VALUE_END]!);
    out = out === null ? v : `${out}, ${v}`;
  }
  return out;
}

export interface UpstreamRequestExtras {
  /** Full X-Forwarded-For value to send (existing values + client address). */
  forwardedFor: string;
  proto: string | null;
  port: number;
  requestStartMs: number;
  requestId: string;
  via: string;
  connectMs: number;
  totalRouteMs: number;
  /** Ask the dyno to keep the connection (pooled) or close it. */
  keepAlive: boolean;
}

/**
 * The request head the dyno receives (always HTTP/1.1, origin-form target), as a latin1 string:
 * the caller writes it with `socket.write(head, 'latin1')` (one copy, straight into the write).
 */
export function upstreamRequestHeadString(head: MessageHead, info: RequestInfo, x: UpstreamRequestExtras): string {
  let out = head.method + ' ' + info.forwardTarget + ' HTTP/1.1\r\n' + keptLinesString(head, REQUEST_DROP, info.connectionNames);
  if (info.bodyKind === BodyKind.Chunked) out += 'Transfer-Encoding: chunked\r\n';
  else if (info.bodyKind === BodyKind.Length) out += 'Content-Length: ' + info.contentLength + '\r\n';
  else if (info.contentLength === 0 && head.method !== 'GET' && head.method !== 'HEAD' && hasField(head, FieldKind.ContentLength)) {
    out += 'Content-Length: 0\r\n';
  }
  if (info.upgrade !== null) out += 'Connection: Upgrade\r\nUpgrade: ' + info.upgrade + '\r\n';
  else if (!x.keepAlive) out += 'Connection: close\r\n';
  const via = joinedValues(head, FieldKind.Via);
  if (x.proto !== null) out += 'X-Forwarded-For: ' + x.forwardedFor + '\r\nX-Forwarded-Proto: ' + x.proto + '\r\nX-Forwarded-Port: ';
  else out += 'X-Forwarded-For: ' + x.forwardedFor + '\r\nX-Forwarded-Port: ';
  return (
    out +
    x.port +
    '\r\nX-Request-Start: ' +
    x.requestStartMs +
    '\r\nX-Request-Id: ' +
    x.requestId +
    '\r\nVia: ' +
    (via === null ? x.via : via + ', ' + x.via) +
    '\r\nConnect-Time: ' +
    x.connectMs +
    '\r\nTotal-Route-Time: ' +
    x.totalRouteMs +
    '\r\n\r\n'
  );
}


function hasField(head: MessageHead, kind: FieldKind): boolean {
  for (let i = 0; i < head.fieldCount; i++) if (head.fields[i * FIELD_STRIDE + F_KIND] === kind) return true;
  return false;
}

export enum ClientFraming {
  /** No framing header (body-less response, or close-delimited). */
  None = 0,
  Length,
  Chunked,
  /** 101: Connection: Upgrade + the dyno's Upgrade value. */
  Upgrade,
}

export interface ClientResponseOptions {
  framing: ClientFraming;
  contentLength: number;
  /** 'close' / 'keep-alive' → a Connection field; null → none (HTTP/1.1 default persistence). */
  connection: 'close' | 'keep-alive' | null;
  via: string;
}

/**
 * Status line rewritten to HTTP/1.1 (reason phrase kept byte for byte) + kept fields + ours, as a
 * latin1 string (write it with `socket.write(head, 'latin1')`).
 */
export function clientResponseHeadString(head: MessageHead, info: ResponseInfo, o: ClientResponseOptions): string {
  // Everything after "HTTP/1.x" on the status line: " 200 OK\r\n".
  let out = 'HTTP/1.1' + head.buf.toString('latin1', head.base + 8, head.base + head.startLineEnd) + keptLinesString(head, RESPONSE_DROP, info.connectionNames);
  if (o.framing === ClientFraming.Length) out += 'Content-Length: ' + o.contentLength + '\r\n';
  else if (o.framing === ClientFraming.Chunked) out += 'Transfer-Encoding: chunked\r\n';
  else if (o.framing === ClientFraming.Upgrade) out += 'Connection: Upgrade\r\nUpgrade: ' + (joinedValues(head, FieldKind.Upgrade) ?? '') + '\r\n';
  if (o.framing !== ClientFraming.Upgrade && o.connection !== null) out += 'Connection: ' + o.connection + '\r\n';
  const via = joinedValues(head, FieldKind.Via);
  return out + 'Via: ' + (via === null ? o.via : via + ', ' + o.via) + '\r\n\r\n';
}


/** A 1xx interim response for an HTTP/1.1 client, hop-by-hop fields removed. */
export function buildInterimHead(head: MessageHead, via: string): Buffer {
  const statusRest = head.buf.toString('latin1', head.base + 8, head.base + head.startLineEnd);
  return Buffer.from(`HTTP/1.1${statusRest}` + keptLinesString(head, RESPONSE_DROP, null) + `Via: ${via}\r\n\r\n`, 'latin1');
}
