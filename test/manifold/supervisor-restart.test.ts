/**
 * Crash restarts on a fake clock (spec heroku.md §3.2, §3.3, §3.5): the cool-off schedule, its
 * resets (stable uptime, release, manual restart), R10 boot timeout, start failures, H10 input.
 */
import t from 'tap';
import { restartSchedule, DEFAULT_POLICY } from '../../src/manifold/policy';
import { APP, harness, releaseOf } from './helpers/supervisor-harness';

const MIN = 60_000;

t.test('a worker is up as soon as it runs; any exit, code 0 included, is a crash restarted at once', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  t.equal(h.state('worker.1'), 'up');
  t.same(h.lines('worker.1'), ['manifold[worker.1]: Starting process with command `node worker.js`', 'manifold[worker.1]: State changed from starting to up']);
  t.equal(h.launcher.latest('worker.1').spec.env?.GREETING, 'hi', 'config vars reach the dyno');

  h.launcher.latest('worker.1').exit(0);
  await h.clock.advance(0);
  t.equal(h.launcher.startsOf('worker.1'), 2, 'restarted immediately');
  t.same(h.lines('worker.1').slice(2), [
    'manifold[worker.1]: Process exited with status 0',
    'manifold[worker.1]: State changed from up to crashed',
    'manifold[worker.1]: State changed from crashed to starting',
    'manifold[worker.1]: Starting process with command `node worker.js`',
    'manifold[worker.1]: State changed from starting to up',
  ]);
});

t.test('a crash loop waits by the cool-off schedule: immediate, 20 s, doubling, capped at 20 min', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  const want = restartSchedule(10, DEFAULT_POLICY.restart);
  t.same(want, [0, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 20 * MIN, 20 * MIN, 20 * MIN], 'the policy itself');
  for (const [i, delay] of want.entries()) {
    const starts = h.launcher.startsOf('worker.1');
    h.launcher.latest('worker.1').exit(1);
    await h.clock.advance(0);
    if (delay > 0) {
      t.equal(h.state('worker.1'), 'crashed', `crash ${i + 1}: crashed`);
      const ps = h.supervisor.status(APP)[0]!;
      t.equal(ps.restartAt, h.clock.now() + delay, `crash ${i + 1}: ps shows the restart time`);
      t.equal(ps.reason, 'exited with status 1');
      await h.clock.advance(delay - 1);
      t.equal(h.launcher.startsOf('worker.1'), starts, `crash ${i + 1}: not restarted before ${delay} ms`);
      await h.clock.advance(1);
    }
    t.equal(h.launcher.startsOf('worker.1'), starts + 1, `crash ${i + 1}: restarted after ${delay} ms`);
    t.equal(h.supervisor.status(APP)[0]!.crashes, i + 1, `crash ${i + 1}: counted`);
  }
  t.same(h.events.filter((e) => e.kind === 'crashed').map((e) => (e.kind === 'crashed' ? e.delay : -1)), want, 'crashed events carry the delays');
});

t.test('the schedule starts over after a stable uptime, a new release, or a manual restart', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  const crash = async (): Promise<void> => {
    h.launcher.latest('worker.1').exit(1);
    await h.clock.advance(0);
  };
  await crash(); // 1st: immediate
  await crash(); // 2nd: 20 s
  await h.clock.advance(20_000);
  // up for the stable window (10 min): the next crash is a first crash again
  await h.clock.advance(DEFAULT_POLICY.restart.stableMs);
  const before = h.launcher.startsOf('worker.1');
  await crash();
  t.equal(h.launcher.startsOf('worker.1'), before + 1, 'restarted immediately after a stable run');
  t.equal(h.supervisor.status(APP)[0]!.crashes, 1);

  await crash(); // 2nd again: 20 s
  t.equal(h.state('worker.1'), 'crashed');
  h.supervisor.restart(APP, 'worker.1');
  await h.clock.advance(0);
  t.equal(h.state('worker.1'), 'up', 'a manual restart does not wait for the cool-off');
  t.equal(h.supervisor.status(APP)[0]!.crashes, 0, 'and resets the count');

  await crash();
  await crash();
  t.equal(h.state('worker.1'), 'crashed');
  h.supervisor.setRelease(APP, releaseOf(2, h.procfile));
  await h.clock.advance(0);
  t.equal(h.state('worker.1'), 'up', 'a new release starts crashed dynos at once');
  t.equal(h.launcher.latest('worker.1').spec.appDir, '/slugs/app/v2', 'with the new code');
  t.equal(h.supervisor.status(APP)[0]!.crashes, 0);
});

