/**
 * Cluster mode end to end (issue 10, spec §7 Tier 2): three hosts as network namespaces on one
 * switch, etcd on three more, a client namespace for load. Real daemons, real dynos, real routers.
 * Deploy examples/hello, scale web=3 worker=2 over the hosts, requests through every router reach
 * every web dyno in turn; config:set, rollback, restart and hosts:drain under load lose no request.
 */
import path from 'node:path';
import t from 'tap';
import { fabricMissing, startFabric, type Fabric } from './helpers/fabric';
import { ClusterHosts, type HostDaemon, assertNothingLeft } from './helpers/cluster-hosts';
import { startLoad, type LoadResult } from './helpers/load';
import { ROOT, sleep, waitFor } from '../manifold/helpers/daemon';
import { createEtcdClient } from '../../src/cluster/etcd-client';
import { PREFIX } from '../../src/cluster/keys';

const HELLO = path.join(ROOT, 'examples/hello');
const HOST = 'hello.example.test';
const METRICS_PORT = 9100;

/** What parse-prometheus-text-format returns (it ships no types). */
interface Family {
  name: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}
const parseText = require('parse-prometheus-text-format') as (text: string) => Family[];

interface PsDyno {
  name: string;
  type: string;
  state: string;
  host?: string;
}

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, dynos)' : fabricMissing();

