/**
 * Dyno sizes and limits: the size table maps to cgroup files (R15 kill limit = 3× the quota by
 * default), memory.events parsing, and behaviour on a host whose cgroup v2 lacks controllers
 * (this project's own dev host): one warning naming them, limits skipped and reported, the dyno
 * still runs. Enforcement itself is proven in the pure-v2 VM (test/vm/guest/runtime-limits).
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { findCgroup2Mount, WANTED_CONTROLLERS } from '../../src/runtime/cgroup';
import { diffMemoryEvents, parseMemoryEvents } from '../../src/runtime/memory';
import { DYNO_SIZES, findSize, parseBytes, resourcesFor } from '../../src/runtime/sizes';
import { checked, leakWatch } from './helpers/leaks';
import { IS_ROOT, makeAppDir, openTestRuntime, runDyno, testSpec } from './helpers/run';

const MB = 1024 * 1024;

t.test('size table: Heroku sizes, kill limit 3× quota by default', async (t) => {
  t.match(resourcesFor('standard-1x'), { memoryQuota: 512 * MB, memoryMax: 1536 * MB, pidsMax: 256, cpuWeight: 100 }, 'standard-1x: 512 MB quota, R15 at 1.5 GB');
  t.match(resourcesFor('standard-2x'), { memoryQuota: 1024 * MB, memoryMax: 3072 * MB, pidsMax: 512, cpuWeight: 200 }, 'standard-2x: 1 GB, 512 pids, 2× CPU');
  t.match(resourcesFor('performance-m'), { memoryQuota: 2560 * MB, pidsMax: 16384 }, 'performance-m: 2.5 GB');
  t.match(resourcesFor('performance-l'), { memoryQuota: 14336 * MB, pidsMax: 32768 }, 'performance-l: 14 GB');
  for (const name of ['eco', 'basic']) t.equal(resourcesFor(name).memoryQuota, 512 * MB, `${name}: 512 MB`);
  t.match(resourcesFor('standard-1x', { killFactor: 2 }), { memoryMax: 1024 * MB }, 'kill factor configurable');
  t.match(resourcesFor('standard-1x', { memoryMax: 256 * MB, pids: 64 }), { memoryMax: 256 * MB, pidsMax: 64 }, '--memory-max / --pids overrides');
  t.equal(findSize('Standard-2X')?.label, 'Standard-2X', 'case-insensitive lookup');
  t.equal(findSize('1X')?.name, 'standard-1x', 'short forms: 1X is standard-1x');
  t.equal(findSize(' pm ')?.label, 'Performance-M', 'PM is Performance-M');
  t.throws(() => resourcesFor('huge'), /unknown dyno size 'huge'/, 'unknown size named in the error');
  t.ok(DYNO_SIZES.every((s) => s.quota > 0 && s.pids > 0 && s.cpuWeight >= 1 && s.cpuWeight <= 10000), 'every size is a valid cgroup mapping');
});

t.test('byte sizes parse; bad ones are refused', async (t) => {
  t.equal(parseBytes('512m'), 512 * MB);
  t.equal(parseBytes('1.5g'), 1536 * MB);
  t.equal(parseBytes('1073741824'), 1024 * MB);
  t.equal(parseBytes('64MB'), 64 * MB);
  for (const bad of ['', 'lots', '-1m', '1t', '1.2.3g']) t.throws(() => parseBytes(bad), /invalid size/, `'${bad}' refused`);
});

t.test('memory.events parsing and diffing', async (t) => {
  const before = parseMemoryEvents('low 0\nhigh 2\nmax 5\noom 0\noom_kill 0\noom_group_kill 0\n');
  const after = parseMemoryEvents('low 0\nhigh 3\nmax 9\noom 1\noom_kill 2\noom_group_kill 1\nsock_throttled 0\n');
  t.same(diffMemoryEvents(before, after), [
    { kind: 'high', delta: 1, count: 3 },
    { kind: 'max', delta: 4, count: 9 },
    { kind: 'oom', delta: 1, count: 1 },
    { kind: 'oom_kill', delta: 2, count: 2 },
    { kind: 'oom_group_kill', delta: 1, count: 1 },
  ], 'new events in kernel order, unknown fields ignored');
  t.same(diffMemoryEvents(after, after), [], 'no change, no event');
});

if (!IS_ROOT) {
  t.test('limits on this host', { skip: 'needs root (real dynos); CI runs as root' }, async () => undefined);
} else {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);
  const mount = findCgroup2Mount();
  const available = fs.readFileSync(path.join(mount!.mountPoint, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  const missing = WANTED_CONTROLLERS.filter((c) => !available.includes(c));

  t.test('missing controllers: one warning naming them, limits skipped and reported, the dyno runs', checked(leaks, async (t) => {
    t.same(runtime.cgroups.missing, missing, `missing controllers detected: ${missing.join(', ') || 'none'}`);
    const warning = runtime.warning();
    if (missing.length === 0) {
      t.equal(warning, undefined, 'no warning on a host with every controller');
    } else {
      t.match(warning, new RegExp(`lacks the ${missing.join(', ')} controller`), `warning names them: ${warning}`);
    }
    const appDir = makeAppDir(t);
    const c = await runDyno(runtime, testSpec({ appDir, resources: resourcesFor('standard-2x'), command: { argv: ['sh', '-c', 'echo ran'] } }));
    t.equal(c.stdout, 'ran\n', 'the dyno ran');
    t.equal(c.status.status, 0, 'exit 0');
    // v1 hierarchies are never touched: no manifold directory appeared in any of them
    for (const v1 of ['memory', 'cpu', 'pids']) {
      t.notOk(fs.existsSync(`/sys/fs/cgroup/${v1}/manifold`) || fs.existsSync(`/sys/fs/cgroup/${v1}/${path.basename(runtime.cgroups.root)}`), `nothing created in cgroup v1 ${v1}`);
    }
  }));

  t.test('unenforced limits are listed on the dyno', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const dyno = await runtime.start(testSpec({ appDir, resources: { memoryMax: 64 * MB, pidsMax: 32, cpuWeight: 50 }, command: { argv: ['true'] } }));
    const expected = [
      ...(missing.includes('memory') ? ['memory.max', 'memory.oom.group'] : []),
      ...(missing.includes('pids') ? ['pids.max'] : []),
      ...(missing.includes('cpu') ? ['cpu.weight'] : []),
    ];
    t.same([...dyno.unenforced].sort(), expected.sort(), `unenforced: ${dyno.unenforced.join(', ') || 'none'}`);
    for (const [file, value] of [['memory.max', String(64 * MB)], ['pids.max', '32'], ['cpu.weight', '50']] as const) {
      if (!expected.includes(file)) t.equal(fs.readFileSync(path.join(dyno.cgroupPath, file), 'utf8').trim(), value, `${file} written`);
    }
    await dyno.exited;
  }));
}
