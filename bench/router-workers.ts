// `npm run bench:router-workers`: `manifold router --workers 1` vs `--workers 2` against nginx with
// worker_processes 1 vs 2, in the same run, same backend, same load generator (issue 12 §2).
//
// Each target is started once and pre-warmed (V8 JIT); rounds are interleaved, the order rotated
// each round; per run: wrk req/s and the proxy's CPU per request (all its threads/processes, from
// /proc). Nothing is pinned by default: two workers need two cores, and on a 2-core host wrk and
// the backend run on those same cores (see the caveat printed at the end).
//
// Environment (all optional):
//   BENCH_SECONDS=5 BENCH_WARMUP=1 BENCH_PREWARM=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=64 BENCH_THREADS=2
//   BENCH_MAX_SECONDS=300 (hard stop)  BENCH_RESULTS_DIR=bench/results
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { CpuMeter, processTree } from './lib/procstat';
import { cleanup, freePort, installCleanupHandlers, makeTempDir, start, trackPid, waitForPort } from './lib/procs';
import { BENCH_HOST, REPO_ROOT, routerCommand, startNginxBackend, startNginxProxy, type Peer } from './lib/peers';
import { runWrk } from './lib/wrk';
import { fmt, median, mdTable } from './lib/stats';
import { envNum } from './lib/env';

const cfg = {
  seconds: envNum('BENCH_SECONDS', 5),
  warmup: envNum('BENCH_WARMUP', 1),
  prewarm: envNum('BENCH_PREWARM', 5),
  rounds: Math.max(1, Math.round(envNum('BENCH_ROUNDS', 3))),
  connections: Math.max(1, Math.round(envNum('BENCH_CONNECTIONS', 64))),
  threads: Math.max(1, Math.round(envNum('BENCH_THREADS', 2))),
  maxSeconds: envNum('BENCH_MAX_SECONDS', 300),
  resultsDir: process.env.BENCH_RESULTS_DIR ?? join(REPO_ROOT, 'bench', 'results'),
};

type Target = 'router-1' | 'router-2' | 'nginx-1' | 'nginx-2';
const TARGETS: readonly Target[] = ['router-1', 'router-2', 'nginx-1', 'nginx-2'];

interface Run {
  reqPerSec: number;
  cpuUsPerReq: number;
  p99Ms: number;
  errors: number;
}

