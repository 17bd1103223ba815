/**
 * Incremental, strict HTTP/1.1 head parser (RFC 9112 §2–§5) for requests and responses.
 *
 * Pure: no I/O, no exceptions. It works line by line: each call parses every complete line it has
 * not seen yet and remembers where it stopped, so a head that trickles in byte by byte costs
 * O(head) overall rather than O(head²). Fields are recorded as byte ranges relative to the head's
 * first byte; only the start line becomes strings.
 */
import { COLON, CR, FIELD_VALUE, HTAB, LF, REASON, SP, TARGET, TCHAR } from './chars';
import { classifyFieldName, FieldKind } from './fields';
import { ParseError } from './parse-errors';

export interface HeadLimits {
  /** Longest request line / status line, without CRLF. */
  readonly maxStartLine: number;
  readonly maxNameLength: number;
  /** Longest field value (request: 8192; response: Heroku's 512 KiB header line). */
  readonly maxValueLength: number;
  /** Longest Set-Cookie value (responses; Heroku 8192). */
  readonly maxCookieLength: number;
  readonly maxHeaders: number;
  /** Whole head, start line to final CRLF. */
  readonly maxHeadBytes: number;
  /** Empty lines tolerated before a request line (RFC 9112 §2.2). */
  readonly maxEmptyLines: number;
}

export const DEFAULT_REQUEST_LIMITS: HeadLimits = {
  maxStartLine: 8192,
  maxNameLength: 1000,
  maxValueLength: 8192,
  maxCookieLength: Infinity,
  maxHeaders: 1000,
  // Heroku allows 1000 lines of 8 KiB each, but a connection holds its unfinished head in memory
  // until it completes or times out (60 s): 64 KiB bounds that (nginx: 4 × 8 KiB, Node: 16 KiB),
  // with room for the single 8 KiB lines. Beyond it: 431, the head is not buffered further.
  maxHeadBytes: 64 * 1024,
  maxEmptyLines: 5,
};

export const DEFAULT_RESPONSE_LIMITS: HeadLimits = {
  maxStartLine: 8192,
  maxNameLength: 1000,
  maxValueLength: 512 * 1024,
  maxCookieLength: 8192,
  maxHeaders: 1000,
  maxHeadBytes: 2 << 20,
  maxEmptyLines: 0,
};

/** Layout of one field in `MessageHead.fields` (flat number array, stride FIELD_STRIDE). */
export const F_KIND = 0;
export const F_NAME_START = 1;
export const F_NAME_END = 2;
export const F_VALUE_START = 3;
export const F_VALUE_END = 4;
export const F_LINE_START = 5;
export const F_LINE_END = 6;
export const FIELD_STRIDE = 7;

const EMPTY = Buffer.alloc(0);

/** A parsed head. Offsets in `fields` are relative to `base` within `buf`. */
export class MessageHead {
  buf: Buffer = EMPTY;
  base = 0;
  /** Bytes of the head including the final empty line. */
  length = 0;
  versionMinor = 1;
  method = '';
  /** Request target exactly as received. */
  target = '';
  status = 0;
  /** Offset just past the start line's CRLF. */
  startLineEnd = 0;
  fields: number[] = [];
  fieldCount = 0;

  constructor(readonly isRequest: boolean) {}

  /** Field i's name as written (case preserved). */
  name(i: number): string {
    const f = i * FIELD_STRIDE;
    return this.buf.toString('latin1', this.base + this.fields[f + F_NAME_START]!, this.base + this.fields[f + F_NAME_END]!);
  }

  /** Field i's value with surrounding OWS removed. */
  value(i: number): string {
    const f = i * FIELD_STRIDE;
    return this.buf.toString('latin1', this.base + this.fields[f + F_VALUE_START]!, this.base + this.fields[f + F_VALUE_END]!);
  }

  kind(i: number): FieldKind {
    return this.fields[i * FIELD_STRIDE + F_KIND]!;
  }

  /** [name, value] pairs, for tests and diagnostics (allocates). */
  headerList(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i < this.fieldCount; i++) out.push([this.name(i), this.value(i)]);
    return out;
  }
}

/** Result codes of HeadParser.execute beyond "complete": */
export const NEED_MORE = 0;

