// `node dist/bench/router-reload.js`: request latency through `manifold router` while its routes
// file (10 000 apps) is reloaded over and over (issue 12: every request stalled 280-530 ms per reload).
//
// One process holds a trivial `net` backend on loopback and C closed-loop keep-alive clients
// (GET to a random app's host; every answer must be 200 "ok"); the router is its own process.
// Phase "steady": no reload. Phase "reloads": the file is atomically replaced (copy + rename) by one
// of two versions that differ in BENCH_CHANGED apps, one every BENCH_PERIOD_MS, or BENCH_GAP_MS after
// the router printed "routes reloaded" if it took longer. Latency = write of the request → last
// byte of the answer. Closed loop: a stall delays only the C requests in flight (coordinated
// omission), so p99 understates a stall; max and the stall phase show it.
//
// Phase "stall" (no traffic, in this process): the longest event-loop stall of each reload (longest
// gap between ticks of a 1 ms interval), with the build's own reload path (RoutesLoader, or the old synchronous
// readFileSync + JSON.parse + table.replace): the figure the box's load disturbs least.
//
// Phase "cpu" (no traffic): CPU ms per reload of `manifold router`'s threads by kind (/proc tasks),
// BENCH_STALL_RELOADS reloads. With its default workers the router's requests are served by worker
// threads, and on a 2-core box every ms a reload takes from any thread is taken from them.
//
// Environment (all optional):
//   BENCH_APPS=10000 BENCH_CHANGED=100 (apps that differ between the two versions; 10000 = all)
//   BENCH_SECONDS=10 (reload phase; steady phase is half) BENCH_CONNECTIONS=16 BENCH_PERIOD_MS=1000 BENCH_GAP_MS=100
//   BENCH_BEFORE=/path/to/old/checkout/dist  also run that build's router first, print both
//   BENCH_STALL_RELOADS=10 BENCH_MAX_SECONDS=180 (hard stop)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { copyFile, rename } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fmt, mdTable } from './lib/stats';
import { envNum } from './lib/env';

const cfg = {
  apps: Math.max(1, Math.round(envNum('BENCH_APPS', 10_000))),
  changed: Math.round(envNum('BENCH_CHANGED', 100)),
  seconds: envNum('BENCH_SECONDS', 10),
  connections: Math.max(1, Math.round(envNum('BENCH_CONNECTIONS', 16))),
  gapMs: envNum('BENCH_GAP_MS', 100),
  periodMs: envNum('BENCH_PERIOD_MS', 1000),
  maxSeconds: envNum('BENCH_MAX_SECONDS', 180),
  stallReloads: Math.max(1, Math.round(envNum('BENCH_STALL_RELOADS', 10))),
  before: process.env.BENCH_BEFORE,
  /** Requests per phase at most: bounds the load whatever the box. */
  maxRequests: 3_000_000,
};

