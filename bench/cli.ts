/**
 * `npm run bench:cli`: how long the client commands take, against Node's own start.
 *
 * A real daemon (root; its own state dir, socket, cgroup subtree, run dir and bridge, removed at the
 * end) serves an app with one worker dyno, a config var and a few log lines. hyperfine -N times
 * `node -e 0` and each client command in the same run, in interleaved rounds (this machine's speed
 * drifts with the other sessions' load). Goal (issue 8): every client command ≤ 1.3× `node -e 0`,
 * mean against mean. CPU time (user + system, hyperfine's) is shown too: it moves less than wall
 * time when other work shares the 2 cores.
 *
 *   BENCH_RUNS=20 (per round)  BENCH_ROUNDS=3  BENCH_WARMUP=5  BENCH_RESULTS_DIR=bench/results
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BenchDaemon, BIN, cleanEnv, REPO_ROOT, sleep } from './lib/bench-daemon';
import { runHyperfine, type HyperfineCommand } from './lib/hyperfine';
import { fmt, fmtRatio, mdTable } from './lib/stats';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);
const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ?? path.join(REPO_ROOT, 'bench', 'results');
const GOAL = 1.3;
/** Everything, daemon start and cleanup included, ends within this. */
const DEADLINE_MS = 15 * 60_000;
const APP = 'benchcli';

interface Row {
  key: string;
  command: string;
  runs: number;
  meanMs: number;
  sdMs: number;
  medianMs: number;
  minMs: number;
  ratio: number;
  /** user + system CPU time per run (hyperfine's means, averaged over the rounds). */
  cpuMs: number;
  cpuRatio: number;
}

/** hyperfine's mean user and system time of each command, in ms (runHyperfine keeps only wall times). */
function cpuTimes(jsonFile: string): number[] {
  const parsed = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as { results: { user: number; system: number }[] };
  return parsed.results.map((r) => (r.user + r.system) * 1000);
}

/** An app with a release, one running worker dyno, a config var and some log lines. */
async function prepareApp(daemon: BenchDaemon, dir: string): Promise<string> {
  const src = path.join(dir, 'app');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'Procfile'), 'worker: echo worker started; exec sleep 100000\n');
  await daemon.cli('apps:create', APP);
  await daemon.cli('config:set', 'GREETING=hello', 'LANG=en_US.UTF-8', '-a', APP);
  try {
    await daemon.cli('deploy', src, '-a', APP);
    await daemon.cli('ps:scale', 'worker=1', '-a', APP);
  } catch (err) {
    return `app without dynos (${(err as Error).message})`;
  }
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ps = JSON.parse(await daemon.cli('ps', '-a', APP, '--json')) as { dynos: { state: string }[] };
    if (ps.dynos.some((d) => d.state === 'up')) return 'one worker dyno up';
    if (Date.now() > deadline) return 'worker dyno not up after 20 s';
    await sleep(100);
  }
}

function stats(times: number[]): { mean: number; sd: number; median: number; min: number } {
  const n = times.length;
  const mean = times.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1));
  const sorted = [...times].sort((a, b) => a - b);
  const median = n % 2 ? sorted[n >> 1]! : (sorted[(n >> 1) - 1]! + sorted[n >> 1]!) / 2;
  return { mean, sd, median, min: sorted[0]! };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:cli starts a real daemon: run it as root');
  const daemon = new BenchDaemon({ tag: 'cli' });
  const deadline = setTimeout(() => {
    process.stderr.write(`bench:cli: not done within ${DEADLINE_MS / 60_000} min, giving up\n`);
    void daemon.stop().finally(() => process.exit(1));
  }, DEADLINE_MS);
  try {
    await daemon.start();
    const setup = await prepareApp(daemon, daemon.dir);
    const s = daemon.socket;
    const node = process.execPath;
    const commands: HyperfineCommand[] = [
      { key: 'node -e 0', command: `${node} -e 0` },
      { key: 'manifold --version', command: `${node} ${BIN} --version` },
      { key: 'manifold apps', command: `${node} ${BIN} apps --socket ${s}` },
      { key: `manifold ps -a ${APP}`, command: `${node} ${BIN} ps -a ${APP} --socket ${s}` },
      { key: `manifold logs -a ${APP} -n 10`, command: `${node} ${BIN} logs -a ${APP} -n 10 --socket ${s}` },
      { key: `manifold config -a ${APP}`, command: `${node} ${BIN} config -a ${APP} --socket ${s}` },
      { key: `manifold releases -a ${APP}`, command: `${node} ${BIN} releases -a ${APP} --socket ${s}` },
    ];
    const times = new Map<string, number[]>(commands.map((c) => [c.key, []]));
    const cpu = new Map<string, number[]>(commands.map((c) => [c.key, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const jsonFile = path.join(daemon.dir, `hyperfine-${round}.json`);
      const results = await runHyperfine(commands, { runs: RUNS, warmup: WARMUP, jsonFile, env: cleanEnv(), timeoutMs: 5 * 60_000 });
      for (const r of results) times.get(r.key)?.push(...r.timesMs);
      cpuTimes(jsonFile).forEach((ms, i) => cpu.get(commands[i]!.key)?.push(ms));
    }

    const base = stats(times.get('node -e 0') ?? []).mean;
    const baseCpu = stats(cpu.get('node -e 0') ?? []).mean;
    const rows: Row[] = commands.map((c) => {
      const t = times.get(c.key) ?? [];
      const st = stats(t);
      const cpuMs = stats(cpu.get(c.key) ?? []).mean;
      return { key: c.key, command: c.command, runs: t.length, meanMs: st.mean, sdMs: st.sd, medianMs: st.median, minMs: st.min, ratio: st.mean / base, cpuMs, cpuRatio: cpuMs / baseCpu };
    });
    const clientRows = rows.slice(1);
    const met = clientRows.every((r) => r.ratio <= GOAL);
    const [l1, l5] = os.loadavg();

    console.log(`node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}, load average ${fmt(l1, 2)} / ${fmt(l5, 2)} (1 / 5 min)`);
    console.log(`daemon: ${setup}; ${ROUNDS} rounds × ${RUNS} runs (warmup ${WARMUP}) per command\n`);
    console.log(
      mdTable(
        ['command', 'n', 'mean ± sd ms', 'median ms', 'min ms', '× node -e 0 (mean)', 'CPU ms (user+sys)', 'CPU × node -e 0'],
        rows.map((r) => [`\`${r.key}\``, String(r.runs), `${fmt(r.meanMs, 1)} ± ${fmt(r.sdMs, 1)}`, fmt(r.medianMs, 1), fmt(r.minMs, 1), fmtRatio(r.ratio), fmt(r.cpuMs, 1), fmtRatio(r.cpuRatio)]),
      ),
    );
    const worst = clientRows.reduce((a, b) => (b.ratio > a.ratio ? b : a));
    console.log(`\nGoal (every client command ≤ ${GOAL}× node -e 0): ${met ? 'MET' : 'NOT MET'} — slowest ${worst.key} at ${fmtRatio(worst.ratio)}`);

    const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `cli-${stamp}.json`);
    const report = { date: new Date().toISOString(), node: process.version, cores: os.cpus().length, kernel: os.release(), loadavg: os.loadavg(), setup, rounds: ROUNDS, runsPerRound: RUNS, warmup: WARMUP, goal: GOAL, met, rows, timesMs: Object.fromEntries(times) };
    fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
    console.log(`results: ${path.relative(REPO_ROOT, file)}`);
  } finally {
    clearTimeout(deadline);
    await daemon.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:cli: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
