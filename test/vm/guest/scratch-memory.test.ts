// Runs INSIDE the pure-cgroup-v2 VM: a dyno's writable layer (tmpfs) is charged to the dyno's own
// memory cgroup. Writing to /tmp grows memory.current (as shmem) and removing the file gives it
// back; a layer sized within memory.max fills up with ENOSPC for the app and no OOM; a layer
// larger than memory.max (only an explicit scratchSize can ask for one) ends in the kernel's OOM
// kill of the dyno instead: R15. Elsewhere it skips itself, saying why.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Runtime } from '../../../src/runtime';
import { startCaptured } from '../../runtime/helpers/run';

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

function memory(cgroupPath: string): { current: number; shmem: number } {
  const current = Number(fs.readFileSync(path.join(cgroupPath, 'memory.current'), 'utf8'));
  const stat = fs.readFileSync(path.join(cgroupPath, 'memory.stat'), 'utf8');
  return { current, shmem: Number(/^shmem ([0-9]+)$/m.exec(stat)?.[1] ?? NaN) };
}

// waits for SIGUSR1 (dyno-init relays it to every process of the dyno) after each line it prints;
// go is cleared before the line, so a signal sent as soon as the line is seen is never lost
const STEPWISE =
  'trap "go=1" USR1; step() { go=; echo "$1"; while [ -z "$go" ]; do sleep 0.05; done; }; ' +
  'step ready; dd if=/dev/zero of=/tmp/big bs=1M count=200 2>&1; echo "dd=$?"; ' +
  'step filled; rm /tmp/big; step removed; exec sleep 60';

if (process.getuid?.() !== 0 || !pureV2WithMemory()) {
  t.plan(0, 'skip: needs root and a pure cgroup v2 host with the memory controller (runs in the test VM)');
} else {
  t.setTimeout(240_000);
  const runtime = Runtime.open({ runDir: '/run/manifold-vmtest-scratch', cgroupName: 'manifold-scratch' });
  const appDir = fs.mkdtempSync(path.join(os.tmpdir(), 'app-'));
  fs.chmodSync(appDir, 0o755);
  t.teardown(() => fs.rmSync(appDir, { recursive: true, force: true }));

  t.test('memory.max 64m, 200 MB written to /tmp: ENOSPC at 32 MiB, charged to the dyno, no OOM', { timeout: 120_000 }, async (t) => {
    const run = startCaptured(runtime, {
      name: 'web.1',
      appDir,
      command: { shell: STEPWISE },
      resources: { memoryMax: 64 * MB, memorySwapMax: 0 },
    });
    const dyno = await run.started;
    // a line of the script, or the reason it will never come
    const line = (re: RegExp): Promise<unknown> =>
      Promise.race([
        run.waitFor(re, 60_000),
        dyno.ended.then((s) => Promise.reject(new Error(`the dyno ended (${JSON.stringify(s)}) before ${re}; output: ${run.stdout()}`))),
      ]);
    t.equal(dyno.scratchBytes, 32 * MB, 'the layer is half of memory.max');
    await line(/^ready$/m);
    const before = memory(dyno.cgroupPath);

    dyno.signal('SIGUSR1');
    await line(/^filled$/m);
    const full = memory(dyno.cgroupPath);
    t.match(run.stdout(), /No space left on device/, 'dd got ENOSPC');
    t.match(run.stdout(), /^dd=1$/m, 'and failed with it');
    const grew = full.current - before.current;
    t.ok(grew > 28 * MB, `memory.current grew by ${(grew / MB).toFixed(1)} MiB (${(before.current / MB).toFixed(1)} → ${(full.current / MB).toFixed(1)})`);
    t.ok(full.shmem - before.shmem > 28 * MB, `as shmem: ${(before.shmem / MB).toFixed(1)} → ${(full.shmem / MB).toFixed(1)} MiB`);

    dyno.signal('SIGUSR1');
    await line(/^removed$/m);
    const after = memory(dyno.cgroupPath);
    t.ok(full.shmem - after.shmem > 28 * MB, `removing the file uncharges it: shmem ${(after.shmem / MB).toFixed(1)} MiB`);

    const status = await dyno.stop(2000);
    t.equal(status.oom, false, 'never OOM-killed');
    t.equal(status.stopped, true, 'it ran until stopped');
  });

  t.test('an explicit layer larger than memory.max: the kernel OOM-kills the dyno (R15), not ENOSPC', { timeout: 120_000 }, async (t) => {
    const run = startCaptured(runtime, {
      name: 'web.2',
      appDir,
      command: { shell: 'dd if=/dev/zero of=/tmp/big bs=1M count=200 2>&1; echo "dd=$?"; exec sleep 60' },
      resources: { memoryMax: 64 * MB, memorySwapMax: 0 },
      scratchSize: '256m',
    });
    const dyno = await run.started;
    t.equal(dyno.scratchBytes, 256 * MB, 'the explicit size is kept');
    const { status, stdout } = await run.done;
    t.equal(status.oom, true, `OOM kill (${stdout.trim()})`);
    t.equal(status.signal, 'SIGKILL', 'the whole dyno (memory.oom.group)');
    t.notMatch(stdout, /^dd=/m, 'dd never returned');
  });
}
