/**
 * One `logs --tail` reader's path from the app's log stream to its socket, bounded: a reader that
 * stops reading (^Z, a stalled pipe) must not make the daemon buffer a log flood for it. As
 * Logplex does for a drain, at most LIMITS.lines lines (and LIMITS.bytes) wait for a slow reader;
 * past that, lines are dropped and counted, and when the reader catches up it gets one line
 * saying so (docs/architecture.md#logs):
 *   `… manifold[logplex]: Error L10 (output buffer overflow): N messages dropped since <time>.`
 */
import type { Writable } from 'node:stream';
import { formatTimestamp } from './log-buffer';

export interface TailLimits {
  lines: number;
  bytes: number;
}

/** Logplex keeps 1024 undelivered messages per drain; our lines are at most 10 000 bytes, so ≤ 10 MB a reader. */
export const TAIL_LIMITS: TailLimits = { lines: 1024, bytes: 4 * 1024 * 1024 };

export function l10Line(dropped: number, sinceMicros: number, nowMicros = Date.now() * 1000): string {
  return `${formatTimestamp(nowMicros)} manifold[logplex]: Error L10 (output buffer overflow): ${dropped} messages dropped since ${formatTimestamp(sinceMicros)}.`;
}

export class BoundedTail {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private droppedSince = 0;
  private waiting = false;
  /** Lines dropped over this reader's life (for tests and metrics). */
  droppedTotal = 0;

  /** encode: one formatted log line → the bytes the client reads (e.g. an NDJSON record). */
  constructor(
    private readonly sink: Writable,
    private readonly encode: (line: string) => string,
    private readonly limits: TailLimits = TAIL_LIMITS,
  ) {}

  /** Offers one formatted line: written now, queued, or dropped and counted. */
  offer(line: string): void {
    if (this.sink.destroyed) return;
    if (!this.waiting && this.queue.length === 0) {
      this.write(line);
      return;
    }
    const encoded = this.encode(line);
    if (this.queue.length >= this.limits.lines || this.queuedBytes + encoded.length > this.limits.bytes) {
      if (this.dropped === 0) this.droppedSince = Date.now() * 1000;
      this.dropped++;
      this.droppedTotal++;
      return;
    }
    this.queue.push(encoded);
    this.queuedBytes += encoded.length;
  }

  private write(line: string): void {
    this.send(this.encode(line));
  }

  private send(encoded: string): void {
    if (!this.sink.write(encoded) && !this.waiting) {
      this.waiting = true;
      this.sink.once('drain', () => {
        this.waiting = false;
        this.flush();
      });
    }
  }

  /** The socket took what it had: queued lines first (they are older), then the count of the dropped. */
  private flush(): void {
    while (this.queue.length > 0 && !this.waiting) {
      const next = this.queue.shift()!;
      this.queuedBytes -= next.length;
      this.send(next);
    }
    if (this.dropped > 0 && !this.waiting) {
      const n = this.dropped;
      this.dropped = 0;
      this.send(this.encode(l10Line(n, this.droppedSince)));
    }
  }
}
