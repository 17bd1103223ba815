// `npm run bench:router`: our router against nginx, HAProxy and node http-proxy on loopback, plus
// net-floor: a blind 1:1 byte pipe on Node's `net`, the floor any router written on `net` starts from.
//
// Phases (BENCH_PHASES, comma list; default all):
//   throughput  wrk -t2 -cC closed loop, nginx backends (13-byte body), rounds interleaved;
//               req/s, p50/p99, proxy CPU µs/request from /proc/PID/stat
//   halfload    the same targets at a fixed offered rate (half the router's, else nginx's, max):
//               p99 and p99 added over direct
//   stream      1 GiB chunked (64 KiB chunks) from a Node backend through each proxy, curl
//   idle        N idle client connections, then a pending long poll on each: proxy RSS per conn
//
// Environment (all optional):
//   BENCH_SECONDS=6 BENCH_WARMUP=2 (before each run) BENCH_PREWARM=8 (once per proxy: JIT) BENCH_ROUNDS=3 BENCH_CONNECTIONS=64 BENCH_THREADS=2
//   BENCH_HALF_SECONDS=$BENCH_SECONDS BENCH_HALF_RUNS=5 (half-load rounds; medians, spread printed) BENCH_STREAM_MB=1024 BENCH_STREAM_RUNS=2 BENCH_IDLE_CONNS=9000
//   BENCH_ONLY=router,nginx,haproxy,http-proxy,net-floor  BENCH_ROUTER=auto|off|"cmd args"  BENCH_ROUTER_ARGS=""
//   BENCH_ROUTER_BEFORE="cmd args" (another build, measured in the same run as target router-before)
//   BENCH_PIN=1 (wrk/curl on CPU 0, proxies and backends on CPU 1)  BENCH_NODE_BACKEND=0
//   BENCH_MAX_SECONDS=420 (hard stop)  BENCH_RESULTS_DIR=bench/results  BENCH_KEEP_TMP=0
import { spawnSync } from 'node:child_process';
import { cpus as osCpus } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuMeter, processTree } from './lib/procstat';
import { cleanup, freePort, installCleanupHandlers, makeTempDir, sleep, trackPid } from './lib/procs';
import {
  ALL_PROXIES,
  BENCH_HOST,
  REPO_ROOT,
  routerBeforeCommand,
  routerCommand,
  startAuxBackend,
  startNginxBackend,
  startNodeHello,
  startProxy,
  type Peer,
  type ProxyKind,
} from './lib/peers';
import { runWrk, writePacedScript, type WrkResult } from './lib/wrk';
import { runStream, type StreamResult } from './lib/stream';
import { measureIdle, type IdleResult } from './lib/idle';
import { bytesHuman, fmt, fmtRatio, max, mdTable, median, ratio } from './lib/stats';
import { envNum } from './lib/env';

type Target = 'direct' | ProxyKind;

const cfg = {
  seconds: envNum('BENCH_SECONDS', 6),
  warmup: envNum('BENCH_WARMUP', 2),
  prewarm: envNum('BENCH_PREWARM', 8),
  rounds: Math.max(1, Math.round(envNum('BENCH_ROUNDS', 3))),
  connections: Math.max(1, Math.round(envNum('BENCH_CONNECTIONS', 64))),
  threads: Math.max(1, Math.round(envNum('BENCH_THREADS', 2))),
  halfSeconds: envNum('BENCH_HALF_SECONDS', envNum('BENCH_SECONDS', 6)),
  halfRuns: Math.max(1, Math.round(envNum('BENCH_HALF_RUNS', 5))),
  streamMiB: Math.max(1, Math.round(envNum('BENCH_STREAM_MB', 1024))),
  streamRuns: Math.max(1, Math.round(envNum('BENCH_STREAM_RUNS', 2))),
  idleConns: Math.max(1, Math.min(9500, Math.round(envNum('BENCH_IDLE_CONNS', 9000)))),
  maxSeconds: envNum('BENCH_MAX_SECONDS', 420),
  nodeBackend: process.env.BENCH_NODE_BACKEND === '1',
  phases: new Set((process.env.BENCH_PHASES ?? 'throughput,halfload,stream,idle').split(',').map((s) => s.trim())),
  pin: process.env.BENCH_PIN !== '0' && osCpus().length >= 2,
  resultsDir: process.env.BENCH_RESULTS_DIR ?? join(REPO_ROOT, 'bench', 'results'),
};
const CLIENT_CPUS = cfg.pin ? '0' : undefined;
const SERVER_CPUS = cfg.pin ? '1' : undefined;

