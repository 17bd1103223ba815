// `npm run bench:spawn`: sequential start→exit of `/bin/true` dynos driven from one Node process,
// against crun, runc, bwrap and unshare on the same read-only busybox rootfs, in the same run.
//
// Rows:
//   peers (hyperfine -N, inside a private mount namespace whose /sys/fs/cgroup is the v2-only
//          directory /sys/fs/cgroup/unified/peers, rootfs bound read-only; see /work/shared/baselines.md):
//          /bin/true, unshare, bwrap, crun --cgroup-manager=disabled run, runc run
//   ours, in process: process.hrtime around `await (await rt.start(spec)).exited` (full teardown
//          included: cgroup removed), stack = the rootfs dir, stack = 'host', and --net bridge when the
//          runtime really provides it (probed: a bridge dyno must see an interface besides lo)
//   ours, CLI: hyperfine of `bin/manifold dyno run --stack ROOTFS -- /bin/true` (Node startup included),
//          next to `node -e 0` for reference
// Measurements are split into BENCH_ROUNDS interleaved rounds (the VM's speed drifts over minutes).
//
// Environment (all optional):
//   BENCH_RUNS=100 (per row, over all rounds)  BENCH_WARMUP=5 (per row and round)  BENCH_ROUNDS=4
//   BENCH_CLI_RUNS=min(BENCH_RUNS,50)  BENCH_ONLY=peers,inproc,cli (phases)  BENCH_MAX_SECONDS=240 (hard stop)
//   BENCH_RESULTS_DIR=bench/results  BENCH_KEEP_TMP=0  BENCH_KEEP_TIMES=1 (per-run times in the JSON)
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { cpus as osCpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Runtime } from '../src/runtime/dyno';
import { BridgeNetwork } from '../src/runtime/network';
import type { DynoSpec, NetworkSpec } from '../src/runtime/spec';
import { runHyperfine, type HyperfineCommand, type HyperfineResult } from './lib/hyperfine';
import { fmt, fmtRatio, mdTable } from './lib/stats';
import { buildBusyboxRootfs } from './lib/spawn-rootfs';
import {
  deleteLeftoverContainers,
  ensurePeersCgroup,
  peerCommands,
  peerLayout,
  peerNamespaceEnv,
  peerNamespaceWrapper,
  removePeersCgroup,
  toolVersion,
  writePeerBundles,
  type PeerLayout,
} from './lib/spawn-peers';
import { summarize, type TimeSummary } from './lib/spawn-stats';
import { envNum } from './lib/env';

const REPO_ROOT = resolve(__dirname, '..', '..');
const BENCH_CGROUP = 'manifold-spawn-bench';
/** A bridge of the bench's own (not the default manifold0), removed afterwards. */
const BENCH_BRIDGE = process.env.BENCH_BRIDGE ?? 'mfspawnbench0';
const BENCH_SUBNET = process.env.BENCH_SUBNET ?? '10.213.0.0/24';
const GOAL_NONE = 0.5;
const GOAL_BRIDGE = 1.0;

const runs = Math.max(1, Math.round(envNum('BENCH_RUNS', 100)));
const cfg = {
  runs,
  warmup: Math.round(envNum('BENCH_WARMUP', 5)),
  rounds: Math.max(1, Math.min(runs, Math.round(envNum('BENCH_ROUNDS', 4)))),
  cliRuns: Math.max(1, Math.round(envNum('BENCH_CLI_RUNS', Math.min(runs, 50)))),
  maxSeconds: envNum('BENCH_MAX_SECONDS', 240),
  phases: new Set((process.env.BENCH_ONLY ?? 'peers,inproc,cli').split(',').map((s) => s.trim())),
  resultsDir: process.env.BENCH_RESULTS_DIR ?? join(REPO_ROOT, 'bench', 'results'),
  keepTmp: process.env.BENCH_KEEP_TMP === '1',
  keepTimes: process.env.BENCH_KEEP_TIMES !== '0',
};

