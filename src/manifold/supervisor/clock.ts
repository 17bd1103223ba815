/**
 * Time as the supervisor sees it. Every timer of the dyno manager (restart cool-off, R10 boot
 * timeout, daily cycling, R14 cadence, drain fallback) goes through a Clock, so tests can run a
 * day of supervision in milliseconds with a clock they advance by hand.
 */

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** ms since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms`. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` every `ms`; such a timer never keeps the process alive by itself. */
  every(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
