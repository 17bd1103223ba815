/**
 * The router feed (route-feed.ts) on a real 3-member etcd: the table equals what etcd's keys derive
 * to after start, after each change, after a compaction, after a frozen member (watchdog) and after a
 * total outage, during which the table must stay exactly as it was.
 */
import t, { type Test } from 'tap';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/cluster/etcd-client';
import { keys, PREFIX } from '../../src/cluster/keys';
import { HOST_BACK_MS } from '../../src/cluster/lease-grace';
import type { EndpointRecord, RouterRecord, StatusRecord } from '../../src/cluster/records';
import { RouteFeed, type ResyncReason, type RouteFeedOptions } from '../../src/cluster/route-feed';
import { deriveRoutes } from '../../src/cluster/route-state';
import { RouteTable, type RoutesFile } from '../../src/router/routing/route-table';
import { ETCD_BIN, etcdMissing, startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster';
import { spawnTied } from './helpers/tied';

const DOMAIN = 'mf.test';
const missing = etcdMissing();
if (missing) {
  t.plan(0, missing);
} else {
  main();
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A test write right after a thaw may meet an election or etcd3's open circuit breaker (5 s): retried. */
async function retry<T>(fn: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

function endpoint(address: string, state: EndpointRecord['state'] = 'up'): string {
  return JSON.stringify({ host: 'h1', address, state, gen: 1, release: 1 } satisfies EndpointRecord);
}

function status(slot: string, state: StatusRecord['state']): string {
  const rec: StatusRecord = {
    host: 'h1', name: slot, type: 'web', state, since: 1, command: 'x', size: 'S', release: 1, pid: null, address: null,
    crashes: 1, restartAt: null, reason: state === 'crashed' ? 'exited 1' : null, oneoff: false,
  };
  return JSON.stringify(rec);
}

const meta = (extra: object = {}): string => JSON.stringify({ createdAt: 1, settings: {}, ...extra });

/** The table as RouteTable normalizes it, for comparing a derived RoutesFile with a live table. */
function normalized(file: RoutesFile): RoutesFile {
  const table = new RouteTable();
  table.replace(file);
  return table.toJSON();
}

interface Fed {
  feed: RouteFeed;
  table: RouteTable;
  client: Etcd3;
  logs: string[];
  resyncs: { reason: ResyncReason; rev: number; at: number }[];
}

function main(): void {
  let cluster: EtcdCluster;
  let w: Etcd3;
  let ticker: NodeJS.Timeout;
  const rejections: unknown[] = [];
  const onRejection = (err: unknown): void => void rejections.push(err);

  t.before(async () => {
    cluster = await startEtcdCluster(t);
    w = createEtcdClient(cluster.endpoints);
    process.on('unhandledRejection', onRejection);
    // what the scheduler leader does: the watchdog's heartbeat
    ticker = setInterval(() => void w.put(keys.tick()).value(String(Date.now())).catch(() => undefined), 1000);
    await w.put(keys.appMeta('a')).value(meta()); // every test may run alone (--grep)
  });
  t.teardown(async () => {
    clearInterval(ticker);
    process.off('unhandledRejection', onRejection);
    w?.close();
    // Twice in CI (never in a run alone) this file passed every assertion and then did not exit until
    // tap's timeout: some gRPC handle of a member killed and restarted mid-test outlived the clients'
    // close(). Not found yet; an unref'd timer ends the process with tap's own exit code if anything is
    // still alive 5 s after the last teardown, so a pass is not reported as a timeout.
    setTimeout(() => process.exit(), 5000).unref();
  });

  /** etcd's state, derived as the feed must. */
  async function expected(): Promise<RoutesFile> {
    const kvs = await w.getAll().prefix(PREFIX).exec();
    return normalized(deriveRoutes(kvs.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const), DOMAIN));
  }

  /** Compared with etcd's state; false (not a throw) while the test's own client still fails after a freeze. */
  async function converged(fed: Fed): Promise<boolean> {
    try {
      return JSON.stringify(fed.table.toJSON()) === JSON.stringify(await expected());
    } catch {
      return false;
    }
  }

  async function startFeed(t: Test, o: Partial<RouteFeedOptions> = {}, endpoints = cluster.endpoints): Promise<Fed> {
    const client = createEtcdClient(endpoints);
    const table = new RouteTable();
    const logs: string[] = [];
    const t0 = Date.now();
    const feed = new RouteFeed({ client, table, domain: DOMAIN, log: (l) => logs.push(`${Date.now() - t0} ms: ${l}`), ...o });
    const resyncs: Fed['resyncs'] = [];
    feed.on('resync', (reason, rev) => resyncs.push({ reason, rev, at: Date.now() }));
    t.teardown(async () => {
      // the client is closed even if a stop hangs: an open gRPC channel keeps the test process alive
      await Promise.race([feed.stop(), new Promise((r) => setTimeout(r, 8000))]);
      client.close();
    });
    await feed.start();
    return { feed, table, client, logs, resyncs };
  }

  t.test('start: the table equals the derivation of etcd state; apps without meta are not routed', async (t) => {
    await w.put(keys.appMeta('a')).value(meta());
    await w.put(keys.endpoint('a', 'web.1', 'd1')).value(endpoint('10.200.1.2:5000'));
    await w.put(keys.endpoint('a', 'web.2', 'd2')).value(endpoint('10.200.2.2:5000', 'starting'));
    await w.put(keys.appMeta('b')).value(meta({ maintenance: true }));
    await w.put(keys.status('b', 'web.1', 'h1')).value(status('web.1', 'crashed'));
    await w.put(keys.endpoint('ghost', 'web.1', 'd9')).value(endpoint('10.200.1.9:5000'));
    const fed = await startFeed(t);
    t.ok(fed.feed.appliedRev > 0, `appliedRev ${fed.feed.appliedRev}`);
    t.same(fed.table.toJSON(), await expected());
    t.same([...fed.table.snapshot.apps.keys()].sort(), ['a', 'b']);
    t.equal(fed.table.app('a')?.up.length, 1);
    t.equal(fed.table.app('b')?.maintenance, true);
    t.equal(fed.table.app('b')?.crashed, 'web.1 exited 1');
    t.equal(fed.table.lookupHost(`a.${DOMAIN}`)?.name, 'a');
  });

  t.test('changes flow: endpoint put (latency), lease revoke, crash, meta delete', async (t) => {
    const fed = await startFeed(t);
    // propagation: put acknowledged → 'applied' at or past its revision
    const lat: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const res = await w.put(keys.endpoint('a', `web.${i + 3}`, `p${i}`)).value(endpoint(`10.200.3.${i + 10}:5000`)).exec();
      const rev = Number(res.header.revision);
      if (fed.feed.appliedRev < rev) {
        await new Promise<void>((resolve) => {
          const on = (r: number): void => {
            if (r < rev) return;
            fed.feed.off('applied', on);
            resolve();
          };
          fed.feed.on('applied', on);
        });
      }
      lat.push(performance.now() - t0);
      t.ok(fed.table.app('a')?.backends.some((b) => b.address === `10.200.3.${i + 10}:5000`), `backend ${i} in the table once applied`);
    }
    lat.sort((x, y) => x - y);
    t.comment(`put → table applied (30 puts): p50 ${lat[15]!.toFixed(1)} ms, p90 ${lat[27]!.toFixed(1)} ms, max ${lat[29]!.toFixed(1)} ms`);
    t.ok(lat[29]! < 2000, 'every put applied within 2 s');
    const lastRev = fed.feed.appliedRev;
    t.ok((fed.feed.appliedAt(lastRev) ?? 0) > Date.now() - 60_000, 'appliedAt: when the last revision reached the table');
    t.equal(fed.feed.appliedAt(lastRev + 1_000_000), undefined, 'appliedAt: undefined for a revision not applied yet');
    t.ok(await converged(fed), 'table = derivation');

    // an agent's lease: revoking it deletes its endpoints, which leave the table
    const agent = w.lease(10);
    await agent.put(keys.endpoint('a', 'web.99', 'x1')).value(endpoint('10.200.9.1:5000'));
    await agent.put(keys.endpoint('a', 'web.99', 'x2')).value(endpoint('10.200.9.2:5000', 'draining'));
    await waitFor(() => fed.table.app('a')!.backends.filter((b) => b.dyno === 'web.99').length === 2, 2000, 'two web.99 instances');
    await agent.revoke();
    await waitFor(() => !fed.table.app('a')!.backends.some((b) => b.dyno === 'web.99'), 2000, 'web.99 gone after revoke');
    t.pass('lease revoke removed the backends');

    // crashed: every web status crashed, then one up again
    await w.put(keys.appMeta('c')).value(meta());
    await w.put(keys.status('c', 'web.1', 'h1')).value(status('web.1', 'crashed'));
    await waitFor(() => fed.table.app('c')?.crashed === 'web.1 exited 1', 2000, 'c crashed');
    await w.put(keys.status('c', 'web.2', 'h2')).value(status('web.2', 'up'));
    await waitFor(() => fed.table.app('c')?.crashed === null, 2000, 'c not crashed');
    t.pass('crashed follows the statuses');

    // maintenance, then the app's meta deleted: it leaves the table though its other keys remain
    await w.put(keys.appMeta('c')).value(meta({ maintenance: true }));
    await waitFor(() => fed.table.app('c')?.maintenance === true, 2000, 'c in maintenance');
    await w.delete().key(keys.appMeta('c'));
    await waitFor(() => fed.table.app('c') === undefined, 2000, 'c removed');
    t.ok(await converged(fed), 'table = derivation');
  });

  t.test("lease loss: an app left with no backend keeps its last ones for the grace; deliberate removals apply at once", async (t) => {
    const GRACE = 3000;
    const fed = await startFeed(t, { leaseGraceMs: GRACE });
    t.teardown(() => t.comment(fed.logs.join('\n')));
    const ep = (host: string, address: string): string => JSON.stringify({ host, address, state: 'up', gen: 1, release: 1 } satisfies EndpointRecord);
    const hostRec = (id: string): string => JSON.stringify({ id, incarnation: 'x', uplink: '127.0.0.1', subnet: null, roles: ['dynos'], clusterPort: 1, startedAt: 1 });
    const addresses = (app: string): string[] => (fed.table.app(app)?.backends ?? []).map((b) => b.address).sort();
    /** A host's lease as an agent holds it: its hosts/<id> key and its endpoints in one lease. */
    const agent = async (host: string, eps: [app: string, slot: string, instance: string, address: string][]): Promise<ReturnType<Etcd3['lease']>> => {
      const lease = w.lease(30);
      await lease.put(keys.host(host)).value(hostRec(host));
      for (const [app, slot, instance, address] of eps) await lease.put(keys.endpoint(app, slot, instance)).value(ep(host, address));
      return lease;
    };
    const held = (app: string): number => fed.logs.filter((l) => l.includes(`app ${app}: its endpoints vanished with host lease`)).length;
    await w.put(keys.appMeta('g')).value(meta());
    await w.put(keys.formation('g', 'web')).value(JSON.stringify({ quantity: 1, size: 'standard-1x' }));

    // the only endpoint goes with its host's lease: kept until a fresh one arrives
    const l1 = await agent('hg1', [['g', 'web.1', 'i1', '10.201.1.1:5000']]);
    await waitFor(() => addresses('g').join() === '10.201.1.1:5000', 2000, 'g routed to i1');
    await l1.revoke();
    await waitFor(() => held('g') === 1, 2000, 'the hold logged');
    await sleep(1000);
    t.same(addresses('g'), ['10.201.1.1:5000'], '1 s after the lease went: still routed to its last backend');
    t.notOk(await w.get(keys.endpoint('g', 'web.1', 'i1')).string(), 'while its key is gone from etcd');
    // the host comes back: its key first, its endpoint in a later Txn (leased-keys.ts writes ≤128 ops per Txn)
    let empty = 0;
    const onChange = (): void => void (addresses('g').length === 0 && empty++);
    fed.table.on('change', onChange);
    const l2 = await agent('hg1', [['g', 'web.1', 'i2', '10.201.1.2:5000']]);
    await waitFor(() => addresses('g').join() === '10.201.1.2:5000', 2000, 'the fresh endpoint replaces the held one');
    fed.table.off('change', onChange);
    t.pass('fresh endpoint: the hold ends');
    t.equal(empty, 0, 'never without a backend between the host key and its endpoint');

    // lost again, and nothing comes back: gone once the grace is over
    const lostAt = Date.now();
    await l2.revoke();
    await waitFor(() => held('g') === 2, 2000, 'the second hold logged');
    t.same(addresses('g'), ['10.201.1.2:5000'], 'held again');
    await waitFor(() => addresses('g').length === 0, GRACE + 2000, 'the held backend dropped at the end of the grace');
    const heldFor = Date.now() - lostAt;
    t.ok(heldFor >= GRACE - 200, `dropped after ${heldFor} ms (grace ${GRACE} ms)`);
    t.ok(await converged(fed), 'table = derivation once the grace is over');

    // the host comes back without that endpoint (its dyno was stopped meanwhile): dropped HOST_BACK_MS later
    const l7 = await agent('hg6', [['g', 'web.1', 'i7', '10.201.6.7:5000']]);
    await waitFor(() => addresses('g').join() === '10.201.6.7:5000', 2000, 'g routed to i7');
    const heldBeforeL7 = held('g');
    await l7.revoke();
    await waitFor(() => held('g') === heldBeforeL7 + 1, 2000, 'held after the revoke');
    const back = w.lease(30);
    t.teardown(() => back.revoke().catch(() => undefined));
    const backAt = Date.now();
    await back.put(keys.host('hg6')).value(hostRec('hg6'));
    await waitFor(() => addresses('g').length === 0, HOST_BACK_MS + 1500, 'dropped once its host is back without it');
    const afterBack = Date.now() - backAt;
    t.ok(afterBack >= HOST_BACK_MS - 100 && afterBack < GRACE - 500, `dropped ${afterBack} ms after its host's key came back (HOST_BACK_MS ${HOST_BACK_MS})`);

    // a dyno stopped on purpose (its endpoint deleted, its host's key stays): gone at once, never held
    const l3 = await agent('hg2', [['g', 'web.1', 'i3', '10.201.2.3:5000']]);
    t.teardown(() => l3.revoke().catch(() => undefined));
    await waitFor(() => addresses('g').join() === '10.201.2.3:5000', 2000, 'g routed to i3');
    const before = held('g');
    await w.delete().key(keys.endpoint('g', 'web.1', 'i3'));
    await waitFor(() => addresses('g').length === 0, 2000, 'deleted endpoint gone');
    await sleep(300);
    t.equal(held('g'), before, 'a deliberate removal is not held');

    // scaled to 0 while held: the hold ends at once
    const l4 = await agent('hg3', [['g', 'web.1', 'i4', '10.201.3.4:5000']]);
    await waitFor(() => addresses('g').join() === '10.201.3.4:5000', 2000, 'g routed to i4');
    await l4.revoke();
    await waitFor(() => held('g') === before + 1, 2000, 'held after the revoke');
    await w.put(keys.formation('g', 'web')).value(JSON.stringify({ quantity: 0, size: 'standard-1x' }));
    await waitFor(() => addresses('g').length === 0, 1000, 'web=0 drops the held backend at once');
    t.ok(fed.logs.some((l) => /app g: stopped holding .*the web formation is 0/.test(l)), 'logged why the hold ended');

    // a partial loss (another backend of the app is left) applies at once
    await w.put(keys.formation('g', 'web')).value(JSON.stringify({ quantity: 2, size: 'standard-1x' }));
    const l5 = await agent('hg4', [['g', 'web.1', 'i5', '10.201.4.5:5000']]);
    const l6 = await agent('hg5', [['g', 'web.2', 'i6', '10.201.5.6:5000']]);
    t.teardown(() => l6.revoke().catch(() => undefined));
    await waitFor(() => addresses('g').length === 2, 2000, 'two backends');
    const heldBefore = held('g');
    await l5.revoke();
    await waitFor(() => addresses('g').join() === '10.201.5.6:5000', 1000, 'the lost backend goes at once when another is left');
    t.equal(held('g'), heldBefore, 'nothing held');

    // the app destroyed while held: gone at once
    await l6.revoke();
    await waitFor(() => held('g') === heldBefore + 1, 2000, 'held after the last backend went');
    await w.delete().key(keys.appMeta('g'));
    await waitFor(() => fed.table.app('g') === undefined, 1000, 'a destroyed app leaves the table at once');
    await waitFor(() => converged(fed), 2000, 'table = derivation');
    await w.delete().prefix(keys.formations('g'));
  });

  t.test('router registration: routers/<id> under its own lease, refreshed, gone on stop', async (t) => {
    const key = keys.router('r1');
    const fed = await startFeed(t, { router: { id: 'r1', admin: '127.0.0.1:9999', ttlSeconds: 3 } });
    await waitFor(async () => (await w.get(key).string()) !== null, 3000, 'router key');
    const kv = (await w.get(key).exec()).kvs[0]!;
    t.not(kv.lease, '0', `under a lease (${kv.lease})`);
    const rec = JSON.parse(kv.value.toString()) as RouterRecord;
    t.equal(rec.admin, '127.0.0.1:9999');
    const rev = Number((await w.put(keys.endpoint('a', 'web.1', 'd1')).value(endpoint('10.200.1.3:5000')).exec()).header.revision);
    await waitFor(async () => Number((JSON.parse((await w.get(key).string()) ?? '{}') as RouterRecord).appliedRev) >= rev, 3000, 'appliedRev refreshed');
    t.pass('appliedRev refreshed within a second or two');
    await fed.feed.stop();
    t.equal(await w.get(key).string(), null, 'key gone at once on stop (lease revoked)');
  });

  t.test('compaction: a watch resumed below the compacted revision re-lists', async (t) => {
    // The feed's client talks to member e1 only; the test writes through e2 and e3. e1 is killed and
    // restarted on its data dir, so the feed's watch reconnects asking for a revision compacted meanwhile.
    const other = createEtcdClient(cluster.endpoints.slice(1));
    t.teardown(() => other.close());
    const fed = await startFeed(t, { watchdogMs: 60_000 }, cluster.endpoints.slice(0, 1));
    t.teardown(() => t.comment(fed.logs.join('\n')));
    const e1 = cluster.members[0]!;
    const spawnargs = e1.process.spawnargs;
    const etcdArgs = spawnargs.slice(spawnargs.indexOf(ETCD_BIN) + 1);
    const killedAt = Date.now();
    await new Promise<void>((resolve) => {
      e1.process.once('exit', () => resolve());
      e1.process.kill('SIGKILL');
    });
    await retry(() => other.put(keys.endpoint('a', 'web.1', 'd1')).value(endpoint('10.200.1.77:5000')).exec());
    await retry(() => other.delete().key(keys.endpoint('a', 'web.2', 'd2')).exec());
    const rev = (await retry(() => other.put(`${PREFIX}test/compact`).value('x').exec())).header.revision;
    await other.kv.compact({ revision: rev, physical: true });
    // the fixture's stop() kills whatever process the member holds: hand it the new one
    const child = spawnTied(ETCD_BIN, etcdArgs, { stdio: ['ignore', 'ignore', 'ignore'] });
    e1.process = child;
    e1.pid = child.pid!;
    await waitFor(async () => fed.resyncs.some((r) => r.at > killedAt) && (await converged(fed)), 20_000, 're-list after compaction');
    const r = fed.resyncs.find((x) => x.at > killedAt)!;
    t.equal(r.reason, 'watch-error', `re-listed on the watch's compaction error ${r.at - killedAt} ms after the kill`);
    t.equal(fed.table.app('a')?.backends.find((b) => b.dyno === 'web.1')?.address, '10.200.1.77:5000');
    t.notOk(fed.table.app('a')?.backends.some((b) => b.dyno === 'web.2'), 'deleted endpoint gone');
    t.ok(fed.logs.some((l) => /watch ended/.test(l)), 'the watch ended with an error');
  });

  t.test("watchdog: the feed's member frozen → re-list once it answers", async (t) => {
    const other = createEtcdClient(cluster.endpoints.slice(1));
    t.teardown(() => other.close());
    const fed = await startFeed(t, { watchdogMs: 3000 }, cluster.endpoints.slice(0, 1));
    t.teardown(() => t.comment(fed.logs.join('\n')));
    const e1 = cluster.members[0]!;
    const before = fed.table.snapshot;
    process.kill(e1.pid, 'SIGSTOP');
    const frozenAt = Date.now();
    try {
      await other.put(keys.endpoint('a', 'web.1', 'd1')).value(endpoint('10.200.1.88:5000'));
      await sleep(5000);
      t.equal(fed.table.snapshot, before, 'table untouched while its member is frozen');
    } finally {
      process.kill(e1.pid, 'SIGCONT');
    }
    await waitFor(async () => converged(fed), 20_000, 'feed converged after the thaw');
    const reasons = fed.resyncs.filter((x) => x.at > frozenAt).map((x) => x.reason);
    t.ok(reasons.includes('watchdog'), `re-listed by the watchdog (${reasons.join(', ')})`);
    t.equal(fed.table.app('a')?.backends.find((b) => b.dyno === 'web.1')?.address, '10.200.1.88:5000');
    // the re-list that meets the frozen member may time out (an outage, logged once) or be answered after the thaw
    t.ok(fed.logs.filter((l) => /unreachable/.test(l)).length <= 1, 'an outage logged at most once');
  });

  t.test('etcd unreachable (all members frozen 8 s): table kept, not pruned, no crash; then changes flow', async (t) => {
    const fed = await startFeed(t, { watchdogMs: 3000, resyncMs: 1000, router: { id: 'r2', admin: '127.0.0.1:9998', ttlSeconds: 3 } });
    const before = fed.table.snapshot;
    const beforeJson = JSON.stringify(fed.table.toJSON());
    t.ok(before.apps.size > 0, `${before.apps.size} apps in the table`);
    for (const m of cluster.members) process.kill(m.pid, 'SIGSTOP');
    try {
      await sleep(8000);
      t.equal(fed.table.snapshot, before, 'the very same snapshot: nothing pruned or swapped');
    } finally {
      for (const m of cluster.members) process.kill(m.pid, 'SIGCONT');
    }
    t.equal(JSON.stringify(fed.table.toJSON()), beforeJson);
    const thawed = Date.now();
    await retry(() => w.put(keys.endpoint('a', 'web.1', 'd1')).value(endpoint('10.200.1.99:5000')).exec());
    await waitFor(() => fed.table.app('a')?.backends.find((b) => b.dyno === 'web.1')?.address === '10.200.1.99:5000', 20_000, 'change after the thaw');
    t.comment(`change applied ${Date.now() - thawed} ms after the thaw`);
    await waitFor(async () => converged(fed), 10_000, 'converged');
    t.equal(fed.logs.filter((l) => /unreachable/.test(l)).length, 1, 'the outage logged once, not per retry');
    await waitFor(async () => (await retry(() => w.get(keys.router('r2')).string())) !== null, 10_000, 'router key after the outage');
    t.comment(fed.logs.join('\n'));
    t.same(rejections, [], 'no unhandled rejection');
  });

  t.test('stop leaves nothing behind', async (t) => {
    const fed = await startFeed(t, { router: { id: 'r3', admin: '127.0.0.1:9997', ttlSeconds: 3 } });
    await waitFor(async () => (await retry(() => w.get(keys.router('r3')).string())) !== null, 3000, 'router key');
    await fed.feed.stop();
    await fed.feed.stop(); // idempotent
    t.equal(await retry(() => w.get(keys.router('r3')).string()), null);
    t.same(rejections, [], 'no unhandled rejection');
  });
}
