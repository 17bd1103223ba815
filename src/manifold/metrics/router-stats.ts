/**
 * Each app's router traffic over the last hour in 10 s buckets (TrafficSource, for the dashboard),
 * fed one RequestSample per router request. Per request this is O(1) and allocates nothing once a
 * bucket exists: a bucket is one Uint32Array of counters (requests, status classes, H-codes and a
 * fixed log-spaced service-time histogram), so percentiles come from bins, never from stored samples.
 * Memory is bounded: at most 360 buckets per app (a ring: an hour-old bucket's array is reused), and
 * apps that are destroyed or idle for an hour are dropped (retain()).
 */
import { H_CODES, type HCode } from '../../router/errors';
import type { RequestSample, TrafficPoint, TrafficSource } from './types';

export const BUCKET_MS = 10_000;
export const WINDOW_MS = 60 * 60_000;
/** Buckets per app: one hour of 10 s buckets. */
export const MAX_BUCKETS = WINDOW_MS / BUCKET_MS;

/** Status classes by index: 0 = no status sent, 1..5 = 1xx..5xx. */
const CLASS_NAMES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const CODES = Object.keys(H_CODES) as HCode[];
const CODE_INDEX = new Map<string, number>(CODES.map((c, i) => [c, i]));

/**
 * Service-time bins: bin 0 is [0, 1) ms, bin i ≥ 1 is [2^((i-1)/4), 2^(i/4)) ms, the last one open
 * (2^20 ms ≈ 17 min, beyond any router timeout). Four bins per doubling: a percentile reported as its
 * bin's geometric middle is within 2^(1/8) - 1 ≈ 9 % of the true value.
 */
export const BINS = 82;
const BINS_PER_DOUBLING = 4;

// one bucket's counters, laid out in one array
const AT_REQUESTS = 0;
const AT_CLASS = 1;
const AT_CODE = AT_CLASS + CLASS_NAMES.length;
const AT_BIN = AT_CODE + CODES.length;
const WIDTH = AT_BIN + BINS;

export function binOf(ms: number): number {
  if (!(ms >= 1)) return 0; // also NaN and negatives (clock steps)
  const b = 1 + Math.floor(BINS_PER_DOUBLING * Math.log2(ms));
  return b < BINS ? b : BINS - 1;
}

/** The value a bin stands for: its geometric middle (0.5 ms for the first), to 0.01 ms. */
export function binValue(bin: number): number {
  const v = bin === 0 ? 0.5 : 2 ** ((bin - 0.5) / BINS_PER_DOUBLING);
  return Math.round(v * 100) / 100;
}

function classIndex(status: number | null): number {
  if (status === null || status < 100 || status > 599) return 0;
  return Math.floor(status / 100);
}

/** One app's ring of buckets: slot k holds bucket number `index[k]` (time / BUCKET_MS), or -1. */
class AppTraffic {
  readonly index = new Float64Array(MAX_BUCKETS).fill(-1);
  readonly counts: (Uint32Array | null)[] = new Array<Uint32Array | null>(MAX_BUCKETS).fill(null);
  /** The newest bucket number written. */
  newest = -1;

  bucket(n: number): Uint32Array {
    const slot = n % MAX_BUCKETS;
    let c = this.counts[slot];
    if (this.index[slot] !== n) {
      // first request of this bucket: the slot's previous bucket is an hour old (or never was)
      if (c === null) c = this.counts[slot] = new Uint32Array(WIDTH);
      else c.fill(0);
      this.index[slot] = n;
      if (n > this.newest) this.newest = n;
    }
    return c!;
  }
}

export interface RouterStatsOptions {
  /** ms since epoch; tests inject a clock. */
  now?: () => number;
}

export class RouterStats implements TrafficSource {
  readonly bucketMs = BUCKET_MS;
  private readonly apps = new Map<string, AppTraffic>();
  private readonly now: () => number;

