/**
 * `manifold cluster:import`: a real single-host daemon's state (app, deploy, config, formation,
 * settings) copied into a real 3-member etcd; read back through EtcdStateStore as the API hosts
 * will read it. A second import, an import while the daemon runs and one from a directory with no
 * state are refused with one line and change nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createEtcdClient } from '../../src/cluster/etcd-client';
import { EtcdStateStore } from '../../src/cluster/etcd-state-store';
import { keys } from '../../src/cluster/keys';
import { ROOT, runCli, TestDaemon, waitFor } from '../manifold/helpers/daemon';
import { etcdMissing, startEtcdCluster } from './helpers/etcd-cluster';

const skip = process.getuid?.() !== 0 ? 'needs root (a real daemon)' : etcdMissing();

t.test('cluster:import', { skip }, async (t) => {
  const etcd = await startEtcdCluster(t);
  const client = createEtcdClient(etcd.endpoints);
  t.teardown(() => client.close());
  const d = new TestDaemon(['--net', 'none']);
  t.teardown(async () => {
    await d.stop();
    d.cleanup();
  });
  await d.start();
  t.equal((await d.cli('apps:create', 'imp')).code, 0);
  t.equal((await d.cli('deploy', path.join(ROOT, 'examples/hello'), '-a', 'imp')).code, 0);
  t.equal((await d.cli('config:set', 'A=1', 'B=two', '-a', 'imp')).code, 0);
  t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'imp')).code, 0);
  t.equal((await d.cli('apps:settings', '-a', 'imp', '--stop-grace', '7')).code, 0);
  await waitFor('worker up', async () => ((await d.cli('ps', '-a', 'imp')).stdout.includes('worker.1: up') ? true : undefined));
  const stateDir = path.join(d.dir, 'state');
  const urls = etcd.endpoints.join(',');

  const busy = await runCli(['cluster:import', '--from', stateDir, '--etcd', urls, '--host-id', 'h1']);
  t.not(busy.code, 0, 'refused while the daemon runs');
  t.match(busy.stderr, /a daemon is using/);
  t.same(await client.getAll().prefix(keys.apps()).keys(), [], 'nothing written');

  await d.stop();
  const r = await runCli(['cluster:import', '--from', stateDir, '--etcd', urls, '--host-id', 'h1']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Imported 1 app\(s\), 3 release\(s\) and 1 slug\(s\)/);

  const store = new EtcdStateStore(client, 'h1');
  t.same((await store.listApps()).map((a) => a.name), ['imp']);
  t.same((await store.listReleases('imp')).map((x) => x.version), [3, 2, 1], 'every release, versions kept');
  const cur = await store.currentRelease('imp');
  t.same(cur?.config, { A: '1', B: 'two' });
  t.same(cur?.procfile, { web: 'node server.js', worker: 'node worker.js' });
  const sha = path.basename(cur!.slug!);
  t.match(sha, /^[0-9a-f]{64}$/, 'slug named by its content');
  t.ok(fs.existsSync(path.join(stateDir, 'slugs', sha)), 'slug left in the state dir');
  const slugRec = JSON.parse((await client.get(keys.slug(sha)).string())!) as { holders: string[]; bytes: number };
  t.same(slugRec.holders, ['h1']);
  t.ok(slugRec.bytes > 0);
  t.same((await store.formation('imp')).map((f) => [f.type, f.quantity]), [['worker', 1]]);
  t.equal((await store.getApp('imp'))?.settings.stopGraceMs, 7000);

  const again = await runCli(['cluster:import', '--from', stateDir, '--etcd', urls, '--host-id', 'h1']);
  t.not(again.code, 0, 'a second import is refused');
  t.match(again.stderr, /already has apps/);
  t.same((await store.listReleases('imp')).length, 3, 'unchanged');

  const empty = await runCli(['cluster:import', '--from', path.join(d.dir, 'nothing'), '--etcd', urls, '--host-id', 'h1']);
  t.not(empty.code, 0);
  t.match(empty.stderr, /no Manifold state in/);
  t.notOk(fs.existsSync(path.join(d.dir, 'nothing')), 'no state dir created by a refused import');
});
