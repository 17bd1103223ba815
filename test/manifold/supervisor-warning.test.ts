/** The runtime's warnings about a dyno are manifold lines of that dyno in the app's log. */
import t from 'tap';
import { APP, harness } from './helpers/supervisor-harness';

t.test("a dyno's runtime warning is logged as a manifold line of the dyno", async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }], settings: { stopSignal: 'SIGWINCH' } });
  await h.clock.advance(0);
  const dyno = h.launcher.latest('worker.1');
  // what the runtime's Dyno.stop says when the stored stop signal is not one dyno-init relays
  h.launcher.exitDelay = (d, sig) => {
    d.emit('warning', `${sig} is not a stop signal dyno-init forwards; sending SIGTERM`);
    return 0;
  };
  h.supervisor.setFormation(APP, [{ type: 'worker', quantity: 0, size: 'standard-1x' }]);
  await h.clock.advance(1_000);
  t.same(h.lines('worker.1').slice(-4), [
    'manifold[worker.1]: State changed from up to down',
    'manifold[worker.1]: Stopping all processes with SIGWINCH',
    'manifold[worker.1]: Warning: SIGWINCH is not a stop signal dyno-init forwards; sending SIGTERM',
    'manifold[worker.1]: Process exited with status 128',
  ]);
  t.notOk(dyno.running);
});
