/**
 * How a dyno's final response goes on to the client (pure; the connection layer acts on it):
 * which framing field the client's head carries, whether a chunked body is de-chunked for an
 * HTTP/1.0 client, and whether the client connection stays open afterwards.
 */
import { BodyKind, type ResponseInfo } from './framing';
import { ClientFraming } from './serialize';

export interface ClientResponsePlan {
  framing: ClientFraming;
  /** The Content-Length sent when framing is Length. */
  contentLength: number;
  /** Chunked from the dyno, close-delimited to an HTTP/1.0 client (vegur chunked_to_1_0). */
  deChunk: boolean;
  /** The client connection carries another request after this response. */
  keepClient: boolean;
  /** The Connection field of the client's head, if any. */
  connection: 'close' | 'keep-alive' | null;
}

/**
 * Fills `plan` (an out-parameter: a response costs no allocation for its plan).
 * - `clientMinor`: the request's HTTP minor version (0: HTTP/1.0 client).
 * - `clientKeepAlive`: the request allows keep-alive.
 * - `requestBodyDone`: the whole request body was read; if the dyno answered before, the rest of
 *   the body is still on the client connection, which can then only be closed.
 * Body-less responses (HEAD, 204, 304) keep the framing the dyno declared, as the RFC wants a HEAD
 * answer to describe the GET one; a 204 (and any 1xx) never carries one.
 */
export function planClientResponse(
  plan: ClientResponsePlan,
  status: number,
  info: ResponseInfo,
  clientMinor: number,
  clientKeepAlive: boolean,
  requestBodyDone: boolean,
): void {
  const client10 = clientMinor === 0;
  let framing = ClientFraming.None;
  let contentLength = 0;
  let deChunk = false;
  let mustClose = !clientKeepAlive;
  switch (info.bodyKind) {
    case BodyKind.Tunnel:
      framing = ClientFraming.Upgrade;
      break;
    case BodyKind.Length:
      framing = ClientFraming.Length;
      contentLength = info.contentLength;
      break;
    case BodyKind.Chunked:
      if (client10) {
        deChunk = true;
        mustClose = true;
      } else framing = ClientFraming.Chunked;
      break;
    case BodyKind.UntilClose:
      mustClose = true;
      break;
    case BodyKind.None:
      if (status >= 200 && status !== 204) {
        if (info.declaredLength >= 0) {
          framing = ClientFraming.Length;
          contentLength = info.declaredLength;
        } else if (info.declaredChunked && !client10) framing = ClientFraming.Chunked;
      }
      break;
  }
  if (!requestBodyDone) mustClose = true;
  const tunnel = info.bodyKind === BodyKind.Tunnel;
  const keepClient = !mustClose && !tunnel;
  plan.framing = framing;
  plan.contentLength = contentLength;
  plan.deChunk = deChunk;
  plan.keepClient = keepClient;
  plan.connection = tunnel ? null : !keepClient ? 'close' : client10 ? 'keep-alive' : null;
}