const log = (msg: string): void => {
  process.stderr.write(`[spawn ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** Runs of one round out of `total` split over cfg.rounds rounds. */
function share(total: number, round: number): number {
  const base = Math.floor(total / cfg.rounds);
  return base + (round < total % cfg.rounds ? 1 : 0);
}

// ---------------------------------------------------------------- rows

type RowKey = 'host-true' | 'unshare' | 'bwrap' | 'crun' | 'runc' | 'ours-rootfs' | 'ours-host' | 'ours-bridge' | 'node-startup' | 'ours-cli';

interface Row {
  key: RowKey;
  label: string;
  timing: string;
  times: number[];
  /** Time from start() until the app was exec'd ('started'), in-process rows only. */
  startedMs?: number[];
  unavailable?: string;
  error?: string;
}

const rows = new Map<RowKey, Row>();
function row(key: RowKey, label: string, timing: string): Row {
  let r = rows.get(key);
  if (!r) {
    r = { key, label, timing, times: [] };
    rows.set(key, r);
  }
  return r;
}

const PEER_LABELS: Record<string, string> = {
  'host-true': '`/bin/true` (no isolation, reference)',
  unshare: '`unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot`',
  bwrap: '`bwrap --unshare-all --ro-bind rootfs / --proc /proc --dev /dev`',
  crun: '`crun --cgroup-manager=disabled run`',
  runc: '`runc run` (cgroup v2 leaf)',
};

// ---------------------------------------------------------------- cleanup

interface State {
  scratch?: string;
  layout?: PeerLayout;
  peersCgroupMade: boolean;
  bridgeMade: boolean;
  runtime?: Runtime;
  hyperfinePid?: number;
  cleaned: boolean;
}
const state: State = { peersCgroupMade: false, bridgeMade: false, cleaned: false };

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Synchronous, idempotent: runs on normal exit, errors and signals. */
function cleanupAll(): string[] {
  if (state.cleaned) return [];
  state.cleaned = true;
  const notes: string[] = [];
  if (state.hyperfinePid !== undefined) {
    try {
      process.kill(-state.hyperfinePid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (state.layout) {
    const left = deleteLeftoverContainers(state.layout);
    if (left.length) notes.push(`deleted leftover containers: ${left.join(', ')}`);
  }
  // our bench cgroup subtree (only under the v2 mount; the runtime never touches v1)
  const rt = state.runtime;
  if (rt) {
    for (const d of rt.running) d.signal('SIGKILL');
    for (const leaf of rt.cgroups.leaves()) {
      rt.cgroups.kill(leaf);
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(join(rt.cgroups.root, leaf));
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          sleepSync(20);
        }
      }
    }
    try {
      rmdirSync(rt.cgroups.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') notes.push(`rmdir ${rt.cgroups.root}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  if (rt && state.bridgeMade) {
    try {
      BridgeNetwork.cleanup(rt.runDir, BENCH_BRIDGE);
    } catch (err) {
      notes.push(`bridge ${BENCH_BRIDGE}: ${(err as Error).message}`);
    }
  }
  if (state.peersCgroupMade || existsSync('/sys/fs/cgroup/unified/peers')) {
    notes.push(...removePeersCgroup());
  }
  if (state.scratch && !cfg.keepTmp) {
    try {
      rmSync(state.scratch, { recursive: true, force: true });
    } catch (err) {
      notes.push(`rm ${state.scratch}: ${(err as Error).message}`);
    }
  }
  return notes;
}

process.on('exit', () => {
  for (const n of cleanupAll()) process.stderr.write(`spawn bench cleanup: ${n}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nspawn bench: ${sig}, cleaning up\n`);
    process.exit(130);
  });
}

// ---------------------------------------------------------------- measuring

async function hyperfine(commands: HyperfineCommand[], n: number, round: number, inNamespace: boolean): Promise<HyperfineResult[]> {
  const scratch = state.scratch as string;
  const layout = state.layout as PeerLayout;
  return runHyperfine(commands, {
    runs: n,
    warmup: cfg.warmup,
    jsonFile: join(scratch, `hf-${inNamespace ? 'ns' : 'host'}-${round}.json`),
    ...(inNamespace ? { wrapper: peerNamespaceWrapper(), env: peerNamespaceEnv(layout) } : {}),
    onSpawn: (pid) => {
      state.hyperfinePid = pid;
    },
    timeoutMs: cfg.maxSeconds * 1000,
  });
}

