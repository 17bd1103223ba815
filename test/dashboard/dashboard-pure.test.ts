/** The dashboard's pure parts: token checks, cookies, the listen rule, the token file, the JSON views. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { cookieValue, isLoopback, newToken, parseDashboardListen, sessionCookie, tokenMatches, writeTokenFile } from '../../src/manifold/dashboard/auth';
import { metricsView, stateView, trafficSeries, type DashboardModel } from '../../src/manifold/dashboard/data';
import type { AppInfo, PsResult, ReleaseInfo } from '../../src/manifold/api/protocol';
import type { DynoMetricsSource, TrafficPoint } from '../../src/manifold/metrics/types';

t.test('tokens: random, compared whole', async (t) => {
  const a = newToken();
  t.match(a, /^[A-Za-z0-9_-]{43}$/);
  t.not(a, newToken());
  t.ok(tokenMatches(a, a));
  t.notOk(tokenMatches(a.slice(0, -1), a), 'a prefix');
  t.notOk(tokenMatches(`${a}x`, a), 'a longer one');
  t.notOk(tokenMatches('', a));
  t.notOk(tokenMatches(undefined, a));
});

t.test('cookies', async (t) => {
  t.equal(cookieValue('a=1; manifold_dashboard=tok; b=2', 'manifold_dashboard'), 'tok');
  t.equal(cookieValue('xmanifold_dashboard=tok', 'manifold_dashboard'), undefined);
  t.equal(cookieValue(undefined, 'manifold_dashboard'), undefined);
  t.equal(sessionCookie('T'), 'manifold_dashboard=T; Path=/; HttpOnly; SameSite=Strict');
});

t.test('listen: loopback unless public is asked for', async (t) => {
  t.same(parseDashboardListen('127.0.0.1:7000', false), { host: '127.0.0.1', port: 7000 });
  t.same(parseDashboardListen('[::1]:0', false), { host: '::1', port: 0 });
  t.same(parseDashboardListen('localhost:7000', false), { host: 'localhost', port: 7000 });
  t.throws(() => parseDashboardListen('0.0.0.0:7000', false), /not a loopback address.*--dashboard-public/);
  t.throws(() => parseDashboardListen('10.0.0.5:7000', false), /--dashboard-public/);
  t.throws(() => parseDashboardListen('[::]:7000', false), /--dashboard-public/);
  t.same(parseDashboardListen('0.0.0.0:7000', true), { host: '0.0.0.0', port: 7000 });
  t.throws(() => parseDashboardListen('7000', false), /HOST:PORT/);
  t.throws(() => parseDashboardListen('127.0.0.1:70000', false), /port/);
  t.ok(isLoopback('127.8.9.1'));
  t.notOk(isLoopback('localhost.example.com'));
});

t.test('the token file: 0600, replaces whatever was at its path without following it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-dash-tok-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, 'keep');
  fs.symlinkSync(victim, path.join(dir, 'dashboard.token'));
  const f = writeTokenFile(dir, 'secret');
  t.equal(fs.readFileSync(f, 'utf8'), 'secret\n');
  t.equal(fs.statSync(f).mode & 0o777, 0o600);
  t.notOk(fs.lstatSync(f).isSymbolicLink());
  t.equal(fs.readFileSync(victim, 'utf8'), 'keep', 'the link target is untouched');
});

t.test('traffic on a regular grid: missing buckets are zero requests and no percentiles', async (t) => {
  const p = (tMs: number, requests: number, byCode: Record<string, number> = {}): TrafficPoint => ({ t: tMs, requests, byClass: {}, byCode, p50: 1, p95: 2, p99: 3 });
  const now = 1_000_000_000;
  const s = trafficSeries([p(now - 30_000, 20), p(now - 10_000, 10, { H12: 2 })], 10_000, now);
  t.same(s.t, [(now - 30_000) / 1000, (now - 20_000) / 1000, (now - 10_000) / 1000, now / 1000]);
  t.same(s.rps, [2, 0, 1, 0]);
  t.same(s.p50, [1, null, 1, null]);
  t.same(s.codes, { H12: [0, 0, 2, 0] });
  t.same(trafficSeries([p(now - 7200_000, 5)], 10_000, now).t, [], 'older than an hour: left out');
  t.same(trafficSeries([p(now - 10_000, 10), p(now, 8)], 10_000, now + 4000).rps, [1, 2], 'the bucket still filling: a rate over its 4 s');
});

t.test('views: host of a dyno, releases newest first with an author, metrics when sources exist', async (t) => {
  const rel = (version: number, description: string): ReleaseInfo => ({ version, description, createdAt: version, current: version === 12, by: version === 12 ? 'key alice' : 'root' });
  const model: DashboardModel = {
    listApps: () => Promise.resolve(['a', 'gone']),
    info: (app) => (app === 'gone' ? Promise.reject(new Error('no such app')) : Promise.resolve({ name: app, url: 'http://a.localhost/', createdAt: 0, release: 12, slug: null, formation: [], settings: {}, dynos: 2 } satisfies AppInfo)),
    ps: (app) =>
      Promise.resolve({
        app,
        now: 0,
        types: {},
        dynos: [
          { name: 'web.1', type: 'web', state: 'up', since: 1, command: 'x', size: 'Standard-1X', release: 12, pid: 5, address: null, crashes: 0, restartAt: null, reason: null, oneoff: false },
          { name: 'web.2', type: 'web', state: 'crashed', since: 1, command: 'x', size: 'Standard-1X', release: 12, pid: null, address: null, crashes: 3, restartAt: 9, reason: 'exited with status 3', oneoff: false, host: 'h2' },
        ],
      } satisfies PsResult),
    releases: () => Promise.resolve(Array.from({ length: 12 }, (_, i) => rel(12 - i, i === 0 ? 'Build abc pushed by alice' : 'Deploy 1234abcd'))),
  };
  const v = await stateView(model, 'here', 42);
  t.equal(v.apps.length, 1, 'an app gone between the reads is left out');
  t.same(v.apps[0]!.dynos.map((d) => d.host), ['here', 'h2']);
  t.equal(v.apps[0]!.dynos[1]!.reason, 'exited with status 3');
  t.equal(v.apps[0]!.releases.length, 10);
  t.equal(v.apps[0]!.releases[0]!.by, 'key alice', 'the recorded author, not a guess from the description');
  t.equal(v.apps[0]!.releases[1]!.by, 'root');
  const mem: DynoMetricsSource = { dynos: () => [{ app: 'a', dyno: 'web.1', id: 'x', quota: 512, source: 'proc', memory: [{ t: 2000, total: 10, rss: 8, cache: 2, swap: 0 }], load: null }] };
  const m = metricsView(['a'], mem, undefined, 3000);
  t.same(m.memory, [{ app: 'a', dyno: 'web.1', quota: 512, source: 'proc', t: [2], total: [10], rss: [8] }]);
  t.equal(m.bucketMs, null);
  t.same(metricsView(['a'], undefined, undefined).memory, []);
});
