/**
 * The dashboard as a hostile local user or a hostile web page sees it: a real daemon with
 * `--dashboard localhost:0` (real sockets, raw HTTP where the attack needs bytes a client library
 * would not send), then the server alone with a slow fake model for the races no daemon shows on
 * demand. Each attack and what it must get is in docs/dashboard.md#hardening.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import t from 'tap';
import type { LogFilter, LogLine } from '../../src/manifold/logs/log-buffer';
import { DashboardServer } from '../../src/manifold/dashboard/server';
import { leakScope, leftoverCgroups, leftoverProcesses } from '../runtime/helpers/leaks';
import { sleep, TestDaemon, waitFor } from '../manifold/helpers/daemon';
import { fdCount, rawRequest, type RawResponse } from '../manifold/helpers/raw-request';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

/** A GET with Host 127.0.0.1:PORT unless `host` says otherwise; `Connection: close` so it ends. */
function getRaw(port: number, target: string, opts: { host?: string | null; cookie?: string; method?: string; extra?: string; waitMs?: number } = {}): Promise<RawResponse> {
  const host = opts.host === undefined ? `127.0.0.1:${port}` : opts.host;
  const lines = [`${opts.method ?? 'GET'} ${target} HTTP/1.1`, ...(host === null ? [] : [`Host: ${host}`]), 'Connection: close'];
  if (opts.cookie) lines.push(`Cookie: ${opts.cookie}`);
  if (opts.extra) lines.push(opts.extra);
  return rawRequest(port, `${lines.join('\r\n')}\r\n\r\n`, opts.waitMs);
}

/** Opens `n` connections that send nothing; resolves once all are connected (or refused). */
async function idleConnections(port: number, n: number): Promise<net.Socket[]> {
  const socks: net.Socket[] = [];
  await Promise.all(
    Array.from({ length: n }, () => new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve());
      s.on('error', () => resolve());
      socks.push(s);
    })),
  );
  return socks;
}