const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const routerCmd = routerCommand();
const proxies: ProxyKind[] = ALL_PROXIES.filter((p) => (only ? only.has(p) : true)).filter((p) => p !== 'router' || routerCmd !== null).filter((p) => p !== 'router-before' || routerBeforeCommand() !== null);
const targets: Target[] = ['direct', ...proxies];

const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** stdout+stderr of a short command, whatever its exit status (`wrk -v` exits 1, `nginx -v` prints to stderr). */
function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

function machine(): Record<string, string> {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return {
    nproc: sh('nproc', []),
    kernel: sh('uname', ['-r']),
    cpu: cpuModel,
    node: process.version,
    wrk: /wrk (?:debian\/)?(\S+)/.exec(sh('wrk', ['-v']))?.[1] ?? '?',
    nginx: /nginx\/(\S+)/.exec(sh('nginx', ['-v']))?.[1] ?? '?',
    haproxy: /version (\S+)/.exec(sh('haproxy', ['-v']))?.[1] ?? '?',
    httpProxy: (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'http-proxy', 'package.json'), 'utf8')) as { version: string }).version,
    router: routerCmd ? [routerCmd.cmd, ...routerCmd.args].join(' ') : 'not available',
    routerCommit: sh('git', ['-C', REPO_ROOT, 'log', '-1', '--format=%h %s', '--', 'src/router']),
  };
}

// ---------------------------------------------------------------------------------------------
interface ThroughputRun {
  wrk: Omit<WrkResult, 'raw'>;
  proxyCpuUsPerReq: number;
  backendCpuUsPerReq: number;
}
interface ThroughputSummary {
  runs: ThroughputRun[];
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  proxyCpuUsPerReq: number;
  backendCpuUsPerReq: number;
  errors: number;
  /** proxy CPU/req ÷ nginx's in the same round (rounds are interleaved, so drift cancels), and their median */
  cpuVsNginxByRound: number[];
  cpuVsNginxPaired: number;
}
interface HalfLoadSummary {
  offeredRate: number;
  connections: number;
  delayMs: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  addedP99Ms: number;
  errors: number;
  /** Per round (p99 added is against the same round's direct run); the fields above are medians. */
  runs: { reqPerSec: number; p50Ms: number; p99Ms: number; addedP99Ms: number }[];
}
interface StreamSummary {
  runs: StreamResult[];
  bestMBps: number;
  peakRss: number;
  /** largest RSS growth over the RSS just before a download */
  peakGrowth: number;
}

const results: {
  date: string;
  machine: Record<string, string>;
  config: Omit<typeof cfg, 'phases'> & { clientCpus?: string | undefined; serverCpus?: string | undefined; phases: string[] };
  throughput: Partial<Record<Target, ThroughputSummary>>;
  throughputNodeBackend: Partial<Record<Target, ThroughputSummary>>;
  halfLoad: Partial<Record<Target, HalfLoadSummary>>;
  stream: Partial<Record<Target, StreamSummary>>;
  idle: Partial<Record<ProxyKind, IdleResult>>;
  loadavg: { phase: string; at: string; loadavg: string }[];
  errors: string[];
  goals: { goal: string; value: string; met: boolean | null }[];
} = {
  date: new Date().toISOString(),
  machine: {},
  config: { ...cfg, clientCpus: CLIENT_CPUS, serverCpus: SERVER_CPUS, phases: [...cfg.phases] },
  throughput: {},
  throughputNodeBackend: {},
  halfLoad: {},
  stream: {},
  idle: {},
  loadavg: [],
  errors: [],
  goals: [],
};

/** Other work on this VM skews everything: record the load average around each phase. */
function noteLoad(phase: string): void {
  const la = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  results.loadavg.push({ phase, at: new Date().toISOString(), loadavg: la });
  log(`${phase}: load average ${la}`);
}

function stripRaw(w: WrkResult): Omit<WrkResult, 'raw'> {
  const { raw: _raw, ...rest } = w;
  void _raw;
  return rest;
}

