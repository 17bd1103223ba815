/**
 * PrometheusMetrics without a daemon: a Supervisor on a fake clock and fake dynos (the R-errors a
 * real daemon can't be made to raise in a test's time: R12, R14, R15), a fake memory source, and
 * requests fed directly. Scrapes are parsed with parse-prometheus-text-format.
 */
import t from 'tap';
import { PrometheusMetrics } from '../../src/manifold/metrics/prometheus';
import type { DynoMetrics, DynoMetricsSource } from '../../src/manifold/metrics/types';
import { APP, harness } from './helpers/supervisor-harness';

interface Family {
  name: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}
const parseText = require('parse-prometheus-text-format') as (text: string) => Family[];

const MB = 1024 * 1024;

/** Parsed, with histogram families untyped so their `_bucket`/`_count` series keep their labels (see prometheus.test.ts). */
async function scrape(m: PrometheusMetrics): Promise<Family[]> {
  const text = await m.metrics();
  return parseText(text.split('\n').filter((l) => !/^# TYPE \S+ histogram$/.test(l)).join('\n'));
}

function value(fs: Family[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  // untyped, a histogram's series of several apps come out as one family per run of lines: several of one name
  for (const m of fs.filter((f) => f.name === name).flatMap((f) => f.metrics)) if (Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)) sum += Number(m.value);
  return sum;
}

function seriesOf(fs: Family[]): Set<string> {
  const out = new Set<string>();
  for (const f of fs) if (f.name.startsWith('manifold_')) for (const m of f.metrics) out.add(`${f.name}${JSON.stringify(Object.entries(m.labels ?? {}).sort())}`);
  return out;
}

t.test('supervisor events: crashes, restarts and R10/R12/R14/R15 by type and reason', async (t) => {
  const h = harness({
    formation: [
      { type: 'web', quantity: 1, size: 'standard-1x' },
      { type: 'worker', quantity: 1, size: 'standard-1x' },
    ],
    settings: { memoryQuota: 100 * MB },
    policy: { bootTimeoutMs: 1000, stopGraceMs: 3000 },
  });
  const m = new PrometheusMetrics({ dynos: h.supervisor, version: 'test', alive: (app) => h.supervisor.has(app) });
  const fed = (): void => {
    for (const e of h.events.splice(0)) m.event(e);
  };
  await h.clock.advance(0);
  fed();
  let s = await scrape(m);
  t.equal(value(s, 'manifold_dynos', { app: APP, type: 'worker', state: 'up' }), 1);
  t.equal(value(s, 'manifold_dynos', { app: APP, type: 'web', state: 'starting' }), 1);
  t.equal(value(s, 'manifold_boot_queue_dynos', { app: APP }), 1, 'web.1 is booting');

  // web.1 never binds $PORT: R10, a crash for R10
  await h.clock.advance(1000);
  await h.clock.advance(500);
  fed();
  s = await scrape(m);
  t.equal(value(s, 'manifold_dyno_errors_total', { app: APP, type: 'web', code: 'R10' }), 1);
  t.equal(value(s, 'manifold_dyno_crashes_total', { app: APP, type: 'web', reason: 'R10' }), 1);

  // worker.1 over quota: R14 (the dyno keeps running); then the OOM kill: R15 and a crash for R15
  const worker = h.launcher.latest('worker.1');
  worker.usage = { current: 150 * MB, rss: 140 * MB, cache: 10 * MB, swap: 0 };
  worker.memoryEvent('high');
  await h.clock.advance(0);
  worker.memoryEvent('oom_kill');
  await h.clock.advance(500);
  fed();
  s = await scrape(m);
  t.equal(value(s, 'manifold_dyno_errors_total', { app: APP, type: 'worker', code: 'R14' }), 1);
  t.equal(value(s, 'manifold_dyno_errors_total', { app: APP, type: 'worker', code: 'R15' }), 1);
  t.equal(value(s, 'manifold_dyno_crashes_total', { app: APP, type: 'worker', reason: 'R15' }), 1);

  // the crash cool-off ends: both are started again, counted as restarts after a crash
  await h.clock.advance(25 * 60_000);
  fed();
  s = await scrape(m);
  t.equal(value(s, 'manifold_dyno_restarts_total', { app: APP, type: 'worker', reason: 'crash' }), 1);
  t.ok(value(s, 'manifold_dyno_restarts_total', { app: APP, type: 'web', reason: 'crash' }) >= 1, 'web restarted after its crash');

  // ps:restart of a worker that ignores its stop signal: a restart, and R12 at the end of the grace
  h.launcher.stubborn.add('worker.1');
  h.supervisor.restart(APP, 'worker');
  await h.clock.advance(3000);
  await h.clock.advance(500);
  fed();
  s = await scrape(m);
  t.equal(value(s, 'manifold_dyno_restarts_total', { app: APP, type: 'worker', reason: 'restart' }), 1);
  t.equal(value(s, 'manifold_dyno_errors_total', { app: APP, type: 'worker', code: 'R12' }), 1);

  // the worker exits by itself: a crash for 'exit'
  h.launcher.stubborn.delete('worker.1');
  h.launcher.latest('worker.1').exit(1);
  await h.clock.advance(500);
  fed();
  s = await scrape(m);
  t.equal(value(s, 'manifold_dyno_crashes_total', { app: APP, type: 'worker', reason: 'exit' }), 1);

  const reasons = new Set((s.find((f) => f.name === 'manifold_dyno_crashes_total')?.metrics ?? []).map((x) => x.labels!.reason));
  t.ok([...reasons].every((r) => ['R10', 'R15', 'signal', 'exit', 'start-failed'].includes(r!)), `crash reasons from the fixed set: ${[...reasons].join(', ')}`);

  // the app is destroyed: its series leave at the next scrape
  t.ok([...seriesOf(s)].some((x) => x.includes(`"${APP}"`)), 'the app has series');
  const removed = h.supervisor.removeApp(APP);
  await h.clock.advance(60_000);
  await removed;
  fed();
  t.same([...seriesOf(await scrape(m))].filter((x) => x.includes(`"${APP}"`)), [], 'no series of a destroyed app');
  await h.supervisor.shutdown();
});

t.test('memory per dyno from the sampler, read at scrape time; absent without one', async (t) => {
  const dynos: DynoMetrics[] = [
    {
      app: 'a', dyno: 'web.1', id: 'd1', quota: 512 * MB, source: 'cgroup', load: null,
      memory: [
        { t: 1, total: 100 * MB, rss: 80 * MB, cache: 15 * MB, swap: 5 * MB },
        { t: 2, total: 200 * MB, rss: 150 * MB, cache: 40 * MB, swap: 10 * MB },
      ],
    },
    { app: 'a', dyno: 'worker.2', id: 'd2', quota: 1024 * MB, source: 'proc', load: null, memory: [] },
  ];
  const source: DynoMetricsSource = { dynos: () => dynos };
  let present = true;
  const m = new PrometheusMetrics({ dynos: { appNames: () => [], status: () => [] }, version: 'test', memory: () => (present ? source : undefined) });
  let s = await scrape(m);
  t.equal(value(s, 'manifold_dyno_memory_bytes', { app: 'a', type: 'web', dyno: 'web.1' }), 200 * MB, 'the latest sample');
  t.equal(value(s, 'manifold_dyno_memory_rss_bytes', { dyno: 'web.1' }), 150 * MB);
  t.equal(value(s, 'manifold_dyno_memory_swap_bytes', { dyno: 'web.1' }), 10 * MB);
  t.equal(value(s, 'manifold_dyno_memory_cache_bytes', { dyno: 'web.1' }), 40 * MB);
  t.equal(value(s, 'manifold_dyno_memory_quota_bytes', { dyno: 'web.1' }), 512 * MB);
  t.equal(s.find((f) => f.name === 'manifold_dyno_memory_bytes')!.metrics.length, 1, 'a dyno without samples has no series');
  present = false;
  s = await scrape(m);
  t.equal(s.find((f) => f.name === 'manifold_dyno_memory_bytes')?.metrics.length ?? 0, 0, 'no sampler: no memory series');
});

t.test('requests: classes, codes, bytes, unrouted; series bounded whatever the traffic', async (t) => {
  const m = new PrometheusMetrics({ dynos: { appNames: () => [], status: () => [] }, version: 'test', routerLoad: () => ({ inFlight: new Map([['a', 3]]), queued: 2 }) });
  const codes = ['H12', 'H13', 'H27', null] as const;
  const statuses = [200, 201, 301, 404, 499, 503, null, 101];
  let i = 0;
  const feed = (n: number): void => {
    for (let k = 0; k < n; k++, i++) m.request(i % 3 === 0 ? 'b' : 'a', { status: statuses[i % statuses.length]!, code: codes[i % codes.length]!, serviceMs: i % 50, connectMs: 1, bytes: 100 });
  };
  feed(10_000);
  m.request(null, { status: 404, code: null, serviceMs: null, connectMs: null, bytes: null });
  m.request(null, { status: 400, code: 'H26', serviceMs: null, connectMs: null, bytes: null });
  let s = await scrape(m);
  const total = (['1xx', '2xx', '3xx', '4xx', '5xx', 'none'] as const).reduce((n, c) => n + value(s, 'manifold_router_requests_total', { status_class: c }), 0);
  t.equal(total, 10_000, 'every request in one class');
  t.equal(value(s, 'manifold_router_service_seconds_count'), 10_000);
  t.equal(value(s, 'manifold_router_response_bytes_total'), 10_000 * 100);
  t.equal(value(s, 'manifold_router_unrouted_requests_total', { status_class: '4xx', code: '' }), 1);
  t.equal(value(s, 'manifold_router_unrouted_requests_total', { status_class: '4xx', code: 'H26' }), 1);
  t.equal(value(s, 'manifold_router_in_flight_requests', { app: 'a' }), 3);
  t.equal(value(s, 'manifold_router_in_flight_requests', { app: 'b' }), 0, 'an app with traffic and none in flight shows 0');
  t.equal(value(s, 'manifold_router_boot_queue_requests'), 2);
  const before = seriesOf(s);
  feed(10_000);
  s = await scrape(m);
  t.same([...seriesOf(s)].filter((x) => !before.has(x)), [], 'the same traffic again adds no series');
  m.retain((app) => app !== 'b');
  s = await scrape(m);
  t.same([...seriesOf(s)].filter((x) => x.includes('"b"')), [], "a forgotten app's series are gone, histograms too");
});
