/**
 * The sampler's history (DynoMetricsSource, what Prometheus and the dashboard read) on this host,
 * in-process: a real runtime and supervisor, real dynos. Without the memory controller the source
 * is 'proc'; a disabled app keeps its history but writes no lines; a dyno leaves the history when
 * its process is gone; nothing is left behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { LogHub } from '../../src/manifold/logs/hub';
import { RuntimeMetrics } from '../../src/manifold/metrics/runtime-metrics';
import type { Release } from '../../src/manifold/store/store';
import { Supervisor } from '../../src/manifold/supervisor/supervisor';
import { native } from '../../src/runtime';
import { checked, leakWatch } from '../runtime/helpers/leaks';
import { openTestRuntime, requireRoot } from '../runtime/helpers/run';

const MB = 1024 * 1024;

async function until<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  // the test subtree has memory.current only where cgroup v2 has the memory controller
  const memoryController = fs.existsSync(path.join(runtime.cgroups.root, 'memory.current'));
  const scope = leakWatch(runtime);
  const slug = fs.mkdtempSync(path.join(os.tmpdir(), 'slug-'));
  const logs = new LogHub();
  const sup = new Supervisor({ launcher: { start: (s) => runtime.start(s), pipe: () => native().pipe() }, logs, net: 'none', policy: { cycleMs: 0, stopGraceMs: 2000 } });
  const said: string[] = [];
  const metrics = new RuntimeMetrics({ dynos: sup, logs, log: (l) => said.push(l), loadSampleMs: 1000 });
  metrics.start();
  const release: Release = {
    app: 'hist', version: 2, slug, config: {}, description: 'test', createdAt: Date.now(),
    procfile: { hold: 'dd if=/dev/zero bs=30M count=1 2>/dev/null | sleep 600' },
  };
  sup.addApp('hist', ['hist.localhost'], release, [], { memoryQuota: 100 * MB, runtimeMetricsIntervalMs: 1000, runtimeMetrics: false });
  t.teardown(async () => {
    metrics.stop();
    await sup.shutdown();
    fs.rmSync(slug, { recursive: true, force: true });
  });

  t.test('history of a running dyno, lines off', checked(scope, async (t) => {
    sup.setFormation('hist', [{ type: 'hold', quantity: 1, size: 'standard-1x' }]);
    const h = await until('three samples with the buffer filled', () => {
      const [d] = metrics.dynos('hist');
      return d && d.memory.length >= 3 && d.memory[d.memory.length - 1]!.rss >= 30 * MB ? d : undefined;
    }, 30_000);
    t.equal(h.app, 'hist');
    t.equal(h.dyno, 'hold.1');
    t.match(h.id, /^hold\.1-[0-9a-f]+$/);
    t.equal(h.quota, 100 * MB, "the app's quota");
    t.equal(h.source, memoryController ? 'cgroup' : 'proc', `source ${h.source}`);
    const last = h.memory[h.memory.length - 1]!;
    t.ok(last.rss >= 30 * MB && last.rss <= 38 * MB, `rss ${(last.rss / MB).toFixed(2)} MB for a 30 MB buffer`);
    t.ok(last.total >= last.rss + last.cache, 'total covers rss and cache');
    const gaps = h.memory.slice(1).map((p, i) => p.t - h.memory[i]!.t);
    t.ok(gaps.every((g) => g >= 500 && g <= 2000), `about a second apart: ${gaps.join(', ')} ms`);
    t.ok(h.load && h.load.avg1m >= 0 && h.load.avg1m < 0.1, `a sleeping dyno: load ${h.load?.avg1m}`);
    t.same(logs.get('hist').tail(1500, {}).filter((l) => l.message.startsWith('source=')), [], 'runtimeMetrics false: no lines');
    if (!memoryController) t.equal(said.filter((l) => /no memory controller/.test(l)).length, 1, 'the /proc fallback said once');
    // switched on: the lines follow at the next sample, no restart
    sup.setSettings('hist', { memoryQuota: 100 * MB, runtimeMetricsIntervalMs: 1000 });
    await until('lines', () => (logs.get('hist').tail(1500, {}).some((l) => /^source=hold\.1 dyno=\S+ sample#memory_total=.* sample#memory_quota=100\.00MB$/.test(l.message)) ? true : undefined), 5000);
    t.pass('lines once enabled');
    sup.setFormation('hist', []);
    await until('dyno gone from the history', () => (metrics.dynos().length === 0 ? true : undefined), 15_000);
    t.pass('gone from the history');
    await until('dyno exited', () => (sup.runningDynos().length === 0 ? true : undefined), 15_000);
    await new Promise((r) => setTimeout(r, 500));
  }));
}