async function startProxies(backends: string[]): Promise<Map<ProxyKind, Peer>> {
  const map = new Map<ProxyKind, Peer>();
  for (const kind of proxies) {
    try {
      map.set(kind, await startProxy(kind, backends, SERVER_CPUS));
    } catch (e) {
      const msg = `${kind} failed to start: ${(e as Error).message}`;
      log(msg);
      results.errors.push(msg);
    }
  }
  return map;
}

async function stopAll(peers: Iterable<Peer>): Promise<void> {
  for (const p of peers) await p.proc.stop();
}

// ---------------------------------------------------------------------------------------------
async function throughputPhase(label: string, backendPeer: Peer, backendPorts: number[], out: Partial<Record<Target, ThroughputSummary>>): Promise<void> {
  const backends = backendPorts.map((p) => `127.0.0.1:${p}`);
  const peers = await startProxies(backends);
  try {
    const portOf = (t: Target): number | undefined => (t === 'direct' ? backendPorts[0] : peers.get(t)?.port);
    // Once per proxy before the rounds: the Node proxies need tens of thousands of requests before
    // V8 has optimised their hot paths; a long-running router is measured in that state.
    if (cfg.prewarm > 0) {
      for (const [kind, peer] of peers) {
        try {
          await runWrk({ url: `http://127.0.0.1:${peer.port}/`, threads: cfg.threads, connections: cfg.connections, headers: [`Host: ${BENCH_HOST}`], cpus: CLIENT_CPUS, track: trackPid, seconds: cfg.prewarm });
        } catch (e) {
          results.errors.push(`${label} prewarm ${kind}: ${(e as Error).message}`);
        }
      }
      log(`${label}: pre-warmed ${[...peers.keys()].join(', ')} for ${cfg.prewarm}s each`);
    }
    const runs = new Map<Target, ThroughputRun[]>();
    const byRound = new Map<Target, Map<number, ThroughputRun>>();
    for (let round = 0; round < cfg.rounds; round++) {
      // rotate the order each round so no target always runs first / after the same neighbour
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as Target);
      for (const t of order) {
        const port = portOf(t);
        if (port === undefined) continue;
        const url = `http://127.0.0.1:${port}/`;
        const common = { url, threads: cfg.threads, connections: cfg.connections, headers: [`Host: ${BENCH_HOST}`], cpus: CLIENT_CPUS, track: trackPid };
        try {
          if (cfg.warmup > 0) await runWrk({ ...common, seconds: cfg.warmup });
          const proxyPids = t === 'direct' ? [] : processTree((peers.get(t) as Peer).proc.pid);
          const backendPids = processTree(backendPeer.proc.pid);
          const pm = new CpuMeter(proxyPids);
          const bm = new CpuMeter(backendPids);
          pm.begin();
          bm.begin();
          const w = await runWrk({ ...common, seconds: cfg.seconds });
          const proxyCpu = pm.end();
          const backendCpu = bm.end();
          const run: ThroughputRun = {
            wrk: stripRaw(w),
            proxyCpuUsPerReq: t === 'direct' ? Number.NaN : (proxyCpu / w.requests) * 1e6,
            backendCpuUsPerReq: (backendCpu / w.requests) * 1e6,
          };
          const list = runs.get(t) ?? [];
          list.push(run);
          runs.set(t, list);
          const rounds = byRound.get(t) ?? new Map<number, ThroughputRun>();
          rounds.set(round, run);
          byRound.set(t, rounds);
          log(
            `${label} round ${round + 1}/${cfg.rounds} ${t}: ${fmt(w.reqPerSec)} req/s p50 ${fmt(w.p50Ms, 2)} ms p99 ${fmt(w.p99Ms, 2)} ms` +
              ` proxy ${fmt(run.proxyCpuUsPerReq, 1)} µs/req${w.socketErrors + w.non2xx > 0 ? ` errors ${w.socketErrors}+${w.non2xx} non-2xx` : ''}`,
          );
        } catch (e) {
          const msg = `${label} ${t}: ${(e as Error).message}`;
          log(msg);
          results.errors.push(msg);
        }
      }
    }
    for (const [t, list] of runs) {
      const paired: number[] = [];
      for (const [round, run] of byRound.get(t) ?? []) {
        const ng = byRound.get('nginx')?.get(round);
        if (ng) paired.push(run.proxyCpuUsPerReq / ng.proxyCpuUsPerReq);
      }
      out[t] = {
        cpuVsNginxByRound: paired,
        cpuVsNginxPaired: median(paired),
        runs: list,
        reqPerSec: median(list.map((r) => r.wrk.reqPerSec)),
        p50Ms: median(list.map((r) => r.wrk.p50Ms)),
        p99Ms: median(list.map((r) => r.wrk.p99Ms)),
        proxyCpuUsPerReq: median(list.map((r) => r.proxyCpuUsPerReq)),
        backendCpuUsPerReq: median(list.map((r) => r.backendCpuUsPerReq)),
        errors: list.reduce((a, r) => a + r.wrk.socketErrors + r.wrk.non2xx, 0),
      };
    }

    if (label === 'nginx-backend' && cfg.phases.has('halfload')) await halfLoadPhase(portOf);
  } finally {
    await stopAll(peers.values());
  }
}

