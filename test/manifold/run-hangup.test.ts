/**
 * An attached `run` whose client dies (kill -9, a hung-up terminal) stops its one-off dyno, as
 * with `heroku run` (issue 9: 12): the dyno gets SIGHUP when its attach stream ends, then the
 * grace and SIGKILL; `run:detached` outlives its client. A real daemon (root), stop grace 2 s;
 * the app `hup` has a grace of 20 s, so a dyno gone within a few seconds went by the SIGHUP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { leakScope, leftoverCgroups } from '../runtime/helpers/leaks';
import { BIN, sleep, TestDaemon, waitFor, type PsJson } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (real daemon and dynos)');
  process.exit(0);
}

const d = new TestDaemon(['--stop-grace', '2s']);
const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-hup-'));
/** Every process of the dyno ignores SIGTERM; SIGHUP has its default action (the shell ends). */
const IGNORES_TERM = `trap '' TERM; echo ready; while :; do sleep 1; done`;
/** Ignores both: only the SIGKILL at the end of the grace ends it. */
const IGNORES_HUP_TERM = `trap '' HUP TERM; echo ready; while :; do sleep 1; done`;

async function ps(app: string): Promise<PsJson['dynos']> {
  const r = await d.cli('ps', '-a', app, '--json');
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as PsJson).dynos;
}

async function logs(app: string, dyno: string): Promise<string> {
  return (await d.cli('logs', '-a', app, '-n', '1500', '--dyno', dyno)).stdout;
}

/** The app's one-off dyno once it is up. */
async function oneOffUp(app: string): Promise<string> {
  return waitFor(`a one-off dyno of ${app} up`, async () => (await ps(app)).find((x) => x.type === 'run' && x.state === 'up')?.name);
}

