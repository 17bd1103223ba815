// Runs INSIDE the pure-cgroup-v2 VM: runtime metrics from the dyno's cgroup files (memory.stat,
// memory.current, memory.swap.current) with a memory quota set. A dyno holding ~40 MB shows it as
// memory_rss in Heroku's line, memory_quota is the app's quota, the history (DynoMetricsSource) says
// source 'cgroup', and the daemon log never claims the memory controller is missing. Elsewhere it
// skips itself, saying why.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { LogHub } from '../../../src/manifold/logs/hub';
import { RuntimeMetrics } from '../../../src/manifold/metrics/runtime-metrics';
import type { Release } from '../../../src/manifold/store/store';
import { Supervisor } from '../../../src/manifold/supervisor/supervisor';
import { native, Runtime } from '../../../src/runtime';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const MB = 1024 * 1024;
const HOLD_MB = 40;

function pureV2WithMemory(): boolean {
  try {
    return fs.statfsSync('/sys/fs/cgroup').type === CGROUP2_SUPER_MAGIC &&
      fs.readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/).includes('memory');
  } catch {
    return false;
  }
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MEMORY = /^source=hold\.1 dyno=(hold\.1-[0-9a-f]+) sample#memory_total=(\d+\.\d\d)MB sample#memory_rss=(\d+\.\d\d)MB sample#memory_cache=(\d+\.\d\d)MB sample#memory_swap=(\d+\.\d\d)MB sample#memory_pgpgin=(\d+)pages sample#memory_pgpgout=(\d+)pages sample#memory_quota=64\.00MB$/;
const LOAD = /^source=hold\.1 dyno=(hold\.1-[0-9a-f]+) sample#load_avg_1m=(\d+\.\d\d) sample#load_avg_5m=(\d+\.\d\d) sample#load_avg_15m=(\d+\.\d\d)$/;

if (process.getuid?.() !== 0 || !pureV2WithMemory()) {
  t.plan(0, 'skip: needs root and a pure cgroup v2 host with the memory controller (runs in the test VM)');
} else {
  t.setTimeout(150_000);
  const runtime = Runtime.open({ runDir: '/run/manifold-vmtest-rtm', cgroupName: 'manifold-rtm' });
  const slug = fs.mkdtempSync(path.join(os.tmpdir(), 'slug-'));
  const logs = new LogHub();
  const sup = new Supervisor({ launcher: { start: (s) => runtime.start(s), pipe: () => native().pipe() }, logs, net: 'none', policy: { cycleMs: 0, stopGraceMs: 2000 } });
  const daemonLog: string[] = [];
  const metrics = new RuntimeMetrics({ dynos: sup, logs, log: (l) => daemonLog.push(l), loadSampleMs: 1000 });
  metrics.start();
  const release: Release = {
    app: 'rtm', version: 2, slug, config: {}, description: 'test', createdAt: Date.now(),
    // dd's buffer, every page written, then dd blocks on a pipe nobody reads: under the 64 MB quota
    procfile: { hold: `dd if=/dev/zero bs=${HOLD_MB}M count=1 2>/dev/null | sleep 600` },
  };
  sup.addApp('rtm', ['rtm.localhost'], release, [], { memoryQuota: 64 * MB, runtimeMetricsIntervalMs: 1000 });
  t.teardown(async () => {
    metrics.stop();
    await sup.shutdown();
    await runtime.close();
    fs.rmSync(slug, { recursive: true, force: true });
  });
  const messages = (): string[] => logs.get('rtm').tail(1500, {}).filter((l) => l.dyno === 'hold.1' && l.source === 'manifold').map((l) => l.message);

  t.test('cgroup samples: Heroku lines, the quota, the history', { timeout: 120_000 }, async (t) => {
    sup.setFormation('rtm', [{ type: 'hold', quantity: 1, size: 'standard-1x' }]);
    const mem = await until('a sample with the buffer filled', () => {
      const ms = messages().map((m) => MEMORY.exec(m)).filter((m) => m !== null);
      const last = ms[ms.length - 1];
      return ms.length >= 3 && last && Number(last[3]) >= HOLD_MB ? last : undefined;
    }, 90_000);
    const [total, rss, cache, swap] = [2, 3, 4, 5].map((i) => Number(mem[i]));
    t.ok(rss >= HOLD_MB && rss <= HOLD_MB + 6, `memory_rss ${rss} MB (anon of memory.stat) for a ${HOLD_MB} MB buffer`);
    t.ok(total + 0.02 >= rss + cache, `memory_total ${total} (memory.current + swap) covers rss ${rss} + cache ${cache}`);
    t.ok(total <= rss + cache + swap + 8, `and not much more (kernel memory): ${total}`);
    const all = messages();
    const i = all.indexOf(mem[0]);
    const load = LOAD.exec(all[i - 1] ?? '');
    t.ok(load, `the load line comes first: ${all[i - 1]}`);
    t.equal(load?.[1], mem[1], 'same dyno id');

    const [h] = metrics.dynos('rtm');
    t.ok(h, 'the dyno is in the history');
    t.equal(h?.source, 'cgroup');
    t.equal(h?.quota, 64 * MB);
    t.equal(h?.dyno, 'hold.1');
    t.equal(h?.id, mem[1]);
    t.ok((h?.memory.length ?? 0) >= 3, 'several points');
    const ts = h?.memory.map((p) => p.t) ?? [];
    t.same(ts, [...ts].sort((a, b) => a - b), 'oldest first');
    t.ok(h?.load !== null, 'load sampled');
    t.same(metrics.dynos('other'), [], 'filtered by app');
    t.notOk(daemonLog.some((l) => /no memory controller/.test(l)), `no fallback to /proc claimed: ${daemonLog.join(' | ')}`);
    for (const l of new Set(daemonLog)) t.equal(daemonLog.filter((x) => x === l).length, 1, `said once: ${l}`);

    sup.setFormation('rtm', []);
    await until('dyno gone from the history', () => (metrics.dynos('rtm').length === 0 ? true : undefined), 30_000);
    t.pass('gone from the history');
    await until('no dyno cgroup left', () => (fs.readdirSync(runtime.cgroups.root, { withFileTypes: true }).some((e) => e.isDirectory()) ? undefined : true), 30_000);
    t.pass('no dyno cgroup left');
  });
}
