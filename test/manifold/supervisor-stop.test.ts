/**
 * Stopping dynos on a fake clock (spec heroku.md §3.4, §3.6): R12 after the grace, the app's stop
 * signal and grace, scaling up and down, ps:stop of formation and one-off dynos, shutdown.
 */
import t from 'tap';
import { APP, harness } from './helpers/supervisor-harness';

const workers = (quantity: number) => [{ type: 'worker', quantity, size: 'standard-1x' }];

t.test('R12: a dyno that ignores SIGTERM gets SIGKILL after 30 s', async (t) => {
  const h = harness({ formation: workers(1) });
  h.launcher.stubborn.add('worker.1');
  await h.clock.advance(0);
  const dyno = h.launcher.latest('worker.1');
  h.supervisor.setFormation(APP, workers(0));
  await h.clock.advance(0);
  t.same(dyno.stops, [{ graceMs: 30_000, signal: 'SIGTERM' }], 'the runtime stop sequence with the default grace');
  t.same(h.lines('worker.1').slice(2), ['manifold[worker.1]: State changed from up to down', 'manifold[worker.1]: Stopping all processes with SIGTERM']);
  await h.clock.advance(30_000 - 1);
  t.ok(dyno.running, 'still running just before the grace ends');
  t.same(h.supervisor.status(APP).map((d) => d.name), ['worker.1'], 'still listed while stopping');
  await h.clock.advance(1);
  t.notOk(dyno.running, 'killed at 30 s');
  t.same(dyno.signals, ['SIGTERM', 'SIGKILL']);
  t.same(h.lines('worker.1').slice(4), [
    'manifold[worker.1]: Error R12 (Exit timeout) -> Process failed to exit within 30 seconds of SIGTERM',
    'manifold[worker.1]: Stopping all processes with SIGKILL',
    'manifold[worker.1]: Process exited with status 137',
  ]);
  t.same(h.supervisor.status(APP), [], 'the scaled-away dyno is gone');
  t.equal(h.launcher.startsOf('worker.1'), 1, 'and not restarted');
});

t.test('R12 uses the app\'s stop signal and grace; a dyno that exits in time gets no R12', async (t) => {
  const h = harness({ formation: workers(2), settings: { stopSignal: 'SIGUSR2', stopGraceMs: 2_500 } });
  h.launcher.stubborn.add('worker.2');
  await h.clock.advance(0);
  h.supervisor.setFormation(APP, workers(0));
  await h.clock.advance(2_500);
  t.same(h.launcher.latest('worker.1').signals, ['SIGUSR2'], 'worker.1 exited on its stop signal');
  t.notMatch(h.lines('worker.1').join('\n'), /R12/);
  t.same(h.launcher.latest('worker.2').signals, ['SIGUSR2', 'SIGKILL']);
  t.match(h.lines('worker.2').join('\n'), /Error R12 \(Exit timeout\) -> Process failed to exit within 2\.5 seconds of SIGUSR2/);
});

