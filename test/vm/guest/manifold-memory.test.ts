// Runs INSIDE the pure-cgroup-v2 VM: the dyno manager's memory policy on real kernel limits.
// R14: a dyno above its quota logs `Process running mem=…MB(…%)` + `Error R14 (Memory quota
// exceeded)`, rate-limited, and keeps running. R15: past the kill limit the kernel OOM-kills it,
// the manager logs R15 and restarts it. Elsewhere it skips itself, saying why.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { LogHub } from '../../../src/manifold/logs/hub';
import type { Release } from '../../../src/manifold/store/store';
import { Supervisor, type SupervisorEvent } from '../../../src/manifold/supervisor/supervisor';
import { native, Runtime } from '../../../src/runtime';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const MB = 1024 * 1024;

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
    await new Promise((r) => setTimeout(r, 50));
  }
}

if (process.getuid?.() !== 0 || !pureV2WithMemory()) {
  t.plan(0, 'skip: needs root and a pure cgroup v2 host with the memory controller (runs in the test VM)');
} else {
  t.setTimeout(240_000);
  const runtime = Runtime.open({ runDir: '/run/manifold-vmtest-mem', cgroupName: 'manifold-mem' });
  const slug = fs.mkdtempSync(path.join(os.tmpdir(), 'slug-'));
  const logs = new LogHub();
  const events: SupervisorEvent[] = [];
  const sup = new Supervisor({
    launcher: { start: (s) => runtime.start(s), pipe: () => native().pipe() },
    logs,
    net: 'none',
    policy: { cycleMs: 0, stopGraceMs: 2000, r14IntervalMs: 1000 },
    onEvent: (e) => events.push(e),
  });
  const release: Release = {
    app: 'mem', version: 2, slug, config: {}, description: 'test', createdAt: Date.now(),
    procfile: {
      // holds ~40 MB (dd's buffer, blocked on a pipe nobody reads): over a 16 MB quota, under the kill limit
      hold: 'dd if=/dev/zero bs=40M count=1 2>/dev/null | sleep 600',
      // asks for 200 MB at once: past the 128 MB kill limit
      hog: 'sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=200M count=1',
    },
  };
  sup.addApp('mem', ['mem.localhost'], release, [], { memoryQuota: 16 * MB, memoryKillFactor: 8 });
  t.teardown(async () => {
    await sup.shutdown();
    await runtime.close();
    fs.rmSync(slug, { recursive: true, force: true });
  });
  const lines = (dyno: string): string[] => logs.get('mem').tail(1500, {}).filter((l) => l.dyno === dyno).map((l) => l.message);

  t.test('R14: over the quota, logged about every interval, the dyno keeps running', { timeout: 120_000 }, async (t) => {
    sup.setFormation('mem', [{ type: 'hold', quantity: 1, size: 'standard-1x' }]);
    await until('two R14 errors', () => (lines('hold.1').filter((m) => m === 'Error R14 (Memory quota exceeded)').length >= 2 ? true : undefined), 60_000);
    const log = lines('hold.1');
    const usage = log.find((m) => m.startsWith('Process running mem='));
    t.match(usage, /^Process running mem=[0-9]+MB\([0-9]+\.[0-9]%\)$/, `usage line in Heroku's format: ${usage}`);
    const pct = Number(/\(([0-9.]+)%\)/.exec(usage ?? '')?.[1]);
    t.ok(pct > 100, `reported above 100% of the quota (${pct}%)`);
    t.ok(log.indexOf(usage!) < log.indexOf('Error R14 (Memory quota exceeded)'), 'usage line precedes the R14 error');
    t.notOk(log.some((m) => /R15/.test(m)), 'no R15');
    t.same(events.filter((e) => e.kind === 'crashed' && e.dyno === 'hold.1'), [], 'not crashed: R14 never kills');
    sup.setFormation('mem', []);
  });

  t.test('R15: the kernel OOM-kills past the kill limit; R15 logged, the dyno restarted', { timeout: 120_000 }, async (t) => {
    const from = events.length;
    sup.setFormation('mem', [{ type: 'hog', quantity: 1, size: 'standard-1x' }]);
    const r15 = await until('R15', () => events.slice(from).find((e) => e.kind === 'r15'), 60_000);
    const relaunch = await until('restart', () => events.slice(events.indexOf(r15)).find((e) => e.kind === 'launch'), 30_000);
    t.comment(`R15 → restart begun: ${relaunch.at - r15.at} ms`);
    const log = lines('hog.1');
    t.ok(log.includes('Error R15 (Memory quota vastly exceeded)'), 'Error R15 logged');
    t.ok(log.includes('Stopping process with SIGKILL'), 'Stopping process with SIGKILL');
    t.ok(log.some((m) => /^Process exited with status 137$/.test(m)), 'exit status 137 logged');
    t.ok(log.some((m) => /^State changed from (up|starting) to crashed$/.test(m)), 'state changed to crashed');
    t.ok(log.filter((m) => m.startsWith('Starting process with command')).length >= 2, 'started again');
    t.ok(relaunch.at - r15.at < 5000, 'the first restart is immediate');
    sup.setFormation('mem', []);
  });
}
