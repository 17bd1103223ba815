/** Our router's pure parser (src/router/http1) applied to one input, as an Outcome. */
import { BodyKind, decodeChunkedBody, parseErrorInfo, parseRequestHead } from '../../../src/router/http1/index.js';
import { outcome, type Outcome } from './outcome.js';

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