async function ps(d: HostDaemon): Promise<PsDyno[]> {
  const r = await d.cli('ps', '-a', 'hello', '--json');
  if (r.code !== 0) throw new Error(`ps failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { dynos: PsDyno[] }).dynos;
}

function failures(r: LoadResult): string {
  const bad = r.records.filter((x) => x.status !== 200);
  return `${r.failed} failed of ${r.total}: ${JSON.stringify(bad.slice(0, 5))}`;
}

t.test('cluster on three netns hosts', { skip, timeout: 600_000 }, async (t) => {
  const fabric: Fabric = await startFabric(t, { hosts: 4 });
  const cluster = new ClusterHosts(fabric);
  // a safety net for a failed run; the last subtest stops everything and checks for leftovers
  t.teardown(() => cluster.stop());
  // every host serves its own Prometheus /metrics on its uplink (docs/metrics.md#prometheus)
  const metrics = (h: string): string[] => ['--metrics', `${fabric.address(h)}:${METRICS_PORT}`];
  const h1 = cluster.add('h1', { extra: metrics('h1') });
  const h2 = cluster.add('h2', { extra: metrics('h2') });
  const h3 = cluster.add('h3', { roles: 'dynos,scheduler', extra: metrics('h3') });
  // a router and API host with no dynos: every dyno it routes to is on another host
  const h4 = cluster.add('h4', { roles: 'router,api', extra: metrics('h4') });
  await Promise.all([h1.start(), h2.start(), h3.start(), h4.start()]);
  const routers = [h1.router, h2.router, h4.router];

  await t.test('hosts lists every host up', async (t) => {
    const r = await h2.cli('hosts', '--json');
    t.equal(r.code, 0, r.stderr);
    const hosts = JSON.parse(r.stdout) as { id: string; state: string; subnet: string; roles: string[] }[];
    t.same(hosts.map((h) => [h.id, h.state]), [['h1', 'up'], ['h2', 'up'], ['h3', 'up'], ['h4', 'up']]);
    t.equal(new Set(hosts.filter((h) => h.subnet).map((h) => h.subnet)).size, 3, 'each dynos host has its own subnet');
    t.equal(hosts.find((h) => h.id === 'h4')?.subnet, null, 'a host without the dynos role claims none');
    t.same(hosts.find((h) => h.id === 'h3')?.roles, ['dynos', 'scheduler']);
    // a vanished dyno must fail a connect in well under a second (spec §4): quick neighbour probes on the bridge
    for (const h of ['h1', 'h2', 'h3']) {
      const neigh = (k: string): string => fabric.execOk(h, 'cat', [`/proc/sys/net/ipv4/neigh/manifold0/${k}`]).trim();
      t.same([neigh('retrans_time_ms'), neigh('ucast_solicit'), neigh('mcast_solicit')], ['100', '2', '2'], `${h}: neighbour settings of the dyno bridge`);
      t.equal(fabric.execOk(h, 'cat', ['/proc/sys/net/ipv4/ip_forward']).trim(), '1', `${h}: forwarding on`);
      t.match(fabric.execOk(h, 'nft', ['list', 'table', 'inet', 'manifold-cluster']), /tcp dport 5000 accept/, `${h}: forward rules loaded`);
    }
  });

  await t.test('deploy through one API host, scale through another, spread over hosts', async (t) => {
    t.equal((await h1.cli('apps:create', 'hello')).code, 0);
    const dep = await h1.cli('deploy', HELLO, '-a', 'hello');
    t.equal(dep.code, 0, dep.stderr);
    const sc = await h2.cli('ps:scale', 'web=3', 'worker=2', '-a', 'hello');
    t.equal(sc.code, 0, sc.stderr);
    const dynos = await waitFor('5 dynos up', async () => {
      const list = await ps(h2);
      return list.length === 5 && list.every((d) => d.state === 'up') ? list : undefined;
    }, 60_000, 250);
    const webHosts = dynos.filter((d) => d.type === 'web').map((d) => d.host);
    t.equal(new Set(webHosts).size, 3, `one web dyno per host (${webHosts.join(',')})`);
    const workerHosts = dynos.filter((d) => d.type === 'worker').map((d) => d.host);
    t.equal(new Set(workerHosts).size, 2, 'the two workers on different hosts');
    const text = await h1.cli('ps', '-a', 'hello');
    t.match(text.stdout, /web\.1: up .* on h[123]/, 'ps shows the host');
  });

  await t.test("each host's /metrics counts the dynos it runs", async (t) => {
    const dynos = await ps(h1);
    for (const h of [h1, h2, h3, h4]) {
      // scraped from inside the host's own namespace, as a Prometheus on that host would
      const text = fabric.execOk(h.host, 'curl', ['-sf', '--max-time', '10', `http://${h.uplink}:${METRICS_PORT}/metrics`]);
      const up = parseText(text).find((f) => f.name === 'manifold_dynos')?.metrics.filter((m) => m.labels?.app === 'hello' && m.labels.state === 'up') ?? [];
      const counted = up.reduce((n, m) => n + Number(m.value ?? 0), 0);
      const own = dynos.filter((d) => d.host === h.host).length;
      t.equal(counted, own, `${h.host}: manifold_dynos{app=hello,state=up} = ${own}, its own dynos`);
      t.ok(parseText(text).some((f) => f.name === 'manifold_daemon_uptime_seconds'), `${h.host}: daemon health series`);
    }
  });

  await t.test('every router reaches every web dyno, round-robin', async (t) => {
    // one connection per router, one request at a time: each router's answers must cycle through the three
    const run = startLoad(fabric, { targets: routers, host: HOST, connections: 3, durationMs: 20_000, maxRequests: 90, dynoBodyRegex: 'Hello from (\\S+)' });
    const r = await run.done;
    t.equal(r.failed, 0, failures(r));
    for (const target of routers) {
      const seq = r.records.filter((x) => x.target === target).sort((a, b) => a.start - b.start).map((x) => x.dyno ?? '?');
      t.same([...new Set(seq)].sort(), ['web.1', 'web.2', 'web.3'], `router ${target} reached all three`);
      const rotation = seq.every((d, i) => i < 3 || d === seq[i - 3]);
      t.ok(rotation && new Set(seq.slice(0, 3)).size === 3, `router ${target} takes them in turn: ${seq.slice(0, 9).join(' ')}`);
    }
  });

  for (const [name, args] of [
    ['config:set', ['config:set', 'GREETING=hi', '-a', 'hello']],
    ['rollback', ['rollback', 'v2', '-a', 'hello']],
    ['restart', ['restart', '-a', 'hello']],
    ['deploy', ['deploy', HELLO, '-a', 'hello']],
  ] as const) {
    await t.test(`${name} under load: no failed request`, async (t) => {
      const before = await ps(h1);
      const run = startLoad(fabric, { targets: routers, host: HOST, connections: 6, durationMs: 60_000 });
      await sleep(500);
      const r0 = await h1.cli(...args);
      t.equal(r0.code, 0, r0.stderr);
      // every dyno replaced (new start time) and up again
      await waitFor('all replaced and up', async () => {
        const now = await ps(h1);
        return now.length === 5 && now.every((d) => d.state === 'up') && now.every((d) => !before.some((b) => b.name === d.name && JSON.stringify(b) === JSON.stringify(d))) ? true : undefined;
      }, 60_000, 250);
      await sleep(1500);
      const r = await run.stop();
      t.ok(r.total > 50, `${r.total} requests`);
      t.equal(r.failed, 0, failures(r));
    });
  }

  await t.test('hosts:drain under load moves every dyno off, undrain takes work again', async (t) => {
    const run = startLoad(fabric, { targets: routers, host: HOST, connections: 6, durationMs: 60_000 });
    await sleep(500);
    const r0 = await h1.cli('hosts:drain', 'h3');
    t.equal(r0.code, 0, r0.stderr);
    const after = await waitFor('nothing left on h3, formation whole', async () => {
      const now = await ps(h1);
      return now.length === 5 && now.every((d) => d.state === 'up' && d.host !== 'h3') ? now : undefined;
    }, 60_000, 250);
    t.ok(after.every((d) => d.host !== 'h3'));
    await sleep(1500);
    const r = await run.stop();
    t.equal(r.failed, 0, failures(r));
    const hosts = JSON.parse((await h1.cli('hosts', '--json')).stdout) as { id: string; state: string; dynos: number }[];
    t.same(hosts.find((h) => h.id === 'h3'), { ...hosts.find((h) => h.id === 'h3'), state: 'draining', dynos: 0 });
    t.equal((await h1.cli('hosts:undrain', 'h3')).code, 0);
    await h1.cli('ps:scale', 'web=4', '-a', 'hello');
    await waitFor('a new dyno on h3', async () => ((await ps(h1)).some((d) => d.host === 'h3' && d.state === 'up') ? true : undefined), 60_000, 250);
    t.pass('h3 runs a dyno again');
  });

  await t.test('one-off dynos through an API host that runs no dynos', async (t) => {
    const att = await h4.cli('run', '-a', 'hello', '--', 'sh', '-c', 'echo "from $DYNO"; exit 3');
    t.equal(att.code, 3, `attached: the dyno's exit status (${att.stderr})`);
    t.match(att.stdout, /from run\.\d+/, "attached: the dyno's output");
    const det = await h4.cli('run:detached', '-a', 'hello', '--', 'sleep', '2');
    t.equal(det.code, 0, det.stderr);
    const name = /(run\.\d+)/.exec(det.stdout)?.[1];
    t.ok(name, `detached: named (${det.stdout.trim()})`);
    const one = (await ps(h4)).find((d) => d.name === name);
    t.ok(one?.host && one.host !== 'h4', `it runs on a dynos host (${one?.host})`);
  });

  await t.test('bad input', async (t) => {
    const r = await h1.cli('hosts:drain', 'h9');
    t.not(r.code, 0);
    t.match(r.stderr, /no such host: h9/);
  });

  await t.test('apps:destroy stops the app on every host and leaves no key of it', async (t) => {
    const r = await h2.cli('apps:destroy', 'hello', '--confirm', 'hello');
    t.equal(r.code, 0, r.stderr);
    const client = createEtcdClient(fabric.etcdLocalEndpoints);
    t.teardown(() => client.close());
    const left = await waitFor('every dyno stopped, every key gone', async () => {
      const keysLeft = (await client.getAll().prefix(PREFIX).keys()).filter((k) => /\/(assign|endpoints|status|apps)\//.test(k));
      const dynos = cluster.dynoCgroups();
      return keysLeft.length === 0 && dynos.length === 0 ? { keysLeft, dynos } : undefined;
    }, 60_000, 250);
    t.same(left, { keysLeft: [], dynos: [] });
    t.not((await h1.cli('ps', '-a', 'hello')).code, 0, 'the app is gone for every API host');
  });

  await t.test('stopping the daemons and the fabric leaves nothing', async (t) => {
    await assertNothingLeft(t, cluster, fabric);
  });
});
