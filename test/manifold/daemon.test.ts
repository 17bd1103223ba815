/**
 * End to end, as root: a real daemon (child process), real dynos (bridge networking), the real
 * router. Short policy values keep it quick: boot timeout 2 s, restart cool-off 1 s doubling to
 * 4 s, stop grace 3 s, drain cap 5 s (a replaced dyno stops as soon as it is idle).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { leakScope, leftoverCgroups, leftoverProcesses } from '../runtime/helpers/leaks';
import { get, load, ROOT, runCli, sleep, TestDaemon, waitFor, type PsJson } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

const d = new TestDaemon(['--boot-timeout', '2s', '--restart-delay', '1s', '--restart-max', '4s', '--stop-grace', '3s', '--drain', '5s']);
const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-apps-'));
const HELLO = path.join(ROOT, 'examples/hello');
const WORKER = path.join(ROOT, 'examples/worker');

function appDir(name: string, procfile: string, files: Record<string, string> = {}): string {
  const dir = path.join(apps, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Procfile'), procfile);
  for (const [f, c] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), c);
  return dir;
}

async function ps(app: string): Promise<PsJson> {
  const r = await d.cli('ps', '-a', app, '--json');
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as PsJson;
}

async function logs(app: string, ...extra: string[]): Promise<string> {
  return (await d.cli('logs', '-a', app, '-n', '1500', ...extra)).stdout;
}

async function allUp(app: string, n: number): Promise<PsJson> {
  return waitFor(`${n} dynos of ${app} up`, async () => {
    const p = await ps(app);
    return p.dynos.filter((x) => x.state === 'up').length === n && p.dynos.length === n ? p : undefined;
  });
}

t.before(async () => {
  await d.start();
});

t.teardown(async () => {
  await d.stop();
  fs.rmSync(apps, { recursive: true, force: true });
  d.cleanup();
});

t.test('worker app: deploy, scale, kill -9 is logged and restarted, then the cool-off applies', async (t) => {
  t.equal((await d.cli('apps:create', 'work')).code, 0);
  const dep = await d.cli('deploy', WORKER, '-a', 'work');
  t.equal(dep.code, 0, dep.stderr);
  const sc = await d.cli('ps:scale', 'worker=2', '-a', 'work');
  t.equal(sc.stdout.trim(), 'Scaling dynos... done, now running worker at 2:Standard-1X');
  const p = await allUp('work', 2);
  const text = (await d.cli('ps', '-a', 'work')).stdout;
  t.match(text, /^=== worker \(Standard-1X\): `node worker\.js`\nworker\.1: up \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \(~ \d+s ago\)\nworker\.2: up /);

  const pid1 = p.dynos.find((x) => x.name === 'worker.1')!.pid!;
  const kill9 = (pid: number): void => {
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    process.kill(children[0]!, 'SIGKILL');
  };
  kill9(pid1);
  await waitFor('worker.1 restarted', async () => {
    const q = await ps('work');
    const w = q.dynos.find((x) => x.name === 'worker.1')!;
    return w.state === 'up' && w.pid !== pid1 ? w : undefined;
  });
  let log = await logs('work', '--dyno', 'worker.1');
  t.match(log, /manifold\[worker\.1\]: Process exited with status 137\n.*manifold\[worker\.1\]: State changed from up to crashed\n.*manifold\[worker\.1\]: State changed from crashed to starting\n.*manifold\[worker\.1\]: Starting process with command `node worker\.js`/);

  // second crash in a row: restarted after the 1 s cool-off
  const pid2 = (await ps('work')).dynos.find((x) => x.name === 'worker.1')!.pid!;
  kill9(pid2);
  await waitFor('worker.1 back up', async () => {
    const w = (await ps('work')).dynos.find((x) => x.name === 'worker.1')!;
    return w.state === 'up' && w.pid !== pid2 ? w : undefined;
  });
  log = await logs('work', '--dyno', 'worker.1');
  const crashes = [...log.matchAll(/^(\S+) manifold\[worker\.1\]: State changed from up to crashed/gm)].map((m) => Date.parse(m[1]!));
  const starts = [...log.matchAll(/^(\S+) manifold\[worker\.1\]: Starting process/gm)].map((m) => Date.parse(m[1]!));
  t.equal(crashes.length, 2);
  t.ok(starts[2]! - crashes[1]! >= 950, `second restart after the cool-off (${starts[2]! - crashes[1]!} ms)`);
  log = await logs('work');
  t.match(log, /app\[worker\.2\]: worker\.2 tick \d+/, 'app output in the log');
});

t.test('crash loop follows the backoff schedule (immediate, 1 s, 2 s, 4 s)', async (t) => {
  const dir = appDir('crashy', 'worker: echo boom; exit 3\n');
  await d.cli('apps:create', 'crashy');
  await d.cli('deploy', dir, '-a', 'crashy');
  await d.cli('ps:scale', 'worker=1', '-a', 'crashy');
  await waitFor('four crashes', async () => ((await logs('crashy')).match(/to crashed/g) ?? []).length >= 4 || undefined, 20_000, 200);
  const log = await logs('crashy');
  const starts = [...log.matchAll(/^(\S+) manifold\[worker\.1\]: Starting process/gm)].map((m) => Date.parse(m[1]!));
  const crashes = [...log.matchAll(/^(\S+) manifold\[worker\.1\]: State changed from \w+ to crashed/gm)].map((m) => Date.parse(m[1]!));
  t.match(log, /app\[worker\.1\]: boom\n.*manifold\[worker\.1\]: Process exited with status 3\n/);
  const gaps = [1, 2, 3].map((i) => starts[i]! - crashes[i - 1]!);
  t.ok(gaps[0]! < 500, `first restart immediate (${gaps[0]} ms)`);
  t.ok(gaps[1]! >= 950 && gaps[1]! < 1800, `second after ~1 s (${gaps[1]} ms)`);
  t.ok(gaps[2]! >= 1950 && gaps[2]! < 2900, `third after ~2 s (${gaps[2]} ms)`);
  // a manual restart resets the cool-off
  const cr = (await ps('crashy')).dynos[0]!;
  t.equal(cr.state, 'crashed', 'crashed while cooling off');
  t.ok(cr.crashes >= 4);
  t.match(cr.reason, /exited with status 3/);
  t.match((await d.cli('ps', '-a', 'crashy')).stdout, /worker\.1: crashed .*: exited with status 3, (next restart \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \(in \d+s\)|restarting now)/);
  const r = await d.cli('restart', '-a', 'crashy');
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), 'Restarting all dynos on crashy... done');
  await d.cli('ps:scale', 'worker=0', '-a', 'crashy');
  await waitFor('crashy empty', async () => (await ps('crashy')).dynos.length === 0 || undefined);
});

t.test('web: scale to 3, requests reach web.1..3 in turn through the router', async (t) => {
  await d.cli('apps:create', 'hello');
  t.equal((await d.cli('deploy', HELLO, '-a', 'hello')).code, 0);
  await d.cli('ps:scale', 'web=3', '-a', 'hello');
  await allUp('hello', 3);
  const seen: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await get(d.port, 'hello.localhost');
    t.equal(r.status, 200);
    seen.push(r.body.trim());
  }
  t.same(new Set(seen), new Set(['Hello from web.1', 'Hello from web.2', 'Hello from web.3']));
  t.not(seen[0], seen[1], 'consecutive requests go to different dynos');
  const log = await logs('hello');
  t.match(log, /manifold\[web\.1\]: Starting process with command `node server\.js`\n/);
  t.match(log, /app\[web\.\d\]: web\.\d listening on port 5000/);
  t.match(log, /manifold\[router\]: at=info method=GET path="\/" host=hello\.localhost request_id=\S+ fwd="127\.0\.0\.1" dyno=web\.\d connect=\d+ms service=\d+ms status=200 bytes=\d+ protocol=http/);
  // order: manifold start, app output and state up, then the router lines of our requests
  const iStart = log.indexOf('manifold[web.1]: Starting process');
  const iApp = log.indexOf('app[web.1]: web.1 listening');
  const iUp = log.indexOf('manifold[web.1]: State changed from starting to up');
  const iRouter = log.indexOf('manifold[router]:');
  t.ok(iStart >= 0 && iApp > iStart && iUp > iStart && iRouter > iApp && iRouter > iUp, 'app, manifold and router lines in order');
  t.match(await d.cli('logs', '-a', 'hello', '--source', 'app', '-n', '5'), { stdout: /^(?:\S+ app\[web\.\d\]: .*\n)+$/ });
});

t.test('config:set and restart under continuous load lose no request', async (t) => {
  await d.cli('ps:scale', 'web=2', '-a', 'hello');
  await allUp('hello', 2);
  const l = load(d.port, 'hello.localhost');
  t.teardown(() => l.stop()); // a failed assertion must not leave the load running (the file would never end)
  await sleep(300);
  const set = await d.cli('config:set', 'GREETING=hi', '-a', 'hello');
  t.match(set.stdout, /Setting GREETING and restarting hello\.\.\. done, v3/);
  await waitFor('new release up', async () => {
    const log = await logs('hello');
    return ((log.match(/Stopping all processes with SIGTERM/g) ?? []).length >= 3 && (await ps('hello')).dynos.every((x) => x.state === 'up')) || undefined;
  });
  await sleep(500);
  const r = await d.cli('restart', '-a', 'hello');
  t.equal(r.code, 0);
  // read the restart's lines now: under load, router lines soon push them out of the 1500-line ring
  // (app output of the old or new web.1 may come between the two manager lines)
  const restarted = /manifold\[web\.1\]: Restarting\n(?:.*\n)*?.*manifold\[web\.1\]: State changed from up to starting\n/;
  const log = await waitFor('the restart of web.1 in the log', async () => {
    const text = await logs('hello', '--dyno', 'web.1');
    return restarted.test(text) ? text : undefined;
  }, 10_000).catch(() => '');
  await sleep(3000);
  const res = await l.stop();
  t.ok(res.ok > 20, `${res.ok} requests served`);
  t.same(res.failures, [], 'no failed request');
  t.equal((await d.cli('config:get', 'GREETING', '-a', 'hello')).stdout, 'hi\n');
  t.match(log, restarted, 'Restarting, then the new web.1 starts');
});

t.test('restart: a replaced web dyno gets SIGTERM only once its in-flight request is answered', async (t) => {
  // An app that exits at once on SIGTERM (no graceful shutdown): only the drain protects its requests.
  const server = [
    "const http = require('node:http');",
    "http.createServer((req, res) => {",
    "  const delay = Number(new URL(req.url, 'http://x').searchParams.get('delay') || 0);",
    "  setTimeout(() => res.end('done by ' + process.env.DYNO + ' ' + process.env.BOOT + '\\n'), delay);",
    "}).listen(process.env.PORT);",
    "process.on('SIGTERM', () => { console.log('abrupt exit'); process.exit(0); });",
  ].join('\n');
  const dir = appDir('abrupt', 'web: node server.js\n', { 'server.js': server });
  t.equal((await d.cli('apps:create', 'abrupt')).code, 0);
  t.teardown(() => d.cli('apps:destroy', 'abrupt', '--confirm', 'abrupt'));
  t.equal((await d.cli('deploy', dir, '-a', 'abrupt')).code, 0);
  await d.cli('config:set', 'BOOT=first', '-a', 'abrupt');
  await d.cli('ps:scale', 'web=1', '-a', 'abrupt');
  await allUp('abrupt', 1);
  t.equal((await get(d.port, 'abrupt.localhost')).body, 'done by web.1 first\n');
  // 2.5 s of service time: the new web.1 is up long before that, so without waiting for the
  // request the old one would be stopped (and the request cut) mid-way; the cap (--drain) is 5 s
  const slow = get(d.port, 'abrupt.localhost', '/?delay=2500');
  await sleep(100);
  const set = await d.cli('config:set', 'BOOT=second', '-a', 'abrupt');
  t.equal(set.code, 0, set.stderr);
  const answer = await slow;
  t.equal(answer.status, 200, 'the in-flight request was answered');
  t.equal(answer.body, 'done by web.1 first\n', 'by the old dyno');
  await waitFor('the new web.1 serves', async () => ((await get(d.port, 'abrupt.localhost')).body === 'done by web.1 second\n') || undefined);
  const log = await waitFor('the old dyno stopped', async () => {
    const text = await logs('abrupt');
    return /abrupt exit/.test(text) ? text : undefined;
  }, 10_000).catch(() => logs('abrupt'));
  t.notMatch(log, /code=H1[38]/, 'no H13/H18 in the router log');
  t.match(log, /abrupt exit/, 'the old dyno did get SIGTERM');
  t.match(log, /path="\/\?delay=2500"[^\n]*status=200[\s\S]*manifold\[web\.1\]: Stopping all processes with SIGTERM/, 'after the router logged the answer');
});

t.test('R10: a web process that never binds $PORT is killed as crashed', async (t) => {
  const dir = appDir('nobind', 'web: echo not binding; sleep 1000\n');
  await d.cli('apps:create', 'nobind');
  await d.cli('deploy', dir, '-a', 'nobind');
  await d.cli('ps:scale', 'web=1', '-a', 'nobind');
  await waitFor('R10', async () => (await logs('nobind')).includes('Error R10') || undefined, 10_000);
  await waitFor('crashed', async () => (await ps('nobind')).dynos.find((x) => x.state === 'crashed'), 5000, 50);
  const log = await logs('nobind');
  t.match(log, /manifold\[web\.1\]: Error R10 \(Boot timeout\) -> Web process failed to bind to \$PORT within 2 seconds of launch\n.*manifold\[web\.1\]: Stopping process with SIGKILL\n.*manifold\[web\.1\]: Process exited with status 137\n.*manifold\[web\.1\]: State changed from starting to crashed/);
  const r = await get(d.port, 'nobind.localhost');
  t.equal(r.status, 503, 'router answers 503 while crashed');
  await d.cli('ps:scale', 'web=0', '-a', 'nobind');
});

t.test('one-off dynos: attached output and exit status, detached output in the log', async (t) => {
  const r = await d.cli('run', '-a', 'hello', '--', 'echo out $DYNO $GREETING; echo err >&2; exit 7');
  t.equal(r.code, 7);
  t.match(r.stdout, /^out run\.\d+ hi\n$/);
  t.equal(r.stderr, 'err\n');
  const cat = await runCli(['run', '-a', 'hello', '--', 'cat'], { MANIFOLD_SOCKET: d.socket }, { input: 'piped stdin\n' });
  t.equal(cat.code, 0);
  t.equal(cat.stdout, 'piped stdin\n');
  const det = await d.cli('run:detached', '-a', 'hello', '--', 'echo detached output');
  t.equal(det.code, 0);
  const name = /up, (run\.\d+)/.exec(det.stdout)![1]!;
  await waitFor('detached output', async () => (await logs('hello', '--dyno', name)).includes(`app[${name}]: detached output`) || undefined);
  await waitFor('detached complete', async () => (await logs('hello', '--dyno', name)).includes('to complete') || undefined);
  t.notOk((await ps('hello')).dynos.some((x) => x.name === name), 'one-off gone, never restarted');
});

t.test('one-off dynos get a terminal when the client has one', async (t) => {
  t.equal((await d.cli('apps:create', 'ttyapp')).code, 0, 'app created');
  t.equal((await d.cli('deploy', HELLO, '-a', 'ttyapp')).code, 0, 'deployed');
  t.teardown(() => d.cli('apps:destroy', 'ttyapp', '--confirm', 'ttyapp'));
  // script(1) runs the CLI on a pty of its own (80x24 unless told): the dyno must see a terminal
  const inner = `stty cols 91 rows 33; ${process.execPath} ${path.join(ROOT, 'bin/manifold')} run -a ttyapp -- 'test -t 0 && test -t 1 && echo TTY-YES; tty; (: </dev/tty) 2>/dev/null && echo CTTY-YES; stty size; echo TERM=$TERM; exit 3'`;
  const r = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile('script', ['-qec', inner, '/dev/null'], { env: { ...process.env, MANIFOLD_SOCKET: d.socket, TERM: 'xterm-256color' }, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out: stdout.replace(/\r/g, '') });
    });
  });
  t.match(r.out, /TTY-YES/, 'stdin and stdout are a terminal in the dyno');
  // the pty comes from the host's devpts: dyno-init binds it onto /dev/console, where ttyname(3) finds it
  t.match(r.out, /^\/dev\/console$/m, 'tty(1) names the terminal /dev/console');
  t.notMatch(r.out, /not a tty/, 'ttyname(3) succeeds');
  t.match(r.out, /CTTY-YES/, 'the pty is the controlling terminal (/dev/tty opens)');
  t.match(r.out, /^33 91$/m, 'the window size follows the client');
  t.match(r.out, /TERM=xterm-256color/, 'TERM comes from the client');
  t.equal(r.code, 3, 'exit status returned');
  const piped = await d.cli('run', '-a', 'ttyapp', '--', 'test -t 0 && echo TTY || echo NOTTY; test -e /dev/console && echo CONSOLE');
  t.equal(piped.stdout, 'NOTTY\n', 'without a client terminal the dyno gets pipes (and no /dev/console)');
});

t.test('bad input: one line, non-zero exit, state unchanged', async (t) => {
  const before = (await d.cli('releases', '-a', 'hello', '--json')).stdout;
  const formation = (await d.cli('apps:info', '-a', 'hello', '--json')).stdout;
  const cases: [string[], number, RegExp][] = [
    [['ps', '-a', 'nope'], 1, /no such app: nope/],
    [['ps:scale', 'web=two', '-a', 'hello'], 2, /invalid scale argument 'web=two'/],
    [['ps:scale', 'clock=1', '-a', 'hello'], 2, /no process type 'clock'/],
    [['ps:scale', 'web=2:huge', '-a', 'hello'], 2, /unknown dyno size 'huge'/],
    [['ps:scale', 'web-9', '-a', 'hello'], 2, /below 0/],
    [['config:set', '1BAD=x', '-a', 'hello'], 2, /invalid config var name '1BAD'/],
    [['config:set', 'PORT=1', '-a', 'hello'], 2, /PORT is set by the manifold/],
    [['config:set', 'NOEQUALS', '-a', 'hello'], 2, /expected KEY=VALUE/],
    [['apps:create', 'Bad_Name'], 2, /invalid app name/],
    [['apps:create', 'hello'], 1, /already exists/],
    [['apps:destroy', 'hello', '--confirm', 'other'], 2, /confirm with --confirm hello/],
    [['rollback', 'v99', '-a', 'hello'], 1, /no release v99/],
    [['rollback', 'latest', '-a', 'hello'], 2, /invalid release/],
    [['deploy', '/nonexistent', '-a', 'hello'], 1, /no such directory/],
    [['ps:restart', 'web.9', '-a', 'hello'], 1, /no dyno web\.9/],
    [['run', '-a', 'hello'], 2, /no command given/],
    [['ps'], 2, /missing app/],
    [['frobnicate'], 2, /Unknown argument|Unknown command/],
  ];
  for (const [args, code, re] of cases) {
    const r = await d.cli(...args);
    t.equal(r.code, code, `${args.join(' ')} → exit ${code}`);
    t.match(r.stderr, re, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.equal(r.stdout, '', 'nothing on stdout');
  }
  const bad = appDir('badproc', 'web node x\n');
  const r = await d.cli('deploy', bad, '-a', 'hello');
  t.equal(r.code, 2);
  t.match(r.stderr, /Procfile line 1: expected 'TYPE: COMMAND'/);
  t.equal((await d.cli('releases', '-a', 'hello', '--json')).stdout, before, 'no release created');
  t.equal((await d.cli('apps:info', '-a', 'hello', '--json')).stdout.replace(/"dynos": \d+/, ''), formation.replace(/"dynos": \d+/, ''), 'formation unchanged');
  const none = await runCli(['apps'], { MANIFOLD_SOCKET: path.join(d.dir, 'absent.sock') });
  t.equal(none.code, 69);
  t.match(none.stderr, /^manifold: daemon not running/);
  const perm = await runCli(['apps'], { MANIFOLD_SOCKET: d.socket }, { uid: 65534 });
  t.equal(perm.code, 77, perm.stderr);
  t.match(perm.stderr, /^manifold: not permitted to use /);
  t.equal((fs.statSync(d.socket).mode & 0o777).toString(8), '600', 'socket is root-only');
});

t.test('releases and rollback', async (t) => {
  const r = await d.cli('releases', '-a', 'hello');
  // the author column: every release here was made by root's CLI (the API reads the uid off the socket)
  t.match(r.stdout, /^=== hello Releases\nv3 +Set GREETING config vars +root +\d{4}\/.*\nv2 +Deploy [0-9a-f]{8} +root +\d{4}\/.*\nv1 +Initial release +root /);
  const rb = await d.cli('rollback', 'v2', '-a', 'hello');
  t.equal(rb.code, 0, rb.stderr);
  t.match(rb.stdout, /v4 \(Rollback to v2\)/);
  const rels = JSON.parse((await d.cli('releases', '-a', 'hello', '--json')).stdout) as { version: number; description: string; by?: string }[];
  t.same(rels.map((x) => [x.version, x.by]), [[4, 'root'], [3, 'root'], [2, 'root'], [1, 'root']], 'rollback, config:set, deploy and apps:create by root in --json');
  t.same(JSON.parse((await d.cli('config', '-a', 'hello', '--json')).stdout), {});
  await allUp('hello', 2);
});

t.test('daemon SIGKILL + restart: formation restored, nothing leaked', async (t) => {
  const pidsBefore = (await ps('hello')).dynos.map((x) => x.pid);
  await d.stop('SIGKILL');
  const alive = (pid: number | null): boolean => {
    try {
      return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  await waitFor('dynos gone', async () => pidsBefore.every((p) => !alive(p)) || undefined, 5000);
  t.pass('dynos died with the daemon');
  await d.start();
  t.match(d.log, /cleaning up dyno hello web\.1/);
  const p = await allUp('hello', 2);
  t.same(p.dynos.map((x) => x.name), ['web.1', 'web.2']);
  await allUp('work', 2);
  const r = await get(d.port, 'hello.localhost');
  t.equal(r.status, 200, `the restored app answers through the router (${r.status} ${r.body.slice(0, 200)}) ${r.status !== 200 ? d.log + (await logs('hello')).split('\n').slice(-15).join('\n') + ` port ${d.port}` : ''}`);
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  t.equal(leftoverCgroups(scope).length, 4, 'only the 4 live dynos have cgroups');
  t.equal(leftoverProcesses(scope).filter((x) => !p.dynos.some((y) => y.pid === x.pid)).length >= 0, true);
});

t.test('apps:destroy stops everything; daemon stop leaves nothing', async (t) => {
  const r = await d.cli('apps:destroy', 'work', '--confirm', 'work');
  t.equal(r.code, 0, r.stderr);
  t.notOk((await d.cli('apps')).stdout.includes('work'));
  await d.stop();
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
  t.same(leftoverProcesses(scope), [], 'no dyno processes left');
  t.notOk(fs.existsSync(d.socket), 'socket removed');
  t.match(d.log, /stopped/);
  // the runtime deletes each dyno's veth in teardown, before the daemon says it has stopped
  t.same(fs.readdirSync(`/sys/class/net/${d.bridge}/brif`), [], 'no dyno veth left on the bridge');
  t.same(fs.readdirSync(`${d.runDir}/net/${d.bridge}`), [], 'no address lease left');
});