async function halfLoadPhase(portOf: (t: Target) => number | undefined): Promise<void> {
  const ref = results.throughput.router?.reqPerSec ?? results.throughput.nginx?.reqPerSec;
  if (ref === undefined || !Number.isFinite(ref)) {
    results.errors.push('halfload: no reference max throughput');
    return;
  }
  const rate = ref / 2;
  const delayMs = 5;
  // each connection sends one request every (delay + ~0.3 ms latency)
  const connections = Math.max(cfg.threads, Math.round((rate * (delayMs + 0.3)) / 1000));
  const dir = makeTempDir('wrk');
  const script = writePacedScript(dir, delayMs);
  // One noisy p99 says little: BENCH_HALF_RUNS rounds, the order rotated each round, each target's
  // p99 added taken against the same round's direct run; the summary holds medians.
  const runs = new Map<Target, HalfLoadSummary['runs']>();
  const errors = new Map<Target, number>();
  for (let round = 0; round < cfg.halfRuns; round++) {
    const order = targets.slice(round % targets.length).concat(targets.slice(0, round % targets.length));
    const p99 = new Map<Target, { reqPerSec: number; p50Ms: number; p99Ms: number }>();
    for (const t of order) {
      const port = portOf(t);
      if (port === undefined) continue;
      try {
        const w = await runWrk({
          url: `http://127.0.0.1:${port}/`,
          threads: cfg.threads,
          connections,
          seconds: cfg.halfSeconds,
          headers: [`Host: ${BENCH_HOST}`],
          cpus: CLIENT_CPUS,
          script,
          track: trackPid,
        });
        p99.set(t, { reqPerSec: w.reqPerSec, p50Ms: w.p50Ms, p99Ms: w.p99Ms });
        errors.set(t, (errors.get(t) ?? 0) + w.socketErrors + w.non2xx);
        log(`halfload ${round + 1}/${cfg.halfRuns} ${t}: ${fmt(w.reqPerSec)} req/s (offered ~${fmt(rate)}) p50 ${fmt(w.p50Ms, 3)} ms p99 ${fmt(w.p99Ms, 3)} ms`);
      } catch (e) {
        results.errors.push(`halfload ${t}: ${(e as Error).message}`);
      }
    }
    const direct = p99.get('direct')?.p99Ms ?? Number.NaN;
    for (const [t, r] of p99) {
      const list = runs.get(t) ?? [];
      list.push({ ...r, addedP99Ms: r.p99Ms - direct });
      runs.set(t, list);
    }
  }
  for (const [t, list] of runs) {
    results.halfLoad[t] = {
      offeredRate: rate,
      connections,
      delayMs,
      reqPerSec: median(list.map((r) => r.reqPerSec)),
      p50Ms: median(list.map((r) => r.p50Ms)),
      p99Ms: median(list.map((r) => r.p99Ms)),
      addedP99Ms: median(list.map((r) => r.addedP99Ms)),
      errors: errors.get(t) ?? 0,
      runs: list,
    };
  }
}