t.test('R10: a web dyno that does not bind $PORT within the boot timeout is killed and crashes', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  const web = h.launcher.latest('web.1');
  t.equal(web.spec.port, 5000, 'web dynos get $PORT');
  t.equal(h.state('web.1'), 'starting');
  await h.clock.advance(60_000 - 1);
  t.equal(h.state('web.1'), 'starting', 'still starting just before 60 s');
  t.same(web.signals, []);
  await h.clock.advance(1);
  t.same(web.signals, ['SIGKILL'], 'SIGKILL at 60 s');
  t.same(h.lines('web.1').slice(1, 5), [
    'manifold[web.1]: Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds of launch',
    'manifold[web.1]: Stopping process with SIGKILL',
    'manifold[web.1]: Process exited with status 137',
    'manifold[web.1]: State changed from starting to crashed',
  ]);
  t.equal(h.launcher.startsOf('web.1'), 2, 'first crash: restarted at once');
  const crashed = h.supervisor.status(APP);
  t.equal(crashed[0]!.crashes, 1);

  // a second R10: the slot shows why while it waits for its restart
  await h.clock.advance(60_000);
  t.equal(h.state('web.1'), 'crashed');
  t.equal(h.supervisor.status(APP)[0]!.reason, 'R10 boot timeout');
  const last = h.routes.at(-1)!;
  t.match(last.crashed, { message: /^web\.1 R10 boot timeout, restart at 2024-01-01T00:02:20\.000Z$/ }, 'the router answers H10 with the reason');
  t.same(last.backends, [], 'no backend for a crashed dyno');
});

t.test('R10: binding in time makes the dyno up and routable; the app setting changes the timeout', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }], settings: { bootTimeoutMs: 5_000 } });
  await h.clock.advance(0);
  t.same(h.routes.at(-1)!.backends, [], 'no traffic before it is up');
  await h.clock.advance(4_000);
  h.launcher.latest('web.1').listen();
  await h.clock.advance(0);
  t.equal(h.state('web.1'), 'up');
  t.same(h.routes.at(-1)!.backends, [{ dyno: 'web.1', address: '10.0.0.1:5000', state: 'up', gen: 0, release: 1 }]);
  await h.clock.advance(60_000);
  t.equal(h.state('web.1'), 'up', 'no R10 once up');

  h.supervisor.restart(APP);
  await h.clock.advance(5_000);
  t.match(h.lines('web.1').join('\n'), /failed to bind to \$PORT within 5 seconds of launch/, 'bootTimeoutMs setting');
});

t.test('a dyno that cannot start crashes with status 127 and follows the schedule', async (t) => {
  const h = harness({ formation: [] });
  h.launcher.failing.add('worker.1');
  h.supervisor.setFormation(APP, [{ type: 'worker', quantity: 1, size: 'standard-1x' }]);
  await h.clock.advance(0);
  t.same(h.lines('worker.1').slice(0, 4), [
    'manifold[worker.1]: Starting process with command `node worker.js`',
    'manifold[worker.1]: Error starting process: exec: execve failed: ENOENT',
    'manifold[worker.1]: State changed from starting to crashed',
    'manifold[worker.1]: State changed from crashed to starting',
  ]);
  await h.clock.advance(0);
  t.equal(h.state('worker.1'), 'crashed', 'second failure waits');
  t.equal(h.supervisor.status(APP)[0]!.reason, 'exited with status 127');
  t.equal(h.supervisor.status(APP)[0]!.restartAt, h.clock.now() + 20_000);
});
