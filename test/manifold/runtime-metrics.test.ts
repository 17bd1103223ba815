/**
 * Runtime metrics end to end, as root: a real daemon (child process), real dynos. One dyno holds
 * ~50 MB (dd's buffer, blocked on a pipe nobody reads), one spins a CPU. With a 1 s interval the
 * app log gets Heroku's two lines per dyno per second; this host's cgroup v2 has no memory
 * controller, so the samples come from /proc and the daemon says so once. labs:disable stops the
 * lines, labs:enable resumes them; bad inputs change nothing. (The cgroup path, with a memory
 * limit, is test/vm/guest/runtime-metrics.test.ts.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { leakScope, leftoverCgroups, leftoverProcesses } from '../runtime/helpers/leaks';
import { sleep, TestDaemon, waitFor, type PsJson } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

const d = new TestDaemon(['--stop-grace', '2s']);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-rtm-'));
const MB = 1024 * 1024;
const HOLD_MB = 50;
fs.writeFileSync(
  path.join(dir, 'Procfile'),
  [
    // dd reads 50 MB of zeros into one buffer (every page touched), then blocks writing it to sleep
    `hold: dd if=/dev/zero bs=${HOLD_MB}M count=1 2>/dev/null | sleep 600`,
    'spin: while :; do :; done',
    '',
  ].join('\n'),
);

const MEMORY = /^source=(\w+\.\d+) dyno=(\S+) sample#memory_total=(\d+\.\d\d)MB sample#memory_rss=(\d+\.\d\d)MB sample#memory_cache=(\d+\.\d\d)MB sample#memory_swap=(\d+\.\d\d)MB sample#memory_pgpgin=(\d+)pages sample#memory_pgpgout=(\d+)pages sample#memory_quota=(\d+\.\d\d)MB$/;
const LOAD = /^source=(\w+\.\d+) dyno=(\S+) sample#load_avg_1m=(\d+\.\d\d) sample#load_avg_5m=(\d+\.\d\d) sample#load_avg_15m=(\d+\.\d\d)$/;

interface Line {
  at: number;
  dyno: string;
  message: string;
}

async function lines(): Promise<Line[]> {
  const r = await d.cli('logs', '-a', 'rtm', '-n', '1500', '--source', 'manifold');
  return r.stdout
    .split('\n')
    .map((l) => /^(\S+) manifold\[([\w.]+)\]: (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ at: Date.parse(m[1]!), dyno: m[2]!, message: m[3]! }));
}

const samples = (ls: Line[], dyno: string): Line[] => ls.filter((l) => l.dyno === dyno && l.message.startsWith('source='));

t.before(async () => {
  await d.start();
  t.equal((await d.cli('apps:create', 'rtm')).code, 0);
  const dep = await d.cli('deploy', dir, '-a', 'rtm');
  t.equal(dep.code, 0, dep.stderr);
});

t.teardown(async () => {
  await d.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  d.cleanup();
});

t.test('bad inputs are refused and change nothing', async (t) => {
  const before = (await d.cli('apps:info', '-a', 'rtm', '--json')).stdout;
  const bad: [string[], RegExp][] = [
    [['labs:enable', 'bogus', '-a', 'rtm'], /unknown labs feature 'bogus' \(features: runtime-metrics\)/],
    [['labs:disable', 'spaceship', '-a', 'rtm'], /unknown labs feature 'spaceship'/],
    [['labs:enable', '-a', 'rtm'], /Not enough non-option arguments/],
    [['labs:enable', 'runtime-metrics', '-a', 'rtm', '--now'], /Unknown argument|unknown option|now/i],
    [['apps:settings', '--metrics-interval', '0.5', '-a', 'rtm'], /runtimeMetricsIntervalMs must be a whole number of ms between 1000 and 3600000/],
    [['apps:settings', '--metrics-interval', '7200', '-a', 'rtm'], /between 1000 and 3600000/],
    [['apps:settings', '--metrics-interval', 'soon', '-a', 'rtm'], /./],
    [['labs:enable', 'runtime-metrics', '-a', 'nosuchapp'], /nosuchapp/],
  ];
  for (const [args, err] of bad) {
    const r = await d.cli(...args);
    t.not(r.code, 0, `${args.join(' ')} fails`);
    t.match(r.stderr, err, `${args.join(' ')}: ${r.stderr.trim()}`);
  }
  t.equal((await d.cli('apps:info', '-a', 'rtm', '--json')).stdout, before, 'settings unchanged');
  const labs = await d.cli('labs', '-a', 'rtm');
  t.equal(labs.code, 0, labs.stderr);
  t.match(labs.stdout, /^=== App Features \(rtm\)\n\[\+\] runtime-metrics +Memory and load/, 'on by default');
});

t.test('lines every second in Heroku format, from /proc on this host, said once', async (t) => {
  const set = await d.cli('apps:settings', '--metrics-interval', '1', '-a', 'rtm');
  t.equal(set.code, 0, set.stderr);
  t.match(set.stdout, /runtimeMetricsIntervalMs: 1000/);
  t.equal((await d.cli('ps:scale', 'hold=1', 'spin=1', '-a', 'rtm')).code, 0);
  // the dd buffer filled, and the spinning dyno's 1-minute load climbed (5 s load samples)
  const ls = await waitFor(
    'a filled hold.1 sample and a loaded spin.1',
    async () => {
      const all = await lines();
      const hold = samples(all, 'hold.1').map((l) => MEMORY.exec(l.message)).filter((m) => m !== null);
      const spin = samples(all, 'spin.1').map((l) => LOAD.exec(l.message)).filter((m) => m !== null);
      return hold.some((m) => Number(m[4]) >= HOLD_MB) && spin.some((m) => Number(m[3]) >= 0.1) ? all : undefined;
    },
    45_000,
    500,
  );
  for (const name of ['hold.1', 'spin.1']) {
    const mine = samples(ls, name);
    t.ok(mine.length >= 6, `${name}: ${mine.length} sample lines`);
    // pairs: the load line, then the memory line, of the same dyno id
    for (let i = 0; i + 1 < mine.length; i += 2) {
      const load = LOAD.exec(mine[i]!.message);
      const mem = MEMORY.exec(mine[i + 1]!.message);
      if (!load || !mem) {
        t.fail(`${name}: not a load + memory pair: ${mine[i]!.message} / ${mine[i + 1]?.message}`);
        break;
      }
      t.equal(load[1], name);
      t.equal(mem[1], name);
      t.equal(load[2], mem[2], 'one dyno id for both lines');
      t.match(mem[2], new RegExp(`^${name.replace('.', '\\.')}-[0-9a-f]+$`), 'dyno= is the runtime id');
      t.equal(mem[9], '512.00', 'memory_quota is Standard-1X');
    }
    // about one pair per second
    const at = mine.filter((l) => l.message.includes('sample#memory_total')).map((l) => l.at);
    const gaps = at.slice(1).map((x, i) => x - at[i]!).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    t.ok(median >= 700 && median <= 1600, `${name}: median gap ${median} ms`);
  }
  const hold = samples(ls, 'hold.1').map((l) => MEMORY.exec(l.message)).filter((m) => m !== null);
  const last = hold[hold.length - 1]!;
  const [total, rss, cache, swap] = [3, 4, 5, 6].map((i) => Number(last[i]));
  // dd's 50 MB plus sh, sleep, dd and dyno-init themselves (a few hundred kB of anon each)
  t.ok(rss >= HOLD_MB && rss <= HOLD_MB + 8, `rss ${rss} MB for a ${HOLD_MB} MB buffer`);
  t.ok(Math.abs(total - (rss + cache + swap)) <= 0.02, `/proc total = rss + cache + swap (${total} = ${rss} + ${cache} + ${swap})`);
  t.ok(cache > 0 && cache < 20, `cache: the processes' mapped files (${cache} MB)`);
  const spin = samples(ls, 'spin.1').map((l) => LOAD.exec(l.message)).filter((m) => m !== null);
  const l = spin[spin.length - 1]!;
  t.ok(Number(l[3]) >= Number(l[4]) && Number(l[4]) >= Number(l[5]), `rising load: 1m ${l[3]} ≥ 5m ${l[4]} ≥ 15m ${l[5]}`);
  t.ok(Number(l[3]) <= 1.05, `one spinning thread: 1m ${l[3]} ≤ 1`);
  const holdLoad = samples(ls, 'hold.1').map((x) => LOAD.exec(x.message)).filter((m) => m !== null);
  t.ok(Number(holdLoad[holdLoad.length - 1]![3]) < 0.1, 'a sleeping dyno has no load');
  t.ok(MB > 0);
  // what this host lacks, said once each in the daemon's own log, however many samples followed
  t.equal(d.log.match(/runtime metrics: this host's cgroup v2 has no memory controller/g)?.length, 1, 'no memory controller: said once');
  t.equal(d.log.match(/runtime metrics: cgroup v2's memory\.stat has no pgpgin\/pgpgout/g)?.length, 1, 'pages from /proc/PID/io: said once');
});

t.test('labs:disable stops the lines, labs:enable resumes them', async (t) => {
  const off = await d.cli('labs:disable', 'runtime-metrics', '-a', 'rtm');
  t.equal(off.code, 0, off.stderr);
  t.equal(off.stdout, 'Disabling runtime-metrics for rtm... done\n');
  t.match((await d.cli('labs', '-a', 'rtm')).stdout, /^\[ \] runtime-metrics/m);
  const countOff = (await lines()).filter((l) => l.message.startsWith('source=')).length;
  await sleep(3500);
  t.equal((await lines()).filter((l) => l.message.startsWith('source=')).length, countOff, 'no lines while disabled');
  // Heroku's name for the feature works too
  const on = await d.cli('labs:enable', 'log-runtime-metrics', '-a', 'rtm');
  t.equal(on.code, 0, on.stderr);
  t.equal(on.stdout, 'Enabling runtime-metrics for rtm... done\n');
  await waitFor('lines again', async () => ((await lines()).filter((l) => l.message.startsWith('source=')).length >= countOff + 4 ? true : undefined), 10_000, 300);
  t.pass('resumed');
  const json = JSON.parse((await d.cli('labs', '-a', 'rtm', '--json')).stdout) as { name: string; enabled: boolean; description: string }[];
  t.same(json, [{ name: 'runtime-metrics', enabled: true, description: json[0]?.description }]);
});

t.test('dynos gone: no more lines, nothing left', async (t) => {
  t.equal((await d.cli('ps:scale', 'hold=0', 'spin=0', '-a', 'rtm')).code, 0);
  await waitFor('no dynos', async () => {
    const ps = JSON.parse((await d.cli('ps', '-a', 'rtm', '--json')).stdout) as PsJson;
    return ps.dynos.length === 0 ? true : undefined;
  });
  await sleep(300);
  const n = (await lines()).filter((l) => l.message.startsWith('source=')).length;
  await sleep(2500);
  t.equal((await lines()).filter((l) => l.message.startsWith('source=')).length, n, 'no lines for dynos that are gone');
  await d.stop();
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
  t.same(leftoverProcesses(scope), [], 'no dyno processes left');
  t.match(d.log, /stopped/);
  t.notMatch(d.log, /runtime metrics: sampling .* failed/, 'no sampling errors');
});
