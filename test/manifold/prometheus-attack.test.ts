/**
 * The /metrics endpoint as a hostile local user or web page sees it: a real daemon with
 * `--metrics 127.0.0.1:0`, raw HTTP on real sockets; and the exposition itself fed hostile names
 * (labels must stay labels). The rules are in docs/metrics.md#prometheus.
 */
import net from 'node:net';
import t from 'tap';
import { PrometheusMetrics } from '../../src/manifold/metrics/prometheus';
import type { DynoStatus } from '../../src/manifold/supervisor/model';
import { leakScope, leftoverCgroups, leftoverProcesses } from '../runtime/helpers/leaks';
import { sleep, TestDaemon, waitFor } from './helpers/daemon';
import { fdCount, rawRequest, type RawResponse } from './helpers/raw-request';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

function req(port: number, target: string, opts: { method?: string; host?: string; extra?: string } = {}): Promise<RawResponse> {
  const lines = [`${opts.method ?? 'GET'} ${target} HTTP/1.1`, `Host: ${opts.host ?? `127.0.0.1:${port}`}`, 'Connection: close'];
  if (opts.extra) lines.push(opts.extra);
  return rawRequest(port, `${lines.join('\r\n')}\r\n\r\n`);
}

t.test('the endpoint, attacked', async (t) => {
  const d = new TestDaemon(['--metrics', '127.0.0.1:0']);
  await d.start();
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await d.stop();
    d.cleanup();
  });
  const port = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(d.log)?.[1]);
  const pid = d.child!.pid!;
  t.ok(port > 0, `metrics on ${port}`);

  t.test('only /metrics, in no other spelling', async (t) => {
    t.equal((await req(port, '/metrics')).status, 200);
    t.equal((await req(port, '/metrics?name[]=x')).status, 200, 'a query is ignored');
    for (const target of ['/', '/metrics/', '/Metrics', '/metrics/../metrics', '/%6detrics', '/metrics%00', '/metrics;x', '//metrics', 'http://evil.example/metrics', '*', '/../../etc/passwd', `/${'m'.repeat(8000)}`]) {
      const r = await req(port, target);
      // not a path (`//x`, an absolute URL, `*`): 400; any other path: 404
      t.equal(r.status, /^(\/\/|http:|\*)/.test(target) ? 400 : 404, `${target.slice(0, 30)}: ${r.status}`);
      t.notMatch(r.body, /root:|manifold_/, 'nothing of the metrics');
    }
  });

  t.test('GET and HEAD only; a refused request with a body does not hold the connection', async (t) => {
    const head = await req(port, '/metrics', { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.body, '', 'HEAD: no body');
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']) t.equal((await req(port, '/metrics', { method, extra: 'Content-Length: 0' })).status, 405, method);
    // a body announced and never sent: answered and closed, not kept open reading it for minutes
    const r = await rawRequest(port, `POST /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 100000000\r\n\r\nxx`, 5000, () => 'x');
    t.equal(r.status, 405);
    t.ok(r.closed && r.closedAfter < 2000, `closed ${r.closedAfter} ms after the 405`);
  });

  t.test('a Host that is not a loopback name: refused (a web page rebinding its name to 127.0.0.1 reads nothing)', async (t) => {
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.nip.example:${port}`, `10.1.2.3:${port}`]) {
      const r = await req(port, '/metrics', { host });
      t.equal(r.status, 421, `${host}: 421`);
      t.notMatch(r.body, /manifold_/);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost']) t.equal((await req(port, '/metrics', { host })).status, 200, `${host}: 200`);
  });

  t.test('slow headers (slowloris): closed within ~12 s', async (t) => {
    const r = await rawRequest(port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`, 16_000, () => 'X-Drip: 1\r\n');
    t.ok(r.closed && r.closedAfter <= 13_000, `closed after ${r.closedAfter} ms`);
  });

  t.test("many connections: bounded, not the daemon's descriptors", async (t) => {
    const before = fdCount(pid);
    const socks: net.Socket[] = [];
    await Promise.all(
      Array.from({ length: 300 }, () => new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => resolve());
        s.on('error', () => resolve());
        socks.push(s);
      })),
    );
    await sleep(300);
    const during = fdCount(pid);
    t.ok(during - before <= 48, `300 idle connections: ${during - before} more descriptors in the daemon (at most 32 connections)`);
    for (const s of socks) s.destroy();
    await waitFor('released', async () => fdCount(pid) - before <= 5, 5000);
    t.equal((await req(port, '/metrics')).status, 200, 'scraping again');
  });

  t.test('stopped: nothing left', async (t) => {
    await d.stop();
    stopped = true;
    const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
    t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
    t.same(leftoverProcesses(scope), [], 'no dyno processes left');
  });
});

t.test('hostile label values stay inside their quotes', async (t) => {
  const evil = 'x"} 1\nmanifold_fake{a="b\\';
  const dyno: DynoStatus = { name: 'web.1', type: evil, state: 'up', since: 0, command: 'x', size: 'Standard-1X', release: 1, pid: null, address: null, crashes: 0, restartAt: null, reason: null, oneoff: false };
  const m = new PrometheusMetrics({ dynos: { appNames: () => [evil], status: () => [dyno] }, version: 'v"1\n' });
  m.request(evil, { status: 503, code: 'H12"\nmanifold_fake 1', bytes: 1, serviceMs: 1, connectMs: 1 });
  const text = await m.metrics();
  t.notMatch(text, /^manifold_fake/m, 'no line of its own');
  t.match(text, /manifold_router_errors_total\{app="x\\"} 1\\nmanifold_fake\{a=\\"b\\\\",code="H12\\"\\nmanifold_fake 1"\} 1/, 'quotes, newlines and backslashes escaped');
  const bad = text.split('\n').filter((l) => l !== '' && !l.startsWith('#') && !/^[a-z_:][a-z0-9_:]*(\{.*\})? \S+$/i.test(l));
  t.same(bad, [], 'every line one sample');
});