const log = (msg: string): void => void process.stderr.write(`[router-reload ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();
const hardStop = setTimeout(() => {
  log(`hard stop after ${cfg.maxSeconds} s`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, cfg.maxSeconds * 1000);
hardStop.unref();

/** The backend: answers every request head with 200 "ok" (requests have no body). */
async function startBackend(): Promise<{ port: number; server: net.Server }> {
  const reply = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const server = net.createServer({ noDelay: true }, (s) => {
    let tail = '';
    s.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      let at = 0;
      for (let i = text.indexOf('\r\n\r\n'); i !== -1; i = text.indexOf('\r\n\r\n', at)) {
        s.write(reply);
        at = i + 4;
      }
      tail = text.slice(at);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, server };
}

/** Version 0 or 1 of the file; they differ in the dyno names of apps [0, changed). */
function routesText(version: 0 | 1, backendPort: number): string {
  const apps: Record<string, unknown> = {};
  for (let i = 0; i < cfg.apps; i++) {
    const alt = version === 1 && i < cfg.changed;
    apps[`app-${i}`] = {
      hosts: [`app-${i}.bench.test`, `www.app-${i}.bench.test`],
      backends: [
        { dyno: alt ? 'web.3' : 'web.1', address: `127.0.0.1:${backendPort}`, state: 'up' },
        { dyno: alt ? 'web.4' : 'web.2', address: `127.0.0.1:${backendPort}`, state: 'up' },
      ],
      maintenance: false,
    };
  }
  return JSON.stringify({ apps });
}

interface Router {
  child: ChildProcess;
  port: number;
  reloads(): number;
  stderr(): string;
}

async function startRouter(dist: string, file: string): Promise<Router> {
  const cli = join(dist, 'test/router/helpers/run-router-cli.js');
  const child = spawn(process.execPath, [cli, 'router', '--listen', '127.0.0.1:0', '--routes', file, '--no-log-prefix'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
    if (m) return { child, port: Number(m[1]), reloads: () => (err.match(/routes reloaded/g) ?? []).length, stderr: () => err };
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`router did not start: ${err}`);
    await sleep(20);
  }
}

interface PhaseResult {
  latencies: Float64Array;
  /** performance.now() at which each request was written. */
  starts: Float64Array;
  count: number;
  errors: number;
  firstError: string;
}

/** C closed-loop keep-alive clients for `ms`: latency per request in ms. */
async function load(port: number, ms: number, during?: () => Promise<void>): Promise<PhaseResult> {
  const lat = new Float64Array(cfg.maxRequests);
  const starts = new Float64Array(cfg.maxRequests);
  const r: PhaseResult = { latencies: lat, starts, count: 0, errors: 0, firstError: '' };
  const stopAt = Date.now() + ms;
  const client = (id: number): Promise<void> =>
    new Promise((done) => {
      const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
      let buf = '';
      let sent = 0;
      let n = id;
      const next = (): void => {
        if (Date.now() >= stopAt || r.count >= cfg.maxRequests) {
          s.end();
          return done();
        }
        n = (n * 1103515245 + 12345) % 2147483648;
        sent = performance.now();
        s.write(`GET / HTTP/1.1\r\nHost: app-${n % cfg.apps}.bench.test\r\n\r\n`);
      };
      s.on('connect', next);
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        const head = buf.indexOf('\r\n\r\n');
        if (head === -1) return;
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
        if (buf.length < head + 4 + len) return;
        const status = buf.slice(9, 12);
        const body = buf.slice(head + 4, head + 4 + len);
        buf = buf.slice(head + 4 + len);
        if (r.count < lat.length) {
          lat[r.count] = performance.now() - sent;
          starts[r.count] = sent;
        }
        r.count++;
        if (status !== '200' || body !== 'ok') {
          r.errors++;
          r.firstError ||= `${status} ${body.slice(0, 80)}`;
        }
        next();
      });
      s.on('error', (err) => {
        r.errors++;
        r.firstError ||= err.message;
        done();
      });
    });
  const side = during?.();
  await Promise.all(Array.from({ length: cfg.connections }, (_, i) => client(i + 1)));
  await side;
  return r;
}

/** The requests of `r` whose [start, end] overlaps one of the windows [from, to]. */
function within(r: PhaseResult, windows: readonly (readonly [number, number])[]): PhaseResult {
  const n = Math.min(r.count, r.latencies.length);
  const lat = new Float64Array(n);
  const starts = new Float64Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const s = r.starts[i]!;
    const e = s + r.latencies[i]!;
    if (windows.some(([from, to]) => s <= to && e >= from)) {
      lat[k] = r.latencies[i]!;
      starts[k++] = s;
    }
  }
  return { latencies: lat, starts, count: k, errors: 0, firstError: '' };
}

/** The 5 slowest requests: latency, and when each started relative to the last reload's rename. */
function slowest(r: PhaseResult, windows: readonly (readonly [number, number])[]): string {
  const n = Math.min(r.count, r.latencies.length);
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => r.latencies[b]! - r.latencies[a]!).slice(0, 5);
  return idx
    .map((i) => {
      const s = r.starts[i]!;
      const w = windows.filter(([from]) => from <= s).pop();
      return `${fmt(r.latencies[i]!, 1)} ms (${w ? `${fmt(s - w[0])} ms after rename ${windows.indexOf(w) + 1}` : 'before the first reload'})`;
    })
    .join(', ');
}

function pct(r: PhaseResult, p: number): number {
  const v = r.latencies.slice(0, Math.min(r.count, r.latencies.length)).sort();
  if (v.length === 0) return Number.NaN;
  return p >= 1 ? v[v.length - 1]! : v[Math.min(v.length - 1, Math.floor(p * v.length))]!;
}

interface VariantResult {
  name: string;
  steady: PhaseResult;
  reloading: PhaseResult;
  reloads: number;
  reloadMs: number[];
  /** The requests in flight at some point between a file's rename and the router's "routes reloaded". */
  inReload: PhaseResult;
}

async function variant(name: string, dist: string, dir: string): Promise<VariantResult> {
  const file = join(dir, 'routes.json');
  const versions = [join(dir, 'v0.json'), join(dir, 'v1.json')];
  await copyFile(versions[0]!, file);
  log(`${name}: starting ${dist}`);
  const router = await startRouter(dist, file);
  try {
    await load(router.port, 1000); // warm-up (JIT, pooled connections)
    const steady = await load(router.port, (cfg.seconds * 1000) / 2);
    log(`${name}: steady ${steady.count} requests`);
    const reloadMs: number[] = [];
    const windows: [number, number][] = [];
    let stop = false;
    const reloader = async (): Promise<void> => {
      for (let k = 1; !stop; k++) {
        const before = router.reloads();
        const started = performance.now();
        await copyFile(versions[k % 2]!, `${file}.tmp`);
        await rename(`${file}.tmp`, file);
        const deadline = Date.now() + 15_000;
        while (router.reloads() === before) {
          if (Date.now() > deadline) throw new Error(`${name}: no "routes reloaded" 15 s after a change: ${router.stderr().slice(-300)}`);
          await sleep(2);
        }
        reloadMs.push(performance.now() - started);
        windows.push([started, performance.now()]);
        // one reload per period for every build (back to back, a slow build would get fewer)
        await sleep(Math.max(cfg.gapMs, cfg.periodMs - (performance.now() - started)));
      }
    };
    let failure: unknown;
    const reloading = await load(router.port, cfg.seconds * 1000, async () => {
      try {
        const run = reloader();
        await sleep(cfg.seconds * 1000);
        stop = true;
        await run;
      } catch (err) {
        failure = err;
        stop = true;
      }
    });
    if (failure !== undefined) throw failure;
    log(`${name}: ${reloading.count} requests during ${reloadMs.length} reloads; slowest: ${slowest(reloading, windows)}`);
    return { name, steady, reloading, reloads: reloadMs.length, reloadMs, inReload: within(reloading, windows) };
  } finally {
    router.child.kill('SIGTERM');
    children.delete(router.child);
  }
}

/** CPU time (clock ticks) of each thread of `pid`, by "tid name". */
function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${tid} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`, Number(fields[11]) + Number(fields[12]));
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/**
 * CPU ms per reload of each kind of thread of `manifold router` (default workers), no traffic: the
 * figure the box's noise moves least. Threads are grouped by name (MainThread, WorkerThread: the
 * router workers and the routes worker, V8Worker: V8's GC and compiler helpers).
 */
