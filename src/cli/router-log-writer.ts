/**
 * Router log lines to a file descriptor (stdout), one write(2) per event-loop turn.
 *
 * Why not `process.stdout.write(batch)`: each line would stay alive as part of a per-turn string
 * (a rope of every line of the turn) until the turn's flush, and the stream keeps its own chunk
 * objects. Under load a scavenge that lands mid-turn copies all of that, and what survives two is
 * promoted; the old generation then grows with log text and its marking makes the router's longest
 * pauses (BENCHMARKS.md, "where the half-load p99 tail comes from"). Here each line is copied into
 * one preallocated buffer the moment it is emitted, so the line's string dies young, and the buffer
 * goes out with one synchronous write when the turn ends (or when it fills).
 *
 * The ISO timestamp prefix is formatted once per millisecond.
 */
import fs from 'node:fs';

const BUFFER_BYTES = 256 * 1024;
/** Router lines are a few hundred characters; a longer one (a long path) is written on its own. */
const LONGEST_LINE_CHARS = 8 * 1024;
/** Room a line may need: its characters are latin1, at most 2 bytes each in UTF-8, plus prefix and newline. */
const LINE_ROOM_BYTES = 2 * LONGEST_LINE_CHARS + 128;
const pause = new Int32Array(new SharedArrayBuffer(4));

export class RouterLogWriter {
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  private scheduled = false;
  private stampMs = -1;
  private stamp = '';
  private readonly flushBound = (): void => this.flush();

  constructor(
    private readonly fd: number,
    private readonly prefix: boolean,
  ) {}

  /** `now`: when the router emitted the line (a worker's line arrives a little later). */
  push(line: string, now: number): void {
    if (this.used > BUFFER_BYTES - LINE_ROOM_BYTES) this.flush();
    if (this.prefix) {
      if (now !== this.stampMs) {
        this.stampMs = now;
        this.stamp = new Date(now).toISOString() + ' heroku[router]: ';
      }
      this.used += this.buf.write(this.stamp, this.used, 'latin1');
    }
    if (line.length <= LONGEST_LINE_CHARS) {
      // UTF-8, as process.stdout wrote it: a path may carry obs-text the parser accepted (latin1 characters).
      this.used += this.buf.write(line, this.used, 'utf8');
      this.buf[this.used++] = 0x0a;
    } else {
      this.flush();
      this.writeAll(Buffer.from(line + '\n', 'utf8'));
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Writes what is buffered now (also called at exit). */
  flush(): void {
    this.scheduled = false;
    if (this.used === 0) return;
    const n = this.used;
    this.used = 0;
    this.writeAll(this.buf.subarray(0, n));
  }

  /**
   * A blocking write of all of `data`. stdout may be a non-blocking pipe whose reader is slow: then
   * the rest waits for the pipe (as a log line must not be dropped or reordered) by polling it.
   */
  private writeAll(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      try {
        off += fs.writeSync(this.fd, data, off, data.length - off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        Atomics.wait(pause, 0, 0, 1);
      }
    }
  }
}
