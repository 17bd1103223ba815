/**
 * Cleanup at volume: Node's fd count stays flat over many sequential spawns (successful, failing at
 * exec, force-killed) and concurrent ones, and nothing of any dyno stays on the host.
 */
import t from 'tap';
import { checked, dynoLeftovers, leakWatch, openFdCount } from './helpers/leaks';
import { makeAppDir, openTestRuntime, requireRoot, runDyno, sh, startCaptured, testSpec } from './helpers/run';

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);

  t.test('the leftover check sees a live dyno (so it can fail)', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const c = startCaptured(runtime, testSpec({ appDir, command: sh('echo up; sleep 100') }));
    const dyno = await c.started;
    await c.waitFor(/^up$/m);
    const live = dynoLeftovers(leaks);
    t.ok(live.some((l) => l.startsWith('cgroup:') && l.includes(dyno.id)), 'its cgroup leaf is reported');
    t.ok(live.some((l) => l.startsWith('process:') && l.includes('dyno-init')), 'its dyno-init is reported');
    t.ok(live.some((l) => l.startsWith('process:') && l.includes('sleep')), 'its app processes are reported');
    t.ok(live.some((l) => l.startsWith('runtime:')), 'the runtime still counts it');
    await dyno.kill();
    await c.done;
  }));

  t.test('50 sequential /bin/true dynos: fd count stable, nothing left', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    // warm up (addon, stack skeleton, lazily opened fds of Node itself)
    await runDyno(runtime, testSpec({ appDir, command: { argv: ['/bin/true'] } }));
    await settle();
    const before = openFdCount();
    let failures = 0;
    for (let i = 0; i < 50; i++) {
      const dyno = await runtime.start(testSpec({ appDir, command: { argv: ['/bin/true'] } }));
      const status = await dyno.exited;
      if (status.status !== 0) failures++;
      const left = dynoLeftovers(leaks);
      if (left.length > 0) {
        t.fail(`leftovers after spawn ${i}: ${left.join('; ')}`);
        break;
      }
    }
    await settle();
    t.equal(failures, 0, 'every dyno exited 0');
    t.equal(openFdCount(), before, 'Node fd count unchanged after 50 spawns');
  }));

  t.test('failing and killed dynos leak nothing either', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    await runDyno(runtime, testSpec({ appDir, command: { argv: ['/bin/true'] } }));
    await settle();
    const before = openFdCount();
    for (let i = 0; i < 10; i++) {
      const c = startCaptured(runtime, testSpec({ appDir, command: { argv: ['no-such-command'] } }));
      await c.started.then(
        () => t.fail('should not start'),
        () => undefined,
      );
      await c.done.catch(() => undefined);
    }
    for (let i = 0; i < 10; i++) {
      const c = startCaptured(runtime, testSpec({ appDir, command: sh('(setsid sleep 100 &); sleep 100') }));
      const dyno = await c.started;
      await dyno.kill();
      await c.done;
    }
    await settle();
    t.same(dynoLeftovers(leaks), []);
    t.equal(openFdCount(), before, 'Node fd count unchanged');
  }));

  t.test('10 concurrent dynos', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    await settle();
    const before = openFdCount();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => runDyno(runtime, testSpec({ appDir, command: sh(`echo $DYNO; exit ${i}`) }))));
    t.same(results.map((r) => r.status.code), Array.from({ length: 10 }, (_, i) => i), 'each dyno its own status');
    t.ok(results.every((r) => /^test\.\d+$/.test(r.stdout.trim())), 'each dyno its own output');
    await settle();
    t.equal(openFdCount(), before, 'Node fd count unchanged');
  }));
}
