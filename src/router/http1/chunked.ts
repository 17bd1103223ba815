/**
 * Streaming validator/decoder for the chunked transfer coding (RFC 9112 §7.1).
 *
 * The router forwards a chunked body to a chunked peer as the exact bytes it validated (so only a
 * body that passed this state machine ever leaves), and de-chunks it for HTTP/1.0 clients via the
 * `onData` sink. Strict: ≤ 13 hex digits, CRLF only, chunk extensions must be `token[=token|quoted]`,
 * trailers must be valid field lines and may not carry framing or routing fields.
 */
import { CR, FIELD_VALUE, HEX_VALUE, HTAB, LF, SP, TCHAR } from './chars';
import { ParseError } from './parse-errors';

const enum S {
  SizeStart,
  Size,
  SizeWs,
  ExtNameStart,
  ExtName,
  ExtAfterName,
  ExtValueStart,
  ExtToken,
  ExtQuoted,
  ExtQuotedEscape,
  ExtAfterValue,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerLineStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  FinalLf,
  Done,
}

export interface ChunkedLimits {
  /** Bytes of chunk extensions tolerated on one size line. */
  readonly maxExtensionBytes: number;
  /** Bytes of trailer section. */
  readonly maxTrailerBytes: number;
}

export const DEFAULT_CHUNKED_LIMITS: ChunkedLimits = { maxExtensionBytes: 4096, maxTrailerBytes: 64 * 1024 };

const MAX_SIZE_DIGITS = 13;
const FORBIDDEN_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host', 'trailer', 'connection', 'upgrade', 'expect']);

export type ChunkDataSink = (buf: Buffer, start: number, end: number) => void;

export class ChunkedDecoder {
  private state = S.SizeStart;
  private size = 0;
  private digits = 0;
  private remaining = 0;
  private extBytes = 0;
  private trailerBytes = 0;
  private trailerName = '';
  /** Total decoded payload bytes so far. */
  payloadBytes = 0;
  /** Trailer section bytes, raw (only kept when `keepTrailers`). */
  trailers: Buffer[] | null = null;

  constructor(
    readonly limits: ChunkedLimits = DEFAULT_CHUNKED_LIMITS,
    private readonly keepTrailers = false,
  ) {}

  get done(): boolean {
    return this.state === S.Done;
  }

  reset(): void {
    this.state = S.SizeStart;
    this.size = this.digits = this.remaining = this.extBytes = this.trailerBytes = this.payloadBytes = 0;
    this.trailerName = '';
    this.trailers = null;
  }