/** Waits until `dyno` is no longer listed; resolves with how long that took (ms). */
async function goneAfter(app: string, dyno: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(`${dyno} gone`, async () => !(await ps(app)).some((x) => x.name === dyno) || undefined, timeoutMs, 100);
  return Date.now() - t0;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/** `manifold run` on pipes (no terminal), stdin held open like an idle user's. */
function pipedClient(app: string, command: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [BIN, 'run', '-a', app, '--', command], { env: { ...process.env, MANIFOLD_SOCKET: d.socket }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return { child, output: () => out };
}

/** `manifold run` on a terminal of its own: script(1) gives it a pty; the CLI is script's child. */
async function ttyClient(app: string, command: string): Promise<{ script: ChildProcess; cliPid: number }> {
  const script = spawn('script', ['-qfec', `exec ${process.execPath} ${BIN} run -a ${app} -- '${command}'`, '/dev/null'], {
    env: { ...process.env, MANIFOLD_SOCKET: d.socket, TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  script.stdout!.resume();
  script.stderr!.resume();
  const cliPid = await waitFor('the CLI under script', async () => {
    const kids = fs.readFileSync(`/proc/${script.pid}/task/${script.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return kids.find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(BIN));
  });
  return { script, cliPid };
}

function appDir(name: string): string {
  const dir = path.join(apps, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Procfile'), 'worker: sleep 1000\n');
  return dir;
}

t.before(async () => {
  await d.start();
  for (const app of ['hup', 'stubborn']) {
    if ((await d.cli('apps:create', app)).code !== 0) throw new Error(`apps:create ${app}`);
    const r = await d.cli('deploy', appDir(app), '-a', app);
    if (r.code !== 0) throw new Error(`deploy ${app}: ${r.stderr}`);
  }
  const r = await d.cli('apps:settings', '-a', 'hup', '--stop-grace', '20');
  if (r.code !== 0) throw new Error(`apps:settings: ${r.stderr}`);
});

t.teardown(async () => {
  await d.stop();
  fs.rmSync(apps, { recursive: true, force: true });
  d.cleanup();
});

t.test('kill -9 of a piped client: SIGHUP ends the dyno at once, though it ignores SIGTERM', async (t) => {
  const c = pipedClient('hup', IGNORES_TERM);
  await waitFor('ready', async () => c.output().includes('ready') || undefined);
  const dyno = await oneOffUp('hup');
  c.child.kill('SIGKILL');
  await exited(c.child);
  const ms = await goneAfter('hup', dyno, 10_000);
  t.ok(ms < 5_000, `gone ${ms} ms after the client died (grace 20 s)`);
  const log = await logs('hup', dyno);
  t.match(log, /manifold\[run\.\d+\]: Stopping all processes with SIGHUP/, 'SIGHUP logged');
  t.match(log, /Process exited with status 129/, 'the shell died of SIGHUP');
  t.notMatch(log, /R12/, 'no SIGKILL needed');
  t.match(log, /State changed from up to complete/);
});

t.test('kill -9 of a client on a terminal: an interactive shell (which ignores SIGTERM) ends on SIGHUP', async (t) => {
  const { script, cliPid } = await ttyClient('hup', 'bash -i');
  const dyno = await oneOffUp('hup');
  await sleep(300); // bash has set up its signal handling
  process.kill(cliPid, 'SIGKILL');
  const ms = await goneAfter('hup', dyno, 10_000);
  t.ok(ms < 5_000, `gone ${ms} ms after the client died (grace 20 s)`);
  t.match(await logs('hup', dyno), /Stopping all processes with SIGHUP[\s\S]*State changed from up to complete/);
  script.kill('SIGKILL');
  await exited(script);
});

t.test('the client\'s terminal hangs up (an ssh session drops): the dyno is stopped', async (t) => {
  const { script } = await ttyClient('hup', 'bash -i');
  const dyno = await oneOffUp('hup');
  await sleep(300);
  // script holds the pty master: its death hangs up the CLI's terminal (SIGHUP to the CLI)
  script.kill('SIGKILL');
  await exited(script);
  const ms = await goneAfter('hup', dyno, 10_000);
  t.ok(ms < 5_000, `gone ${ms} ms after the hang-up (grace 20 s)`);
});

t.test('a dyno that ignores SIGHUP and SIGTERM gets SIGKILL at the end of the grace (R12)', async (t) => {
  const c = pipedClient('stubborn', IGNORES_HUP_TERM);
  await waitFor('ready', async () => c.output().includes('ready') || undefined);
  const dyno = await oneOffUp('stubborn');
  c.child.kill('SIGKILL');
  await exited(c.child);
  const ms = await goneAfter('stubborn', dyno, 15_000);
  t.ok(ms >= 1_500 && ms < 8_000, `gone ${ms} ms after the client died (grace 2 s)`);
  const log = await logs('stubborn', dyno);
  t.match(log, /Stopping all processes with SIGHUP\n(?:.*\n)*?.*Error R12 \(Exit timeout\) -> Process failed to exit within 2 seconds of SIGHUP\n(?:.*\n)*?.*Stopping all processes with SIGKILL/);
  t.match(log, /Process exited with status 137/);
});

t.test('run:detached outlives its client; nothing is left once every one-off is gone', async (t) => {
  const r = await d.cli('run:detached', '-a', 'stubborn', '--', IGNORES_TERM);
  t.equal(r.code, 0, r.stderr);
  const dyno = /up, (run\.\d+)/.exec(r.stdout)?.[1];
  t.ok(dyno, r.stdout);
  // an attached client of the same app dies meanwhile: only its own dyno goes
  const c = pipedClient('stubborn', IGNORES_TERM);
  await waitFor('ready', async () => c.output().includes('ready') || undefined);
  const attached = (await ps('stubborn')).find((x) => x.type === 'run' && x.name !== dyno && x.state === 'up')?.name;
  t.ok(attached, 'the attached one-off is up');
  c.child.kill('SIGKILL');
  await goneAfter('stubborn', attached!, 5_000);
  await sleep(2_500); // longer than the grace
  t.equal((await ps('stubborn')).find((x) => x.name === dyno)?.state, 'up', 'the detached dyno still runs');
  t.notMatch(await logs('stubborn', dyno!), /Stopping/, 'and was never told to stop');
  t.equal((await d.cli('ps:stop', dyno!, '-a', 'stubborn')).code, 0);
  await goneAfter('stubborn', dyno!, 10_000);
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  await waitFor('no dyno cgroup left', async () => leftoverCgroups(scope).length === 0 || undefined, 5_000);
  t.same(leftoverCgroups(scope), [], 'no dyno cgroup left');
});
