/**
 * Dyno lifetimes on a daemon of its own with short policy values (cycle 3 s, stop grace 3 s):
 * daily cycling replaces every dyno, logged as Heroku does, with no failed web request; and the
 * stop sequence: SIGTERM to every process, R12 and SIGKILL after the grace, a custom stop signal.
 */
import fs from 'node:fs';
import os from 'node:os';
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
  // Under load, router lines push the manager's out of the 1500-line ring within a few seconds, about
  // one cycle: keep every line any poll saw (timestamps make them unique and sortable).
  const seen = new Set<string>();
  const logs = async (): Promise<string> => {
    for (const line of (await d.cli('logs', '-a', 'cyc', '-n', '1500')).stdout.split('\n')) if (line) seen.add(line);
    return [...seen].sort().join('\n') + '\n';
  };
  await waitFor('web.1 and web.2 up', async () => ((await logs()).match(/State changed from starting to up/g) ?? []).length >= 2 || undefined);
  const l = load(d.port, 'cyc.localhost');
  t.teardown(() => l.stop()); // a failed assertion must not leave the load running (the file would never end)
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
  if (res.failures.length > 0) t.comment(`router errors:\n${(await logs()).split('\n').filter((l) => /at=error|SIGTERM|Cycling|State changed|exited/.test(l)).join('\n')}`);
  t.match(log, /manifold\[web\.1\]: Cycling\n(?:.*\n)*?.*manifold\[web\.1\]: State changed from up to starting\n/, 'Cycling, then the new dyno starts');
  t.match(log, /manifold\[web\.1\]: Stopping all processes with SIGTERM\n/, 'the old dyno gets SIGTERM');
  // Cycling goes on every 3 s (both dynos at once: no jitter), and on a loaded machine a successor's
  // boot can take most of that, so both may rarely be up at the same instant: the formation is whole
  // when both slots are there and neither has crashed or gone down.
  const states = async (): Promise<string[]> =>
    (JSON.parse((await d.cli('ps', '-a', 'cyc', '--json')).stdout) as { dynos: { state: string }[] }).dynos.map((x) => x.state);
  const whole = await waitFor('both slots there, none crashed', async () => {
    const s = await states();
    return (s.length === 2 && s.every((x) => x === 'up' || x === 'starting')) || undefined;
  }, 10_000, 100).catch(() => false);
  t.ok(whole, `the formation is whole again (${(await states()).join(', ')})`);
  t.equal((await d.cli('apps:destroy', 'cyc', '--confirm', 'cyc')).code, 0, 'destroyed');
});

t.test('stop: SIGTERM to every process, R12 and SIGKILL after the grace; a custom stop signal is honoured', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-stubborn-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // ignores SIGTERM (and so does its child), reports SIGUSR2
  fs.writeFileSync(path.join(dir, 'Procfile'), "worker: trap '' TERM; trap 'echo got USR2; exit 0' USR2; (trap '' TERM; sleep 1000) & while :; do sleep 0.1; done\n");
  t.equal((await d.cli('apps:create', 'stubborn')).code, 0, 'app created');
  t.equal((await d.cli('deploy', dir, '-a', 'stubborn')).code, 0, 'deployed');
  t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'stubborn')).code, 0, 'scaled');
  const logs = async (): Promise<string> => (await d.cli('logs', '-a', 'stubborn', '-n', '1500')).stdout;
  await waitFor('worker up', async () => /manifold\[worker\.1\]: State changed from starting to up/.test(await logs()) || undefined);
  const started = Date.now();
  t.equal((await d.cli('ps:scale', 'worker=0', '-a', 'stubborn')).code, 0, 'scaled to 0');
  const log = await waitFor('exit after SIGKILL', async () => {
    const text = await logs();
    return /Process exited with status 137/.test(text) ? text : undefined;
  }, 15_000);
  const took = Date.now() - started;
  t.match(log, /manifold\[worker\.1\]: Stopping all processes with SIGTERM\n/, 'SIGTERM first');
  t.match(log, /manifold\[worker\.1\]: Error R12 \(Exit timeout\) -> Process failed to exit within 3 seconds of SIGTERM\n/, 'R12 logged with the grace');
  t.match(log, /manifold\[worker\.1\]: Stopping all processes with SIGKILL\n/, 'then SIGKILL');
  t.ok(took >= 2900 && took < 12_000, `killed after the 3 s grace (${took} ms)`);

  // the same app with SIGUSR2 as its stop signal exits cleanly
  t.equal((await d.cli('apps:settings', '-a', 'stubborn', '--stop-signal', 'USR2')).code, 0, 'stop signal set');
  t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'stubborn')).code, 0, 'scaled up again');
  await waitFor('worker up again', async () => ((await logs()).match(/State changed from starting to up/g) ?? []).length >= 2 || undefined);
  t.equal((await d.cli('ps:scale', 'worker=0', '-a', 'stubborn')).code, 0, 'scaled to 0 again');
  const log2 = await waitFor('clean exit', async () => {
    const text = await logs();
    return /Process exited with status 0/.test(text) ? text : undefined;
  }, 15_000);
  t.match(log2, /manifold\[worker\.1\]: Stopping all processes with SIGUSR2\n/, 'custom stop signal sent');
  t.match(log2, /app\[worker\.1\]: got USR2\n/, 'the app got it');
  t.equal((await d.cli('apps:destroy', 'stubborn', '--confirm', 'stubborn')).code, 0, 'destroyed');
});