export class HeadParser {
  head: MessageHead;
  /** Start of the first line not yet parsed, relative to base. */
  private pos = 0;
  private emptyLines = 0;
  private sawStartLine = false;

  constructor(
    readonly isRequest: boolean,
    readonly limits: HeadLimits,
  ) {
    this.head = new MessageHead(isRequest);
  }

  /** Forget any partial head; the next execute() starts a new message. */
  reset(): void {
    this.head = new MessageHead(this.isRequest);
    this.pos = 0;
    this.emptyLines = 0;
    this.sawStartLine = false;
  }

  /**
   * Parses `buf[base..buf.length)`, which must hold the head from its first byte (pass the same
   * bytes again plus whatever arrived since, after NEED_MORE). Returns the head's length (> 0) when
   * complete, NEED_MORE (0), or a negated ParseError.
   */
  execute(buf: Buffer, base: number): number {
    const limits = this.limits;
    const end = buf.length;
    const head = this.head;
    let pos = this.pos;
    for (;;) {
      const lineStart = base + pos;
      const lf = lineStart < end ? buf.indexOf(LF, lineStart) : -1;
      if (lf < 0) {
        // Incomplete line: enforce limits now so an endless line cannot grow without bound.
        const partial = end - lineStart;
        if (!this.sawStartLine) {
          if (partial > limits.maxStartLine + 1) return -(this.isRequest ? ParseError.RequestLineTooLong : ParseError.StatusLineTooLong);
        } else if (partial > limits.maxNameLength + limits.maxValueLength + 64) {
          return -(this.isRequest ? ParseError.HeaderLineTooLong : ParseError.ResponseHeaderTooLong);
        }
        if (end - base > limits.maxHeadBytes) return -ParseError.HeadTooLarge;
        this.pos = pos;
        return NEED_MORE;
      }
      if (lf === lineStart || buf[lf - 1] !== CR) return -ParseError.BareLF;
      const lineEnd = lf - 1; // exclusive, at the CR
      const next = lf + 1 - base;
      if (next > limits.maxHeadBytes) return -ParseError.HeadTooLarge;

      if (!this.sawStartLine) {
        if (lineEnd === lineStart) {
          if (++this.emptyLines > limits.maxEmptyLines) return this.isRequest ? -ParseError.EmptyLinesBeforeRequest : -ParseError.InvalidStatusLine;
          pos = next;
          continue;
        }
        const err = this.isRequest ? this.parseRequestLine(buf, lineStart, lineEnd) : this.parseStatusLine(buf, lineStart, lineEnd);
        if (err !== ParseError.None) return -err;
        this.sawStartLine = true;
        head.startLineEnd = next;
        pos = next;
        continue;
      }

      if (lineEnd === lineStart) {
        // Empty line: the head is complete.
        head.buf = buf;
        head.base = base;
        head.length = next;
        this.pos = next;
        return next;
      }
      const err = this.parseFieldLine(buf, base, lineStart, lineEnd, next);
      if (err !== ParseError.None) return -err;
      pos = next;
    }
  }

  private parseRequestLine(buf: Buffer, start: number, end: number): ParseError {
    if (end - start > this.limits.maxStartLine) return ParseError.RequestLineTooLong;
    let i = start;
    while (i < end && TCHAR[buf[i]!] === 1) i++;
    if (i === start || i >= end || buf[i] !== SP) return i < end && buf[i] === CR ? ParseError.BareCR : ParseError.InvalidMethod;
    const methodEnd = i;
    i++;
    const targetStart = i;
    while (i < end && TARGET[buf[i]!] === 1) i++;
    if (i === targetStart || i >= end || buf[i] !== SP) return i < end && buf[i] === CR ? ParseError.BareCR : ParseError.InvalidTarget;
    const targetEnd = i;
    i++;
    const versionErr = parseVersion(buf, i, end, this.head);
    if (versionErr !== ParseError.None) return versionErr;
    if (end - i !== 8) return ParseError.InvalidVersion;
    const method = buf.toString('latin1', start, methodEnd);
    if (method === 'CONNECT') return ParseError.ConnectMethod;
    this.head.method = method;
    this.head.target = buf.toString('latin1', targetStart, targetEnd);
    return ParseError.None;
  }