async function cpuPerReload(name: string, dist: string, dir: string): Promise<Map<string, number>> {
  const file = join(dir, 'cpu-routes.json');
  const versions = [join(dir, 'v0.json'), join(dir, 'v1.json')];
  await copyFile(versions[0]!, file);
  const router = await startRouter(dist, file);
  try {
    await sleep(2000);
    const before = threadTicks(router.child.pid!);
    const n = cfg.stallReloads;
    for (let k = 1; k <= n; k++) {
      const seen = router.reloads();
      await copyFile(versions[k % 2]!, `${file}.tmp`);
      await rename(`${file}.tmp`, file);
      const deadline = Date.now() + 15_000;
      while (router.reloads() === seen) {
        if (Date.now() > deadline) throw new Error(`${name}: no "routes reloaded" 15 s after a change`);
        await sleep(5);
      }
      await sleep(300);
    }
    const after = threadTicks(router.child.pid!);
    const byKind = new Map<string, number>();
    const tick = 1000 / 100; // USER_HZ
    for (const [k, v] of after) {
      const kind = k.split(' ').slice(1).join(' ');
      byKind.set(kind, (byKind.get(kind) ?? 0) + ((v - (before.get(k) ?? 0)) * tick) / n);
    }
    log(`${name}: CPU ms per reload ${[...byKind].map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
    return byKind;
  } finally {
    router.child.kill('SIGTERM');
    children.delete(router.child);
  }
}

/** The parts of a build's router module the stall phase uses (old builds have no RoutesLoader). */
interface RouterModule {
  createRouter(config: object): { table: { replace(file: unknown): void } };
  RoutesLoader?: new (table: unknown, file: string) => { load(force?: boolean): Promise<unknown>; close(): Promise<void> };
}

/** Longest event-loop stall (ms) of each of N reloads, and of as long a window without one; no traffic, in this process. */
async function stalls(name: string, dist: string, dir: string): Promise<{ reload: number[]; idle: number[] }> {
  const mod = require(join(dist, 'src/router/index.js')) as RouterModule;
  const router = mod.createRouter({});
  const file = join(dir, 'stall-routes.json');
  const versions = [join(dir, 'v0.json'), join(dir, 'v1.json')];
  await copyFile(versions[0]!, file);
  const loader = mod.RoutesLoader !== undefined ? new mod.RoutesLoader(router.table, file) : null;
  // the old CLI's reload: read to compare with the last text, read again, parse, replace
  const reload = loader !== null ? () => loader.load() : async () => {
    readFileSync(file, 'utf8');
    router.table.replace(JSON.parse(readFileSync(file, 'utf8')));
  };
  await (loader !== null ? loader.load(true) : reload());
  // The longest gap between ticks of a 1 ms interval (monitorEventLoopDelay missed a 150 ms block
  // right after its reset() here: Node 24 dropped that sample).
  let last = performance.now();
  let gap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  const out: number[] = [];
  const idle: number[] = [];
  for (let k = 1; k <= cfg.stallReloads; k++) {
    await copyFile(versions[k % 2]!, file);
    await sleep(20);
    gap = 0;
    last = performance.now();
    const started = performance.now();
    await reload();
    await sleep(20);
    out.push(gap);
    // the box's own noise: the same window without a reload
    gap = 0;
    last = performance.now();
    await sleep(performance.now() - started);
    idle.push(gap);
  }
  clearInterval(tick);
  await loader?.close();
  log(`${name}: stall per reload ${out.map((x) => x.toFixed(0)).join(' ')} ms; same window, no reload: ${idle.map((x) => x.toFixed(0)).join(' ')} ms`);
  return { reload: out, idle };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'router-reload-'));
  const backend = await startBackend();
  try {
    writeFileSync(join(dir, 'v0.json'), routesText(0, backend.port));
    writeFileSync(join(dir, 'v1.json'), routesText(1, backend.port));
    const results: VariantResult[] = [];
    const builds: [string, string][] = cfg.before ? [['before', resolve(cfg.before)], ['after', resolve(__dirname, '..')]] : [['after', resolve(__dirname, '..')]];
    for (const [name, dist] of builds) results.push(await variant(name, dist, dir));
    const stallRows: string[][] = [];
    for (const [name, dist] of builds) {
      const st = await stalls(name, dist, dir);
      const r = st.reload.sort((a, b) => a - b);
      const i = st.idle.sort((a, b) => a - b);
      stallRows.push([name, String(r.length), fmt(r[r.length >> 1]!, 1), fmt(r[r.length - 1]!, 1), fmt(i[i.length >> 1]!, 1), fmt(i[i.length - 1]!, 1)]);
    }
    const ms = (x: number): string => (x >= 10 ? fmt(x) : fmt(x, 2));
    const rows = results.flatMap((v) => [
      [v.name, 'steady (no reload)', fmt(v.steady.count), ms(pct(v.steady, 0.5)), ms(pct(v.steady, 0.99)), ms(pct(v.steady, 1)), String(v.steady.errors), '–'],
      [v.name, `${v.reloads} reloads, all`, fmt(v.reloading.count), ms(pct(v.reloading, 0.5)), ms(pct(v.reloading, 0.99)), ms(pct(v.reloading, 1)), String(v.reloading.errors), ms([...v.reloadMs].sort((a, b) => a - b)[v.reloadMs.length >> 1] ?? Number.NaN)],
      [v.name, '**in a reload** (rename → applied)', fmt(v.inReload.count), ms(pct(v.inReload, 0.5)), ms(pct(v.inReload, 0.99)), ms(pct(v.inReload, 1)), '', ''],
    ]);
    process.stdout.write(`\nrouter reload: ${cfg.apps} apps, ${Math.min(cfg.changed, cfg.apps)} changed per reload, ${cfg.connections} keep-alive clients, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}\n\n`);
    process.stdout.write(`${mdTable(['build', 'phase', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'reload median ms'], rows)}\n`);
    process.stdout.write(`\nlongest event-loop stall per reload, no traffic, in one process:\n\n${mdTable(['build', 'reloads', 'median ms', 'max ms', 'no-reload window: median ms', 'max ms'], stallRows)}\n`);
    const cpuRows: string[][] = [];
    const kinds = ['MainThread', 'WorkerThread', 'V8Worker'];
    for (const [name, dist] of builds) {
      const c = await cpuPerReload(name, dist, dir);
      const total = [...c.values()].reduce((a, b) => a + b, 0);
      cpuRows.push([name, ...kinds.map((k) => fmt(c.get(k) ?? 0)), fmt(total - kinds.reduce((a, k) => a + (c.get(k) ?? 0), 0)), fmt(total)]);
    }
    process.stdout.write(`\nCPU ms per reload by thread kind, \`manifold router\` with its default workers, no traffic (${cfg.stallReloads} reloads):\n\n${mdTable(['build', 'main thread', 'worker threads (router workers + routes worker)', 'V8 helpers (GC, compiler)', 'other', 'total'], cpuRows)}\n`);
    for (const v of results) if (v.steady.errors + v.reloading.errors > 0) process.stdout.write(`${v.name}: first error: ${v.steady.firstError || v.reloading.firstError}\n`);
  } finally {
    backend.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  },
);
