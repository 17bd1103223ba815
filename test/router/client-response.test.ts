/**
 * The client-side framing decision (src/router/http1/client-response.ts) without sockets: each row
 * a dyno response (as analyzeResponse describes it), the client's version and keep-alive, whether
 * the request body was all read, and the plan.
 */
import t from 'tap';
import { BodyKind, type ResponseInfo } from '../../src/router/http1/framing';
import { ClientFraming } from '../../src/router/http1/serialize';
import { planClientResponse, type ClientResponsePlan } from '../../src/router/http1/client-response';

function info(bodyKind: BodyKind, more: Partial<ResponseInfo> = {}): ResponseInfo {
  return {
    bodyKind,
    contentLength: 0,
    upstreamClose: false,
    connectionNames: null,
    declaredLength: -1,
    declaredChunked: false,
    bodyMayFollow: false,
    ...more,
  };
}

interface Row {
  name: string;
  status: number;
  info: ResponseInfo;
  minor?: number;
  keepAlive?: boolean;
  bodyDone?: boolean;
  want: Partial<ClientResponsePlan>;
}

const F = ClientFraming;
const rows: Row[] = [
  { name: 'Content-Length body', status: 200, info: info(BodyKind.Length, { contentLength: 5 }), want: { framing: F.Length, contentLength: 5, keepClient: true, connection: null, deChunk: false } },
  { name: 'chunked to HTTP/1.1', status: 200, info: info(BodyKind.Chunked), want: { framing: F.Chunked, keepClient: true, deChunk: false } },
  { name: 'chunked to HTTP/1.0: de-chunked, close-delimited', status: 200, info: info(BodyKind.Chunked), minor: 0, want: { framing: F.None, deChunk: true, keepClient: false, connection: 'close' } },
  { name: 'close-delimited body: client closed too', status: 200, info: info(BodyKind.UntilClose), want: { framing: F.None, keepClient: false, connection: 'close' } },
  { name: '101: upgrade, no Connection field of ours', status: 101, info: info(BodyKind.Tunnel), want: { framing: F.Upgrade, keepClient: false, connection: null } },
  { name: 'HTTP/1.0 keep-alive client: says so', status: 200, info: info(BodyKind.Length, { contentLength: 1 }), minor: 0, want: { keepClient: true, connection: 'keep-alive' } },
  { name: 'client asked to close', status: 200, info: info(BodyKind.Length, { contentLength: 1 }), keepAlive: false, want: { keepClient: false, connection: 'close' } },
  { name: 'answered before the request body was read: close', status: 413, info: info(BodyKind.Length, { contentLength: 1 }), bodyDone: false, want: { keepClient: false, connection: 'close' } },
  { name: 'HEAD answer keeps its declared length', status: 200, info: info(BodyKind.None, { declaredLength: 42 }), want: { framing: F.Length, contentLength: 42, keepClient: true } },
  { name: 'HEAD answer keeps chunked for 1.1', status: 200, info: info(BodyKind.None, { declaredChunked: true }), want: { framing: F.Chunked } },
  { name: 'HEAD answer: no chunked to a 1.0 client', status: 200, info: info(BodyKind.None, { declaredChunked: true }), minor: 0, want: { framing: F.None } },
  { name: '204 never declares a body', status: 204, info: info(BodyKind.None, { declaredLength: 10 }), want: { framing: F.None, contentLength: 0, keepClient: true } },
  { name: '304 keeps its declared length', status: 304, info: info(BodyKind.None, { declaredLength: 10 }), want: { framing: F.Length, contentLength: 10 } },
  { name: 'no body, nothing declared', status: 200, info: info(BodyKind.None), want: { framing: F.None, keepClient: true, connection: null } },
];

t.test('planClientResponse: decision table', async (t) => {
  // One plan object reused across rows, as the router does: every field is written every time.
  const plan: ClientResponsePlan = { framing: F.Upgrade, contentLength: 99, deChunk: true, keepClient: true, connection: 'keep-alive' };
  for (const r of rows) {
    planClientResponse(plan, r.status, r.info, r.minor ?? 1, r.keepAlive ?? true, r.bodyDone ?? true);
    const got: Partial<ClientResponsePlan> = {};
    for (const k of Object.keys(r.want) as Array<keyof ClientResponsePlan>) (got as Record<string, unknown>)[k] = plan[k];
    t.same(got, r.want, r.name);
  }
});
