/**
 * What a dyno can see: its own pid namespace, hostname, filesystem (overlay root, /app copy-on-write,
 * no host secrets, masked /proc, read-only /sys, minimal /dev), network (--net none) and fds.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { checked, leakWatch } from './helpers/leaks';
import { kv, makeAppDir, openTestRuntime, probeBinary, requireRoot, runDyno, sh, startCaptured, testSpec } from './helpers/run';

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);
  const probe = probeBinary();
  const probeApp = (): string => makeAppDir(t, { probe: { content: fs.readFileSync(probe), mode: 0o755 } });

  t.test('PID 1 is dyno-init, the app is PID 2, host pids are invisible', checked(leaks, async (t) => {
    const appDir = probeApp();
    const r = await runDyno(
      runtime,
      testSpec({
        appDir,
        command: sh(
          `echo "comm1=$(cat /proc/1/comm)"; echo "self=$$"; grep -E '^PPid' /proc/1/status; ` +
            `echo "pids=$(cd /proc && echo [0-9]* | tr ' ' ,)"; /app/probe kill0 ${process.pid} 1`,
        ),
      }),
    );
    t.equal(r.status.code, 0, r.stderr);
    const out = r.stdout;
    t.match(out, /^comm1=dyno-init$/m, '/proc/1/comm is dyno-init');
    t.match(out, /^self=2$/m, 'the app is PID 2');
    t.match(out, /^PPid:\s+0$/m, 'PID 1 has no parent in the dyno');
    const pids = (/^pids=(.*)$/m.exec(out)?.[1] ?? '').split(',').map(Number);
    t.ok(pids.includes(1) && pids.includes(2), `pids 1 and 2 listed (${pids.join(',')})`);
    t.notOk(pids.includes(process.pid), 'the test process is absent from the dyno /proc');
    t.ok(pids.every((p) => p < 100), 'only the dyno’s own small pids are visible');
    const k = kv(out);
    t.equal(k[String(process.pid)], 'ESRCH', 'kill(node pid, 0) → ESRCH');
    t.equal(k['1'], 'EPERM', 'the app cannot signal PID 1 of another uid... but it exists (EPERM, not ESRCH)');
  }));

  t.test('hostname is isolated', checked(leaks, async (t) => {
    const hostBefore = os.hostname();
    const appDir = probeApp();
    const r = await runDyno(
      runtime,
      testSpec({ appDir, hostname: 'isolated-host', command: sh('hostname; hostname evil-name 2>/dev/null; echo "rc=$?"; /app/probe syscalls | grep sethostname; hostname') }),
    );
    t.equal(r.stdout.split('\n')[0], 'isolated-host', 'the dyno sees its hostname');
    t.match(r.stdout, /^rc=[1-9]/m, '`hostname evil-name` fails');
    t.match(r.stdout, /^sethostname EPERM$/m, 'sethostname → EPERM');
    t.equal(r.stdout.trim().split('\n').at(-1), 'isolated-host', 'hostname unchanged inside');
    t.equal(os.hostname(), hostBefore, 'host hostname unchanged');

    const byName = await runDyno(runtime, testSpec({ name: 'web.7', appDir, command: sh('hostname') }));
    t.equal(byName.stdout.trim(), 'web.7', 'default hostname is the dyno name');
  }));

  t.test('/ is an overlay, /app holds the app, writes vanish and are not shared', checked(leaks, async (t) => {
    const appDir = makeAppDir(t, { 'hello.txt': 'hello from the app\n', 'lib/x.txt': 'x\n' });
    const hostListing = (): string[] => fs.readdirSync(appDir, { recursive: true }).map(String).sort();
    const before = hostListing();

    const a = startCaptured(
      runtime,
      testSpec({
        appDir,
        command: sh(
          `awk '{for(i=7;i<=NF;i++) if($i=="-") print "mnt " $5 " " $(i+1)}' /proc/self/mountinfo; ` +
            `cat /app/hello.txt; echo changed > /app/hello.txt; echo new > /app/new.txt; echo root > /written-in-root; ` +
            `echo tmp > /tmp/written-in-tmp; rm /app/lib/x.txt; echo written; ` +
            `while [ ! -e /tmp/go ]; do sleep 0.05; [ -e /app/go ] && break; done; sleep 30`,
        ),
      }),
    );
    await a.started;
    await a.waitFor(/^written$/m);
    t.match(a.stdout(), /^mnt \/ overlay$/m, '/ is an overlay');
    t.match(a.stdout(), /^mnt \/app overlay$/m, '/app is an overlay');
    t.match(a.stdout(), /^hello from the app$/m, '/app holds the app files');

    // a second dyno while the first one is running sees none of the first one's writes
    const b = await runDyno(
      runtime,
      testSpec({
        appDir,
        command: sh('cat /app/hello.txt; for f in /app/new.txt /written-in-root /tmp/written-in-tmp /app/lib/x.txt; do [ -e $f ] && echo "present $f" || echo "absent $f"; done'),
      }),
    );
    t.match(b.stdout, /^hello from the app$/m, 'concurrent dyno: original /app content');
    t.match(b.stdout, /^absent \/app\/new.txt$/m);
    t.match(b.stdout, /^absent \/written-in-root$/m);
    t.match(b.stdout, /^absent \/tmp\/written-in-tmp$/m);
    t.match(b.stdout, /^present \/app\/lib\/x.txt$/m, 'a file deleted by the other dyno is still there');
    t.same(hostListing(), before, 'host app dir unchanged while the writer runs');
    t.equal(fs.readFileSync(path.join(appDir, 'hello.txt'), 'utf8'), 'hello from the app\n');

    const dynoA = await a.started;
    await dynoA.stop(2000);

    const c = await runDyno(runtime, testSpec({ appDir, command: sh('cat /app/hello.txt; ls /app; ls / ; ls /tmp') }));
    t.match(c.stdout, /^hello from the app$/m, 'after the writer ended: original content');
    t.notMatch(c.stdout, /new\.txt|written-in-root|written-in-tmp/, 'writes of an ended dyno are gone');
    t.same(hostListing(), before, 'host app dir unchanged after the dyno ended');
    t.equal(fs.readFileSync(path.join(appDir, 'hello.txt'), 'utf8'), 'hello from the app\n', 'host file content unchanged');
  }));

  t.test('host secrets are absent; cwd is /app; cgroup view is the namespace root', checked(leaks, async (t) => {
    const appDir = probeApp();
    const r = await runDyno(
      runtime,
      testSpec({
        appDir,
        command: sh(
          'for p in /root /etc/shadow /etc/gshadow /etc/sudoers /etc/ssh /run/manifold /run/manifold-test /work; do [ -e $p ] && echo "present $p" || echo "absent $p"; done; ' +
            'echo "cwd=$(readlink /proc/self/cwd)"; cat /proc/self/cgroup; echo "root1=$(readlink /proc/1/root 2>&1)"; ' +
            'grep -c . /proc/self/mountinfo; awk \'{print $5}\' /proc/self/mountinfo',
        ),
      }),
    );
    t.equal(r.status.code, 0, r.stderr);
    for (const p of ['/root', '/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/etc/ssh', '/run/manifold', '/run/manifold-test', '/work']) {
      t.match(r.stdout, new RegExp(`^absent ${p}$`, 'm'), `${p} is absent`);
    }
    t.match(r.stdout, /^cwd=\/app$/m, 'cwd is /app');
    t.match(r.stdout, /^0::\/$/m, 'the cgroup v2 line of /proc/self/cgroup is 0::/ (cgroup namespace)');
    t.notOk(r.stdout.split('\n').some((l) => /^[0-9]+:/.test(l) && l.includes('manifold')), 'no host cgroup path is visible');
    const mountPoints = r.stdout.split('\n').filter((l) => l.startsWith('/'));
    t.notOk(
      mountPoints.some((m) => m.startsWith('/run/manifold') || m.startsWith('/work') || m.includes('scratch')),
      `no host mount points inside: ${mountPoints.join(' ')}`,
    );
  }));

  t.test('/proc masked and read-only paths, /sys read-only, minimal /dev', checked(leaks, async (t) => {
    const appDir = probeApp();
    const r = await runDyno(
      runtime,
      testSpec({
        appDir,
        command: sh(
          '/app/probe read /proc/keys /proc/timer_list /proc/kcore /proc/sched_debug; ' +
            '/app/probe write /proc/sys/kernel/hostname /proc/sysrq-trigger /sys/class/net/lo/tx_queue_len /dev/null /proc/1/exe; ' +
            'echo "acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l) firmware=$(ls -A /sys/firmware 2>/dev/null | wc -l)"; ' +
            'awk \'{print "opt " $5 " " $6}\' /proc/self/mountinfo; echo "dev=$(ls -A /dev | tr "\\n" " ")"; ' +
            '/app/probe syscalls | grep mknod; mknod /tmp/x c 1 1 2>/dev/null; echo "mknod_rc=$?"',
        ),
      }),
    );
    t.equal(r.status.code, 0, r.stderr);
    const k = kv(r.stdout);
    t.equal(k['/proc/keys'], '0', '/proc/keys reads empty');
    t.equal(k['/proc/timer_list'], '0', '/proc/timer_list reads empty');
    for (const p of ['/proc/kcore', '/proc/sched_debug']) {
      t.ok(k[p] === '0' || k[p] === 'ENOENT', `${p} empty or absent (${k[p]})`);
    }
    t.ok(k['/proc/sys/kernel/hostname'] === 'EROFS' || k['/proc/sys/kernel/hostname'] === 'EACCES', `write /proc/sys/kernel/hostname fails (${k['/proc/sys/kernel/hostname']})`);
    const sysrq = fs.existsSync('/proc/sysrq-trigger');
    if (sysrq) t.ok(k['/proc/sysrq-trigger'] === 'EROFS' || k['/proc/sysrq-trigger'] === 'EACCES', `write /proc/sysrq-trigger fails (${k['/proc/sysrq-trigger']})`);
    t.ok(k['/sys/class/net/lo/tx_queue_len'] === 'EROFS' || k['/sys/class/net/lo/tx_queue_len'] === 'EACCES', `write to /sys fails (${k['/sys/class/net/lo/tx_queue_len']})`);
    t.equal(k['/dev/null'], 'ok', '/dev/null is writable');
    t.ok(['EACCES', 'EPERM', 'ETXTBSY'].includes(k['/proc/1/exe'] ?? ''), `the helper (/proc/1/exe) cannot be opened for writing (${k['/proc/1/exe']})`);
    t.match(r.stdout, /^acpi=0 firmware=0$/m, '/proc/acpi and /sys/firmware are empty');

    const opts = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const m = /^opt (\S+) (\S+)$/.exec(line);
      if (m?.[1] && m[2]) opts.set(m[1], m[2]);
    }
    for (const p of ['/proc/sys', ...(sysrq ? ['/proc/sysrq-trigger'] : []), '/sys', '/usr']) {
      t.match(opts.get(p) ?? 'missing', /(^|,)ro(,|$)/, `${p} is mounted read-only (${opts.get(p)})`);
    }
    t.match(opts.get('/proc') ?? '', /nosuid/, '/proc is nosuid');
    t.match(opts.get('/proc') ?? '', /noexec/, '/proc is noexec');

    const dev = (/^dev=(.*)$/m.exec(r.stdout)?.[1] ?? '').trim().split(/\s+/).sort();
    t.same(
      dev,
      ['fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'],
      'only the default /dev entries',
    );
    t.notOk(dev.includes('mem') || dev.includes('kmsg'), 'no /dev/mem, no /dev/kmsg');
    t.match(r.stdout, /^mknod EPERM$/m, 'mknod → EPERM');
    t.match(r.stdout, /^mknod_rc=[1-9]/m, 'mknod(1) fails');
  }));

  t.test('only fds 0, 1 and 2 are open, none pointing at host paths', checked(leaks, async (t) => {
    // an fd this process leaks on purpose (not close-on-exec) must not reach the dyno
    const leaked = fs.openSync(__filename, 'r');
    t.teardown(() => fs.closeSync(leaked));
    const appDir = probeApp();
    for (const command of [{ argv: ['/app/probe', 'fds'] }, sh('/app/probe fds')]) {
      const r = await runDyno(runtime, testSpec({ appDir, command }));
      const lines = r.stdout.trim().split('\n');
      t.same(lines.map((l) => l.split(' ')[0]), ['0', '1', '2'], `fds 0-2 only (${'argv' in command ? 'argv' : 'shell'}): ${lines.join(' | ')}`);
      for (const l of lines) t.notMatch(l, /\/(work|tmp|run|sys\/fs\/cgroup)/, `fd target is not a host path: ${l}`);
    }
  }));

  t.test('--net none: only lo, and it is up; host loopback services unreachable', checked(leaks, async (t) => {
    const server = net.createServer((s) => s.end('host-secret\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const appDir = probeApp();
    const r = await runDyno(
      runtime,
      testSpec({
        appDir,
        net: { mode: 'none' },
        command: sh(
          `tail -n +3 /proc/net/dev | awk -F: '{gsub(/ /,"",$1); print "if " $1}'; echo "loflags=$(cat /sys/class/net/lo/flags)"; ` +
            `ls /sys/class/net; (exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected) 2>/dev/null || echo refused; ` +
            `(exec 3<>/dev/udp/127.0.0.1/9 && echo udp-ok) 2>/dev/null`,
        ),
      }),
    );
    t.equal(r.status.code, 0, r.stderr);
    const ifaces = r.stdout.split('\n').filter((l) => l.startsWith('if ')).map((l) => l.slice(3));
    t.same(ifaces, ['lo'], '/proc/net/dev shows only lo');
    const flags = Number(/^loflags=(0x[0-9a-f]+)$/m.exec(r.stdout)?.[1] ?? 'NaN');
    t.ok((flags & 1) === 1, `lo is UP (flags ${flags})`);
    t.match(r.stdout, /^refused$/m, 'a service on the host loopback is unreachable');
    t.match(r.stdout, /^udp-ok$/m, 'loopback sockets work inside');
  }));
}
