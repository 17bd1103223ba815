/** RouterStats (src/manifold/metrics/router-stats.ts): buckets, percentiles from bins, eviction, memory bound. Pure: an injected clock. */
import t from 'tap';
import { binOf, binValue, BINS, BUCKET_MS, MAX_BUCKETS, RouterStats, WINDOW_MS } from '../../src/manifold/metrics/router-stats';
import type { RequestSample } from '../../src/manifold/metrics/types';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // a bucket boundary

function clock(): { now: () => number; at: number } {
  const c = { at: T0, now: () => c.at };
  return c;
}

const ok = (app: string, serviceMs: number | null, status: number | null = 200, code: string | null = null): RequestSample => ({ app, status, code, serviceMs, connectMs: serviceMs === null ? null : 1, bytes: 10 });

t.test('one bucket: requests, status classes, H-codes', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  t.equal(s.bucketMs, 10_000);
  for (let i = 0; i < 5; i++) s.record(ok('a', 3));
  s.record(ok('a', 4, 404));
  s.record(ok('a', null, 503, 'H14'));
  s.record(ok('a', null, 503, 'H14'));
  s.record(ok('a', 9, 499, 'H27'));
  s.record(ok('a', 9, null)); // client gone before a status
  s.record(ok('a', 1, 101)); // websocket upgrade
  s.record(ok('b', 1));
  const pts = s.traffic('a');
  t.equal(pts.length, 1);
  const p = pts[0]!;
  t.equal(p.t, T0);
  t.equal(p.requests, 11);
  t.same(p.byClass, { '2xx': 5, '3xx': 0, '4xx': 2, '5xx': 2, '1xx': 1, none: 1 });
  t.same(p.byCode, { H14: 2, H27: 1 });
  t.equal(s.traffic('b')[0]!.requests, 1);
  t.same(s.traffic('nope'), []);
});

t.test('buckets are 10 s long, oldest first, and empty ones are absent', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  s.record(ok('a', 1));
  c.at += BUCKET_MS - 1; // same bucket
  s.record(ok('a', 1));
  c.at += 1; // next bucket
  s.record(ok('a', 1));
  c.at += 5 * BUCKET_MS; // four empty buckets in between
  s.record(ok('a', 1));
  const pts = s.traffic('a');
  t.same(pts.map((p) => [p.t - T0, p.requests]), [
    [0, 2],
    [BUCKET_MS, 1],
    [6 * BUCKET_MS, 1],
  ]);
});

t.test('bins: four per doubling, percentiles within 9 % of the true value', async (t) => {
  t.equal(binOf(0), 0);
  t.equal(binOf(0.99), 0);
  t.equal(binOf(-5), 0);
  t.equal(binOf(Number.NaN), 0);
  t.equal(binOf(1), 1);
  t.equal(binOf(2), 5);
  t.equal(binOf(1e12), BINS - 1);
  for (let b = 1; b < BINS - 1; b++) {
    const lo = 2 ** ((b - 1) / 4);
    const hi = 2 ** (b / 4);
    t.ok(binValue(b) >= lo * 0.999 && binValue(b) <= hi * 1.001, `bin ${b} value inside [${lo}, ${hi})`);
  }
  // 1..1000 ms once each: the true p50 is 500, p95 950, p99 990
  const c = clock();
  const s = new RouterStats({ now: c.now });
  for (let ms = 1; ms <= 1000; ms++) s.record(ok('a', ms));
  const p = s.traffic('a')[0]!;
  const near = (got: number | null, want: number): boolean => got !== null && Math.abs(got - want) / want <= 0.095;
  t.ok(near(p.p50, 500), `p50 ${p.p50} ≈ 500`);
  t.ok(near(p.p95, 950), `p95 ${p.p95} ≈ 950`);
  t.ok(near(p.p99, 990), `p99 ${p.p99} ≈ 990`);
});

t.test('percentiles of a skewed bucket: 98 fast, 2 slow', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  for (let i = 0; i < 98; i++) s.record(ok('a', 10));
  s.record(ok('a', 5000));
  s.record(ok('a', 5000));
  const p = s.traffic('a')[0]!;
  t.ok(Math.abs(p.p50! - 10) <= 1, `p50 ${p.p50} ≈ 10`);
  t.ok(Math.abs(p.p95! - 10) <= 1, `p95 ${p.p95} ≈ 10`);
  t.ok(Math.abs(p.p99! - 5000) / 5000 <= 0.095, `p99 ${p.p99} ≈ 5000`);
});

t.test('a bucket with only untimed requests (H-codes before a dyno) has null percentiles', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  s.record(ok('a', null, 503, 'H14'));
  const p = s.traffic('a')[0]!;
  t.equal(p.requests, 1);
  t.equal(p.p50, null);
  t.equal(p.p95, null);
  t.equal(p.p99, null);
});

t.test('an hour later buckets fall out; the ring never holds more than 360 per app', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  s.record(ok('a', 1));
  c.at += WINDOW_MS - BUCKET_MS; // still inside the hour: the first bucket is the oldest shown
  t.equal(s.traffic('a').length, 1);
  c.at += BUCKET_MS; // an hour after the first bucket started: it is gone
  t.same(s.traffic('a'), []);
  // two hours of traffic, a request every 10 s
  for (let i = 0; i < 2 * MAX_BUCKETS; i++) {
    s.record(ok('a', 1));
    s.record(ok('b', 1));
    c.at += BUCKET_MS;
  }
  c.at -= BUCKET_MS;
  const pts = s.traffic('a');
  t.equal(pts.length, MAX_BUCKETS);
  t.equal(pts[0]!.t, Math.floor(c.at / BUCKET_MS) * BUCKET_MS - WINDOW_MS + BUCKET_MS);
  t.ok(pts.every((p, i) => i === 0 || p.t === pts[i - 1]!.t + BUCKET_MS), 'consecutive buckets');
  t.ok(pts.every((p) => p.requests === 1), 'a reused slot starts from zero');
  t.equal(s.bucketsHeld(), 2 * MAX_BUCKETS, 'two apps, 360 buckets each');
});

t.test('retain drops destroyed apps and apps idle for an hour', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  s.record(ok('kept', 1));
  s.record(ok('destroyed', 1));
  s.record(ok('idle', 1));
  c.at += 30 * 60_000;
  s.record(ok('kept', 1));
  s.retain((app) => app !== 'destroyed');
  t.same(s.appNames().sort(), ['idle', 'kept']);
  c.at += 31 * 60_000; // idle's only bucket is over an hour old; kept's is 31 min old
  s.retain(() => true);
  t.same(s.appNames(), ['kept']);
  t.equal(s.bucketsHeld(), 2, "only kept's two buckets are held");
  s.forget('kept');
  t.equal(s.bucketsHeld(), 0);
});

t.test('per request: no allocation once the bucket exists (heap stays flat over 1M requests)', async (t) => {
  const c = clock();
  const s = new RouterStats({ now: c.now });
  const sample = ok('a', 12);
  s.record(sample);
  global.gc?.();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1_000_000; i++) s.record(sample);
  const grew = process.memoryUsage().heapUsed - before;
  t.ok(grew < 8 * 1024 * 1024, `heap grew ${grew} bytes over 1M requests`);
  t.equal(s.traffic('a')[0]!.requests, 1_000_001);
});
