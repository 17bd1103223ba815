/**
 * Issue 9, item 8: the address leases of dynos left by a daemon killed with SIGKILL must be gone
 * after one restart, not two. A real daemon (bridge of its own) runs a bridged web app scaled to
 * 2; it is killed with SIGKILL and started again while the killed one is still a zombie (its
 * parent has not reaped it yet: helpers/unreaped-daemon.ts), twice. Each time, once the
 * formation is back up, the lease directory holds exactly the two live dynos' leases, made by
 * the new daemon, and the bridge exactly their two veths.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT, waitFor, type PsJson } from '../manifold/helpers/daemon';
import { leakScope, leftoverCgroups } from './helpers/leaks';
import { isZombie, running, UnreapedDaemon } from './helpers/unreaped-daemon';

const HELLO = path.join(ROOT, 'examples/hello');

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
} else {
  const d = new UnreapedDaemon(['--boot-timeout', '5s', '--stop-grace', '2s']);
  const leaseDir = path.join(d.runDir, 'net', d.bridge);
  /** address → the pid that made the lease (the file's first number) */
  const leases = (): Record<string, number> =>
    Object.fromEntries(fs.readdirSync(leaseDir).map((f) => [f, Number(/\d+/.exec(fs.readFileSync(path.join(leaseDir, f), 'utf8'))?.[0])]));
  const veths = (): string[] => fs.readdirSync(`/sys/class/net/${d.bridge}/brif`).sort();

  const ps = async (): Promise<PsJson> => {
    const r = await d.cli('ps', '-a', 'leases', '--json');
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as PsJson;
  };
  const bothUp = (): Promise<PsJson> =>
    waitFor('web.1 and web.2 up', async () => {
      const p = await ps();
      return p.dynos.length === 2 && p.dynos.every((x) => x.state === 'up') ? p : undefined;
    }, 30_000);

  t.teardown(async () => {
    await d.stop('SIGTERM').catch(() => undefined);
    d.cleanup();
  });

  t.before(async () => {
    await d.start();
    for (const args of [['apps:create', 'leases'], ['deploy', HELLO, '-a', 'leases'], ['ps:scale', 'web=2', '-a', 'leases']]) {
      const r = await d.cli(...args);
      if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
    }
    await bothUp();
  });

  for (const round of [1, 2]) {
    t.test(`SIGKILL of the daemon, restart ${round} while it is a zombie: only the new dynos' leases and veths are left`, async (t) => {
      const old = d.pid;
      const before = leases();
      t.same(Object.values(before), [old, old], `two leases of daemon ${old} before the kill: ${JSON.stringify(before)}`);
      const dynoPids = (await ps()).dynos.map((x) => x.pid!);
      await d.stop('SIGKILL');
      t.ok(isZombie(old), `the killed daemon ${old} is a zombie, not reaped yet`);
      await waitFor('its dynos died with it', async () => dynoPids.every((p) => !running(p)) || undefined, 10_000);
      await d.start();
      await bothUp();
      t.ok(isZombie(old), `the old daemon ${old} was still a zombie while the new one (${d.pid}) started`);
      const after = leases();
      t.same(Object.values(after), [d.pid, d.pid], `exactly two leases, both the new daemon's: ${JSON.stringify(after)}`);
      // the old dynos' host veths go when the kernel destroys their namespaces: soon, not at once
      const live = await waitFor('the old veths gone', async () => (veths().length === 2 ? veths() : undefined), 10_000).catch(() => veths());
      t.equal(live.length, 2, `one veth per live dyno on the bridge: ${live.join(' ')}`);
      t.equal(leftoverCgroups(leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir })).length, 2, 'and one cgroup per live dyno');
    });
  }
}
