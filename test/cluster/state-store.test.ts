/**
 * The StateStore parity suite (test/manifold/helpers/state-store-suite.ts, also run on SQLite) on
 * EtcdStateStore over the 3-member loopback etcd. Each test gets a store on a fresh namespace, so no
 * test sees another's keys; the namespace is deleted after it.
 */
import t from 'tap';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/cluster/etcd-client';
import { EtcdStateStore } from '../../src/cluster/etcd-state-store';
import { keys } from '../../src/cluster/keys';
import { stateStoreSuite } from '../manifold/helpers/state-store-suite';
import { etcdMissing, startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster';

const missing = etcdMissing();
if (missing) {
  t.plan(0, missing);
} else {
  main();
}

function main(): void {
  let cluster: EtcdCluster;
  let client: Etcd3;
  let n = 0;

  t.before(async () => {
    const t0 = Date.now();
    cluster = await startEtcdCluster(t);
    t.comment(`3-member etcd healthy in ${Date.now() - t0} ms (${cluster.dir})`);
    client = createEtcdClient(cluster.endpoints);
  });
  t.teardown(() => client?.close());

  t.test('EtcdStateStore', async (t) => {
    stateStoreSuite(t, async (t) => {
      const ns = client.namespace(`/test/state-store/${++n}/`);
      const s = new EtcdStateStore(ns, 'host-a');
      t.teardown(async () => {
        await s.close();
        await ns.delete().all();
      });
      return s;
    });
  });

  // A release record written before authors were kept (no `by` in its JSON) still reads, with none,
  // and the next release, made from it, has its own.
  t.test('an old release record without `by` reads with no author', async (t) => {
    const ns = client.namespace(`/test/state-store/${++n}/`);
    t.teardown(() => ns.delete().all());
    const old = { app: 'old', version: 1, slug: null, procfile: {}, config: { A: '1' }, description: 'Initial release', createdAt: 1000 };
    await ns.put(keys.appMeta('old')).value(JSON.stringify({ createdAt: 1000, settings: {} }));
    await ns.put(keys.release('old', 1)).value(JSON.stringify(old));
    await ns.put(keys.appRelease('old')).value('1');
    const s = new EtcdStateStore(ns, 'host-a');
    t.same(await s.currentRelease('old'), old, 'read as written: no `by`');
    const r2 = await s.createRelease('old', (cur) => ({ slug: cur.slug, procfile: cur.procfile, config: cur.config, description: 'Set B config vars', by: 'root' }));
    t.equal(r2?.by, 'root');
    t.same((await s.listReleases('old')).map((r) => r.by), ['root', undefined]);
  });

  // Beyond the parity suite: two API hosts on different members, as in a cluster.
  t.test('two hosts: formation changes see each other; dyno records stay per host', async (t) => {
    const prefix = `/test/state-store/${++n}/`;
    const ns = client.namespace(prefix);
    const other = createEtcdClient([cluster.endpoints[2]!]);
    const a = new EtcdStateStore(ns, 'host-a');
    const b = new EtcdStateStore(other.namespace(prefix), 'host-b');
    t.teardown(async () => {
      other.close();
      await ns.delete().all();
    });
    await a.createApp('hello', { slug: null, procfile: {}, config: {}, description: 'Initial release', by: 'root' });
    // Each change adds a new type whose quantity is the number of types it saw: with a lost update
    // (a type added meanwhile not covered by the compare) two types would get one number.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).updateFormation('hello', (cur) => ({ [`t${String(i).padStart(2, '0')}`]: { quantity: cur.length, size: 'standard-1x' } })),
      ),
    );
    const quantities = (await b.formation('hello')).map((f) => f.quantity).sort((x, y) => x - y);
    t.same(quantities, Array.from({ length: 20 }, (_, i) => i), 'each change saw every change before it');
    await a.recordDyno({ id: 'web.1-aaaa', app: 'hello', name: 'web.1', release: 1, pid: 1, startedAt: 1 });
    await b.recordDyno({ id: 'web.2-bbbb', app: 'hello', name: 'web.2', release: 1, pid: 2, startedAt: 1 });
    t.same((await a.liveDynos()).map((d) => d.id), ['web.1-aaaa']);
    t.same((await b.liveDynos()).map((d) => d.id), ['web.2-bbbb']);
    await a.deleteApp('hello');
    t.same(await a.liveDynos(), [], 'deleteApp forgets its own host\'s records');
    t.same((await b.liveDynos()).map((d) => d.id), ['web.2-bbbb'], 'and leaves the other host\'s to that host');
  });
}
