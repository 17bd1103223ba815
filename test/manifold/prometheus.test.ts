/**
 * Prometheus end to end, as root: a real daemon with `--metrics 127.0.0.1:0`, real dynos, real
 * requests through the router (two router workers, the default on a 2-core box, and one: the same
 * numbers either way). Scrapes are parsed with parse-prometheus-text-format, never string-matched.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { leakScope, leftoverCgroups, leftoverProcesses } from '../runtime/helpers/leaks';
import { get, ROOT, TestDaemon, waitFor, type PsJson } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

/** What parse-prometheus-text-format returns (it ships no types). */
interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
}
const parseText = require('parse-prometheus-text-format') as (text: string) => Family[];

/**
 * The parser folds a histogram family into one sample with `buckets`, `count` and `sum` and drops its
 * labels, so a histogram per app comes out as one unlabelled sample. Without their `# TYPE … histogram`
 * line its `_bucket`, `_sum` and `_count` series parse as three families with their labels (`le` too).
 */
function parseProm(text: string): Family[] {
  return parseText(text.split('\n').filter((l) => !/^# TYPE \S+ histogram$/.test(l)).join('\n'));
}

const HELLO = path.join(ROOT, 'examples/hello');
const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-prom-apps-'));

function httpGet(url: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

class Scrape {
  constructor(readonly families: Family[]) {}

  family(name: string): Family | undefined {
    return this.families.find((f) => f.name === name);
  }

  /** The value of the one sample of `name` whose labels include `labels`, summed over matches; 0 when none. */
  value(name: string, labels: Record<string, string> = {}): number {
    let sum = 0;
    // untyped, a histogram's series of several apps come out as one family per run of lines: several of one name
    for (const m of this.families.filter((f) => f.name === name).flatMap((f) => f.metrics)) if (matches(m.labels, labels)) sum += Number(m.value);
    return sum;
  }

  /** A histogram's `_count`, checked against its `+Inf` bucket. */
  histogramCount(name: string, labels: Record<string, string>): number {
    const count = this.value(`${name}_count`, labels);
    if (count !== this.value(`${name}_bucket`, { ...labels, le: '+Inf' })) throw new Error(`${name}: _count and the +Inf bucket differ`);
    return count;
  }

  /** Every sample as name + sorted labels: the series a Prometheus server would store. */
  series(): Set<string> {
    const out = new Set<string>();
    for (const f of this.families) for (const m of f.metrics) out.add(`${f.name}${JSON.stringify(Object.entries(m.labels ?? {}).sort())}`);
    return out;
  }
}

function matches(have: Record<string, string> | undefined, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => have?.[k] === v);
}

function metricsUrl(d: TestDaemon): string {
  const m = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(d.log);
  if (!m) throw new Error(`no metrics line in the daemon's log: ${d.log}`);
  return m[1]!;
}

async function scrape(d: TestDaemon): Promise<Scrape> {
  const r = await httpGet(metricsUrl(d));
  if (r.status !== 200) throw new Error(`scrape: ${r.status} ${r.body}`);
  return new Scrape(parseProm(r.body));
}

async function ps(d: TestDaemon, app: string): Promise<PsJson> {
  const r = await d.cli('ps', '-a', app, '--json');
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as PsJson;
}

async function webUp(d: TestDaemon, app: string, notPid?: number): Promise<PsJson['dynos'][number]> {
  return waitFor(`${app} web.1 up`, async () => (await ps(d, app)).dynos.find((x) => x.name === 'web.1' && x.state === 'up' && x.pid !== notPid), 20_000);
}

/** Waits for a scrape where `ok` holds (the router's per-request fields reach the daemon a turn after the answer). */
async function scrapeUntil(d: TestDaemon, what: string, ok: (s: Scrape) => boolean): Promise<Scrape> {
  let last: Scrape | undefined;
  try {
    return await waitFor(what, async () => {
      last = await scrape(d);
      return ok(last) ? last : undefined;
    }, 10_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last scrape:\n${JSON.stringify(last?.families.filter((f) => f.name.startsWith('manifold_')), null, 1)}`);
  }
}

function checkLeaks(t: Test, d: TestDaemon): void {
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
  t.same(leftoverProcesses(scope), [], 'no dyno processes left');
}

t.teardown(() => fs.rmSync(apps, { recursive: true, force: true }));

t.test('default router workers: requests, bounded labels, in-flight, H-codes, crashes, restarts, R10, destroy', async (t) => {
  const d = new TestDaemon(['--metrics', '127.0.0.1:0', '--boot-timeout', '2s', '--restart-delay', '1s', '--restart-max', '4s', '--stop-grace', '3s', '--drain', '5s']);
  t.teardown(async () => {
    await d.stop();
    d.cleanup();
  });
  await d.start();
  const url = metricsUrl(d);

  // the endpoint: /metrics only, GET and HEAD only
  t.equal((await httpGet(url.replace('/metrics', '/'))).status, 404);
  t.equal((await httpGet(url.replace('/metrics', '/other'))).status, 404);
  t.equal((await httpGet(url, 'POST')).status, 405);
  const head = await httpGet(url, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body, '');
  t.match(head.type, /^text\/plain; version=0\.0\.4/);

  let s = await scrape(d);
  t.equal(s.value('manifold_build_info', {}), 1);
  t.ok(s.family('manifold_build_info')!.metrics[0]!.labels!.version, 'version label');
  t.ok(s.value('manifold_daemon_uptime_seconds') > 0, 'uptime');
  t.ok(s.family('nodejs_eventloop_lag_seconds'), 'event-loop lag');
  t.equal(s.family('manifold_dyno_memory_bytes')?.metrics.length ?? 0, 0, 'no dynos, no memory series');

  t.equal((await d.cli('apps:create', 'hw')).code, 0);
  const dep = await d.cli('deploy', HELLO, '-a', 'hw');
  t.equal(dep.code, 0, dep.stderr);
  await d.cli('ps:scale', 'web=1', '-a', 'hw');
  const first = await webUp(d, 'hw');
  s = await scrapeUntil(d, 'web.1 up in manifold_dynos', (x) => x.value('manifold_dynos', { app: 'hw', type: 'web', state: 'up' }) === 1);
  t.equal(s.value('manifold_boot_queue_dynos', { app: 'hw' }), 0);
  t.equal(s.value('manifold_dyno_restarts_total', { app: 'hw' }), 0, 'a first start is no restart');

  // 200 requests, every one with its own path and id: counters move, no series are added
  const batch = async (tag: string): Promise<void> => {
    for (let i = 0; i < 200; i += 20) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, j) => get(d.port, 'hw.localhost', `/${tag}/${i + j}?request_id=${tag}-${i + j}&x=${Math.random()}`)));
      for (const r of rs) if (r.status !== 200) throw new Error(`request failed: ${r.status} ${r.body}`);
    }
  };
  await batch('a');
  s = await scrapeUntil(d, '200 requests counted', (x) => x.value('manifold_router_requests_total', { app: 'hw', status_class: '2xx' }) === 200);
  t.equal(s.histogramCount('manifold_router_service_seconds', { app: 'hw' }), 200, 'service-time histogram');
  t.equal(s.histogramCount('manifold_router_connect_seconds', { app: 'hw' }), 200, 'connect-time histogram');
  t.ok(s.value('manifold_router_response_bytes_total', { app: 'hw' }) >= 200 * 'Hello from web.1\n'.length, 'bytes');
  t.equal(s.value('manifold_router_errors_total', { app: 'hw' }), 0, 'no H-codes');
  const before = s.series();
  await batch('b');
  s = await scrapeUntil(d, '400 requests counted', (x) => x.value('manifold_router_requests_total', { app: 'hw', status_class: '2xx' }) === 400);
  const after = s.series();
  t.same([...after].filter((x) => !before.has(x)), [], '200 more requests with distinct paths and ids add no series');
  const allowed = new Set(['app', 'type', 'dyno', 'state', 'reason', 'status_class', 'code', 'le', 'version']);
  for (const f of s.families.filter((x) => x.name.startsWith('manifold_'))) {
    for (const m of f.metrics) {
      for (const [k, v] of Object.entries(m.labels ?? {})) {
        if (!allowed.has(k)) t.fail(`${f.name}: label ${k} is not one of the bounded set`);
        if (/\/|request_id|[ab]-\d/.test(v)) t.fail(`${f.name}: label ${k}=${v} looks like a path or id`);
      }
    }
  }

  // in flight: a slow request is counted while it runs
  const slow = get(d.port, 'hw.localhost', '/?delay=2500');
  await scrapeUntil(d, 'one request in flight', (x) => x.value('manifold_router_in_flight_requests', { app: 'hw' }) === 1);
  t.equal((await slow).status, 200);
  await scrapeUntil(d, 'none in flight', (x) => x.value('manifold_router_in_flight_requests', { app: 'hw' }) === 0);

  // H-codes: an app without web dynos (H14), and a host no app has (unrouted)
  t.equal((await d.cli('apps:create', 'empty')).code, 0);
  t.equal((await get(d.port, 'empty.localhost', '/x')).status, 503);
  t.equal((await get(d.port, 'nobody.localhost', '/y')).status, 404);
  // each record reaches the daemon from the worker that served it, in its own time: wait for both
  s = await scrapeUntil(d, 'H14 and the unknown host counted', (x) => x.value('manifold_router_errors_total', { app: 'empty', code: 'H14' }) === 1 && x.value('manifold_router_unrouted_requests_total', { status_class: '4xx' }) >= 1);
  t.equal(s.value('manifold_router_requests_total', { app: 'empty', status_class: '5xx' }), 1);
  t.ok(s.value('manifold_router_unrouted_requests_total', { status_class: '4xx' }) >= 1, 'the unknown host counted without an app label');

  // a crash (the web process killed), then its restart after the cool-off
  const children = fs.readFileSync(`/proc/${first.pid}/task/${first.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  process.kill(children[0]!, 'SIGKILL');
  s = await scrapeUntil(d, 'the crash counted', (x) => x.value('manifold_dyno_crashes_total', { app: 'hw', type: 'web', reason: 'signal' }) === 1);
  const second = await webUp(d, 'hw', first.pid!);
  s = await scrapeUntil(d, 'the crash restart counted', (x) => x.value('manifold_dyno_restarts_total', { app: 'hw', type: 'web', reason: 'crash' }) === 1);
  // ps:restart
  t.equal((await d.cli('ps:restart', '-a', 'hw')).code, 0);
  s = await scrapeUntil(d, 'ps:restart counted', (x) => x.value('manifold_dyno_restarts_total', { app: 'hw', type: 'web', reason: 'restart' }) === 1);
  await webUp(d, 'hw', second.pid!);

  // R10: a web process that never binds $PORT
  const dir = path.join(apps, 'nobind');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Procfile'), 'web: echo not binding; sleep 1000\n');
  await d.cli('apps:create', 'nobind');
  await d.cli('deploy', dir, '-a', 'nobind');
  await d.cli('ps:scale', 'web=1', '-a', 'nobind');
  s = await scrapeUntil(d, 'nobind web.1 starting', (x) => x.value('manifold_boot_queue_dynos', { app: 'nobind' }) === 1 || x.value('manifold_dyno_errors_total', { app: 'nobind' }) > 0);
  s = await scrapeUntil(d, 'R10 counted', (x) => x.value('manifold_dyno_errors_total', { app: 'nobind', type: 'web', code: 'R10' }) >= 1 && x.value('manifold_dyno_crashes_total', { app: 'nobind', type: 'web', reason: 'R10' }) >= 1);
  t.pass('R10 counted as an error and as the crash reason');
  await d.cli('ps:scale', 'web=0', '-a', 'nobind');

  // a destroyed app's series go with it
  t.equal((await d.cli('apps:destroy', 'hw', '--confirm', 'hw')).code, 0);
  s = await scrapeUntil(d, "hw's series gone", (x) => x.families.every((f) => f.metrics.every((m) => m.labels?.app !== 'hw')));
  t.pass('no series of a destroyed app');
  await d.cli('apps:destroy', 'nobind', '--confirm', 'nobind');
  await d.cli('apps:destroy', 'empty', '--confirm', 'empty');
  await d.stop();
  checkLeaks(t, d);
});

t.test('one router worker: the same request numbers', async (t) => {
  const d = new TestDaemon(['--metrics', '127.0.0.1:0', '--router-workers', '1']);
  t.teardown(async () => {
    await d.stop();
    d.cleanup();
  });
  await d.start();
  await d.cli('apps:create', 'one');
  t.equal((await d.cli('deploy', HELLO, '-a', 'one')).code, 0);
  await d.cli('ps:scale', 'web=1', '-a', 'one');
  await webUp(d, 'one');
  for (let i = 0; i < 50; i++) t.equal((await get(d.port, 'one.localhost', `/p/${i}`)).status, 200, `request ${i}`);
  const s = await scrapeUntil(d, '50 requests counted', (x) => x.value('manifold_router_requests_total', { app: 'one', status_class: '2xx' }) === 50);
  t.equal(s.histogramCount('manifold_router_service_seconds', { app: 'one' }), 50);
  t.equal(s.value('manifold_router_in_flight_requests', { app: 'one' }), 0);
  t.equal(s.value('manifold_dynos', { app: 'one', type: 'web', state: 'up' }), 1);
  // memory, from the runtime-metrics sampler (its first sample of a dyno comes 20 s after the dyno started)
  const mem = await waitFor('memory series of web.1', async () => {
    const x = await scrape(d);
    return x.value('manifold_dyno_memory_bytes', { app: 'one', type: 'web', dyno: 'web.1' }) > 0 ? x : undefined;
  }, 40_000, 500);
  t.ok(mem.value('manifold_dyno_memory_rss_bytes', { app: 'one', dyno: 'web.1' }) > 0, 'RSS');
  t.equal(mem.value('manifold_dyno_memory_quota_bytes', { app: 'one', dyno: 'web.1' }), 512 * 1024 * 1024, "a standard-1x dyno's quota");
  await d.cli('apps:destroy', 'one', '--confirm', 'one');
  await d.stop();
  checkLeaks(t, d);
});

t.test('a bad --metrics value is refused before the daemon starts', async (t) => {
  for (const bad of ['9090', 'localhost', '127.0.0.1:99999', 'a:b']) {
    const d = new TestDaemon(['--metrics', bad]);
    const err = await d.start().then(
      () => undefined,
      (e: Error) => e,
    );
    await d.stop();
    d.cleanup();
    t.ok(err, `--metrics ${bad} refused`);
    t.match(d.log, /invalid --metrics/, `--metrics ${bad}: one clear line`);
  }
});
