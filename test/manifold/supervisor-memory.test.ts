/**
 * Memory on a fake clock (spec heroku.md §3.7): R14 pairs at most once per interval, from kernel
 * events or the periodic sweep of idle dynos over quota; R15 kills at the OOM kill and crashes.
 */
import t from 'tap';
import { reactToMemory, usageLine } from '../../src/manifold/supervisor/memory';
import { APP, harness } from './helpers/supervisor-harness';

const MB = 1024 * 1024;
const QUOTA = 100 * MB;

function memoryHarness() {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }], settings: { memoryQuota: QUOTA } });
  return h;
}

const r14Lines = (lines: string[]): string[] => lines.filter((l) => /R14/.test(l));

t.test('R14: the usage line and the error, then silence for 20 s, repeated while over quota', async (t) => {
  const h = memoryHarness();
  await h.clock.advance(0);
  const dyno = h.launcher.latest('worker.1');
  dyno.usage = { current: 150 * MB, rss: 120 * MB, cache: 30 * MB, swap: 0 };
  dyno.memoryEvent('high');
  await h.clock.advance(0);
  t.same(h.lines('worker.1').slice(2), ['manifold[worker.1]: Process running mem=150MB(150.0%)', 'manifold[worker.1]: Error R14 (Memory quota exceeded)'], 'R14 counts memory.current (RSS + swap + cache)');
  dyno.memoryEvent('max');
  await h.clock.advance(1_000);
  t.equal(r14Lines(h.lines()).length, 1, 'a second event within the interval logs nothing');
  // idle over quota: no kernel event, the sweep finds it
  await h.clock.advance(20_000 - 1_000 - 1);
  t.equal(r14Lines(h.lines()).length, 1, 'nothing before 20 s');
  await h.clock.advance(1);
  t.equal(r14Lines(h.lines()).length, 2, 'the sweep logs the next pair at 20 s');
  await h.clock.advance(40_000);
  t.equal(r14Lines(h.lines()).length, 4, 'every 20 s while over quota');
  t.equal(h.state('worker.1'), 'up', 'R14 never stops the dyno');
  t.same(dyno.signals, []);

  dyno.usage = { current: 90 * MB, rss: 90 * MB, cache: 0, swap: 0 };
  await h.clock.advance(60_000);
  t.equal(r14Lines(h.lines()).length, 4, 'under quota again: no more R14');
});

t.test('R15: an OOM kill logs the usage (RSS + swap) and R15, kills the dyno, which crashes and restarts', async (t) => {
  const h = memoryHarness();
  await h.clock.advance(0);
  const dyno = h.launcher.latest('worker.1');
  dyno.usage = { current: 400 * MB, rss: 250 * MB, cache: 100 * MB, swap: 50 * MB };
  dyno.memoryEvent('oom_kill');
  dyno.memoryEvent('oom_group_kill');
  await h.clock.advance(0);
  t.same(h.lines('worker.1').slice(2, 8), [
    'manifold[worker.1]: Process running mem=300MB(300.0%)',
    'manifold[worker.1]: Error R15 (Memory quota vastly exceeded)',
    'manifold[worker.1]: Stopping process with SIGKILL',
    'manifold[worker.1]: Process exited with status 137',
    'manifold[worker.1]: State changed from up to crashed',
    'manifold[worker.1]: State changed from crashed to starting',
  ], 'one R15 for both kernel events');
  t.same(dyno.signals, ['SIGKILL']);
  t.same(h.events.filter((e) => e.kind === 'r15').map((e) => e.dyno), ['worker.1']);
  t.equal(h.launcher.startsOf('worker.1'), 2, 'restarted (first crash: at once)');

  h.launcher.latest('worker.1').memoryEvent('oom_kill');
  await h.clock.advance(0);
  t.equal(h.state('worker.1'), 'crashed');
  t.equal(h.supervisor.status(APP)[0]!.reason, 'R15 memory quota vastly exceeded', 'ps says why');
});

t.test('memory decisions without a memory controller, and events that mean nothing', async (t) => {
  const history = { r15: false, lastR14: Number.NEGATIVE_INFINITY };
  t.same(reactToMemory('high', history, undefined, QUOTA, 0, 20_000), { action: 'warn', lines: ['Error R14 (Memory quota exceeded)'] });
  t.same(reactToMemory('oom_kill', history, undefined, QUOTA, 0, 20_000), { action: 'kill', lines: ['Error R15 (Memory quota vastly exceeded)', 'Stopping process with SIGKILL'] });
  t.same(reactToMemory('low', history, undefined, QUOTA, 0, 20_000), { action: 'none' });
  t.same(reactToMemory('oom', history, undefined, QUOTA, 0, 20_000), { action: 'none' }, 'oom without a kill is no R15');
  t.same(reactToMemory('oom_kill', { r15: true, lastR14: 0 }, undefined, QUOTA, 0, 20_000), { action: 'none' });
  t.equal(usageLine(1028 * MB, 995.5 * MB), 'Process running mem=1028MB(103.3%)', "Heroku's format");
});