async function streamPhase(): Promise<void> {
  const auxPort = await freePort();
  const aux = await startAuxBackend(auxPort, cfg.streamMiB, SERVER_CPUS);
  const peers = await startProxies([`127.0.0.1:${auxPort}`]);
  try {
    const timeoutMs = Math.max(60_000, cfg.streamMiB * 100); // ≥ 10 MB/s or give up
    for (let run = 0; run < cfg.streamRuns; run++) {
      for (const t of targets) {
        const port = t === 'direct' ? auxPort : peers.get(t)?.port;
        if (port === undefined) continue;
        try {
          const pids = t === 'direct' ? [] : processTree((peers.get(t) as Peer).proc.pid);
          const r = await runStream({ url: `http://127.0.0.1:${port}/stream`, host: BENCH_HOST, cpus: CLIENT_CPUS, pids, timeoutMs, track: trackPid });
          const expected = cfg.streamMiB * 1024 * 1024;
          if (r.bytes !== expected) throw new Error(`got ${r.bytes} bytes, expected ${expected}`);
          const s = results.stream[t] ?? { runs: [], bestMBps: Number.NaN, peakRss: 0, peakGrowth: 0 };
          s.runs.push(r);
          s.bestMBps = max(s.runs.map((x) => x.mbPerSec));
          s.peakRss = Math.max(s.peakRss, r.peakRss);
          s.peakGrowth = Math.max(s.peakGrowth, r.peakRss - r.baseRss);
          results.stream[t] = s;
          log(`stream ${t} run ${run + 1}: ${fmt(r.mbPerSec)} MB/s, proxy RSS ${bytesHuman(r.baseRss)} → peak ${bytesHuman(r.peakRss)}`);
        } catch (e) {
          const msg = `stream ${t}: ${(e as Error).message}`;
          log(msg);
          results.errors.push(msg);
        }
      }
    }
  } finally {
    await stopAll(peers.values());
    await aux.proc.stop();
  }
}

async function idlePhase(): Promise<void> {
  const auxPort = await freePort();
  const aux = await startAuxBackend(auxPort, 1, SERVER_CPUS);
  try {
    const request = Buffer.from(`GET /poll HTTP/1.1\r\nHost: ${BENCH_HOST}\r\n\r\n`);
    for (const kind of proxies) {
      // a fresh proxy per measurement: RSS freed by earlier phases would hide allocations
      let peer: Peer | undefined;
      try {
        // The router answers H11 ("Backlog too deep") past 200 in-flight requests per dyno, as
        // Heroku does: list the one backend as enough dynos to hold every long poll (all proxies
        // get the same list).
        const dynos = Math.ceil(cfg.idleConns / 200) + 1;
        peer = await startProxy(kind, Array.from({ length: dynos }, () => `127.0.0.1:${auxPort}`), SERVER_CPUS);
        // warm it up: a few ordinary requests through every code path we measure
        await runWrk({ url: `http://127.0.0.1:${peer.port}/`, threads: 1, connections: 4, seconds: 1, headers: [`Host: ${BENCH_HOST}`], cpus: CLIENT_CPUS, track: trackPid });
        const root = peer.proc.pid;
        const r = await measureIdle({
          port: peer.port,
          pids: () => processTree(root),
          connections: cfg.idleConns,
          request,
          upstreamPerRequest: 1,
          timeoutMs: 10_000,
        });
        results.idle[kind] = r;
        log(
          `idle ${kind}: ${r.connections} conns, idle ${bytesHuman(r.idlePerConn)}/conn, pending ${bytesHuman(r.pendingPerConn)}/conn` +
            `${r.failedConnects ? `, ${r.failedConnects} failed connects` : ''}${r.note ? ` (${r.note})` : ''}`,
        );
      } catch (e) {
        const msg = `idle ${kind}: ${(e as Error).message}`;
        log(msg);
        results.errors.push(msg);
      } finally {
        if (peer) await peer.proc.stop();
        await sleep(500); // let the kernel reap the closed sockets
      }
    }
  } finally {
    await aux.proc.stop();
  }
}

