/**
 * A Clock the test advances by hand: timers fire in due order, and after each one the promise
 * chains it started run to the end (the supervisor reacts to exits and launches through promises),
 * so a day of supervision takes milliseconds.
 */
import type { Clock, Timer } from '../../../src/manifold/supervisor/clock';

interface Scheduled {
  id: number;
  at: number;
  fn: () => void;
  /** Repeating timers come back after this many ms. */
  period: number | undefined;
}

/** Lets every pending promise reaction (and the reactions they queue) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, Scheduled>();

  constructor(start = Date.UTC(2024, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.schedule(ms, fn, undefined);
  }

  every(ms: number, fn: () => void): Timer {
    return this.schedule(ms, fn, ms);
  }

  private schedule(ms: number, fn: () => void, period: number | undefined): Timer {
    const id = ++this.seq;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), fn, period });
    return { cancel: () => this.timers.delete(id) };
  }

  /** Moves time forward by `ms`, firing every timer due on the way (in due order, then creation order). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next: Scheduled | undefined;
      for (const s of this.timers.values()) if (s.at <= end && (!next || s.at < next.at || (s.at === next.at && s.id < next.id))) next = s;
      if (!next) break;
      this.t = next.at;
      if (next.period !== undefined) next.at += Math.max(1, next.period);
      else this.timers.delete(next.id);
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  /** Due times (ms from now) of the one-shot timers pending. */
  pendingDelays(): number[] {
    return [...this.timers.values()].filter((s) => s.period === undefined).map((s) => s.at - this.t).sort((a, b) => a - b);
  }
}
