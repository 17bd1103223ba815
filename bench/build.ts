/**
 * `npm run bench:build` (node dist/bench/build.js): the overhead of a buildpack build (issue 14).
 *
 * A real daemon builds examples/hello with the shipped procfile buildpack BENCH_BUILD_RUNS times
 * (default 10, after one warm-up that also builds the host stack). For each run: the wall time of
 * the whole `manifold build --json` client process, and the buildpack's own bin/compile time as the
 * build dyno measured it (result.compileMs). Overhead = total − compile. Goal: ≤ 2 s (median).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { BenchDaemon, BIN, cleanEnv, REPO_ROOT } from './lib/bench-daemon';
import { fmt, median, mdTable } from './lib/stats';

const RUNS = Number(process.env.BENCH_BUILD_RUNS ?? 10);
const GOAL_MS = 2000;

function buildOnce(d: BenchDaemon, app: string): Promise<{ totalMs: number; compileMs: number; buildMs: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, '--socket', d.socket, 'build', path.join(REPO_ROOT, 'examples/hello'), '-a', app, '--json'], { env: cleanEnv(), timeout: 5 * 60_000 }, (err, stdout, stderr) => {
      const totalMs = performance.now() - t0;
      if (err) return reject(new Error(`build failed: ${stderr.trim() || err.message}`));
      const r = JSON.parse(stdout) as { compileMs?: number; buildMs: number };
      resolve({ totalMs, compileMs: r.compileMs ?? NaN, buildMs: r.buildMs });
    });
  });
}

async function main(): Promise<void> {
  const d = new BenchDaemon({ tag: 'build' });
  await d.start();
  try {
    await d.cli('apps:create', 'hello');
    await buildOnce(d, 'hello'); // warm-up
    const runs: { totalMs: number; compileMs: number; buildMs: number }[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await buildOnce(d, 'hello'));
    const over = runs.map((r) => r.totalMs - r.compileMs);
    const col = (xs: number[]): string[] => [fmt(median(xs)), fmt(Math.min(...xs)), fmt(Math.max(...xs))];
    console.log(mdTable(['ms (n=' + RUNS + ')', 'median', 'min', 'max'], [
      ['total `manifold build` (client wall time)', ...col(runs.map((r) => r.totalMs))],
      ['daemon build time (result.buildMs)', ...col(runs.map((r) => r.buildMs))],
      ['bin/compile (in the build dyno)', ...col(runs.map((r) => r.compileMs))],
      ['overhead = total − compile', ...col(over)],
    ]));
    const m = median(over);
    console.log(`\noverhead median ${fmt(m)} ms: goal ≤ ${GOAL_MS} ms ${m <= GOAL_MS ? 'met' : 'NOT met'}`);
  } finally {
    await d.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
