/**
 * A request body on its way to the dyno (mux_h1's request half): where it ends (BodyFraming, the
 * client connection's, reset per request) and its bytes written to the dyno socket as they arrive.
 * Made only for requests that have a body; a bodiless request is complete with its head.
 */
import type { BodyFraming } from '../http1/body-framing';
import type { BodyKind } from '../http1/framing';

/** Where the body goes (the dyno socket). */
export interface BodySink {
  write(data: Buffer): boolean;
}

export class RequestBody {
  /** The sink refused more (write returned false): the client should pause until it drains. */
  blocked = false;

  constructor(
    private readonly framing: BodyFraming,
    kind: BodyKind,
    contentLength: number,
  ) {
    framing.begin(kind, contentLength);
  }

  get done(): boolean {
    return this.framing.done;
  }

  /**
   * Forwards the body bytes in `buf[off..]` to `sink` (bytes after the body's end are not
   * touched). Returns the offset after them, or a negated ParseError when chunked framing breaks.
   */
  forward(buf: Buffer, off: number, sink: BodySink): number {
    const next = this.framing.take(buf, off, null);
    if (next < 0) return next;
    if (next > off) this.blocked = !sink.write(off === 0 && next === buf.length ? buf : buf.subarray(off, next));
    return next;
  }
}
