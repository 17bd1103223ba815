/**
 * Pure HTTP/1.1 parsing and framing, no I/O. This is the API the router's connection layer, the
 * benchmark and the differential fuzzer use.
 *
 * One-shot use (a whole message head in one Buffer):
 *
 *   const r = parseRequestHead(buf);            // limits default to Heroku's
 *   if (r.ok) { r.head; r.info.bodyKind; r.consumed }   // consumed = head bytes incl. final CRLF
 *   else if (r.incomplete) { … need more bytes … }
 *   else { r.error; r.status }                  // ParseError code, status the router answers (400/414/417/431/505)
 *
 *   const s = parseResponseHead(buf, 'GET', false);      // request method, upgrade requested?
 *   s.ok && s.info.bodyKind                      // None | Length | Chunked | UntilClose | Tunnel
 *
 * Body framing: `info.bodyKind` + `info.contentLength`; for chunked bodies feed bytes to a
 * `ChunkedDecoder` (`execute(buf, start, end, onData)` returns the index just past the body when it is
 * complete, `end` when it needs more, or a negated ParseError).
 *
 * Incremental use (what the router does): keep a `HeadParser` per connection and call
 * `execute(bytesSoFar, base)` each time data arrives; it resumes after the last complete line.
 */
import { ChunkedDecoder, DEFAULT_CHUNKED_LIMITS } from './chunked';
import { analyzeRequest, analyzeResponse, type RequestInfo, type ResponseInfo } from './framing';
import { DEFAULT_REQUEST_LIMITS, DEFAULT_RESPONSE_LIMITS, HeadParser, MessageHead, NEED_MORE, type HeadLimits } from './head-parser';
import { ParseError, parseErrorInfo } from './parse-errors';

export * from './chars';
export * from './chunked';
export * from './fields';
export * from './framing';
export * from './head-parser';
export * from './parse-errors';
export * from './serialize';

export type ParseResult<I> =
  | { ok: true; incomplete: false; head: MessageHead; info: I; consumed: number }
  | { ok: false; incomplete: true }
  | { ok: false; incomplete: false; error: ParseError; errorName: string; status: number };

function failure(error: ParseError): { ok: false; incomplete: false; error: ParseError; errorName: string; status: number } {
  const e = parseErrorInfo(error);
  return { ok: false, incomplete: false, error, errorName: e.name, status: e.status };
}

/** Parses and validates a request head at the start of `buf`. */
export function parseRequestHead(buf: Buffer, limits: HeadLimits = DEFAULT_REQUEST_LIMITS): ParseResult<RequestInfo> {
  const parser = new HeadParser(true, limits);
  const r = parser.execute(buf, 0);
  if (r === NEED_MORE) return { ok: false, incomplete: true };
  if (r < 0) return failure(-r as ParseError);
  const info = analyzeRequest(parser.head);
  if (typeof info === 'number') return failure(info);
  return { ok: true, incomplete: false, head: parser.head, info, consumed: r };
}

/** Parses a response head at the start of `buf`, given the request's method and whether it asked to upgrade. */
export function parseResponseHead(
  buf: Buffer,
  requestMethod: string,
  upgradeRequested = false,
  limits: HeadLimits = DEFAULT_RESPONSE_LIMITS,
): ParseResult<ResponseInfo> {
  const parser = new HeadParser(false, limits);
  const r = parser.execute(buf, 0);
  if (r === NEED_MORE) return { ok: false, incomplete: true };
  if (r < 0) return failure(-r as ParseError);
  const info = analyzeResponse(parser.head, requestMethod, upgradeRequested);
  if (typeof info === 'number') return failure(info);
  return { ok: true, incomplete: false, head: parser.head, info, consumed: r };
}

/**
 * Decodes a complete chunked body starting at `start`: returns the payload, the index just past the
 * body, and the raw trailer section, or a ParseError. For tests and the fuzzer.
 */
export function decodeChunkedBody(
  buf: Buffer,
  start = 0,
): { ok: true; body: Buffer; end: number; trailers: Buffer } | { ok: false; incomplete: boolean; error: ParseError | null } {
  const d = new ChunkedDecoder(DEFAULT_CHUNKED_LIMITS, true);
  const parts: Buffer[] = [];
  const r = d.execute(buf, start, buf.length, (b, s, e) => parts.push(b.subarray(s, e)));
  if (r < 0) return { ok: false, incomplete: false, error: -r as ParseError };
  if (!d.done) return { ok: false, incomplete: true, error: null };
  return { ok: true, body: Buffer.concat(parts), end: r, trailers: Buffer.concat(d.trailers ?? []) };
}