/** An authenticated event stream held open; resolves with the status once the head came. */
function openStream(port: number, target: string, cookie: string): Promise<{ status: number; sock: net.Socket; text: () => string }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let resolved = false;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
      if (!resolved && text.includes('\r\n\r\n')) {
        resolved = true;
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), sock: s, text: () => text });
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (!resolved) resolve({ status: 0, sock: s, text: () => text });
    });
    s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\n\r\n`);
  });
}

const SECURITY = {
  'content-security-policy': /default-src 'none'.*frame-ancestors 'none'/,
  'x-content-type-options': /^nosniff$/,
  'referrer-policy': /^no-referrer$/,
  'x-frame-options': /^DENY$/,
};

t.test('the daemon, attacked', async (t) => {
  const d = new TestDaemon(['--dashboard', 'localhost:0', '--boot-timeout', '5s', '--stop-grace', '2s']);
  const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-dash-attack-'));
  // a link planted where the token goes, before the daemon starts: it must be replaced, not followed
  const victim = path.join(apps, 'victim');
  fs.writeFileSync(victim, 'untouched\n');
  fs.mkdirSync(d.runDir, { recursive: true, mode: 0o700 });
  fs.symlinkSync(victim, path.join(d.runDir, 'dashboard.token'));
  await d.start();
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await d.stop();
    fs.rmSync(apps, { recursive: true, force: true });
    d.cleanup();
  });
  const info = await d.cli('dashboard', '--json');
  t.equal(info.code, 0, info.stderr);
  const { url, address } = JSON.parse(info.stdout) as { url: string; address: string };
  const port = Number(new URL(address).port);
  const token = new URL(url).searchParams.get('token')!;
  const cookie = `manifold_dashboard=${token}`;
  const pid = d.child!.pid!;

  t.test('the printed address names the bound IP, not localhost (another user may hold the other family)', async (t) => {
    // a browser tries ::1 and 127.0.0.1 for `localhost`; a user listening on the family the daemon did not bind would get /?token=
    t.equal(new URL(address).hostname, '127.0.0.1', `address ${address}`);
  });

  t.test('the token file: root, 0600, the planted link replaced and its target untouched', async (t) => {
    const file = path.join(d.runDir, 'dashboard.token');
    const st = fs.lstatSync(file);
    t.ok(st.isFile(), 'a regular file, not the link');
    t.equal(st.mode & 0o777, 0o600);
    t.equal(st.uid, 0);
    t.equal(fs.readFileSync(victim, 'utf8'), 'untouched\n', 'the link target was not written');
  });

  t.test('no token, a wrong one, or the token anywhere but the cookie and /?token=: 401 and nothing of the page', async (t) => {
    const paths = ['/', '/app.js', '/app.css', '/uPlot.min.js', '/uPlot.min.css', '/index.html', '/api/state', '/api/metrics', '/events', '/events/logs?app=x', '/nope', '/static/../../etc/passwd'];
    for (const p of paths) {
      const r = await getRaw(port, p);
      t.equal(r.status, 401, `${p}: 401`);
      t.notMatch(r.body, /Manifold|apps|uPlot|root:/, `${p}: no content`);
      t.ok(r.closed, `${p}: answered and ended, not held`);
    }
    for (const [what, target, extra] of [
      ['token in the query of a data path', `/api/state?token=${token}`, ''],
      ['token in the query of an asset', `/app.js?token=${token}`, ''],
      ['token in the query of the stream', `/events?token=${token}`, ''],
      ['token as a bearer', '/api/state', `Authorization: Bearer ${token}`],
      ['token as a header', '/api/state', `X-Token: ${token}`],
      ['token exchange on another path', `/index.html?token=${token}`, ''],
      ['second token param is not read', `/?token=wrong&token=${token}`, ''],
      ['wrong cookie name', '/api/state', `Cookie: dashboard=${token}`],
      ['token plus a char', '/api/state', `Cookie: manifold_dashboard=${token}x`],
    ] as const) {
      t.equal((await getRaw(port, target, { extra })).status, 401, what);
    }
  });

  t.test('request targets URL parsing would read as a host: 400, never a 500 or a served file', async (t) => {
    for (const target of [`//?token=${token}`, '//evil.example/app.js', '//evil.example/api/state', 'http://evil.example/api/state', '*']) {
      const r = await getRaw(port, target, { cookie });
      t.equal(r.status, 400, `${target}: 400 (got ${r.status})`);
    }
    t.notMatch(d.log, /dashboard: TypeError/, 'no internal error logged');
  });

  t.test('static files: only the five, no traversal in any spelling', async (t) => {
    const long = `/${'a'.repeat(8000)}`;
    for (const target of ['/static/../../etc/passwd', '/../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', '/..\\..\\etc\\passwd', '/app.js%00', '/app.js%00.png', '/app.js/', '/APP.JS', '/app.js%2f', '/dashboard/app.js', '/node_modules/uplot/package.json', '/proc/self/environ', long]) {
      const r = await getRaw(port, target, { cookie });
      t.equal(r.status, 404, `${target.slice(0, 40)}: 404 (got ${r.status})`);
      t.notMatch(r.body, /root:|"name"|PATH=/, 'nothing read from disk');
    }
    // the planted link trick does not apply: assets are read once at start, from the package
    t.equal((await getRaw(port, '/app.js', { cookie })).status, 200);
  });

  t.test('a Host that is not a loopback name: refused before the token (DNS rebinding)', async (t) => {
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `localhost.evil.example:${port}`, `10.0.0.1:${port}`]) {
      t.equal((await getRaw(port, `/?token=${token}`, { host })).status, 421, `${host}: token exchange refused`);
      t.equal((await getRaw(port, '/api/state', { host, cookie })).status, 421, `${host}: with the cookie, refused`);
    }
    t.equal((await getRaw(port, '/api/state', { host: null, cookie })).status, 400, 'no Host at all: 400 (HTTP/1.1 needs one)');
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, '127.0.0.1:8000', 'localhost']) {
      t.equal((await getRaw(port, '/api/state', { host, cookie })).status, 200, `${host}: served (an ssh tunnel may use another port)`);
    }
    const ex = await getRaw(port, `/?token=${token}`, { host: `localhost:${port}` });
    t.equal(ex.status, 303, 'the exchange on localhost');
  });

  t.test('only GET: every other method 405, and nothing changes', async (t) => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'HEAD', 'PROPFIND']) {
      for (const target of ['/', `/?token=${token}`, '/api/state', '/events']) {
        const r = await getRaw(port, target, { method, cookie: target.includes('token') ? undefined : cookie, extra: 'Content-Length: 0' });
        t.equal(r.status, 405, `${method} ${target.slice(0, 10)}`);
        t.notOk(r.headers['set-cookie'], 'no cookie handed out');
      }
    }
  });

  t.test('a refused request announcing a body does not hold the connection', async (t) => {
    // headers complete, so headersTimeout no longer applies, and requestTimeout is off for the streams
    for (const [what, target, c] of [['405', '/', cookie], ['401', '/api/state', undefined]] as const) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      const t0 = Date.now();
      s.write(`${what === '405' ? 'POST' : 'GET'} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${c ? `Cookie: ${c}\r\n` : ''}Content-Length: 100000000\r\n\r\nxx`);
      const drip = setInterval(() => s.write('x'), 200);
      const closedAfter = await new Promise<number>((resolve) => {
        s.on('close', () => resolve(Date.now() - t0));
        setTimeout(() => resolve(-1), 4000);
      });
      clearInterval(drip);
      s.destroy();
      t.ok(closedAfter >= 0 && closedAfter < 2000, `${what} with a body still coming: closed after ${closedAfter} ms`);
    }
  });

  t.test('security headers on every kind of answer; no-store on data', async (t) => {
    const cases: [string, string, string | undefined, number, boolean][] = [
      ['page', '/', cookie, 200, false],
      ['asset', '/app.js', cookie, 200, false],
      ['json', '/api/state', cookie, 200, true],
      ['401', '/api/state', undefined, 401, true],
      ['404', '/nope', cookie, 404, true],
      ['303', `/?token=${token}`, undefined, 303, true],
      ['400', '//x', cookie, 400, true],
    ];
    for (const [what, target, c, status, noStore] of cases) {
      const r = await getRaw(port, target, { cookie: c });
      t.equal(r.status, status, what);
      for (const [h, re] of Object.entries(SECURITY)) t.match(r.headers[h] ?? '', re, `${what}: ${h}`);
      if (noStore) t.equal(r.headers['cache-control'], 'no-store', `${what}: no-store`);
    }
    const s = await openStream(port, '/events', cookie);
    t.equal(s.status, 200);
    t.match(s.text(), /cache-control: no-store/i, 'event stream: no-store');
    t.match(s.text(), /x-frame-options: DENY/i);
    s.sock.destroy();
  });

  t.test('huge and many headers: refused or trimmed, the daemon unharmed', async (t) => {
    const r = await getRaw(port, '/api/state', { cookie, extra: `X-Big: ${'a'.repeat(20_000)}` });
    t.equal(r.status, 431, 'a 20 KB header: 431');
    const many = Array.from({ length: 500 }, (_, i) => `X-H${i}: v`).join('\r\n');
    const m = await getRaw(port, '/api/state', { extra: `${many}\r\nCookie: ${cookie}` });
    t.ok(m.status === 401 || m.status === 431, `500 headers, the cookie last: ${m.status} (headers past the 50th are not read)`);
    t.equal((await getRaw(port, '/api/state', { cookie })).status, 200, 'still serving');
  });

  t.test('slow headers (slowloris): the connection is closed within ~12 s', async (t) => {
    const s = net.connect(port, '127.0.0.1');
    const t0 = Date.now();
    s.on('error', () => undefined);
    s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
    const drip = setInterval(() => s.write('X-Drip: 1\r\n'), 500);
    const closedAt = await new Promise<number>((resolve) => {
      s.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => resolve(-1), 16_000);
    });
    clearInterval(drip);
    s.destroy();
    t.ok(closedAt > 0 && closedAt <= 13_000, `closed after ${closedAt} ms (headersTimeout 10 s, checked every second)`);
  });

  t.test("many connections: bounded, so a local user cannot use up the root daemon's descriptors", async (t) => {
    const before = fdCount(pid);
    const socks = await idleConnections(port, 400);
    await sleep(300);
    const during = fdCount(pid);
    t.ok(during - before <= 80, `400 idle connections: the daemon holds ${during - before} more descriptors (at most 64 connections)`);
    for (const s of socks) s.destroy();
    await waitFor('connections released', async () => fdCount(pid) - before <= 5, 5000);
    t.equal((await getRaw(port, '/api/state', { cookie })).status, 200, 'serving again');
  });

  t.test('event streams: unauthenticated ones are not held, authenticated ones are capped', async (t) => {
    const anon = await getRaw(port, '/events', { waitMs: 3000 });
    t.equal(anon.status, 401);
    t.ok(anon.closed, 'a 401 stream ends at once');
    const streams = [];
    for (let i = 0; i < 20; i++) streams.push(await openStream(port, i % 2 ? '/events' : '/events/logs?app=nope', cookie));
    // the logs ones for an app that does not exist are 404 and closed; open real ones for the cap
    for (const s of streams) s.sock.destroy();
    await sleep(200);
    const held = [];
    for (let i = 0; i < 20; i++) held.push(await openStream(port, '/events', cookie));
    const codes = held.map((s) => s.status);
    t.same(codes.slice(0, 16), Array(16).fill(200), 'the first 16 open');
    t.same(codes.slice(16), Array(4).fill(503), 'then 503');
    for (const s of held) s.sock.destroy();
    await sleep(200);
    const again = await openStream(port, '/events', cookie);
    t.equal(again.status, 200, 'closed streams free their slots');
    again.sock.destroy();
  });

  t.test('a stalled log stream during a flood stays bounded and gets an L10 line', async (t) => {
    fs.writeFileSync(path.join(apps, 'Procfile'), `worker: yes ${'flood-'.repeat(30)}\n`);
    t.equal((await d.cli('apps:create', 'flood')).code, 0);
    const dep = await d.cli('deploy', apps, '-a', 'flood');
    t.equal(dep.code, 0, dep.stderr);
    const s = await openStream(port, '/events/logs?app=flood&n=0', cookie);
    t.equal(s.status, 200);
    s.sock.pause();
    const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const before = rss();
    t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'flood')).code, 0);
    let peak = before;
    // as logs-tail.test: ingesting a flood costs garbage that plateaus (120-230 MB measured there);
    // an unbounded queue for the stalled reader grows by gigabytes in this time
    for (let i = 0; i < 40; i++) {
      await sleep(250);
      peak = Math.max(peak, rss());
    }
    t.equal((await d.cli('ps:scale', 'worker=0', '-a', 'flood')).code, 0);
    t.ok(peak - before < 350 * 1024 * 1024, `daemon RSS ${Math.round(before / 2 ** 20)} → peak ${Math.round(peak / 2 ** 20)} MB`);
    s.sock.resume();
    const m = await waitFor('an L10 line once the page reads again', async () => /data: .*Error L10 \(output buffer overflow\): (\d+) messages dropped/.exec(s.text()) ?? undefined, 20_000);
    t.ok(Number(m[1]) > 0, `${m[1]} dropped and said so`);
    s.sock.destroy();
  });

  t.test('stopped: token file gone, nothing left', async (t) => {
    await d.stop();
    stopped = true;
    t.notOk(fs.existsSync(path.join(d.runDir, 'dashboard.token')), 'token file removed');
    t.equal(fs.readFileSync(victim, 'utf8'), 'untouched\n');
    const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
    t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
    t.same(leftoverProcesses(scope), [], 'no dyno processes left');
  });
});

