/**
 * A one-off stopped with another signal than the app's (SIGHUP when its attached client is gone,
 * issue 9: 12): that signal, the app's grace, then SIGKILL with R12; also when the stop comes
 * before the runtime has handed over the dyno.
 */
import t from 'tap';
import { APP, harness } from './helpers/supervisor-harness';

t.test('OneOff.stop(SIGHUP): SIGHUP, the grace, SIGKILL; the app\'s stop signal otherwise', async (t) => {
  const h = harness({ settings: { stopSignal: 'SIGUSR1', stopGraceMs: 2_000 } });
  const early = h.supervisor.runOneOff(APP, 'bash', { attach: false });
  early.stop('SIGHUP'); // before the fake runtime's start has resolved
  await h.clock.advance(0);
  t.same(h.launcher.latest(early.name).stops, [{ graceMs: 2_000, signal: 'SIGHUP' }], 'a pending stop keeps its signal');

  h.launcher.stubborn.add('run.2');
  const late = h.supervisor.runOneOff(APP, 'bash', { attach: false });
  await h.clock.advance(0);
  late.stop('SIGHUP');
  late.stop('SIGTERM'); // a second stop changes nothing
  await h.clock.advance(2_000);
  t.same(h.launcher.latest(late.name).signals, ['SIGHUP', 'SIGKILL']);
  t.same(h.lines(late.name).slice(-5, -1), [
    'manifold[run.2]: Stopping all processes with SIGHUP',
    'manifold[run.2]: Error R12 (Exit timeout) -> Process failed to exit within 2 seconds of SIGHUP',
    'manifold[run.2]: Stopping all processes with SIGKILL',
    'manifold[run.2]: Process exited with status 137',
  ]);

  const plain = h.supervisor.runOneOff(APP, 'bash', { attach: false });
  await h.clock.advance(0);
  plain.stop();
  await h.clock.advance(0);
  t.same(h.launcher.latest(plain.name).signals, ['SIGUSR1'], 'ps:stop uses the app\'s stop signal');
});