// ---------------------------------------------------------------------------------------------
function report(): string {
  const out: string[] = [];
  const tp = results.throughput;
  const ng = tp.nginx;
  const hp = tp['http-proxy'];
  const dir = tp.direct;
  out.push(`## Router benchmark ${results.date.slice(0, 10)}`);
  const m = results.machine;
  out.push('');
  out.push(
    `Machine: ${m.nproc} CPUs (${m.cpu}), kernel ${m.kernel}, Node ${m.node}; wrk ${m.wrk}, nginx ${m.nginx}, HAProxy ${m.haproxy}, http-proxy ${m.httpProxy}.`,
  );
  out.push(`Router: ${m.router}${m.routerCommit ? ` (src/router at ${m.routerCommit})` : ''}.`);
  out.push(
    `Pinning: ${cfg.pin ? 'wrk/curl on CPU 0, proxies and backends on CPU 1' : 'none'}. wrk -t${cfg.threads} -c${cfg.connections} -d${cfg.seconds}s --latency, ` +
      `${cfg.rounds} interleaved round(s), medians; each proxy pre-warmed ${cfg.prewarm}s once, then ${cfg.warmup}s warm-up before each run.`,
  );
  out.push(`Load average (1/5/15 min) during the run: ${results.loadavg.map((l) => `${l.phase} ${l.loadavg}`).join('; ')} (2 CPUs: anything above ~2 means other work shared the cores).`);
  out.push('');
  if (Object.keys(tp).length > 0) {
    out.push('### Throughput (two nginx backends, 13-byte body)');
    out.push('');
    out.push(
      mdTable(
        ['target', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', '× nginx req/s', '× nginx CPU/req', '× http-proxy req/s', '× direct req/s', 'errors'],
        targets
          .filter((t) => tp[t])
          .map((t) => {
            const r = tp[t] as ThroughputSummary;
            return [
              t === 'router' ? '**router (ours)**' : t,
              fmt(r.reqPerSec),
              fmt(r.p50Ms, 2),
              fmt(r.p99Ms, 2),
              fmt(r.proxyCpuUsPerReq, 1),
              fmtRatio(ratio(r.reqPerSec, ng?.reqPerSec)),
              fmtRatio(ratio(r.proxyCpuUsPerReq, ng?.proxyCpuUsPerReq)),
              fmtRatio(ratio(r.reqPerSec, hp?.reqPerSec)),
              fmtRatio(ratio(r.reqPerSec, dir?.reqPerSec)),
              String(r.errors),
            ];
          }),
      ),
    );
    out.push('');
  }
  const tn = results.throughputNodeBackend;
  if (Object.keys(tn).length > 0) {
    out.push('### Throughput (two Node `http` hello backends)');
    out.push('');
    out.push(
      mdTable(
        ['target', 'req/s', 'p99 ms', 'proxy CPU µs/req', '× nginx req/s'],
        targets
          .filter((t) => tn[t])
          .map((t) => {
            const r = tn[t] as ThroughputSummary;
            return [t, fmt(r.reqPerSec), fmt(r.p99Ms, 2), fmt(r.proxyCpuUsPerReq, 1), fmtRatio(ratio(r.reqPerSec, tn.nginx?.reqPerSec))];
          }),
      ),
    );
    out.push('');
  }
  const hl = results.halfLoad;
  if (Object.keys(hl).length > 0) {
    const first = Object.values(hl)[0] as HalfLoadSummary;
    out.push(
      `### Latency at half load (offered ≈ ${fmt(first.offeredRate)} req/s = ½ of ${tp.router ? 'the router' : 'nginx'}'s max; ${first.connections} connections, ${first.delayMs} ms think time; wrk's delay() pacing, not open-loop; medians of ${cfg.halfRuns} rounds)`,
    );
    out.push('');
    out.push(
      mdTable(
        ['target', 'achieved req/s', 'p50 ms', 'p99 ms', 'p99 added vs direct ms', 'p99 added per round ms'],
        targets.filter((t) => hl[t]).map((t) => {
          const r = hl[t] as HalfLoadSummary;
          const each = t === 'direct' ? '–' : r.runs.map((x) => fmt(x.addedP99Ms, 2)).join(', ');
          return [t, fmt(r.reqPerSec), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), t === 'direct' ? '–' : fmt(r.addedP99Ms, 3), each];
        }),
      ),
    );
    out.push('');
  }
  const st = results.stream;
  if (Object.keys(st).length > 0) {
    out.push(`### Streaming ${cfg.streamMiB} MiB chunked (64 KiB chunks, Node raw-net backend, curl client; best of ${cfg.streamRuns})`);
    out.push('');
    out.push(
      mdTable(
        ['target', 'MB/s', '× direct', '× nginx', 'peak proxy RSS', 'peak growth during a download'],
        targets.filter((t) => st[t]).map((t) => {
          const r = st[t] as StreamSummary;
          return [t, fmt(r.bestMBps), fmtRatio(ratio(r.bestMBps, st.direct?.bestMBps)), fmtRatio(ratio(r.bestMBps, st.nginx?.bestMBps)), t === 'direct' ? '–' : bytesHuman(r.peakRss), t === 'direct' ? '–' : bytesHuman(r.peakGrowth)];
        }),
      ),
    );
    out.push('');
  }
  const id = results.idle;
  if (Object.keys(id).length > 0) {
    out.push('### Idle and long-poll connections (proxy RSS growth per client connection)');
    out.push('');
    out.push(
      mdTable(
        ['proxy', 'connections', 'idle B/conn', 'pending long poll B/conn', '× nginx idle', '× nginx pending', 'notes'],
        proxies.filter((p) => id[p]).map((p) => {
          const r = id[p] as IdleResult;
          return [
            p,
            String(r.connections),
            fmt(r.idlePerConn),
            fmt(r.pendingPerConn),
            fmtRatio(ratio(r.idlePerConn, id.nginx?.idlePerConn)),
            fmtRatio(ratio(r.pendingPerConn, id.nginx?.pendingPerConn)),
            r.note || '',
          ];
        }),
      ),
    );
    out.push('');
  }
  if (results.goals.length > 0) {
    out.push('### Goals (issues 4 and 12; ratios from this run)');
    out.push('');
    out.push(mdTable(['goal', 'measured', 'met'], results.goals.map((g) => [g.goal, g.value, g.met === null ? 'n/a' : g.met ? 'yes' : '**no**'])));
    out.push('');
  }
  if (results.errors.length > 0) {
    out.push('### Errors');
    out.push('');
    for (const e of results.errors) out.push(`- ${e}`);
    out.push('');
  }
  return out.join('\n');
}

