/**
 * `manifold dyno run`: stdio and exit status pass through, Ctrl-C is a graceful stop (a second
 * escalates), a terminal passes through (named /dev/console inside), and every bad input prints one
 * line and exits non-zero. Leaves nothing behind.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { findCgroup2Mount } from '../../src/runtime';
import { leakScope, waitNoDynoLeftovers } from './helpers/leaks';
import { makeAppDir, removeAtEndIfNew, REPO_ROOT, requireRoot } from './helpers/run';

const BIN = path.join(REPO_ROOT, 'bin/manifold');

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface CliRun {
  result: Promise<CliResult>;
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  kill(sig: NodeJS.Signals): void;
}

function cli(args: string[], opts: { input?: string; wrap?: string[] } = {}): CliRun {
  // `env -u`: tap's processinfo hook re-adds NODE_OPTIONS to spawned node processes' environment
  const argv = ['env', '-u', 'NODE_OPTIONS', ...(opts.wrap ?? []), process.execPath, BIN, ...args];
  // the CLI as a user runs it: without tap's NODE_OPTIONS hooks and test-runner variables
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !k.startsWith('TAP')) env[k] = v;
  const child = spawn('env', argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    for (const w of [...waiters]) if (w.re.test(stdout)) waiters.splice(waiters.indexOf(w), 1) && w.resolve();
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin.end(opts.input ?? '');
  const result = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  void result.then(() => clearTimeout(timer));
  return {
    result,
    kill: (sig) => child.kill(sig),
    waitFor: (re, timeoutMs = 15_000) =>
      re.test(stdout)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ re, resolve })),
            new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${stdout} / ${stderr}`)), timeoutMs).unref()),
          ]),
  };
}

/** stderr lines that are not the host-capability warning (printed on hosts lacking cgroup v2 controllers). */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !l.startsWith('manifold: warning:'));
}

