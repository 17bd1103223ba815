/**
 * Per-app log stream (docs/architecture.md#logs): lines `timestamp source[dyno]: message`, the last
 * 1500 kept, tail subscribers. Sources: `app` (dyno output), `manifold` (dyno manager and
 * router: `manifold[web.1]`, `manifold[router]`). Dyno output is split into lines, and lines
 * over 10 000 bytes into 10 000-byte chunks.
 */
export type LogSource = 'app' | 'manifold';

export interface LogLine {
  seq: number;
  /** RFC 5424 timestamp with microseconds, e.g. 2010-09-16T15:13:46.677020+00:00. */
  time: string;
  source: LogSource;
  dyno: string;
  message: string;
}

export const LOG_RING_SIZE = 1500;
export const LOG_CHUNK_BYTES = 10_000;

let lastMicros = 0;
/** Current time in microseconds, strictly increasing within this process so lines sort by time. */
function nowMicros(): number {
  const t = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  lastMicros = t > lastMicros ? t : lastMicros + 1;
  return lastMicros;
}

export function formatTimestamp(micros: number): string {
  const d = new Date(Math.floor(micros / 1000));
  const iso = d.toISOString(); // 2010-09-16T15:13:46.677Z
  const frac = String(micros % 1_000_000).padStart(6, '0');
  return `${iso.slice(0, 19)}.${frac}+00:00`;
}

export function formatLine(l: LogLine): string {
  return `${l.time} ${l.source}[${l.dyno}]: ${l.message}`;
}

/** Splits a message into chunks of at most `limit` UTF-8 bytes without cutting a character. */
export function splitChunks(message: string, limit = LOG_CHUNK_BYTES): string[] {
  const buf = Buffer.from(message, 'utf8');
  if (buf.length <= limit) return [message];
  const out: string[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = Math.min(start + limit, buf.length);
    // back off to a character boundary (never in the middle of a multi-byte sequence)
    while (end < buf.length && end > start && (buf[end]! & 0xc0) === 0x80) end--;
    out.push(buf.subarray(start, end).toString('utf8'));
    start = end;
  }
  return out;
}

export interface LogFilter {
  source?: string;
  dyno?: string;
}

export function matches(l: LogLine, f: LogFilter): boolean {
  if (f.source !== undefined && f.source !== '' && l.source !== f.source) return false;
  if (f.dyno !== undefined && f.dyno !== '') {
    // `--dyno web` matches web.1, web.2; `--dyno web.1` only web.1
    if (f.dyno.includes('.') ? l.dyno !== f.dyno : l.dyno.split('.')[0] !== f.dyno) return false;
  }
  return true;
}

export type LogListener = (line: LogLine) => void;

export class LogBuffer {
  private readonly ring: (LogLine | undefined)[];
  private next = 0;
  private count = 0;
  private seq = 0;
  private readonly listeners = new Set<LogListener>();

  constructor(readonly capacity = LOG_RING_SIZE) {
    this.ring = new Array<LogLine | undefined>(capacity);
  }

  /** Appends one message (split in chunks if long); returns the stored lines. */
  push(source: LogSource, dyno: string, message: string): LogLine[] {
    const out: LogLine[] = [];
    for (const chunk of splitChunks(message)) {
      const line: LogLine = { seq: ++this.seq, time: formatTimestamp(nowMicros()), source, dyno, message: chunk };
      this.ring[this.next] = line;
      this.next = (this.next + 1) % this.capacity;
      if (this.count < this.capacity) this.count++;
      out.push(line);
      for (const l of this.listeners) l(line);
    }
    return out;
  }

  /** The last `n` lines matching the filter, oldest first. */
  tail(n = 100, filter: LogFilter = {}): LogLine[] {
    const out: LogLine[] = [];
    for (let i = 0; i < this.count && out.length < n; i++) {
      const idx = (this.next - 1 - i + this.capacity * 2) % this.capacity;
      const l = this.ring[idx];
      if (l && matches(l, filter)) out.push(l);
    }
    return out.reverse();
  }

  get size(): number {
    return this.count;
  }

  subscribe(fn: LogListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/**
 * Turns a byte stream (a dyno's stdout/stderr pipe) into log messages: split on \n, strip \r,
 * emit chunks of at most 10 000 bytes even before a newline arrives, flush the rest at the end.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly emit: (line: string) => void, private readonly limit = LOG_CHUNK_BYTES) {}

  write(data: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl === -1) break;
      this.add(data.subarray(start, nl));
      this.flushLine();
      start = nl + 1;
    }
    if (start < data.length) this.add(data.subarray(start));
  }

  end(): void {
    if (this.pendingBytes > 0) this.flushLine();
  }

  private add(part: Buffer): void {
    this.pending.push(part);
    this.pendingBytes += part.length;
    while (this.pendingBytes > this.limit) {
      const all = Buffer.concat(this.pending);
      let cut = this.limit;
      while (cut > 0 && (all[cut]! & 0xc0) === 0x80) cut--;
      if (cut === 0) cut = this.limit;
      this.emit(all.subarray(0, cut).toString('utf8'));
      const rest = all.subarray(cut);
      this.pending = [rest];
      this.pendingBytes = rest.length;
    }
  }

  private flushLine(): void {
    let line = Buffer.concat(this.pending).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.pending = [];
    this.pendingBytes = 0;
    this.emit(line);
  }
}
