/**
 * Where a message body ends, in the bytes that follow its head (pure; no I/O): a Content-Length
 * count, the chunked framing, or the connection's close. Used for request bodies (one per client
 * connection) and response bodies (one per dyno connection), reset at each message with begin():
 * a body costs no allocation, and a chunked decoder is made once per connection.
 */
import { ChunkedDecoder, type ChunkDataSink, type ChunkedLimits } from './chunked';
import { BodyKind } from './framing';

export class BodyFraming {
  private kind = BodyKind.None;
  private remaining = 0;
  private decoder: ChunkedDecoder | null = null;

  constructor(private readonly limits: ChunkedLimits) {}

  /** A new body of `kind` starts (`contentLength` is read for BodyKind.Length only). */
  begin(kind: BodyKind, contentLength: number): void {
    this.kind = kind;
    this.remaining = kind === BodyKind.Length ? contentLength : 0;
    if (kind === BodyKind.Chunked) {
      if (this.decoder === null) this.decoder = new ChunkedDecoder(this.limits);
      else this.decoder.reset();
    }
  }

  /** The whole body went by (never, for a close-delimited body or a tunnel). */
  get done(): boolean {
    switch (this.kind) {
      case BodyKind.None:
        return true;
      case BodyKind.Length:
        return this.remaining === 0;
      case BodyKind.Chunked:
        return this.decoder!.done;
      default:
        return false;
    }
  }

  /**
   * How far the body goes in `buf[off..]`: the index just past its bytes there (buf.length if it
   * goes on), or a negated ParseError when chunked framing is broken. A chunked body's payload
   * slices go to `sink` if given (de-chunking); framing bytes never do.
   */
  take(buf: Buffer, off: number, sink: ChunkDataSink | null): number {
    switch (this.kind) {
      case BodyKind.Length: {
        const n = Math.min(this.remaining, buf.length - off);
        this.remaining -= n;
        return off + n;
      }
      case BodyKind.Chunked:
        return this.decoder!.execute(buf, off, buf.length, sink);
      case BodyKind.None:
        return off;
      default:
        return buf.length;
    }
  }
}