if (requireRoot(t)) {
  const mount = findCgroup2Mount();
  const tag = `cli${process.pid}x`;
  let n = 0;
  const name = (): string => `${tag}.${++n}`;
  // the CLI uses the default runtime; only leaves named after this test process are ours
  const cgroupRoot = path.join(mount?.mountPoint ?? '/sys/fs/cgroup', 'manifold');
  const scope = leakScope({ cgroupRoot, runDir: '/run/manifold', leafPrefix: `${tag}.` });
  // what the CLI creates for its runtime goes again at the end, unless it was there before (a daemon's)
  removeAtEndIfNew(t, cgroupRoot, 'cgroup');
  removeAtEndIfNew(t, '/run/manifold');
  const noLeftovers = async (t: Test): Promise<void> => {
    t.same(await waitNoDynoLeftovers(scope, 2000), [], 'no dyno leftovers on the host');
  };

  t.test('stdio passes through and the exit status propagates', async (t) => {
    const app = makeAppDir(t, { 'hello.txt': 'hi\n' });
    const r = await cli(['dyno', 'run', '--name', name(), '--app', app, '--', 'sh', '-c', 'cat /app/hello.txt; cat; echo err >&2; exit 7'], { input: 'from-stdin\n' }).result;
    t.equal(r.code, 7, 'exit 7 → CLI exits 7');
    t.equal(r.stdout, 'hi\nfrom-stdin\n', 'stdout and stdin pass through');
    t.same(errorLines(r.stderr), ['err'], 'stderr passes through');
    const killed = await cli(['dyno', 'run', '--name', name(), '--', 'sh', '-c', 'kill -KILL $$']).result;
    t.equal(killed.code, 137, 'killed by SIGKILL → 137');
    const env = await cli(['dyno', 'run', '--name', name(), '--env', 'A=1', '-e', 'B=x=y', '--port', '5555', '--hostname', 'clihost', '--user', '20000:20001', '--', 'sh', '-c', 'echo $A $B $PORT $DYNO $(hostname) $(id -u):$(id -g)']).result;
    t.equal(env.stdout.trim(), `1 x=y 5555 ${tag}.${n} clihost 20000:20001`, 'flags reach the dyno');
    // Heroku gives every dyno a PORT, one-off dynos included: without --port, the daemon's 5000
    const port = await cli(['dyno', 'run', '--name', name(), '--', 'sh', '-c', 'echo "PORT=${PORT-unset}"']).result;
    t.equal(port.stdout.trim(), 'PORT=5000', 'PORT is set without --port');
    await noLeftovers(t);
  });

  t.test('Ctrl-C is a graceful stop; the grace period ends in SIGKILL', async (t) => {
    const graceful = cli(['dyno', 'run', '--name', name(), '--', 'bash', '-c', `trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done`]);
    await graceful.waitFor(/ready/);
    const t0 = Date.now();
    graceful.kill('SIGINT');
    const r = await graceful.result;
    t.equal(r.code, 0, 'the app exits 0 on SIGTERM, so does the CLI');
    t.match(r.stdout, /got-term/, 'the app got SIGTERM');
    t.ok(Date.now() - t0 < 3000, 'promptly');

    const stubborn = cli(['dyno', 'run', '--name', name(), '--grace', '1', '--', 'bash', '-c', `trap '' TERM; echo ready; while :; do sleep 0.1; done`]);
    await stubborn.waitFor(/ready/);
    const t1 = Date.now();
    stubborn.kill('SIGINT');
    const s = await stubborn.result;
    const took = Date.now() - t1;
    t.equal(s.code, 137, 'SIGKILL after the grace → 137');
    t.ok(took >= 900 && took < 4000, `after about --grace 1 s (${took} ms)`);

    const twice = cli(['dyno', 'run', '--name', name(), '--grace', '30', '--', 'bash', '-c', `trap '' TERM; echo ready; while :; do sleep 0.1; done`]);
    await twice.waitFor(/ready/);
    const t2 = Date.now();
    twice.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
    twice.kill('SIGINT');
    const w = await twice.result;
    t.equal(w.code, 137, 'a second Ctrl-C kills at once');
    t.ok(Date.now() - t2 < 3000, 'without waiting for the grace');
    await noLeftovers(t);
  });

  t.test('each bad input prints one line and exits non-zero', async (t) => {
    const app = makeAppDir(t, { 'not-executable': { content: '#!/bin/sh\necho hi\n', mode: 0o644 } });
    const cases: { what: string; args: string[]; code?: number; match: RegExp; wrap?: string[] }[] = [
      { what: 'unknown flag', args: ['dyno', 'run', '--bogus', '--', 'true'], code: 2, match: /bogus/i },
      { what: 'missing app dir', args: ['dyno', 'run', '--name', name(), '--app', '/nonexistent/app', '--', 'true'], code: 2, match: /app directory/ },
      { what: '--user 0:0', args: ['dyno', 'run', '--name', name(), '--user', '0:0', '--', 'true'], code: 2, match: /never 0|0/ },
      { what: 'malformed --user', args: ['dyno', 'run', '--name', name(), '--user', 'root', '--', 'true'], code: 2, match: /--user/ },
      { what: 'malformed --env', args: ['dyno', 'run', '--name', name(), '--env', 'NOEQUALS', '--', 'true'], code: 2, match: /--env/ },
      { what: 'bad dyno name', args: ['dyno', 'run', '--name', 'no dots', '--', 'true'], code: 2, match: /name/ },
      { what: 'no command', args: ['dyno', 'run', '--name', name()], code: 2, match: /command/ },
      { what: 'command not found', args: ['dyno', 'run', '--name', name(), '--', 'no-such-command-xyz'], code: 127, match: /not found.*no-such-command-xyz/ },
      { what: 'not executable', args: ['dyno', 'run', '--name', name(), '--app', app, '--', '/app/not-executable'], code: 126, match: /not executable/ },
      { what: 'missing stack dir', args: ['dyno', 'run', '--name', name(), '--stack', '/nonexistent/stack', '--', 'true'], code: 2, match: /stack/ },
      {
        what: 'not root',
        args: ['dyno', 'run', '--name', name(), '--', 'true'],
        wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
        match: /root/,
      },
    ];
    for (const c of cases) {
      const r = await cli(c.args, c.wrap ? { wrap: c.wrap } : {}).result;
      const lines = errorLines(r.stderr);
      t.equal(lines.length, 1, `${c.what}: exactly one line on stderr (${JSON.stringify(r.stderr)})`);
      t.match(lines[0] ?? '', /^manifold: /, `${c.what}: starts with 'manifold: '`);
      t.match(lines[0] ?? '', c.match, `${c.what}: says what is wrong`);
      t.notMatch(r.stderr, /\n\s+at /, `${c.what}: no stack trace`);
      if (c.code !== undefined) t.equal(r.code, c.code, `${c.what}: exit ${c.code}`);
      else t.ok(r.code !== 0 && r.code !== null, `${c.what}: non-zero exit (${r.code})`);
      t.equal(r.stdout, '', `${c.what}: nothing on stdout`);
    }
    await noLeftovers(t);
  });

  /** Runs `manifold dyno run ARGS` on a pty of its own (script(1)), typing `input` once `after` shows in the output. */
  function onTerminal(args: string, input = '', after = ''): Promise<{ code: number; out: string }> {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !k.startsWith('TAP')) env[k] = v;
    env.TERM = 'xterm-test';
    const inner = `stty cols 91 rows 33; env -u NODE_OPTIONS ${process.execPath} ${BIN} dyno run --name ${name()} ${args}`;
    return new Promise((resolve) => {
      const child = execFile('script', ['-qec', inner, '/dev/null'], { env, timeout: 30_000 }, (err, stdout) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out: stdout.replace(/\r/g, '') });
      });
      // script(1) passes its stdin to the terminal (kept open until the dyno is done). The relay is in
      // raw mode before the dyno's first output, so a key typed after `after` reaches the dyno.
      let seen = '';
      let typed = input === '';
      child.stdout?.on('data', (d: Buffer | string) => {
        seen += String(d);
        if (!typed && seen.includes(after)) {
          typed = true;
          child.stdin?.write(input);
        }
      });
    });
  }

  t.test('on a terminal, the dyno gets a pty of its own: controlling terminal, named /dev/console, TERM, size', async (t) => {
    const r = await onTerminal(`-- sh -c 'test -t 0 && test -t 1 && echo TTY-YES; tty; stty size; exec 3</dev/tty && echo CTTY-YES; echo TERM=$TERM; exit 3'`);
    t.match(r.out, /TTY-YES/, 'stdin and stdout are a terminal in the dyno');
    // the pty is in the host's devpts: dyno-init binds it onto /dev/console, where ttyname(3) finds it
    t.match(r.out, /^\/dev\/console$/m, 'tty(1) names the terminal /dev/console');
    t.notMatch(r.out, /not a tty/, 'ttyname(3) succeeds');
    t.match(r.out, /^CTTY-YES$/m, '/dev/tty opens: the pty is the controlling terminal (job control works)');
    t.match(r.out, /^TERM=xterm-test$/m, "TERM is the caller's");
    t.match(r.out, /^33 91$/m, "the window size is the caller's");
    t.equal(r.code, 3, 'exit status returned');
    await noLeftovers(t);
  });

  t.test('on a terminal, ^C goes to the job in the dyno, as a key', async (t) => {
    const r = await onTerminal(`-- sh -c 'trap "echo GOT-INT; exit 5" INT; echo READY; while :; do sleep 0.1; done'`, '\x03', 'READY');
    t.match(r.out, /READY/, 'the job started');
    t.match(r.out, /GOT-INT/, 'the dyno\'s foreground job got SIGINT from its terminal');
    t.equal(r.code, 5, 'and its exit status came back');
    await noLeftovers(t);
  });

  t.test('--no-tty: the caller\'s terminal as plain stdio (it controls the caller\'s session, not the dyno\'s)', async (t) => {
    // dyno-init cannot take it over (TIOCSCTTY: EPERM) and must still start, with the terminal as its stdio
    const r = await onTerminal(`--no-tty -- sh -c 'test -t 0 && test -t 1 && echo TTY-YES; tty; (exec 3</dev/tty) 2>/dev/null || echo NO-CTTY; exit 4'`);
    t.match(r.out, /TTY-YES/, 'stdin and stdout are a terminal in the dyno');
    t.match(r.out, /^\/dev\/console$/m, 'named /dev/console too');
    t.match(r.out, /^NO-CTTY$/m, 'but it is not the dyno\'s controlling terminal');
    t.equal(r.code, 4, 'exit status returned');
    await noLeftovers(t);
  });

  t.test('the CLI leaves no fd of its own to the dyno', async (t) => {
    const r = await cli(['dyno', 'run', '--name', name(), '--', 'sh', '-c', 'ls /proc/self/fd']).result;
    // ls's own directory fd is the fourth entry
    t.same(r.stdout.trim().split('\n').map(Number).sort((a, b) => a - b).slice(0, 3), [0, 1, 2]);
    t.equal(r.stdout.trim().split('\n').length, 4, `only 0-2 plus ls's dirfd: ${r.stdout.trim().split('\n').join(' ')}`);
    t.ok(fs.existsSync(BIN));
    await noLeftovers(t);
  });
}