function evaluateGoals(): void {
  const tp = results.throughput;
  const r = tp.router;
  const g = results.goals;
  const add = (goal: string, value: number, ok: (v: number) => boolean, show: string): void => {
    g.push({ goal, value: Number.isFinite(value) ? show : 'not measured', met: Number.isFinite(value) ? ok(value) : null });
  };
  const rq = ratio(r?.reqPerSec, tp.nginx?.reqPerSec);
  add('req/s ≥ 0.9× nginx', rq, (v) => v >= 0.9, fmtRatio(rq));
  const cpu = ratio(r?.proxyCpuUsPerReq, tp.nginx?.proxyCpuUsPerReq);
  add('CPU/request ≤ 1.1× nginx', cpu, (v) => v <= 1.1, `${fmtRatio(cpu)} (${fmt(r?.proxyCpuUsPerReq, 1)} vs ${fmt(tp.nginx?.proxyCpuUsPerReq, 1)} µs); per-round paired median ${fmtRatio(r?.cpuVsNginxPaired ?? Number.NaN)} [${(r?.cpuVsNginxByRound ?? []).map((x) => x.toFixed(2)).join(', ')}]`);
  const hp = ratio(r?.reqPerSec, tp['http-proxy']?.reqPerSec);
  add('req/s ≥ 2.5× node http-proxy', hp, (v) => v >= 2.5, fmtRatio(hp));
  const hpCpu = ratio(tp['http-proxy']?.proxyCpuUsPerReq, r?.proxyCpuUsPerReq);
  add('(also) CPU/request ≥ 2.5× lower than http-proxy', hpCpu, (v) => v >= 2.5, `${fmtRatio(hpCpu)} lower`);
  const added = results.halfLoad.router?.addedP99Ms ?? Number.NaN;
  add('p99 added ≤ 1 ms at half load', added, (v) => v <= 1, `${fmt(added, 3)} ms`);
  const sr = ratio(results.stream.router?.bestMBps, results.stream.direct?.bestMBps);
  add('streaming ≥ 0.8× direct', sr, (v) => v >= 0.8, fmtRatio(sr));
  const ir = ratio(results.idle.router?.idlePerConn, results.idle.nginx?.idlePerConn);
  add('idle connection memory ≤ 3× nginx', ir, (v) => v <= 3, `${fmtRatio(ir)} (${fmt(results.idle.router?.idlePerConn)} vs ${fmt(results.idle.nginx?.idlePerConn)} B)`);
  const pr = ratio(results.idle.router?.pendingPerConn, results.idle.nginx?.pendingPerConn);
  add('(also) pending long-poll memory ≤ 3× nginx', pr, (v) => v <= 3, `${fmtRatio(pr)} (${fmt(results.idle.router?.pendingPerConn)} vs ${fmt(results.idle.nginx?.pendingPerConn)} B)`);
  // The same goals for the blind Node `net` pipe: where it misses a goal, no router on `net` can meet it.
  const floor = tp['net-floor'];
  const fq = ratio(floor?.reqPerSec, tp.nginx?.reqPerSec);
  add('(floor) net-floor req/s ≥ 0.9× nginx', fq, (v) => v >= 0.9, fmtRatio(fq));
  const fc = ratio(floor?.proxyCpuUsPerReq, tp.nginx?.proxyCpuUsPerReq);
  add('(floor) net-floor CPU/request ≤ 1.1× nginx', fc, (v) => v <= 1.1, `${fmtRatio(fc)} (${fmt(floor?.proxyCpuUsPerReq, 1)} µs); per-round paired median ${fmtRatio(floor?.cpuVsNginxPaired ?? Number.NaN)}`);
  const fa = results.halfLoad['net-floor']?.addedP99Ms ?? Number.NaN;
  add('(floor) net-floor p99 added ≤ 1 ms at half load', fa, (v) => v <= 1, `${fmt(fa, 3)} ms`);
  const fs = ratio(results.stream['net-floor']?.bestMBps, results.stream.direct?.bestMBps);
  add('(floor) net-floor streaming ≥ 0.8× direct', fs, (v) => v >= 0.8, fmtRatio(fs));
  const fi = ratio(results.idle['net-floor']?.idlePerConn, results.idle.nginx?.idlePerConn);
  add('(floor) net-floor idle memory ≤ 3× nginx', fi, (v) => v <= 3, `${fmtRatio(fi)} (${fmt(results.idle['net-floor']?.idlePerConn)} B)`);
  // Issue 12 §1: the router against the floor of its own design (a blind Node `net` pipe).
  const c12 = ratio(r?.proxyCpuUsPerReq, floor?.proxyCpuUsPerReq);
  add('(issue 12) CPU/request ≤ 1.1× net-floor', c12, (v) => v <= 1.1, `${fmtRatio(c12)} (${fmt(r?.proxyCpuUsPerReq, 1)} vs ${fmt(floor?.proxyCpuUsPerReq, 1)} µs)`);
  const q12 = ratio(r?.reqPerSec, floor?.reqPerSec);
  add('(issue 12) req/s ≥ 0.9× net-floor', q12, (v) => v >= 0.9, fmtRatio(q12));
  add('(issue 12) req/s ≥ 2.2× node http-proxy', hp, (v) => v >= 2.2, fmtRatio(hp));
  const rounds = results.halfLoad.router?.runs.length ?? 0;
  add(`(issue 12) p99 added ≤ 1 ms at half load, median of ≥ 5 rounds (${rounds} here)`, rounds >= 5 ? added : Number.NaN, (v) => v <= 1, `${fmt(added, 3)} ms`);
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const hardStop = setTimeout(() => {
    process.stderr.write(`bench: BENCH_MAX_SECONDS=${cfg.maxSeconds} exceeded, stopping\n`);
    cleanup();
    process.exit(2);
  }, cfg.maxSeconds * 1000);
  hardStop.unref();
  results.machine = machine();
  log(`targets: ${targets.join(', ')}${routerCmd ? '' : ' (router not found: set BENCH_ROUTER or build the CLI)'}; pin=${cfg.pin}`);

  noteLoad('start');
  if (cfg.phases.has('throughput')) {
    const ports = [await freePort(), await freePort()];
    const backend = await startNginxBackend(ports, SERVER_CPUS);
    try {
      await throughputPhase('nginx-backend', backend, ports, results.throughput);
    } finally {
      await backend.proc.stop();
    }
    if (cfg.nodeBackend) {
      const nports = [await freePort(), await freePort()];
      const nb = [await startNodeHello(nports[0] as number, SERVER_CPUS), await startNodeHello(nports[1] as number, SERVER_CPUS)];
      try {
        // CPU figures cover the first backend process only; the table reports req/s and proxy CPU
        await throughputPhase('node-backend', nb[0] as Peer, nports, results.throughputNodeBackend);
      } finally {
        await stopAll(nb);
      }
    }
  }
  noteLoad('after throughput');
  if (cfg.phases.has('stream')) await streamPhase();
  noteLoad('after stream');
  if (cfg.phases.has('idle')) await idlePhase();
  noteLoad('end');

  evaluateGoals();
  const md = report();
  process.stdout.write(`${md}\n`);
  mkdirSync(cfg.resultsDir, { recursive: true });
  const stamp = results.date.replace(/:/g, '-').replace(/\..*$/, '');
  const file = join(cfg.resultsDir, `router-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results written to ${file}`);
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    cleanup();
  });
