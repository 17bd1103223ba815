/**
 * The dashboard end to end, as root: a real daemon with `--dashboard 127.0.0.1:0`, real dynos,
 * the real router, and the page in headless Chromium (Debian's, driven by puppeteer-core). What a
 * person sees must match `ps --json`, follow the CLI within 2 s, show crashes and live logs, and
 * nothing may be shown without the token. Screenshots go to ARTIFACTS (printed below).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Browser, Page } from 'puppeteer-core' with { 'resolution-mode': 'import' };
import { leakScope, leftoverCgroups, leftoverProcesses } from '../runtime/helpers/leaks';
import { get, ROOT, runCli, sleep, TestDaemon, waitFor, type PsJson } from '../manifold/helpers/daemon';
import { cpuFraction, pageWeight, PAGE_WEIGHT_MAX } from './measure';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}
// an ES module; Node 24 requires it synchronously (tsc's CommonJS output cannot `import` it)
const puppeteer = (require('puppeteer-core') as typeof import('puppeteer-core', { with: { 'resolution-mode': 'import' } })).default;
const CHROMIUM = '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) {
  t.plan(0, `needs ${CHROMIUM} (apt-get install chromium)`);
  process.exit(0);
}

const ARTIFACTS = process.env.MANIFOLD_DASHBOARD_ARTIFACTS ?? path.join(os.tmpdir(), 'manifold-dashboard-artifacts');
fs.mkdirSync(ARTIFACTS, { recursive: true });
t.comment(`screenshots in ${ARTIFACTS}`);

const d = new TestDaemon(['--dashboard', '127.0.0.1:0', '--boot-timeout', '5s', '--restart-delay', '1s', '--restart-max', '4s', '--stop-grace', '3s', '--drain', '2s']);
const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-dash-apps-'));
let browser: Browser | undefined;
let page: Page;
let base = '';
let tokenUrl = '';
let tokenFile = '';
const consoleErrors: string[] = [];

t.before(async () => {
  await d.start();
});

t.teardown(async () => {
  // the browser first (its connections to the daemon), then the daemon; each even if the other fails
  const proc = browser?.process();
  await Promise.race([browser?.close(), sleep(5000)]).catch(() => undefined);
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  await d.stop();
  fs.rmSync(apps, { recursive: true, force: true });
  d.cleanup();
});

async function ps(app: string): Promise<PsJson> {
  const r = await d.cli('ps', '-a', app, '--json');
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as PsJson;
}

/** A GET to the dashboard; the status and body. */
function dash(p: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(p, base), { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Row {
  name: string;
  state: string;
  host: string;
  crashes: string;
  reason: string;
}

/** The dyno rows the page shows for an app. */
function rows(app: string): Promise<Row[]> {
  return inPage<Row[]>(`[...document.querySelectorAll('section.app tr.dyno')]
    .filter((tr) => tr.closest('section.app').dataset.app === ${JSON.stringify(app)})
    .map((tr) => {
      const td = [...tr.querySelectorAll('td')].map((c) => c.textContent);
      return { name: td[0], state: td[1], host: td[2], crashes: td[4], reason: td[5] };
    })`);
}

/**
 * Runs an expression in the page. Page code is written as strings: this tree compiles without the
 * DOM's types (they would reach every file of it).
 */
function inPage<T>(expr: string): Promise<T> {
  return page.evaluate(expr) as Promise<T>;
}

/** Waits until an expression is truthy in the page. */
async function until(expr: string, timeout = 5000, polling = 50): Promise<void> {
  await page.waitForFunction(expr, { timeout, polling });
}

/** The texts of the log lines on the page. */
const LOG_TEXTS = `[...document.querySelectorAll('#log-lines li')].map((li) => li.textContent)`;

/** Sets the dyno filter as a person would (the page listens for change). */
async function setDynoFilter(v: string): Promise<void> {
  await inPage(`(() => { const e = document.getElementById('log-dyno'); e.value = ${JSON.stringify(v)}; e.dispatchEvent(new Event('change')); })()`);
}

function appDir(name: string, procfile: string): string {
  const dir = path.join(apps, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Procfile'), procfile);
  return dir;
}

t.test('the page weighs at most 100 KB of its own (uPlot not counted)', async (t) => {
  const w = pageWeight(path.join(ROOT, 'dashboard'));
  t.comment(`dashboard/: ${JSON.stringify(w.files)} = ${w.total} bytes`);
  t.ok(w.total <= PAGE_WEIGHT_MAX, `${w.total} bytes ≤ ${PAGE_WEIGHT_MAX}`);
});

t.test('manifold dashboard prints the address with the token; the token file is root-only', async (t) => {
  const r = await d.cli('dashboard', '--json');
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { url: string; address: string };
  tokenUrl = j.url;
  base = j.address;
  t.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const plain = await d.cli('dashboard');
  t.equal(plain.stdout.trim(), tokenUrl);
  tokenFile = path.join(d.runDir, 'dashboard.token');
  const st = fs.statSync(tokenFile);
  t.equal(st.mode & 0o777, 0o600, 'mode 0600');
  t.equal(st.uid, 0, 'owned by root');
  t.equal(new URL(tokenUrl).searchParams.get('token'), fs.readFileSync(tokenFile, 'utf8').trim());
});

t.test('a non-loopback address is refused unless --dashboard-public, before anything is made', async (t) => {
  const state = path.join(apps, 'refused-state');
  const r = await runCli(['daemon', '--dashboard', '0.0.0.0:0', '--state-dir', state, '--socket', path.join(apps, 'refused.sock'), '--listen', 'none', '--cgroup', 'manifold-dash-refused']);
  t.not(r.code, 0);
  t.match(r.stderr, /--dashboard 0\.0\.0\.0:0 is not a loopback address.*--dashboard-public/);
  t.notOk(fs.existsSync(state), 'no state directory made');
});

t.test('without the token (or with a wrong one) nothing is shown', async (t) => {
  for (const p of ['/', '/app.js', '/api/state', '/events', '/events/logs?app=x', '/nope']) {
    const r = await dash(p);
    t.equal(r.status, 401, `${p} without a cookie: 401`);
    t.notMatch(r.body, /Manifold|apps/, 'nothing of the page');
  }
  t.equal((await dash('/?token=wrong')).status, 401, 'wrong token: 401');
  t.equal((await dash('/?token=')).status, 401, 'empty token: 401');
  t.equal((await dash('/api/state', { cookie: 'manifold_dashboard=wrong' })).status, 401, 'wrong cookie: 401');
  const good = new URL(tokenUrl).searchParams.get('token')!;
  t.equal((await dash('/api/state', { cookie: `manifold_dashboard=${good}x` })).status, 401, 'token plus a character: 401');
  const ex = await dash(`/?token=${encodeURIComponent(good)}`);
  t.equal(ex.status, 303, 'the right token: redirected');
  t.equal(ex.headers.location, '/', 'to / (the token leaves the URL)');
  t.match(String(ex.headers['set-cookie']), /manifold_dashboard=.+; Path=\/; HttpOnly; SameSite=Strict/);
  const cookie = { cookie: `manifold_dashboard=${good}` };
  const page0 = await dash('/', cookie);
  t.equal(page0.status, 200);
  t.match(String(page0.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  t.notMatch(page0.body, /<script>|<script [^>]*>[^<]|\son\w+=/, 'no inline script or handler in the page');
  t.equal((await dash('/api/state', cookie, 'POST')).status, 405, 'only GET');
  t.equal((await dash('/api/state', cookie, 'DELETE')).status, 405, 'only GET');
});

t.test('the page shows the apps and dynos ps shows, and follows the CLI live', async (t) => {
  t.equal((await d.cli('apps:create', 'hello')).code, 0);
  const dep = await d.cli('deploy', path.join(ROOT, 'examples/hello'), '-a', 'hello');
  t.equal(dep.code, 0, dep.stderr);
  // a short runtime-metrics interval, where the daemon has the sampler, for the memory chart
  const set = await d.cli('apps:settings', '-a', 'hello', '--metrics-interval', '1');
  t.comment(`apps:settings --metrics-interval 1: ${set.code === 0 ? 'set' : set.stderr.trim()}`);
  t.equal((await d.cli('ps:scale', 'web=1', '-a', 'hello')).code, 0);
  await waitFor('web.1 up', async () => (await ps('hello')).dynos.some((x) => x.state === 'up'));

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e instanceof Error ? e.message : String(e)}`));
  page.on('requestfailed', (r) => {
    // the page's event streams end when it is closed or reloaded: not an error of the page
    if (!r.url().includes('/events')) consoleErrors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  const res = await page.goto(tokenUrl, { waitUntil: 'domcontentloaded' });
  t.equal(res?.status(), 200);
  t.equal(page.url(), base, 'the token is gone from the address bar');
  await page.waitForSelector('section.app tr.dyno[data-state="up"]', { timeout: 10_000 });
  t.equal(await inPage(`document.getElementById('status').textContent`), 'live');

  const shown = await rows('hello');
  const truth = await ps('hello');
  t.same(
    shown.map((r) => [r.name, r.state]),
    truth.dynos.map((x) => [x.name, x.state]),
    'the dynos and states of ps --json',
  );
  t.equal(shown[0]!.host, os.hostname(), 'host: this host');
  t.match(await inPage<string>(`document.querySelector('section.app[data-app="hello"] .formation').textContent`), /web=1:Standard-1X/);
  t.match(await inPage<string>(`[...document.querySelectorAll('section.app[data-app="hello"] .release-table td')].map((x) => x.textContent).join('|')`), /v2 \(current\)\|Deploy [0-9a-f]{8}\|root\|/);

  // scaling from the CLI shows within 2 s
  const sc = await d.cli('ps:scale', 'web=2', '-a', 'hello');
  t.equal(sc.code, 0, sc.stderr);
  const t0 = Date.now();
  await until(`document.querySelectorAll('section.app[data-app="hello"] tr.dyno').length === 2`);
  const dt = Date.now() - t0;
  t.ok(dt <= 2000, `web.2 on the page ${dt} ms after ps:scale returned`);
  await waitFor('web.2 up', async () => (await ps('hello')).dynos.filter((x) => x.state === 'up').length === 2);
  await until(`document.querySelectorAll('section.app[data-app="hello"] tr.dyno[data-state="up"]').length === 2`, 3000);
  t.same((await rows('hello')).map((r) => [r.name, r.state]), (await ps('hello')).dynos.map((x) => [x.name, x.state]), 'again the same as ps --json');
});

t.test('a crash shows its reason', async (t) => {
  const dir = appDir('crashy', 'worker: echo boom; exit 3\n');
  t.equal((await d.cli('apps:create', 'crashy')).code, 0);
  t.equal((await d.cli('deploy', dir, '-a', 'crashy')).code, 0);
  t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'crashy')).code, 0);
  await until(`[...document.querySelectorAll('section.app[data-app="crashy"] tr.dyno[data-state="crashed"] td')].some((td) => /exited with status 3/.test(td.textContent))`, 10_000, 100);
  const r = (await rows('crashy'))[0]!;
  t.equal(r.state, 'crashed');
  t.match(r.reason, /exited with status 3/);
  t.ok(Number(r.crashes) >= 1, `crash count shown (${r.crashes})`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'crashed.png'), fullPage: true });
  // quiet from here on (the CPU measurement wants idle apps)
  t.equal((await d.cli('ps:scale', 'worker=0', '-a', 'crashy')).code, 0);
});

t.test('log lines stream live, with the source and dyno filters of logs', async (t) => {
  await page.select('#log-app', 'hello');
  await page.select('#log-source', 'app');
  await until(`document.querySelector('#log-lines li') !== null`);
  const marker = `dash-marker-${Date.now()}`;
  const run = await d.cli('run:detached', '-a', 'hello', '--', 'echo', marker);
  t.equal(run.code, 0, run.stderr);
  const t0 = Date.now();
  await until(`${LOG_TEXTS}.some((x) => x.includes(${JSON.stringify(marker)}))`);
  t.comment(`the app's line on the page ${Date.now() - t0} ms after run:detached returned`);
  const classes = await inPage<string[]>(`[...new Set([...document.querySelectorAll('#log-lines li')].map((li) => li.className))]`);
  t.same(classes, ['src-app'], 'only app lines with --source app');
  const line = (await inPage<string[]>(LOG_TEXTS)).find((x) => x.includes(marker)) ?? '';
  t.match(line, new RegExp(`app\\[run\\.\\d+\\]: ${marker}$`));

  // --dyno web.1 and source manifold: the router's lines are not there, web.1's state lines are
  await page.select('#log-source', 'manifold');
  await setDynoFilter('web.1');
  await until(`${LOG_TEXTS}.some((x) => x.includes('manifold[web.1]'))`);
  const whos = await inPage<string[]>(`[...new Set([...document.querySelectorAll('#log-lines li .who')].map((x) => x.textContent))]`);
  t.same(whos, ['manifold[web.1]: '], 'only manifold[web.1]');

  // an app's text is text: markup in a log line is shown, never parsed
  await page.select('#log-source', 'app');
  await setDynoFilter('');
  const evil = '<img src=x id=pwned onerror=alert(1)>';
  t.equal((await d.cli('run:detached', '-a', 'hello', '--', 'echo', evil)).code, 0);
  await until(`${LOG_TEXTS}.some((x) => x.includes(${JSON.stringify(evil)}))`);
  t.equal(await page.$('#pwned'), null, 'no element made from a log line');
});

t.test('the charts get data points (router traffic; memory where the sampler runs)', async (t) => {
  for (let i = 0; i < 40; i++) {
    const r = await get(d.port, 'hello.localhost', i % 10 === 0 ? '/?delay=30' : '/');
    if (r.status !== 200) t.fail(`request ${i}: ${r.status}`);
  }
  // a 404 host and its H-code? No: the router answers unknown hosts without an app. Traffic only.
  const points = (sel: string): Promise<number> => inPage<number>(`Math.max(0, ...[...document.querySelectorAll(${JSON.stringify(sel)})].map((e) => Number(e.dataset.points || 0)))`);
  await waitFor('throughput points', async () => (await points('[data-chart="hello/rps"]')) > 0, 15_000, 200).catch(() => undefined);
  const metrics = JSON.parse((await dash('/api/metrics', { cookie: `manifold_dashboard=${new URL(tokenUrl).searchParams.get('token')!}` })).body) as { bucketMs: number | null; memory: unknown[] };
  if (metrics.bucketMs === null) {
    t.comment('this daemon has no router statistics (routerStats): the traffic charts stay empty');
  } else {
    t.ok((await points('[data-chart="hello/rps"]')) > 0, 'throughput chart has points');
    t.ok((await points('[data-chart="hello/latency"]')) > 0, 'service time chart has points');
  }
  const memSel = '[data-chart^="hello/mem/"]';
  const hasSampler = await waitFor('memory points', async () => (await points(memSel)) > 0, 8000, 250).then(
    () => true,
    () => false,
  );
  if (hasSampler) t.ok(await points(memSel), 'memory chart has points');
  else t.comment(`no memory samples (runtimeMetrics: ${metrics.memory.length} dynos): the memory charts stay empty`);
  t.ok(hasSampler || metrics.memory.length === 0, 'memory samples, if the daemon has any, reach the page');
  await inPage('window.scrollTo(0, 0)');
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: false });
  if (process.env.MANIFOLD_DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.MANIFOLD_DASHBOARD_SCREENSHOT, fullPage: false });
});

t.test('no console errors; the daemon idles with the page open', async (t) => {
  t.same(consoleErrors, [], 'no console errors, CSP violations or failed requests');
  const pid = d.child!.pid!;
  // idle apps: hello's web dynos wait, crashy is scaled to 0; the page stays open
  await sleep(1000);
  const f = await cpuFraction(pid, 10_000);
  t.comment(`daemon CPU with one dashboard open, apps idle: ${(f * 100).toFixed(2)} % of a core over 10 s`);
  t.ok(f <= 0.05, `≤ 5 % of a core (${(f * 100).toFixed(2)} %)`);
});

t.test('stopped: no browser, no dyno, no token left', async (t) => {
  const proc = browser!.process();
  await browser!.close();
  browser = undefined;
  t.ok(proc === null || proc.exitCode !== null || proc.signalCode !== null, 'chromium exited');
  await d.stop();
  t.notOk(fs.existsSync(tokenFile), 'the token file is removed');
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
  t.same(leftoverProcesses(scope), [], 'no dyno processes left');
});