const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** The router CLI with --workers N (routes file naming both backend ports). */
async function startRouterWorkers(workers: number, backends: readonly string[]): Promise<Peer> {
  const cmd = routerCommand();
  if (cmd === null) throw new Error('router command not found: build first (npm run compile)');
  const port = await freePort();
  const dir = makeTempDir(`router-w${workers}`);
  const routes = { apps: { bench: { hosts: [BENCH_HOST], backends: backends.map((address, i) => ({ dyno: `web.${i + 1}`, address })) } } };
  const routesPath = join(dir, 'routes.json');
  writeFileSync(routesPath, JSON.stringify(routes));
  // log lines are formatted and written as in production (to /dev/null), like bench/router.ts
  const proc = start(`router-${workers}`, cmd.cmd, [...cmd.args, '--listen', `127.0.0.1:${port}`, '--routes', routesPath, '--workers', String(workers)], {});
  await waitForPort(port, 15_000, proc);
  return { name: `router-${workers}`, port, proc, dir };
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const hardStop = setTimeout(() => {
    log(`hard stop after ${cfg.maxSeconds}s`);
    cleanup();
    process.exit(3);
  }, cfg.maxSeconds * 1000);
  hardStop.unref();
  const backendPorts = [await freePort(), await freePort()];
  const backend = await startNginxBackend(backendPorts, undefined);
  const backends = backendPorts.map((p) => `127.0.0.1:${p}`);
  const peers = new Map<Target, Peer>([
    ['router-1', await startRouterWorkers(1, backends)],
    ['router-2', await startRouterWorkers(2, backends)],
    ['nginx-1', await startNginxProxy(await freePort(), backends, undefined, 1)],
    ['nginx-2', await startNginxProxy(await freePort(), backends, undefined, 2)],
  ]);
  const wrkOf = (peer: Peer, seconds: number): ReturnType<typeof runWrk> =>
    runWrk({ url: `http://127.0.0.1:${peer.port}/`, threads: cfg.threads, connections: cfg.connections, headers: [`Host: ${BENCH_HOST}`], seconds, track: trackPid });
  for (const [t, peer] of peers) {
    if (cfg.prewarm > 0) await wrkOf(peer, cfg.prewarm);
    log(`pre-warmed ${t}`);
  }
  const runs = new Map<Target, Run[]>(TARGETS.map((t) => [t, []]));
  for (let round = 0; round < cfg.rounds; round++) {
    const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]!);
    for (const t of order) {
      const peer = peers.get(t)!;
      if (cfg.warmup > 0) await wrkOf(peer, cfg.warmup);
      const meter = new CpuMeter(processTree(peer.proc.pid));
      meter.begin();
      const w = await wrkOf(peer, cfg.seconds);
      const cpu = meter.end();
      const run: Run = { reqPerSec: w.reqPerSec, cpuUsPerReq: (cpu / w.requests) * 1e6, p99Ms: w.p99Ms, errors: w.socketErrors + w.non2xx };
      runs.get(t)!.push(run);
      log(`round ${round + 1}/${cfg.rounds} ${t}: ${fmt(run.reqPerSec)} req/s, ${fmt(run.cpuUsPerReq, 1)} µs CPU/req, p99 ${fmt(run.p99Ms, 2)} ms${run.errors > 0 ? `, ${run.errors} errors` : ''}`);
    }
  }
  for (const p of peers.values()) await p.proc.stop();
  await backend.proc.stop();

  const med = (t: Target, k: keyof Run): number => median(runs.get(t)!.map((r) => r[k]));
  const rows = TARGETS.map((t) => [t, fmt(med(t, 'reqPerSec')), fmt(med(t, 'cpuUsPerReq'), 1), fmt(med(t, 'p99Ms'), 2), String(runs.get(t)!.reduce((n, r) => n + r.errors, 0))]);
  const routerRps = med('router-2', 'reqPerSec') / med('router-1', 'reqPerSec');
  const nginxRps = med('nginx-2', 'reqPerSec') / med('nginx-1', 'reqPerSec');
  const routerCpu = med('router-2', 'cpuUsPerReq') / med('router-1', 'cpuUsPerReq');
  const nginxCpu = med('nginx-2', 'cpuUsPerReq') / med('nginx-1', 'cpuUsPerReq');
  const gate = nginxRps >= 1.6 ? (routerRps >= 1.6 ? 'met' : 'NOT met') : 'not applicable (nginx 2 workers < 1.6× its 1 worker here)';
  const cores = cpus().length;
  const report = [
    `router --workers 1/2 vs nginx worker_processes 1/2 — ${new Date().toISOString()}, ${cores} cores (${cpus()[0]?.model ?? '?'}), load ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end`,
    `wrk -t${cfg.threads} -c${cfg.connections}, ${cfg.seconds}s × ${cfg.rounds} rounds (medians), 13-byte nginx backend (1 worker, 2 ports), nothing pinned`,
    '',
    mdTable(['target', 'req/s', 'CPU µs/req', 'p99 ms', 'errors'], rows),
    '',
    `2 workers / 1 worker, req/s: router ${routerRps.toFixed(2)}×, nginx ${nginxRps.toFixed(2)}×; CPU per request: router ${routerCpu.toFixed(2)}×, nginx ${nginxCpu.toFixed(2)}×`,
    `goal (router 2 ≥ 1.6× router 1 where nginx 2 ≥ 1.6× nginx 1): ${gate}`,
    cores <= 2
      ? `caveat: ${cores} cores are shared by wrk, the backend and the proxy; a second proxy worker can only take CPU from them, so this host cannot show 2-worker scaling for either proxy — only whether the router keeps pace with nginx and what a worker costs per request`
      : '',
  ].join('\n');
  process.stdout.write(report + '\n');
  mkdirSync(cfg.resultsDir, { recursive: true });
  const file = join(cfg.resultsDir, `router-workers-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
  writeFileSync(file, JSON.stringify({ cfg, cores, runs: Object.fromEntries(runs), ratios: { routerRps, nginxRps, routerCpu, nginxCpu }, gate }, null, 2));
  log(`results: ${file}`);
  cleanup();
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  cleanup();
  process.exit(1);
});
