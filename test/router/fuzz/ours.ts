/** Our router's pure parser (src/router/http1) applied to one input, as an Outcome. */
import {
  analyzeRequest,
  BodyKind,
  ChunkedDecoder,
  decodeChunkedBody,
  DEFAULT_CHUNKED_LIMITS,
  DEFAULT_REQUEST_LIMITS,
  HeadParser,
  NEED_MORE,
  ParseError,
  parseErrorInfo,
  parseRequestHead,
} from '../../../src/router/http1/index';
import { outcome, type Outcome } from './outcome';

export function ours(bytes: Buffer): Outcome {
  const r = parseRequestHead(bytes);
  if (!r.ok) {
    if (r.incomplete) return outcome('incomplete', 'head');
    return outcome('reject', `${r.errorName} ${r.status}`);
  }
  const info = r.info;
  const rest = bytes.length - r.consumed;
  const framingDetail = info.upgrade !== null ? `upgrade ${info.upgrade}` : '';
  switch (info.bodyKind) {
    case BodyKind.None:
      return outcome(info.upgrade !== null ? 'upgrade' : 'accept', framingDetail, 'none', -1, Buffer.alloc(0));
    case BodyKind.Length:
      if (info.upgrade !== null) return outcome('upgrade', framingDetail, 'length', info.contentLength, null);
      if (rest < info.contentLength) return outcome('incomplete', `body ${rest}/${info.contentLength}`);
      return outcome('accept', framingDetail, 'length', info.contentLength, bytes.subarray(r.consumed, r.consumed + info.contentLength));
    case BodyKind.Chunked: {
      if (info.upgrade !== null) return outcome('upgrade', framingDetail, 'chunked', -1, null);
      const d = decodeChunkedBody(bytes, r.consumed);
      if (d.ok) return outcome('accept', framingDetail, 'chunked', -1, d.body);
      if (d.incomplete) return outcome('incomplete', 'chunked body');
      const e = d.error === null ? null : parseErrorInfo(d.error);
      return outcome('reject', `body: ${e ? `${e.name} ${e.status}` : 'error'}`);
    }
    default:
      return outcome('reject', `unexpected body kind ${BodyKind[info.bodyKind]}`);
  }
}

/**
 * The same decision reached incrementally, the way the router gets bytes: the head parser sees
 * growing prefixes cut at `cuts`, the chunked decoder gets the body in the same pieces. Must equal
 * `ours(bytes)`.
 */
export function oursIncremental(bytes: Buffer, cuts: readonly number[]): Outcome {
  const points = [...new Set([...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length])].sort((a, b) => a - b);
  const p = new HeadParser(true, DEFAULT_REQUEST_LIMITS);
  let r = NEED_MORE;
  let k = 0;
  for (; k < points.length; k++) {
    r = p.execute(bytes.subarray(0, points[k]), 0);
    if (r !== NEED_MORE) break;
  }
  if (r === NEED_MORE) return outcome('incomplete', 'head');
  if (r < 0) {
    const e = parseErrorInfo(-r as ParseError);
    return outcome('reject', `${e.name} ${e.status}`);
  }
  const info = analyzeRequest(p.head);
  if (typeof info === 'number') {
    const e = parseErrorInfo(info);
    return outcome('reject', `${e.name} ${e.status}`);
  }
  const consumed = r;
  const framingDetail = info.upgrade !== null ? `upgrade ${info.upgrade}` : '';
  if (info.upgrade !== null) {
    const fr = info.bodyKind === BodyKind.Chunked ? 'chunked' : info.bodyKind === BodyKind.Length ? 'length' : 'none';
    return outcome('upgrade', framingDetail, fr, info.contentLength, null);
  }
  if (info.bodyKind === BodyKind.None) return outcome('accept', framingDetail, 'none', -1, Buffer.alloc(0));
  if (info.bodyKind === BodyKind.Length) {
    if (bytes.length - consumed < info.contentLength) return outcome('incomplete', `body ${bytes.length - consumed}/${info.contentLength}`);
    return outcome('accept', framingDetail, 'length', info.contentLength, bytes.subarray(consumed, consumed + info.contentLength));
  }
  const d = new ChunkedDecoder(DEFAULT_CHUNKED_LIMITS, false);
  const parts: Buffer[] = [];
  let pos = consumed;
  for (const end of points) {
    if (end <= pos) continue;
    const res = d.execute(bytes, pos, end, (b, s, e) => parts.push(Buffer.from(b.subarray(s, e))));
    if (res < 0) {
      const e = parseErrorInfo(-res as ParseError);
      return outcome('reject', `body: ${e.name} ${e.status}`);
    }
    if (d.done) return outcome('accept', framingDetail, 'chunked', -1, Buffer.concat(parts));
    pos = end;
  }
  return outcome('incomplete', 'chunked body');
}