async function runPeers(round: number, layout: PeerLayout): Promise<void> {
  const n = share(cfg.runs, round);
  if (n === 0) return;
  const cmds = peerCommands(layout);
  try {
    const res = await hyperfine(cmds, n, round, true);
    for (const r of res) row(r.key as RowKey, PEER_LABELS[r.key] ?? r.key, 'hyperfine').times.push(...r.timesMs);
  } catch (err) {
    // one failing peer fails the whole hyperfine call: retry each alone so the others still count
    log(`peers round ${round}: ${(err as Error).message}; retrying one by one`);
    for (const c of cmds) {
      const r = row(c.key as RowKey, PEER_LABELS[c.key] ?? c.key, 'hyperfine');
      if (r.error) continue;
      try {
        const [one] = await hyperfine([c], n, round, true);
        r.times.push(...(one?.timesMs ?? []));
      } catch (e) {
        r.error = (e as Error).message;
      }
    }
  }
}

interface InProcVariant {
  key: 'ours-rootfs' | 'ours-host' | 'ours-bridge';
  label: string;
  stack: string;
  net?: NetworkSpec;
}

async function oneDyno(rt: Runtime, spec: DynoSpec): Promise<{ total: number; started: number }> {
  const t0 = process.hrtime.bigint();
  const d = await rt.start(spec);
  const t1 = process.hrtime.bigint();
  const st = await d.exited;
  const t2 = process.hrtime.bigint();
  if (st.status !== 0) throw new Error(`dyno exited with status ${st.status}`);
  return { total: Number(t2 - t0) / 1e6, started: Number(t1 - t0) / 1e6 };
}

function specFor(v: InProcVariant, appDir: string, argv: string[] = ['/bin/true']): DynoSpec {
  return { name: 'run.1', command: { argv }, appDir, stack: v.stack, ...(v.net ? { net: v.net } : {}) };
}

async function runInProc(round: number, rt: Runtime, variants: InProcVariant[], appDir: string): Promise<void> {
  const n = share(cfg.runs, round);
  for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
    const r = row(v.key, v.label, 'in-process hrtime');
    if (r.error || r.unavailable) continue;
    try {
      for (let i = 0; i < cfg.warmup; i++) await oneDyno(rt, specFor(v, appDir));
      for (let i = 0; i < n; i++) {
        const t = await oneDyno(rt, specFor(v, appDir));
        r.times.push(t.total);
        (r.startedMs ??= []).push(t.started);
      }
    } catch (err) {
      r.error = (err as Error).message;
      log(`${v.key}: ${r.error}`);
    }
  }
}

async function runCli(round: number, rootfs: string, appDir: string): Promise<void> {
  const n = share(cfg.cliRuns, round);
  if (n === 0) return;
  const manifold = join(REPO_ROOT, 'bin', 'manifold');
  const cmds: HyperfineCommand[] = [
    { key: 'node-startup', command: `${process.execPath} -e 0` },
    { key: 'ours-cli', command: `${manifold} dyno run --stack ${rootfs} --app ${appDir} -- /bin/true` },
  ];
  const labels: Record<string, string> = {
    'node-startup': '`node -e 0` (Node startup, reference)',
    'ours-cli': '`manifold dyno run --stack ROOTFS -- /bin/true` (CLI: Node startup included)',
  };
  for (const c of cmds) {
    const r = row(c.key as RowKey, labels[c.key] ?? c.key, 'hyperfine');
    if (r.error) continue;
    try {
      const [res] = await hyperfine([c], n, round, false);
      r.times.push(...(res?.timesMs ?? []));
    } catch (err) {
      r.error = (err as Error).message;
      log(`${c.key}: ${r.error}`);
    }
  }
}

/**
 * Does this runtime really do bridge networking? The spec type has had `net: { mode: 'bridge' }`
 * from the start, so accepting the spec proves nothing: a bridge dyno must have a default route.
 */