  constructor(o: RouterStatsOptions = {}) {
    this.now = o.now ?? Date.now;
  }

  record(s: RequestSample): void {
    this.add(s.app, s);
  }

  /** record() without the app in the object: the daemon passes the router's own log entry, no copy. */
  add(app: string, s: Readonly<Omit<RequestSample, 'app'>>): void {
    let a = this.apps.get(app);
    if (a === undefined) this.apps.set(app, (a = new AppTraffic()));
    const c = a.bucket(Math.floor(this.now() / BUCKET_MS));
    c[AT_REQUESTS]++;
    c[AT_CLASS + classIndex(s.status)]++;
    if (s.code !== null) {
      const i = CODE_INDEX.get(s.code);
      if (i !== undefined) c[AT_CODE + i]++;
    }
    if (s.serviceMs !== null) c[AT_BIN + binOf(s.serviceMs)]++;
  }

  traffic(app: string): TrafficPoint[] {
    const a = this.apps.get(app);
    if (a === undefined) return [];
    const current = Math.floor(this.now() / BUCKET_MS);
    const out: TrafficPoint[] = [];
    // oldest first: bucket numbers current-359 … current map to consecutive ring slots
    for (let n = current - MAX_BUCKETS + 1; n <= current; n++) {
      const slot = ((n % MAX_BUCKETS) + MAX_BUCKETS) % MAX_BUCKETS;
      const c = a.counts[slot];
      if (c === null || a.index[slot] !== n) continue;
      out.push(pointOf(n * BUCKET_MS, c));
    }
    return out;
  }

  /** Apps with a bucket in the last hour. */
  appNames(): string[] {
    const oldest = Math.floor(this.now() / BUCKET_MS) - MAX_BUCKETS + 1;
    return [...this.apps].filter(([, a]) => a.newest >= oldest).map(([name]) => name);
  }

  forget(app: string): void {
    this.apps.delete(app);
  }

  /** Drops apps that `alive` says are gone (destroyed) and apps without a request for an hour. */
  retain(alive: (app: string) => boolean): void {
    const oldest = Math.floor(this.now() / BUCKET_MS) - MAX_BUCKETS + 1;
    for (const [name, a] of this.apps) if (a.newest < oldest || !alive(name)) this.apps.delete(name);
  }

  /** Bucket arrays held, all apps together (tests check the memory bound). */
  bucketsHeld(): number {
    let n = 0;
    for (const a of this.apps.values()) for (const c of a.counts) if (c !== null) n++;
    return n;
  }
}

function pointOf(t: number, c: Uint32Array): TrafficPoint {
  const byClass: Record<string, number> = { '2xx': c[AT_CLASS + 2], '3xx': c[AT_CLASS + 3], '4xx': c[AT_CLASS + 4], '5xx': c[AT_CLASS + 5] };
  if (c[AT_CLASS + 1] > 0) byClass['1xx'] = c[AT_CLASS + 1];
  if (c[AT_CLASS] > 0) byClass.none = c[AT_CLASS];
  const byCode: Record<string, number> = {};
  for (let i = 0; i < CODES.length; i++) if (c[AT_CODE + i] > 0) byCode[CODES[i]] = c[AT_CODE + i];
  let timed = 0;
  for (let b = 0; b < BINS; b++) timed += c[AT_BIN + b];
  return { t, requests: c[AT_REQUESTS], byClass, byCode, p50: percentile(c, timed, 0.5), p95: percentile(c, timed, 0.95), p99: percentile(c, timed, 0.99) };
}

/** Nearest-rank percentile over the bucket's bins; null without timed requests. */
function percentile(c: Uint32Array, timed: number, q: number): number | null {
  if (timed === 0) return null;
  const rank = Math.max(1, Math.ceil(q * timed));
  let seen = 0;
  for (let b = 0; b < BINS; b++) {
    seen += c[AT_BIN + b];
    if (seen >= rank) return binValue(b);
  }
  return binValue(BINS - 1);
}