  /**
   * Consumes `buf[start..end)`. Returns the index just past the body when it completed, `end` when
   * it needs more, or a negated ParseError (BadChunk / BadTrailer). `onData` receives payload slices.
   */
  execute(buf: Buffer, start: number, end: number, onData: ChunkDataSink | null): number {
    let i = start;
    let state = this.state;
    let trailerStart = state >= S.TrailerLineStart && state <= S.FinalLf ? start : -1;
    while (i < end) {
      switch (state) {
        case S.Data: {
          const take = Math.min(this.remaining, end - i);
          if (onData !== null) onData(buf, i, i + take);
          this.payloadBytes += take;
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) state = S.DataCr;
          continue;
        }
        case S.SizeStart:
        case S.Size: {
          const b = buf[i]!;
          const h = HEX_VALUE[b]!;
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail(ParseError.BadChunk);
            this.size = this.size * 16 + h;
            state = S.Size;
          } else if (state === S.SizeStart) {
            return this.fail(ParseError.BadChunk);
          } else if (b === CR) state = S.SizeLf;
          else if (b === 0x3b) state = S.ExtNameStart;
          else if (b === SP || b === HTAB) state = S.SizeWs;
          else return this.fail(ParseError.BadChunk);
          break;
        }
        case S.SizeWs: {
          // BWS is only allowed before a chunk extension.
          const b = buf[i]!;
          if (b === 0x3b) state = S.ExtNameStart;
          else if (b !== SP && b !== HTAB) return this.fail(ParseError.BadChunk);
          break;
        }
        case S.ExtNameStart:
        case S.ExtName:
        case S.ExtAfterName:
        case S.ExtValueStart:
        case S.ExtToken:
        case S.ExtQuoted:
        case S.ExtQuotedEscape:
        case S.ExtAfterValue: {
          if (++this.extBytes > this.limits.maxExtensionBytes) return this.fail(ParseError.BadChunk);
          const next = extensionStep(state, buf[i]!);
          if (next < 0) return this.fail(ParseError.BadChunk);
          state = next as S;
          break;
        }
        case S.SizeLf:
          if (buf[i] !== LF) return this.fail(ParseError.BadChunk);
          if (this.size === 0) {
            state = S.TrailerLineStart;
            trailerStart = i + 1;
          } else {
            this.remaining = this.size;
            state = S.Data;
          }
          this.size = this.digits = this.extBytes = 0;
          break;
        case S.DataCr:
          if (buf[i] !== CR) return this.fail(ParseError.BadChunk);
          state = S.DataLf;
          break;
        case S.DataLf:
          if (buf[i] !== LF) return this.fail(ParseError.BadChunk);
          state = S.SizeStart;
          break;
        case S.TrailerLineStart: {
          const b = buf[i]!;
          if (b === CR) state = S.FinalLf;
          else if (TCHAR[b] === 1) {
            this.trailerName = String.fromCharCode(b >= 0x41 && b <= 0x5a ? b | 0x20 : b);
            state = S.TrailerName;
          } else return this.fail(ParseError.BadTrailer);
          break;
        }
        case S.TrailerName: {
          const b = buf[i]!;
          if (b === 0x3a) {
            if (FORBIDDEN_TRAILERS.has(this.trailerName)) return this.fail(ParseError.BadTrailer);
            state = S.TrailerValue;
          } else if (TCHAR[b] === 1 && this.trailerName.length < 256) this.trailerName += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b | 0x20 : b);
          else return this.fail(ParseError.BadTrailer);
          break;
        }
        case S.TrailerValue: {
          const b = buf[i]!;
          if (b === CR) state = S.TrailerLf;
          else if (FIELD_VALUE[b] !== 1) return this.fail(ParseError.BadTrailer);
          break;
        }
        case S.TrailerLf:
          if (buf[i] !== LF) return this.fail(ParseError.BadTrailer);
          state = S.TrailerLineStart;
          break;
        case S.FinalLf:
          if (buf[i] !== LF) return this.fail(ParseError.BadTrailer);
          i++;
          this.countTrailer(buf, trailerStart, i);
          this.state = S.Done;
          return i;
        case S.Done:
          return i;
      }
      i++;
      if (state >= S.TrailerLineStart && state <= S.FinalLf && ++this.trailerBytes > this.limits.maxTrailerBytes) {
        return this.fail(ParseError.BadTrailer);
      }
    }
    if (trailerStart >= 0) this.countTrailer(buf, trailerStart, end);
    this.state = state;
    return end;
  }

  private countTrailer(buf: Buffer, start: number, end: number): void {
    if (!this.keepTrailers) return;
    (this.trailers ??= []).push(Buffer.from(buf.subarray(start, end)));
  }

  private fail(code: ParseError): number {
    this.state = S.Done;
    return -code;
  }
}

/** What may follow an extension name or value: BWS, "=" (after a name only), ";" or CR. */
function afterExtensionPart(b: number, allowValue: boolean, sameState: S): S | -1 {
  if (b === SP || b === HTAB) return sameState;
  if (allowValue && b === 0x3d) return S.ExtValueStart;
  if (b === 0x3b) return S.ExtNameStart;
  if (b === CR) return S.SizeLf;
  return -1;
}

/** qdtext / quoted-pair octet: HTAB / SP / VCHAR / obs-text ('"' and '\\' handled by the caller). */
const isQuotedText = (b: number): boolean => b === HTAB || b === SP || (b >= 0x21 && b <= 0x7e) || b >= 0x80;

/** chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ) */
function extensionStep(state: S, b: number): S | -1 {
  switch (state) {
    case S.ExtNameStart:
      if (b === SP || b === HTAB) return S.ExtNameStart;
      return TCHAR[b] === 1 ? S.ExtName : -1;
    case S.ExtName:
      return TCHAR[b] === 1 ? S.ExtName : afterExtensionPart(b, true, S.ExtAfterName);
    case S.ExtAfterName:
      return afterExtensionPart(b, true, S.ExtAfterName);
    case S.ExtValueStart:
      if (b === SP || b === HTAB) return S.ExtValueStart;
      if (b === 0x22) return S.ExtQuoted;
      return TCHAR[b] === 1 ? S.ExtToken : -1;
    case S.ExtToken:
      return TCHAR[b] === 1 ? S.ExtToken : afterExtensionPart(b, false, S.ExtAfterValue);
    case S.ExtAfterValue:
      return afterExtensionPart(b, false, S.ExtAfterValue);
    case S.ExtQuoted:
      if (b === 0x22) return S.ExtAfterValue;
      if (b === 0x5c) return S.ExtQuotedEscape;
      return isQuotedText(b) && b !== 0x22 && b !== 0x5c ? S.ExtQuoted : -1;
    case S.ExtQuotedEscape:
      return isQuotedText(b) ? S.ExtQuoted : -1;
    default:
      return -1;
  }
}

/** Pre-encoded pieces for emitting chunked framing. */
export const CRLF = Buffer.from('\r\n', 'latin1');
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/** `<hex>\r\n` for a chunk of `size` bytes. */
export function chunkHeader(size: number): Buffer {
  return Buffer.from(`${size.toString(16)}\r\n`, 'latin1');
}