async function probeBridge(rt: Runtime, rootfs: string, appDir: string, scratch: string): Promise<string | undefined> {
  const out = join(scratch, 'bridge-probe.txt');
  const fd = openSync(out, 'w+');
  try {
    const spec: DynoSpec = { ...specFor({ key: 'ours-bridge', label: '', stack: rootfs, net: { mode: 'bridge' } }, appDir, ['/bin/cat', '/proc/net/route']), stdio: { stdout: fd } };
    const d = await rt.start(spec);
    const st = await d.exited;
    if (st.status !== 0) return `a bridge dyno exited with status ${st.status}`;
  } catch (err) {
    return `starting a dyno with net: { mode: 'bridge' } failed: ${(err as Error).message}`;
  } finally {
    closeSync(fd);
  }
  // a fresh netns may hold fallback tunnel devices (sit0, tunl0, ...): ask for a default IPv4 route instead
  const routes = readFileSync(out, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length > 2);
  if (!routes.some((f) => f[1] === '00000000')) {
    return `the runtime accepts net: { mode: 'bridge' } but a bridge dyno has no default route (${routes.length ? routes.map((f) => f[0]).join(',') : 'no IPv4 route at all'}: dyno-init brings up loopback only)`;
  }
  return undefined;
}

// ---------------------------------------------------------------- report

interface RowOut {
  key: RowKey;
  label: string;
  timing: string;
  summary: TimeSummary;
  xCrun: number;
  startedMedianMs?: number;
  unavailable?: string;
  error?: string;
  timesMs?: number[];
}

const ORDER: RowKey[] = ['host-true', 'unshare', 'bwrap', 'crun', 'runc', 'ours-rootfs', 'ours-host', 'ours-bridge', 'node-startup', 'ours-cli'];

