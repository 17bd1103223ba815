/**
 * `npm run bench:deploy`: does a large deploy stall the daemon? (issue 9, item 10)
 *
 * A real daemon routes requests to another app's web dyno (busybox httpd) while a 1 GiB tree of
 * 20 000 files is deployed to a second app. Sequential requests through the router and to the
 * control API run before the deploy (the baseline, same run) and during it; the table shows their
 * latencies. Goal: a request to another app during the deploy answers within 50 ms at p99.
 *
 *   BENCH_DEPLOY_MB=1024  BENCH_DEPLOY_FILES=20000  BENCH_BASELINE_S=5  BENCH_RESULTS_DIR=bench/results
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { BenchDaemon, REPO_ROOT, sleep } from './lib/bench-daemon';
import { fmt, mdTable } from './lib/stats';

const TOTAL_MB = Number(process.env.BENCH_DEPLOY_MB ?? 1024);
const FILES = Number(process.env.BENCH_DEPLOY_FILES ?? 20_000);
const BASELINE_MS = Number(process.env.BENCH_BASELINE_S ?? 5) * 1000;
const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ?? path.join(REPO_ROOT, 'bench', 'results');
const GOAL_P99_MS = 50;
/** Everything ends within this, whatever happens. */
const DEADLINE_MS = 15 * 60_000;

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

/** 1 GiB in a few large files plus FILES small ones, as a real app with node_modules might be. */
function makeSource(dir: string): void {
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'Procfile'), 'web: exec busybox httpd -f -p $PORT -h /app\n');
  const small = Buffer.alloc(1024, 'a');
  for (let i = 0; i < FILES; i++) {
    const sub = path.join(dir, 'node_modules', `pkg${Math.floor(i / 100)}`);
    if (i % 100 === 0) fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${i}.js`), small);
  }
  const bigBytes = Math.max(0, TOTAL_MB * 1024 * 1024 - FILES * small.length);
  const chunk = Buffer.alloc(64 * 1024 * 1024, 7);
  let left = bigBytes;
  for (let i = 0; left > 0; i++) {
    const n = Math.min(chunk.length, left);
    fs.writeFileSync(path.join(dir, `asset${i}.bin`), chunk.subarray(0, n));
    left -= n;
  }
}

/** Sequential requests, one at most every `everyMs`, until stop(); each one's latency in ms. */
function requestLoop(request: () => Promise<void>, everyMs: number): { stop(): Promise<number[]>; errors: () => number } {
  const latencies: number[] = [];
  let errors = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        await request();
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
      const left = everyMs - (performance.now() - t0);
      if (left > 0) await sleep(left);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return latencies;
    },
    errors: () => errors,
  };
}

function get(agent: http.Agent, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function api(socketPath: string, method: string, body: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ socketPath, method: 'POST', path: `/v1/${method}`, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:deploy starts a real daemon: run it as root');
  const daemon = new BenchDaemon({ tag: 'deploy', listen: '127.0.0.1:0', net: 'bridge' });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-bench-deploy-src-'));
  const hardStop = setTimeout(() => {
    console.error(`bench:deploy: deadline of ${DEADLINE_MS / 60_000} min reached, stopping`);
    void daemon.stop().finally(() => process.exit(1));
  }, DEADLINE_MS);
  try {
    await daemon.start();
    const small = path.join(work, 'other');
    fs.mkdirSync(small);
    fs.writeFileSync(path.join(small, 'Procfile'), 'web: exec busybox httpd -f -p $PORT -h /app\n');
    fs.writeFileSync(path.join(small, 'index.html'), 'ok\n');
    await daemon.cli('apps:create', 'other');
    await daemon.cli('deploy', small, '-a', 'other');
    await daemon.cli('ps:scale', 'web=1', '-a', 'other');
    await daemon.cli('apps:create', 'big');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const host = 'other.localhost';
    for (let i = 0; ; i++) {
      try {
        await get(agent, daemon.routerPort, host);
        break;
      } catch (err) {
        if (i > 300) throw new Error(`other.localhost never answered: ${(err as Error).message}`);
        await sleep(100);
      }
    }
    const t0 = performance.now();
    makeSource(path.join(work, 'big'));
    console.log(`source: ${TOTAL_MB} MiB, ${FILES} small files (made in ${fmt((performance.now() - t0) / 1000, 1)} s); node ${process.version}, ${os.cpus().length} cores`);

    const phase = async (what: string, during: () => Promise<void>): Promise<{ what: string; route: number[]; api: number[]; errors: number; ms: number }> => {
      // paced, as a user's traffic would be: back-to-back loops would measure how fast we can load the daemon
      const route = requestLoop(() => get(agent, daemon.routerPort, host), 5);
      const apiLoop = requestLoop(() => api(daemon.socket, 'apps', {}), 20);
      const start = performance.now();
      await during();
      const ms = performance.now() - start;
      const [r, a] = await Promise.all([route.stop(), apiLoop.stop()]);
      return { what, route: r, api: a, errors: route.errors() + apiLoop.errors(), ms };
    };
    const baseline = await phase('no deploy (baseline)', () => sleep(BASELINE_MS));
    const during = await phase(`during a ${TOTAL_MB} MiB deploy`, async () => {
      await daemon.cli('deploy', path.join(work, 'big'), '-a', 'big');
    });
    agent.destroy();

    const rows = [baseline, during].flatMap((p) => [
      [p.what, 'router → other app', String(p.route.length), fmt(pct(p.route, 50), 2), fmt(pct(p.route, 99), 2), fmt(Math.max(...p.route), 1), fmt(p.ms / 1000, 1)],
      [p.what, 'control API (apps)', String(p.api.length), fmt(pct(p.api, 50), 2), fmt(pct(p.api, 99), 2), fmt(Math.max(...p.api), 1), fmt(p.ms / 1000, 1)],
    ]);
    console.log(`\n## Deploy vs. routing (${new Date().toISOString().slice(0, 16)} UTC)\n`);
    console.log(mdTable(['phase', 'requests', 'n', 'p50 ms', 'p99 ms', 'max ms', 'phase s'], rows));
    const p99 = pct(during.route, 99);
    console.log(`\ngoal: router p99 during the deploy ≤ ${GOAL_P99_MS} ms: ${p99 <= GOAL_P99_MS ? 'met' : 'NOT met'} (${fmt(p99, 2)} ms; baseline ${fmt(pct(baseline.route, 99), 2)} ms); request errors: ${baseline.errors + during.errors}`);
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `deploy-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
    const summary = (xs: number[]): object => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) });
    fs.writeFileSync(file, JSON.stringify({ node: process.version, totalMb: TOTAL_MB, files: FILES, phases: [baseline, during].map((p) => ({ what: p.what, ms: p.ms, errors: p.errors, route: summary(p.route), api: summary(p.api) })) }, null, 2));
    console.log(`results: ${path.relative(REPO_ROOT, file)}`);
  } finally {
    clearTimeout(hardStop);
    await daemon.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench:deploy: ${(err as Error).message}`);
  process.exit(1);
});