t.test('scaling up adds numbered dynos; scaling down stops the highest numbers only', async (t) => {
  const h = harness({ formation: workers(1) });
  await h.clock.advance(0);
  h.supervisor.setFormation(APP, workers(3));
  await h.clock.advance(0);
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.state}`), ['worker.1 up', 'worker.2 up', 'worker.3 up']);
  t.equal(h.launcher.startsOf('worker.1'), 1, 'worker.1 kept running');
  h.supervisor.setFormation(APP, workers(1));
  await h.clock.advance(0);
  t.same(h.supervisor.status(APP).map((d) => d.name), ['worker.1']);
  t.same(h.launcher.latest('worker.3').signals, ['SIGTERM']);
  t.same(h.launcher.latest('worker.1').signals, [], 'worker.1 untouched');
  t.same(h.launcher.running().map((d) => d.id), ['worker.1#1']);
  // a type the release does not define is never started
  h.supervisor.setFormation(APP, [...workers(1), { type: 'clock', quantity: 1, size: 'standard-1x' }]);
  await h.clock.advance(0);
  t.same(h.supervisor.status(APP).map((d) => d.name), ['worker.1']);
});

t.test('the size of the formation decides the cgroup limits; a size change replaces the dyno', async (t) => {
  const MB = 1024 * 1024;
  const h = harness({ formation: workers(1), settings: { memoryQuota: 100 * MB } });
  await h.clock.advance(0);
  t.match(h.launcher.latest('worker.1').spec.resources, { memoryQuota: 100 * MB, memoryMax: 300 * MB }, 'the app quota, kill limit 3x');
  h.supervisor.setSettings(APP, { memoryQuota: 100 * MB, memoryKillFactor: 2 });
  h.supervisor.setFormation(APP, [{ type: 'worker', quantity: 1, size: 'standard-2x' }]);
  await h.clock.advance(0);
  t.equal(h.launcher.startsOf('worker.1'), 2, 'replaced for the new size');
  t.match(h.launcher.latest('worker.1').spec.resources, { memoryQuota: 100 * MB, memoryMax: 200 * MB, cpuWeight: 200 });
  h.supervisor.setSettings(APP, {});
  h.supervisor.restart(APP);
  await h.clock.advance(0);
  t.match(h.launcher.latest('worker.1').spec.resources, { memoryQuota: 1024 * MB, memoryMax: 3072 * MB }, 'the size\'s own quota without a setting');
});

t.test('ps:stop of a formation dyno stops it and the manager starts it again', async (t) => {
  const h = harness({ formation: workers(2) });
  await h.clock.advance(0);
  t.same(h.supervisor.stop(APP, 'worker.2'), ['worker.2']);
  await h.clock.advance(0);
  t.same(h.lines('worker.2').slice(2), [
    'manifold[worker.2]: Stopping all processes with SIGTERM',
    'manifold[worker.2]: Process exited with status 143',
    'manifold[worker.2]: State changed from up to down',
    'manifold[worker.2]: State changed from down to starting',
    'manifold[worker.2]: Starting process with command `node worker.js`',
    'manifold[worker.2]: State changed from starting to up',
  ]);
  t.equal(h.supervisor.status(APP).find((d) => d.name === 'worker.2')!.crashes, 0, 'not a crash');
  t.equal(h.launcher.startsOf('worker.1'), 1, 'worker.1 untouched');
});

t.test('one-off dynos run once: never restarted, ps:stop ends them, complete when done', async (t) => {
  const h = harness({ formation: [] });
  const one = h.supervisor.runOneOff(APP, 'rake db:migrate', { attach: false });
  await one.started;
  await h.clock.advance(0);
  t.equal(one.name, 'run.1');
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.state}`), ['run.1 up']);
  t.same(h.launcher.latest('run.1').spec.command, { shell: 'rake db:migrate' });
  h.launcher.latest('run.1').exit(3);
  t.equal((await one.exited).status, 3);
  await h.clock.advance(60_000);
  t.same(h.lines('run.1'), [
    'manifold[run.1]: Starting process with command `rake db:migrate`',
    'manifold[run.1]: State changed from starting to up',
    'manifold[run.1]: Process exited with status 3',
    'manifold[run.1]: State changed from up to complete',
  ]);
  t.equal(h.launcher.startsOf('run.1'), 1, 'not restarted');
  t.same(h.supervisor.status(APP), []);

  const two = h.supervisor.runOneOff(APP, 'sleep 1000', { attach: false });
  await two.started;
  t.equal(two.name, 'run.2');
  t.same(h.supervisor.stop(APP, 'run.2'), ['run.2']);
  t.equal((await two.exited).status, 143, 'stopped with SIGTERM');
});

t.test('shutdown stops every dyno with its stop signal and resolves when all are gone', async (t) => {
  const h = harness({ formation: workers(2) });
  h.launcher.stubborn.add('worker.2');
  await h.clock.advance(0);
  let done = false;
  void h.supervisor.shutdown().then(() => (done = true));
  await h.clock.advance(29_000);
  t.notOk(done, 'waits for the stubborn dyno');
  t.same(h.launcher.running().map((d) => d.name), ['worker.2']);
  await h.clock.advance(1_000);
  t.ok(done, 'resolved after the grace');
  t.same(h.launcher.running(), []);
  t.equal(h.launcher.dynos.length, 2, 'nothing restarted during shutdown');
});

t.test('every dyno gets $PORT, workers and one-offs too (Heroku sets it in all of them)', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }, { type: 'worker', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  const one = h.supervisor.runOneOff(APP, 'env', { attach: false });
  await one.started;
  for (const name of ['web.1', 'worker.1', one.name]) t.equal(h.launcher.latest(name).spec.port, 5000, `${name} has PORT=5000`);
});