  private parseStatusLine(buf: Buffer, start: number, end: number): ParseError {
    if (end - start > this.limits.maxStartLine) return ParseError.StatusLineTooLong;
    const versionErr = parseVersion(buf, start, end, this.head);
    if (versionErr !== ParseError.None) return ParseError.InvalidStatusLine;
    let i = start + 8;
    if (i >= end || buf[i] !== SP) return ParseError.InvalidStatusLine;
    i++;
    let status = 0;
    for (let d = 0; d < 3; d++, i++) {
      const c = buf[i]!;
      if (i >= end || c < 0x30 || c > 0x39) return ParseError.InvalidStatusLine;
      status = status * 10 + (c - 0x30);
    }
    if (status < 100) return ParseError.InvalidStatusLine;
    // Reason phrase is optional (vegur accepts "HTTP/1.1 421\r\n"); if present it follows one SP.
    if (i < end) {
      if (buf[i] !== SP) return ParseError.InvalidStatusLine;
      for (i++; i < end; i++) if (REASON[buf[i]!] !== 1) return buf[i] === CR ? ParseError.BareCR : ParseError.InvalidStatusLine;
    }
    this.head.status = status;
    return ParseError.None;
  }

  private parseFieldLine(buf: Buffer, base: number, start: number, end: number, next: number): ParseError {
    const head = this.head;
    const limits = this.limits;
    const first = buf[start]!;
    if (first === SP || first === HTAB) return head.fieldCount === 0 ? ParseError.LeadingWhitespace : ParseError.ObsFold;
    let i = start;
    while (i < end && TCHAR[buf[i]!] === 1) i++;
    const nameEnd = i;
    if (i >= end) return nameEnd === start ? ParseError.InvalidHeaderName : ParseError.MissingColon;
    const c = buf[i]!;
    if (c !== COLON) {
      if (c === SP || c === HTAB) return ParseError.SpaceBeforeColon;
      if (c === CR) return ParseError.BareCR;
      return ParseError.InvalidHeaderName;
    }
    if (nameEnd === start) return ParseError.InvalidHeaderName;
    if (nameEnd - start > limits.maxNameLength) return this.isRequest ? ParseError.HeaderNameTooLong : ParseError.ResponseHeaderTooLong;
    i++;
    while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
    const valueStart = i;
    let valueEnd = i;
    for (; i < end; i++) {
      const b = buf[i]!;
      if (FIELD_VALUE[b] !== 1) return b === CR ? ParseError.BareCR : ParseError.InvalidHeaderValue;
      if (b !== SP && b !== HTAB) valueEnd = i + 1;
    }
    const kind = classifyFieldName(buf, start, nameEnd);
    const valueLength = valueEnd - valueStart;
    if (valueLength > limits.maxValueLength) return this.isRequest ? ParseError.HeaderLineTooLong : ParseError.ResponseHeaderTooLong;
    if (kind === FieldKind.SetCookie && valueLength > limits.maxCookieLength) return ParseError.CookieTooLong;
    if (head.fieldCount >= limits.maxHeaders) return this.isRequest ? ParseError.TooManyHeaders : ParseError.ResponseHeaderTooLong;
    head.fields.push(kind, start - base, nameEnd - base, valueStart - base, valueEnd - base, start - base, next);
    head.fieldCount++;
    return ParseError.None;
  }
}

/**
 * Checks `HTTP/1.d` at `i`. A minor version above 1 is read as 1.1 (RFC 9110 §2.5: a recipient
 * processes a higher minor version of a major version it implements as its highest one; we answer
 * and forward as HTTP/1.1 in any case). Another major → UnsupportedVersion (505).
 */
function parseVersion(buf: Buffer, i: number, end: number, head: MessageHead): ParseError {
  if (end - i < 8) return ParseError.InvalidVersion;
  if (buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 || buf[i + 4] !== 0x2f || buf[i + 6] !== 0x2e) {
    return ParseError.InvalidVersion;
  }
  const major = buf[i + 5]! - 0x30;
  const minor = buf[i + 7]! - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return ParseError.InvalidVersion;
  if (major !== 1) return ParseError.UnsupportedVersion;
  head.versionMinor = minor > 1 ? 1 : minor;
  return ParseError.None;
}
