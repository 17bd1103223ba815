/**
 * A dyno's life: exit codes and signals propagate, exec failures surface as DynoErrors from the exec
 * step, SIGTERM reaches every process (even one that left its parent's session), stop() SIGKILLs
 * after the grace period, orphans are reaped, and a dyno dies with its supervisor.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { DynoError } from '../../src/runtime';
import { STOP_SIGNALS } from '../../src/runtime/native-table';
import { checked, leakWatch, leftoverProcesses, hostProcesses } from './helpers/leaks';
import { makeAppDir, openTestRuntime, REPO_ROOT, requireRoot, runDyno, sh, startCaptured, testSpec } from './helpers/run';

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);

  t.test('exit codes and signals propagate', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const three = await runDyno(runtime, testSpec({ appDir, command: sh('exit 3') }));
    t.match(three.status, { code: 3, signal: null, status: 3, stopped: false }, 'exit 3 → code 3');
    const zero = await runDyno(runtime, testSpec({ appDir, command: { argv: ['true'] } }));
    t.match(zero.status, { code: 0, signal: null, status: 0 }, 'true → 0');
    const argvExit = await runDyno(runtime, testSpec({ appDir, command: { argv: ['sh', '-c', 'exit 42'] } }));
    t.match(argvExit.status, { code: 42, status: 42 }, 'argv command exit 42');
    const killed = await runDyno(runtime, testSpec({ appDir, command: sh('kill -KILL $$') }));
    t.match(killed.status, { code: null, signal: 'SIGKILL', status: 137, stopped: false }, 'self SIGKILL → signal SIGKILL, 137');
    const segv = await runDyno(runtime, testSpec({ appDir, command: { argv: ['sh', '-c', 'kill -SEGV $$'] } }));
    t.match(segv.status, { code: null, signal: 'SIGSEGV', status: 139 }, 'self SIGSEGV → 139');
  }));

  t.test('exec failures are DynoErrors from the exec step (ENOENT, EACCES), not a silent 127', checked(leaks, async (t) => {
    const appDir = makeAppDir(t, { 'not-executable.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o644 }, 'dir/.keep': '' });
    const cases: [string, string[], string][] = [
      ['command not on PATH', ['no-such-command-xyz'], 'ENOENT'],
      ['missing absolute path', ['/app/missing'], 'ENOENT'],
      ['file without x bit', ['/app/not-executable.sh'], 'EACCES'],
      ['relative path without x bit', ['./not-executable.sh'], 'EACCES'],
    ];
    for (const [what, argv, code] of cases) {
      const c = startCaptured(runtime, testSpec({ appDir, command: { argv } }));
      const err = await c.started.then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err instanceof DynoError, `${what}: DynoError`);
      t.match(err, { code, step: 'exec', syscall: 'execve' }, `${what}: ${code} from step exec (${(err as Error | undefined)?.message})`);
      await c.done.catch(() => undefined);
    }
  }));

  t.test('SIGTERM reaches every process, including a setsid’d orphan that outlives its parent', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const c = startCaptured(
      runtime,
      testSpec({
        appDir,
        command: sh(
          // a double-forked, setsid'd grandchild: not in the app's session or process group, parent = PID 1
          `( setsid bash -c 'trap "echo orphan-term; exit 0" TERM; echo "orphan-ready $$ $(cut -d" " -f4 /proc/$$/stat)"; while :; do sleep 1 & wait $!; done' & ); ` +
            // a plain child in the app's group
            `bash -c 'trap "echo child-term; exit 0" TERM; echo child-ready; while :; do sleep 1 & wait $!; done' & ` +
            // the app waits a little after its own TERM so the others' markers get out
            `trap 'echo app-term; sleep 0.5; exit 0' TERM; echo app-ready; while :; do sleep 1 & wait $!; done`,
        ),
      }),
    );
    const dyno = await c.started;
    await c.waitFor(/orphan-ready[\s\S]*child-ready[\s\S]*app-ready|app-ready[\s\S]*(orphan|child)-ready[\s\S]*(orphan|child)-ready|child-ready[\s\S]*orphan-ready[\s\S]*app-ready|(orphan|child)-ready[\s\S]*app-ready[\s\S]*(orphan|child)-ready/);
    const orphan = /orphan-ready (\d+) (\d+)/.exec(c.stdout());
    t.equal(orphan?.[2], '1', 'the orphan was re-parented to PID 1');
    const t0 = Date.now();
    const status = await dyno.stop(10_000);
    const out = (await c.done).stdout;
    t.match(out, /^app-term$/m, 'the app got SIGTERM');
    t.match(out, /^child-term$/m, 'its child got SIGTERM');
    t.match(out, /^orphan-term$/m, 'the setsid’d orphan got SIGTERM');
    t.match(status, { code: 0, signal: null, stopped: true }, 'clean exit after a graceful stop');
    t.ok(Date.now() - t0 < 5000, `stopped well before the grace period (${Date.now() - t0} ms)`);
  }));

  t.test('stop(): an app ignoring SIGTERM is SIGKILLed after the grace period', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const c = startCaptured(runtime, testSpec({ appDir, command: sh(`trap '' TERM; echo ready; while :; do sleep 0.1; done`) }));
    const dyno = await c.started;
    await c.waitFor(/^ready$/m);
    const t0 = Date.now();
    const status = await dyno.stop(600);
    const took = Date.now() - t0;
    t.match(status, { signal: 'SIGKILL', status: 137, stopped: true }, 'killed by SIGKILL');
    t.ok(took >= 550, `not before the grace (${took} ms)`);
    t.ok(took < 3000, `soon after the grace (${took} ms)`);
  }));

  t.test('stop(): a child ignoring SIGTERM dies with the dyno when the app exits', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const c = startCaptured(
      runtime,
      testSpec({ appDir, command: sh(`( trap '' TERM; echo stubborn-ready; exec sleep 1000 ) & trap 'exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done`) }),
    );
    const dyno = await c.started;
    await c.waitFor(/stubborn-ready[\s\S]*ready|ready[\s\S]*stubborn-ready/);
    const t0 = Date.now();
    const status = await dyno.stop(10_000);
    t.match(status, { code: 0, stopped: true }, 'the app’s own status is reported');
    t.ok(Date.now() - t0 < 5000, 'no need to wait for the grace period');
    await c.done;
  }));

  t.test('an app without a TERM handler stops promptly', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const c = startCaptured(runtime, testSpec({ appDir, command: { argv: ['sleep', '1000'] } }));
    const dyno = await c.started;
    const t0 = Date.now();
    const status = await dyno.stop(10_000);
    t.match(status, { code: null, signal: 'SIGTERM', status: 143, stopped: true });
    t.ok(Date.now() - t0 < 2000, `prompt (${Date.now() - t0} ms)`);
  }));

  t.test('kill() ends a dyno at once; other signals are forwarded', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const c = startCaptured(runtime, testSpec({ appDir, command: sh(`trap 'echo got-hup' HUP; trap 'echo got-usr1' USR1; trap '' TERM; echo ready; while :; do sleep 1 & wait $!; done`) }));
    const dyno = await c.started;
    await c.waitFor(/^ready$/m);
    t.ok(dyno.signal('SIGHUP'), 'signal() delivered');
    await c.waitFor(/^got-hup$/m);
    dyno.signal('SIGUSR1');
    await c.waitFor(/^got-usr1$/m);
    t.pass('HUP and USR1 reached the app');
    const t0 = Date.now();
    const status = await dyno.kill();
    t.match(status, { signal: 'SIGKILL', stopped: true });
    t.ok(Date.now() - t0 < 1000, 'immediate');
    t.notOk(dyno.signal('SIGTERM'), 'signal() after exit returns false');
  }));

  t.test('every stop signal reaches the app; one dyno-init does not forward becomes SIGTERM', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const traps = ['TERM', 'INT', 'HUP', 'QUIT', 'USR1', 'USR2', 'WINCH'].map((s) => `trap 'echo got-${s}' ${s}`).join('; ');
    const c = startCaptured(runtime, testSpec({ appDir, command: sh(`${traps}; echo ready; while :; do sleep 1 & wait $!; done`) }));
    const dyno = await c.started;
    await c.waitFor(/^ready$/m);
    for (const sig of STOP_SIGNALS) {
      dyno.signal(sig);
      await c.waitFor(new RegExp(`^got-${sig.slice(3)}$`, 'm'));
    }
    t.pass(`${STOP_SIGNALS.join(', ')} reached the app`);
    const warnings: string[] = [];
    dyno.on('warning', (w: string) => warnings.push(w));
    const stopped = dyno.stop(500, 'SIGWINCH');
    await c.waitFor(/^got-TERM$[\s\S]*^got-TERM$/m);
    t.pass('SIGTERM was sent instead');
    t.match(warnings, [/SIGWINCH is not a stop signal/], 'a warning names the signal');
    t.match(await stopped, { signal: 'SIGKILL', stopped: true }, 'the app trapped TERM, so the grace ran out');
    t.notMatch(c.stdout(), /got-WINCH/, 'SIGWINCH never reached the app');
  }));

  t.test('orphans are reaped: no zombies after double forks', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const r = await runDyno(
      runtime,
      testSpec({
        appDir,
        command: sh(
          'for i in 1 2 3 4 5 6 7 8; do ( sleep 0.1 & ); ( (exit 3) & ); done; sleep 0.8; ' +
            'for f in /proc/[0-9]*/stat; do read -r l < $f 2>/dev/null && echo "stat $l"; done; echo done',
        ),
      }),
    );
    t.equal(r.status.code, 0, 'app exit status reported normally');
    const stats = r.stdout.split('\n').filter((l) => l.startsWith('stat '));
    t.ok(stats.length >= 2, `processes listed (${stats.length})`);
    const zombies = stats.filter((l) => / Z /.test(l.slice(l.lastIndexOf(')'))));
    t.same(zombies, [], 'no Z processes in the dyno');
  }));

  t.test('a dyno dies with its supervisor (PDEATHSIG → PID 1 → namespace)', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const script = `
      const { Runtime } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist/src/runtime'))});
      const rt = Runtime.open({ runDir: ${JSON.stringify(runtime.runDir)}, cgroupName: ${JSON.stringify(path.basename(runtime.cgroups.root))} });
      rt.start({ name: 'orphaned.1', appDir: ${JSON.stringify(appDir)}, command: { shell: '(setsid sleep 1000 &); sleep 1000' } })
        .then((d) => process.stdout.write(d.pid + ' ' + d.id + '\\n'));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(b.toString())));
    const [pidText, id] = line.trim().split(' ');
    const initPid = Number(pidText);
    const leaf = path.join(runtime.cgroups.root, id ?? '');
    t.ok(fs.existsSync(`/proc/${initPid}`), 'dyno-init is running');
    // the app is exec'd, but its shell may not have forked the background sleep yet
    const procs = (): number => fs.readFileSync(path.join(leaf, 'cgroup.procs'), 'utf8').trim().split('\n').length;
    for (const until = Date.now() + 5000; procs() < 3 && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
    t.ok(procs() >= 3, `the dyno has its processes (init and both sleeps): ${procs()}`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && (fs.existsSync(`/proc/${initPid}`) || /populated 1/.test(fs.readFileSync(path.join(leaf, 'cgroup.events'), 'utf8')))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    t.notOk(fs.existsSync(`/proc/${initPid}`), 'dyno-init died with the supervisor');
    t.match(fs.readFileSync(path.join(leaf, 'cgroup.events'), 'utf8'), /populated 0/, 'every process of the dyno is gone');
    t.same(hostProcesses().filter((p) => p.comm === 'dyno-init' && p.ppid !== process.pid && p.cgroup.includes(id ?? '-')), []);
    // the supervisor is gone, so its leaf is ours to clean (what a restarted daemon does)
    t.same(await runtime.reclaimStale(), [id], 'reclaimStale() removes exactly the dead supervisor\'s leaf');
    t.notOk(fs.existsSync(leaf), 'leaf removed');
    t.same(leftoverProcesses(leaks), []);
  }));
}
