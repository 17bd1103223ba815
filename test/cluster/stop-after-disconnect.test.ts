/**
 * `--stop-after-disconnect` on netns hosts (spec §5, issue 11): h3 runs with `--stop-after-disconnect
 * 3s` and a 15 s host lease (so its assignments outlive a short cut). Its link is cut: its dynos
 * stop about 3 s later (their cgroups vanish from its subtree) while the other hosts' dynos run on;
 * the link is healed before the lease runs out, and the dynos still assigned to h3 come back.
 * Run under the fabric lock: flock /tmp/mf-fabric.lock npx tap dist/test/cluster/stop-after-disconnect.test.js
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { fabricMissing, startFabric, type Fabric } from './helpers/fabric';
import { ClusterHosts } from './helpers/cluster-hosts';
import { waitWhole, type PsDyno } from './helpers/faults';
import { ROOT, sleep } from '../manifold/helpers/daemon';

const HELLO = path.join(ROOT, 'examples/hello');
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, dynos)' : fabricMissing();
const webOn = (list: readonly PsDyno[], host: string): PsDyno[] => list.filter((d) => d.type === 'web' && d.host === host);

t.test('--stop-after-disconnect 3s: a cut-off host stops its dynos, and starts them again once healed', { skip, timeout: 300_000 }, async (t) => {
  const fabric: Fabric = await startFabric(t, { hosts: 3 });
  const cluster = new ClusterHosts(fabric);
  t.teardown(() => cluster.stop());
  const h1 = cluster.add('h1', { hostTtl: '5s' });
  const h2 = cluster.add('h2', { hostTtl: '5s' });
  const h3 = cluster.add('h3', { roles: 'dynos', hostTtl: '15s', extra: ['--stop-after-disconnect', '3s'] });
  await Promise.all([h1.start(), h2.start(), h3.start()]);

  /** Dyno cgroups of `host` that hold a process. */
  const running = (host: string, root: string): string[] =>
    cluster.dynoCgroups().filter((c) => {
      if (!c.startsWith(`${host}/`)) return false;
      try {
        return /^populated 1$/m.test(fs.readFileSync(path.join(root, c.slice(host.length + 1), 'cgroup.events'), 'utf8'));
      } catch {
        return false;
      }
    });
  const on3 = (): string[] => running('h3', h3.cgroupRoot);
  const others = (): number => running('h1', h1.cgroupRoot).length + running('h2', h2.cgroupRoot).length;

  t.equal((await h1.cli('apps:create', 'hello')).code, 0);
  const dep = await h1.cli('deploy', HELLO, '-a', 'hello');
  t.equal(dep.code, 0, dep.stderr);
  const sc = await h1.cli('ps:scale', 'web=3', '-a', 'hello');
  t.equal(sc.code, 0, sc.stderr);
  const { list } = await waitWhole(h1, { app: 'hello', type: 'web', count: 3, also: (l) => webOn(l, 'h3').length === 1, timeoutMs: 60_000 });
  t.same(['h1', 'h2', 'h3'].map((h) => webOn(list, h).length), [1, 1, 1], JSON.stringify(list));
  await sleep(500);
  t.equal(on3().length, 1, 'one dyno runs on h3');
  const elsewhere = others();

  const t0 = Date.now();
  fabric.linkDown('h3');
  let stoppedAt = 0;
  try {
    while (on3().length > 0) {
      if (Date.now() - t0 > 15_000) break;
      await sleep(100);
    }
    stoppedAt = Date.now();
  } finally {
    // healed well before h3's 15 s lease runs out: its assignments stay
    fabric.linkUp('h3');
  }
  const took = stoppedAt - t0;
  t.same(on3(), [], `h3's dynos stopped ${took} ms after the cut`);
  // silence counts from the last answer, at most one probe period (750 ms) before the cut
  t.ok(took >= 3000 - 750 - 100, `not before DURATION after the last answer (${took} ms after the cut)`);
  t.ok(took <= 3000 + 1000 + 5000 + 1500, `within DURATION + a probe period + stop grace (${took} ms)`);
  t.match(h3.log, /no answer from etcd for \d+(\.\d)? s \(--stop-after-disconnect 3s\): stopping this host's dynos/);
  t.equal(others(), elsewhere, "the other hosts' dynos run on");

  const healed = Date.now();
  while (on3().length === 0 && Date.now() - healed < 20_000) await sleep(100);
  t.equal(on3().length, 1, `h3's assigned dyno is back ${Date.now() - healed} ms after the heal`);
  t.match(h3.log, /etcd answers again after \d+(\.\d)? s of silence: resuming this host's assigned dynos/);
  const back = await waitWhole(h1, { app: 'hello', type: 'web', count: 3, timeoutMs: 30_000 });
  t.same(['h1', 'h2', 'h3'].map((h) => webOn(back.list, h).length), [1, 1, 1], `the same placement: ${JSON.stringify(back.list)}`);
});
