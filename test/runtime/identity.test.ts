/**
 * Who a dyno is: an unprivileged uid/gid (never 0), no capabilities, no_new_privs, seccomp; a
 * setuid-root binary gains nothing; the syscalls of the deny-list fail with EPERM.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { DynoSpecError } from '../../src/runtime';
import { checked, leakWatch } from './helpers/leaks';
import { kv, makeAppDir, openTestRuntime, probeBinary, requireRoot, runDyno, sh, statusFields, testSpec } from './helpers/run';

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);
  const probe = probeBinary();
  const probeApp = (): string => makeAppDir(t, { probe: { content: fs.readFileSync(probe), mode: 0o755 } });

  const CAP_FIELDS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'];

  t.test('default identity: uid/gid 10001, no groups, no capabilities, NoNewPrivs 1, Seccomp 2', checked(leaks, async (t) => {
    const appDir = probeApp();
    // the app (PID 2) and a grandchild of it report the same
    const r = await runDyno(runtime, testSpec({ appDir, command: sh('cat /proc/self/status; echo ---; sh -c "cat /proc/self/status"; echo ---; id -u; id -g; id -G') }));
    t.equal(r.status.code, 0, r.stderr);
    const [app, child, ids] = r.stdout.split('---\n');
    for (const [who, text] of [['app', app], ['grandchild', child]] as const) {
      const f = statusFields(text ?? '');
      for (const cap of CAP_FIELDS) t.equal(f[cap], '0000000000000000', `${who}: ${cap} is 0`);
      t.equal(f.NoNewPrivs, '1', `${who}: NoNewPrivs 1`);
      t.equal(f.Seccomp, '2', `${who}: Seccomp 2 (filter)`);
      t.match(f.Uid ?? '', /^10001\s+10001\s+10001\s+10001$/, `${who}: all uids 10001`);
      t.match(f.Gid ?? '', /^10001\s+10001\s+10001\s+10001$/, `${who}: all gids 10001`);
      t.equal((f.Groups ?? '').trim(), '', `${who}: no supplementary groups`);
    }
    t.same((ids ?? '').trim().split('\n'), ['10001', '10001', '10001'], 'id -u, -g, -G');
  }));

  t.test('--user is honoured', checked(leaks, async (t) => {
    const appDir = probeApp();
    const r = await runDyno(runtime, testSpec({ appDir, user: { uid: 12345, gid: 23456 }, command: { argv: ['/app/probe', 'ids'] } }));
    t.equal(r.stdout.trim(), 'uid=12345 euid=12345 gid=23456 egid=23456');
    const w = await runDyno(runtime, testSpec({ appDir, user: { uid: 12345, gid: 23456 }, command: sh('echo hi > /app/w && stat -c "%u:%g" /app/w') }));
    t.equal(w.stdout.trim(), '12345:23456', '/app is writable by the configured user');
  }));

  t.test('uid or gid 0 is refused with a clear error, before anything starts', checked(leaks, async (t) => {
    const appDir = probeApp();
    for (const user of [{ uid: 0, gid: 0 }, { uid: 0, gid: 1000 }, { uid: 1000, gid: 0 }]) {
      let outcome: unknown;
      try {
        outcome = runtime.start(testSpec({ appDir, user, command: { argv: ['/bin/true'] } }));
      } catch (err) {
        outcome = err;
      }
      t.ok(outcome instanceof Promise, `start() reports a bad spec as a rejected promise, not a synchronous throw (${JSON.stringify(user)})`);
      const err = outcome instanceof Promise ? await outcome.then(() => undefined, (e: unknown) => e) : outcome;
      t.ok(err instanceof DynoSpecError, 'DynoSpecError');
      t.match((err as Error).message, /never 0/, `message says why: ${(err as Error).message}`);
    }
  }));

  t.test('a setuid-root binary in the app gains nothing', checked(leaks, async (t) => {
    const appDir = probeApp();
    const suid = path.join(appDir, 'suid-probe');
    fs.copyFileSync(probe, suid);
    fs.chownSync(suid, 0, 0);
    fs.chmodSync(suid, 0o4755);
    t.equal(fs.statSync(suid).mode & 0o7777, 0o4755, 'the host file is setuid root');
    const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', suid, 'ids'], { encoding: 'utf8' });
    t.match(out, /euid=0/, 'control: on the host, the binary does raise euid to 0');
    const r = await runDyno(runtime, testSpec({ appDir, command: sh('/app/suid-probe ids; cp /app/suid-probe /tmp/s && /tmp/s ids') }));
    const lines = r.stdout.trim().split('\n');
    t.equal(lines[0], 'uid=10001 euid=10001 gid=10001 egid=10001', 'euid stays 10001 inside the dyno');
    t.equal(lines[1], 'uid=10001 euid=10001 gid=10001 egid=10001', 'a copy in /tmp gains nothing either');
  }));

  t.test('denied syscalls fail with EPERM; ordinary fork works', checked(leaks, async (t) => {
    const appDir = probeApp();
    const r = await runDyno(
      runtime,
      testSpec({
        appDir,
        command: sh(
          '/app/probe syscalls; unshare -U true 2>/dev/null; echo "unshare_U_rc=$?"; unshare -m true 2>/dev/null; echo "unshare_m_rc=$?"; ' +
            'mount -t tmpfs x /mnt 2>/dev/null; echo "mount_rc=$?"; mount -o remount,rw / 2>/dev/null; echo "remount_rc=$?"; ' +
            'date -s "2001-01-01" >/dev/null 2>&1; echo "date_rc=$?"',
        ),
      }),
    );
    const k = kv(r.stdout);
    for (const call of ['keyctl', 'add_key', 'bpf', 'mount', 'umount2', 'unshare_user', 'unshare_mount', 'unshare_net', 'ptrace_init', 'perf_event_open', 'clock_settime', 'sethostname', 'mknod', 'chroot']) {
      t.equal(k[call], 'EPERM', `${call} → EPERM`);
    }
    t.equal(k.fork, 'ok', 'fork still works');
    for (const cmd of ['unshare_U', 'unshare_m', 'mount', 'remount', 'date']) {
      t.match(r.stdout, new RegExp(`^${cmd}_rc=[1-9]`, 'm'), `${cmd.replace('_', ' -')} fails`);
    }
  }));

  t.test('rlimits: nofile 10000, no core dumps', checked(leaks, async (t) => {
    const appDir = probeApp();
    const r = await runDyno(runtime, testSpec({ appDir, command: sh('ulimit -n; ulimit -Hn; ulimit -c') }));
    t.same(r.stdout.trim().split('\n'), ['10000', '10000', '0']);
  }));
}