function machine(): Record<string, string | number> {
  const uname = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
  return {
    nproc: osCpus().length,
    kernel: uname,
    cpu: osCpus()[0]?.model ?? 'unknown',
    loadavgAtEnd: loadavg().map((x) => x.toFixed(2)).join(' '),
    node: process.version,
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const hardStop = setTimeout(() => {
    log(`BENCH_MAX_SECONDS=${cfg.maxSeconds} reached, stopping`);
    process.exit(2);
  }, cfg.maxSeconds * 1000);
  hardStop.unref();
  if (process.getuid?.() !== 0) throw new Error('the spawn benchmark needs root (dynos and the peers need namespaces and mounts)');

  const scratch = mkdtempSync(join(tmpdir(), 'manifold-bench-spawn-'));
  state.scratch = scratch;
  const rootfs = join(scratch, 'rootfs');
  const appDir = join(scratch, 'app');
  mkdirSync(rootfs, { mode: 0o755 });
  mkdirSync(appDir, { mode: 0o755 });
  const applets = buildBusyboxRootfs(rootfs);
  log(`rootfs ${rootfs}: busybox-static + ${applets} applet links; runs ${cfg.runs} (CLI ${cfg.cliRuns}) in ${cfg.rounds} rounds, warmup ${cfg.warmup}`);

  const layout = peerLayout(scratch, rootfs);
  state.layout = layout;
  if (cfg.phases.has('peers')) {
    state.peersCgroupMade = ensurePeersCgroup();
    writePeerBundles(layout);
  }

  let rt: Runtime | undefined;
  let bridgeReason: string | undefined = 'in-process phase not run';
  const variants: InProcVariant[] = [];
  if (cfg.phases.has('inproc')) {
    state.bridgeMade = !existsSync(`/sys/class/net/${BENCH_BRIDGE}`);
    rt = Runtime.open({ runDir: join(scratch, 'run'), cgroupName: BENCH_CGROUP, bridge: { name: BENCH_BRIDGE, subnet: BENCH_SUBNET } });
    state.runtime = rt;
    variants.push({ key: 'ours-rootfs', label: '**Manifold dyno, stack = rootfs dir, --net none**', stack: rootfs });
    variants.push({ key: 'ours-host', label: "Manifold dyno, stack = 'host', --net none", stack: 'host' });
    bridgeReason = await probeBridge(rt, rootfs, appDir, scratch);
    if (bridgeReason === undefined) {
      variants.push({ key: 'ours-bridge', label: 'Manifold dyno, stack = rootfs dir, **--net bridge**', stack: rootfs, net: { mode: 'bridge' } });
    } else {
      const r = row('ours-bridge', 'Manifold dyno, --net bridge', 'in-process hrtime');
      r.unavailable = `not yet available: ${bridgeReason}`;
      log(`--net bridge: ${r.unavailable}`);
    }
  }

  for (let round = 0; round < cfg.rounds; round++) {
    log(`round ${round + 1}/${cfg.rounds}`);
    const phases: (() => Promise<void>)[] = [];
    if (cfg.phases.has('peers')) phases.push(() => runPeers(round, layout));
    if (rt) {
      const runtime = rt;
      phases.push(() => runInProc(round, runtime, variants, appDir));
    }
    if (cfg.phases.has('cli')) phases.push(() => runCli(round, rootfs, appDir));
    for (const p of round % 2 === 0 ? phases : [...phases].reverse()) await p();
  }
  state.hyperfinePid = undefined;

  const crunMedian = summarize(rows.get('crun')?.times ?? []).median;
  const out: RowOut[] = [];
  for (const key of ORDER) {
    const r = rows.get(key);
    if (!r) continue;
    const s = summarize(r.times);
    out.push({
      key,
      label: r.label,
      timing: r.timing,
      summary: s,
      xCrun: s.median / crunMedian,
      ...(r.startedMs ? { startedMedianMs: summarize(r.startedMs).median } : {}),
      ...(r.unavailable ? { unavailable: r.unavailable } : {}),
      ...(r.error ? { error: r.error } : {}),
      ...(cfg.keepTimes ? { timesMs: r.times.map((x) => Math.round(x * 1000) / 1000) } : {}),
    });
  }

  const table = mdTable(
    ['runtime (start → exit of `/bin/true`)', 'timed by', 'n', 'min ms', 'median ms', 'p90 ms', '× crun median'],
    out.map((o) => {
      if (o.unavailable) return [o.label, o.timing, '–', '–', '–', '–', o.unavailable];
      if (o.error && o.summary.n === 0) return [o.label, o.timing, '0', '–', '–', '–', `failed: ${o.error.slice(0, 120)}`];
      return [o.label, o.timing, String(o.summary.n), fmt(o.summary.min, 1), fmt(o.summary.median, 1), fmt(o.summary.p90, 1), fmtRatio(o.xCrun)];
    }),
  );

  const ours = out.find((o) => o.key === 'ours-rootfs');
  const bridge = out.find((o) => o.key === 'ours-bridge');
  const goalNone = ours && Number.isFinite(ours.xCrun) ? ours.xCrun <= GOAL_NONE : undefined;
  const goalBridge = bridge && !bridge.unavailable && Number.isFinite(bridge.xCrun) ? bridge.xCrun <= GOAL_BRIDGE : undefined;
  const verdict = (g: boolean | undefined): string => (g === undefined ? 'not measured' : g ? 'MET' : 'NOT MET');
  const lines = [
    table,
    '',
    `Goal (issue 2): Manifold dyno median ≤ ${GOAL_NONE}× crun's: ${ours ? fmtRatio(ours.xCrun) : '–'} → ${verdict(goalNone)}`,
    `Goal (issue 3): --net bridge median ≤ ${GOAL_BRIDGE}× crun's (without network): ${bridge?.unavailable ? 'not yet available' : bridge ? fmtRatio(bridge.xCrun) : '–'} → ${verdict(goalBridge)}`,
  ];
  for (const o of out) {
    if (o.startedMedianMs !== undefined) lines.push(`${o.key}: start() → app exec'd median ${fmt(o.startedMedianMs, 1)} ms; rest (app run, exit, teardown) ${fmt(o.summary.median - o.startedMedianMs, 1)} ms`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n\n`);

  const date = new Date();
  const stamp = date.toISOString().slice(0, 16).replace(/:/g, '');
  mkdirSync(cfg.resultsDir, { recursive: true });
  const file = join(cfg.resultsDir, `spawn-${stamp}.json`);
  const versions = {
    crun: toolVersion('crun'),
    runc: toolVersion('runc'),
    bwrap: toolVersion('bwrap'),
    unshare: toolVersion('unshare', ['-V']),
    hyperfine: toolVersion('hyperfine'),
    busybox: toolVersion('busybox', []),
  };
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: date.toISOString(),
        machine: machine(),
        config: { ...cfg, phases: [...cfg.phases] },
        versions,
        goals: { noneXCrun: GOAL_NONE, noneMet: goalNone ?? null, bridgeXCrun: GOAL_BRIDGE, bridgeMet: goalBridge ?? null, bridgeUnavailable: bridgeReason ?? null },
        crunMedianMs: crunMedian,
        rows: out,
        seconds: (Date.now() - t0) / 1000,
      },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${file} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const notes = cleanupAll();
  for (const n of notes) log(`cleanup: ${n}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`spawn bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
