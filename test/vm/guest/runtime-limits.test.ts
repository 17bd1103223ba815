// Runs INSIDE the pure-cgroup-v2 VM: what this host's kernel cannot show. Real dynos through the
// runtime, with cgroup v2 memory, pids and cpu controllers: the R15 kill and its event, quota
// reporting for R14, a fork bomb stopped at pids.max, cpu.weight/cpu.max, and delegation.
// Elsewhere (the host's own tap run picks these files up too) it skips itself, saying why.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Runtime } from '../../../src/runtime';
import type { MemoryEvent } from '../../../src/runtime/memory';
import { kmsgOffsetUs, oomKillTimestampsUs } from '../../../bench/lib/kmsg';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const MB = 1024 * 1024;

function pureV2WithControllers(): boolean {
  try {
    if (fs.statfsSync('/sys/fs/cgroup').type !== CGROUP2_SUPER_MAGIC) return false;
    const controllers = fs.readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8');
    return ['memory', 'pids', 'cpu'].every((c) => controllers.split(/\s+/).includes(c));
  } catch {
    return false;
  }
}

if (process.getuid?.() !== 0 || !pureV2WithControllers()) {
  t.plan(0, 'skip: needs root and a pure cgroup v2 host with memory, pids and cpu controllers (runs in the test VM)');
} else {
  // everything is ~5x slower under qemu TCG: the root's default 30 s would cut the suite short
  t.setTimeout(240_000);
  const runtime = Runtime.open({ runDir: '/run/manifold-vmtest' });
  const appDir = fs.mkdtempSync(path.join(os.tmpdir(), 'app-'));
  t.teardown(() => fs.rmSync(appDir, { recursive: true, force: true }));

  t.test('memory.max kills a dyno that allocates past it; JS gets oom_kill and the exit is OOM', { timeout: 60_000 }, async (t) => {
    const events: { event: MemoryEvent; at: bigint }[] = [];
    const dyno = await runtime.start({
      name: 'web.1',
      command: { argv: ['sh', '-c', 'sleep 0.3; dd if=/dev/zero of=/dev/null bs=100M count=1'] },
      appDir,
      resources: { memoryMax: 64 * MB, memorySwapMax: 0 },
    });
    dyno.on('memory', (event: MemoryEvent) => events.push({ event, at: process.hrtime.bigint() }));
    t.equal(fs.readFileSync(path.join(dyno.cgroupPath, 'memory.max'), 'utf8').trim(), String(64 * MB), 'memory.max written');
    const status = await dyno.exited;
    t.equal(status.oom, true, 'exit classified as OOM');
    t.equal(status.signal, 'SIGKILL', 'killed by SIGKILL (memory.oom.group takes the whole dyno)');
    const oomKill = events.find((e) => e.event.kind === 'oom_kill');
    t.ok(oomKill, `an oom_kill event reached JS (events: ${events.map((e) => e.event.kind).join(', ')})`);
    const kernelUs = oomKillTimestampsUs().pop();
    if (oomKill && kernelUs !== undefined) {
      const latencyMs = (Number(oomKill.at / 1000n) - (kernelUs - kmsgOffsetUs())) / 1000;
      t.comment(`oom_kill latency (kernel log → JS callback): ${latencyMs.toFixed(1)} ms`);
      // the kernel counts oom_kill just before it logs 'Killed process', and the clock calibration
      // is good to a few ms: a slightly negative figure is the same event
      t.ok(latencyMs > -50 && latencyMs < 5000, 'the event came with the kernel OOM kill');
    }
    t.notOk(fs.existsSync(dyno.cgroupPath), 'cgroup removed');
  });

  t.test('memory above the quota is reported (R14 input) without killing', { timeout: 60_000 }, async (t) => {
    const quota = 16 * MB;
    const dyno = await runtime.start({
      name: 'web.2',
      // dd holds its 48 MB buffer while blocked writing to a pipe nobody reads
      command: { argv: ['sh', '-c', 'dd if=/dev/zero bs=48M count=1 2>/dev/null | sleep 60'] },
      appDir,
      resources: { memoryQuota: quota, memoryMax: 256 * MB },
    });
    let usage = dyno.memoryUsage();
    for (let i = 0; i < 100 && (usage?.current ?? 0) <= quota; i++) {
      await new Promise((r) => setTimeout(r, 100));
      usage = dyno.memoryUsage();
    }
    t.ok(usage && usage.current > quota, `memory.current ${usage?.current} above quota ${quota}`);
    t.ok(usage && usage.rss > 0, 'memory.stat anon read');
    t.equal(dyno.quota, quota, 'quota known to the dyno');
    const status = await dyno.stop(2000);
    t.equal(status.oom, false, 'not an OOM');
    t.equal(status.stopped, true, 'ended by stop()');
  });

  t.test('a fork bomb stops at pids.max and the host is unaffected', { timeout: 60_000 }, async (t) => {
    const dyno = await runtime.start({
      name: 'worker.1',
      command: { argv: ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do (sleep 30 &) 2>/dev/null; i=$((i+1)); done; sleep 30'] },
      appDir,
      resources: { pidsMax: 32 },
    });
    const events = path.join(dyno.cgroupPath, 'pids.events');
    let max = 0;
    for (let i = 0; i < 100 && max === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      max = Number(/^max ([0-9]+)/m.exec(fs.readFileSync(events, 'utf8'))?.[1] ?? 0);
    }
    t.ok(max > 0, `pids.events max = ${max}`);
    const current = Number(fs.readFileSync(path.join(dyno.cgroupPath, 'pids.current'), 'utf8'));
    t.ok(current <= 32, `pids.current ${current} ≤ 32`);
    t.equal(spawnSync('true').status, 0, 'the host can still fork');
    await dyno.stop(1000);
    t.notOk(fs.existsSync(dyno.cgroupPath), 'cgroup removed');
  });

  t.test('cpu.weight and cpu.max are applied', { timeout: 60_000 }, async (t) => {
    const dyno = await runtime.start({
      name: 'worker.2',
      command: { argv: ['sh', '-c', 'timeout 1.5 sh -c "while :; do :; done"; sleep 30'] },
      appDir,
      resources: { cpuWeight: 50, cpuMax: '10000 100000' },
    });
    t.equal(fs.readFileSync(path.join(dyno.cgroupPath, 'cpu.weight'), 'utf8').trim(), '50', 'cpu.weight');
    t.equal(fs.readFileSync(path.join(dyno.cgroupPath, 'cpu.max'), 'utf8').trim(), '10000 100000', 'cpu.max');
    await new Promise((r) => setTimeout(r, 1600));
    const stat = fs.readFileSync(path.join(dyno.cgroupPath, 'cpu.stat'), 'utf8');
    const throttled = Number(/^nr_throttled ([0-9]+)/m.exec(stat)?.[1] ?? 0);
    const usageUs = Number(/^usage_usec ([0-9]+)/m.exec(stat)?.[1] ?? 0);
    t.ok(throttled > 0, `nr_throttled = ${throttled}`);
    t.ok(usageUs < 600_000, `busy loop held to ~10% of a CPU: ${usageUs} µs in ~1.5 s`);
    await dyno.stop(1000);
  });

  t.test('under a delegated cgroup (systemd Delegate=yes) the supervisor moves to a leaf', { timeout: 60_000 }, async (t) => {
    const delegated = '/sys/fs/cgroup/manifold-delegate-test';
    fs.mkdirSync(delegated, { recursive: true });
    t.teardown(() => {
      for (const sub of ['manifold', 'supervisor']) {
        try {
          fs.rmdirSync(path.join(delegated, sub));
        } catch {
          /* already gone */
        }
      }
      fs.rmdirSync(delegated);
    });
    const script = `
      const { Runtime } = require(${JSON.stringify(path.resolve(__dirname, '../../../src/runtime'))});
      (async () => {
        const rt = Runtime.open({ runDir: '/run/manifold-vmtest-deleg' });
        const d = await rt.start({ name: 'run.1', command: { argv: ['true'] }, appDir: ${JSON.stringify(appDir)}, resources: { pidsMax: 64 } });
        const pids = require('fs').readFileSync(d.cgroupPath + '/pids.max', 'utf8').trim();
        await d.exited;
        console.log(JSON.stringify({ root: rt.cgroups.root, own: require('fs').readFileSync('/proc/self/cgroup', 'utf8').trim(), pids }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync('sh', ['-c', `echo $$ > ${delegated}/cgroup.procs && exec ${process.execPath} -e "$0"`, script], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, `runtime under a delegated cgroup works: ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { root?: string; own?: string; pids?: string };
    t.equal(out.root, `${delegated}/manifold`, 'dynos live under the delegated cgroup');
    t.equal(out.own, '0::/manifold-delegate-test/supervisor', 'the supervisor moved itself into a leaf');
    t.equal(out.pids, '64', 'controllers were enabled for the dynos subtree');
  });
}
