/**
 * Daily cycling, with a short interval: every dyno is replaced after `--cycle` (+ jitter), logged as
 * Heroku does (`Cycling`, then the state changes), and web traffic sees no failed request while it
 * happens. Own daemon, so the short cycle disturbs no other test.
 */
import path from 'node:path';
import t from 'tap';
import { load, ROOT, sleep, TestDaemon, waitFor } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (real daemon and dynos)');
  process.exit(0);
}

const d = new TestDaemon(['--cycle', '3s', '--cycle-jitter', '0s', '--stop-grace', '3s', '--drain', '1s']);

t.before(async () => {
  await d.start();
});

t.teardown(async () => {
  await d.stop();
  d.cleanup();
});

t.test('dynos are cycled after the interval without failed requests', async (t) => {
  t.equal((await d.cli('apps:create', 'cyc')).code, 0, 'app created');
  t.equal((await d.cli('deploy', path.join(ROOT, 'examples/hello'), '-a', 'cyc')).code, 0, 'deployed');
  t.equal((await d.cli('ps:scale', 'web=2', '-a', 'cyc')).code, 0, 'scaled');
  const logs = async (): Promise<string> => (await d.cli('logs', '-a', 'cyc', '-n', '1500')).stdout;
  await waitFor('web.1 and web.2 up', async () => ((await logs()).match(/State changed from starting to up/g) ?? []).length >= 2 || undefined);
  const l = load(d.port, 'cyc.localhost');
  // two cycles of both dynos
  const log = await waitFor('two cycles of each dyno', async () => {
    const text = await logs();
    const cycled = (dyno: string): number => (text.match(new RegExp(`manifold\\[${dyno.replace('.', '\\.')}\\]: Cycling`, 'g')) ?? []).length;
    return cycled('web.1') >= 2 && cycled('web.2') >= 2 ? text : undefined;
  }, 30_000);
  await sleep(1500);
  const res = await l.stop();
  t.ok(res.ok > 20, `${res.ok} requests served while cycling`);
  t.same(res.failures, [], 'no failed request');
  t.match(log, /manifold\[web\.1\]: Cycling\n(?:.*\n)*?.*manifold\[web\.1\]: State changed from up to starting\n/, 'Cycling, then the new dyno starts');
  t.match(log, /manifold\[web\.1\]: Stopping all processes with SIGTERM\n/, 'the old dyno gets SIGTERM');
  const ps = JSON.parse((await d.cli('ps', '-a', 'cyc', '--json')).stdout) as { dynos: { state: string }[] };
  t.equal(ps.dynos.filter((x) => x.state === 'up').length, 2, 'the formation is whole again');
  t.equal((await d.cli('apps:destroy', 'cyc', '--confirm', 'cyc')).code, 0, 'destroyed');
});
