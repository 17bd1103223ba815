/**
 * Replacing dynos on a fake clock (spec heroku.md §3.4, §3.6): on a release or restart a web dyno
 * with an address keeps its traffic until its successor is up, then drains and stops; others
 * get SIGTERM and their successor starts at once. Daily cycling replaces each dyno after 24 h
 * plus its own jitter of up to 216 min.
 */
import t from 'tap';
import { APP, harness, releaseOf } from './helpers/supervisor-harness';

const HOUR = 3600_000;

t.test('web with an address: the successor starts beside it; the old one drains only once the new one is up', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  h.launcher.latest('web.1').listen();
  await h.clock.advance(0);
  const old = h.launcher.latest('web.1');
  h.supervisor.setRelease(APP, releaseOf(2, h.procfile));
  await h.clock.advance(0);
  const successor = h.launcher.latest('web.1');
  t.not(successor, old, 'a new dyno started');
  t.same(old.signals, [], 'the old one keeps running while the new one boots');
  t.equal(h.state('web.1'), 'starting');
  t.same(h.routes.at(-1)!.backends.map((b) => `${b.address} ${b.state}`), ['10.0.0.1:5000 up'], 'traffic stays on the old one');
  await h.clock.advance(30_000);
  t.same(old.signals, [], 'still serving after 30 s of boot');

  successor.listen();
  await h.clock.advance(0);
  t.equal(h.state('web.1'), 'up');
  t.same(h.routes.at(-1)!.backends.map((b) => `${b.address} ${b.state}`), ['10.0.0.2:5000 up', '10.0.0.1:5000 draining'], 'new up, old draining');
  // no router in this harness: a 250 ms pause stands in for waiting on in-flight requests
  await h.clock.advance(249);
  t.same(old.signals, [], 'not stopped while draining');
  await h.clock.advance(1);
  t.same(old.signals, ['SIGTERM']);
  t.same(h.launcher.journal, ['start web.1#1', 'start web.1#2', 'signal web.1#1 SIGTERM', 'exit web.1#1 143']);
  t.same(h.routes.at(-1)!.backends.map((b) => `${b.address} ${b.state}`), ['10.0.0.2:5000 up'], 'the old backend is gone');
  t.same(h.lines('web.1').filter((l) => /Restarting|State changed/.test(l)), [
    'manifold[web.1]: State changed from starting to up',
    'manifold[web.1]: Restarting',
    'manifold[web.1]: State changed from up to starting',
    'manifold[web.1]: State changed from starting to up',
  ]);
});

t.test('with the router, the old web dyno stops as soon as its in-flight requests are done', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }], drain: true });
  await h.clock.advance(0);
  h.launcher.latest('web.1').listen();
  await h.clock.advance(0);
  h.supervisor.restart(APP, 'web');
  await h.clock.advance(0);
  h.launcher.latest('web.1').listen();
  await h.clock.advance(0);
  t.same(h.drained, ['10.0.0.1:5000'], 'the router was asked about the old backend');
  t.same(h.launcher.journal, ['start web.1#1', 'start web.1#2', 'signal web.1#1 SIGTERM', 'exit web.1#1 143'], 'stopped without the fallback pause');
});

t.test('workers, and web dynos without an address: SIGTERM first, the successor starts at once', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }, { type: 'worker', quantity: 1, size: 'standard-1x' }], addresses: false });
  await h.clock.advance(0);
  h.launcher.latest('web.1').listen();
  await h.clock.advance(0);
  h.launcher.journal.length = 0;
  h.supervisor.setRelease(APP, releaseOf(2, h.procfile));
  await h.clock.advance(0);
  t.same(h.launcher.journal.slice(0, 4), ['signal web.1#1 SIGTERM', 'start web.1#3', 'signal worker.1#2 SIGTERM', 'start worker.1#4']);
  t.equal(h.state('worker.1'), 'up');
  t.same(h.launcher.running().map((d) => d.id), ['web.1#3', 'worker.1#4'], 'the old ones exited');
});

t.test('an instance stopping during its replacement overlap is never counted as a crash', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }] });
  h.launcher.stubborn.add('worker.1');
  await h.clock.advance(0);
  h.supervisor.restart(APP);
  await h.clock.advance(30_000);
  t.same(h.launcher.dynos.map((d) => d.signals), [['SIGTERM', 'SIGKILL'], []], 'the old one got R12, the new one nothing');
  t.equal(h.state('worker.1'), 'up');
  t.equal(h.supervisor.status(APP)[0]!.crashes, 0);
});

t.test('daily cycling: each dyno is replaced once between 24 h and 24 h + 216 min, then again', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 2, size: 'standard-1x' }], policy: { cycleMs: 24 * HOUR, cycleJitterMs: 216 * 60_000 } });
  await h.clock.advance(0);
  await h.clock.advance(24 * HOUR - 1);
  t.same(h.lines().filter((l) => /Cycling/.test(l)), [], 'not before 24 h');
  await h.clock.advance(216 * 60_000 + 1);
  t.same(h.lines().filter((l) => /Cycling/.test(l)).sort(), ['manifold[worker.1]: Cycling', 'manifold[worker.2]: Cycling']);
  t.equal(h.launcher.startsOf('worker.1'), 2);
  t.same(h.launcher.dynos.slice(0, 2).map((d) => d.signals), [['SIGTERM'], ['SIGTERM']], 'the old ones got SIGTERM');
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.state} ${d.crashes}`), ['worker.1 up 0', 'worker.2 up 0']);
  await h.clock.advance(24 * HOUR + 216 * 60_000);
  t.equal(h.lines().filter((l) => /Cycling/.test(l)).length, 4, 'the successors cycle too');
});

t.test('a manual restart resets the 24 h period', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }], policy: { cycleMs: 24 * HOUR, cycleJitterMs: 0 } });
  await h.clock.advance(20 * HOUR);
  h.supervisor.restart(APP);
  await h.clock.advance(23 * HOUR);
  t.same(h.lines().filter((l) => /Cycling/.test(l)), [], 'no cycle 43 h after the first start: the restart reset it');
  await h.clock.advance(HOUR);
  t.same(h.lines().filter((l) => /Cycling/.test(l)), ['manifold[worker.1]: Cycling']);
});

t.test('all web dynos crashed: the router gets the H10 state; one up again clears it', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 2, size: 'standard-1x' }] });
  await h.clock.advance(0);
  for (const n of [1, 2]) h.launcher.latest(`web.${n}`).listen();
  await h.clock.advance(0);
  for (let i = 0; i < 2; i++) {
    for (const n of [1, 2]) h.launcher.latest(`web.${n}`).exit(1);
    await h.clock.advance(0);
  }
  t.same(h.supervisor.status(APP).map((d) => d.state), ['crashed', 'crashed']);
  t.match(h.routes.at(-1)!.crashed, { message: /^web\.1 exited with status 1, restart at .*; web\.2 exited with status 1, restart at / });
  await h.clock.advance(20_000);
  h.launcher.latest('web.1').listen();
  await h.clock.advance(0);
  t.equal(h.routes.at(-1)!.crashed, false);
});