/** The server alone, on a real socket, with a model and a log source that answer slowly on purpose. */
t.test('races the daemon does not show on demand', async (t) => {
  const tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-dash-race-'));
  let subscribers = 0;
  let flood: ((l: LogLine) => void) | undefined;
  let seq = 0;
  let floodOn = false;
  // NaN until measured; the difference can be below 0 when the collection also frees unrelated garbage
  let heldByEarly = Number.NaN;
  // a collection on demand, so the heap after the flood shows what is kept, not garbage
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const line = (message: string): LogLine => ({ seq: ++seq, time: new Date().toISOString(), source: 'app', dyno: 'web.1', message });
  const server = new DashboardServer({
    listen: { host: '127.0.0.1', port: 0 },
    tokenDir,
    model: {
      // slow on purpose: the page's connection may close while the server waits
      listApps: async () => {
        await sleep(150);
        return ['a'];
      },
      info: () => Promise.reject(new Error('unused')),
      ps: () => Promise.reject(new Error('unused')),
      releases: () => Promise.resolve([]),
    },
    logs: {
      subscribe(_app: string, _f: LogFilter, onLine: (l: LogLine) => void): () => void {
        subscribers++;
        flood = onLine;
        return () => {
          subscribers--;
          flood = undefined;
        };
      },
      // the backlog takes a while (a cluster asks every host); lines arrive meanwhile
      async tail(): Promise<LogLine[]> {
        if (floodOn) {
          gc();
          const base = process.memoryUsage().heapUsed;
          for (let i = 0; i < 200_000; i++) flood?.(line(`early ${i} ${'x'.repeat(200)}`));
          gc();
          heldByEarly = process.memoryUsage().heapUsed - base;
        }
        await sleep(100);
        return [];
      },
    },
  });
  const addr = await server.listen();
  t.teardown(async () => {
    await server.close();
    fs.rmSync(tokenDir, { recursive: true, force: true });
  });
  const token = fs.readFileSync(server.tokenFile, 'utf8').trim();
  const cookie = `manifold_dashboard=${token}`;

  t.test('a page gone while the server looked the app up leaves no subscription behind', async (t) => {
    for (let i = 0; i < 5; i++) {
      const s = net.connect(addr.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(`GET /events/logs?app=a HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\n\r\n`);
      await sleep(30);
      s.destroy();
    }
    await sleep(400);
    t.equal(subscribers, 0, 'no log subscription outlives its page');
  });

  t.test('lines that come while the backlog is read are bounded like the rest (then counted in L10)', async (t) => {
    floodOn = true;
    const s = await openStream(addr.port, '/events/logs?app=a&n=0', cookie);
    t.equal(s.status, 200);
    const text = await waitFor('the notice', async () => (/L10/.test(s.text()) ? s.text() : undefined), 10_000);
    floodOn = false;
    t.ok(Number.isFinite(heldByEarly) && heldByEarly < 16 * 2 ** 20, `200000 lines during the backlog read: ${Math.round(heldByEarly / 2 ** 20)} MB held (a bounded queue, not all of them)`);
    const shown = text.split('\n').filter((l) => l.startsWith('data: {"')).length;
    const dropped = [...text.matchAll(/Error L10 \(output buffer overflow\): (\d+) messages dropped/g)].reduce((a, m) => a + Number(m[1]), 0);
    t.equal(shown + dropped, 200_000, `${shown} shown + ${dropped} counted as dropped: every line accounted for`);
    s.sock.destroy();
    await sleep(100);
    t.equal(subscribers, 0);
  });
});
