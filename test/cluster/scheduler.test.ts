/**
 * The scheduler on a real 3-member etcd (spec §7 tier 1, "placement"): fake agents are `hosts/<id>`
 * keys under leases this test grants (no dynos run). Every assign write of the whole file is checked
 * against the etcd history: its leaderRev must be the create revision of the leader key of that
 * moment (the lowest live candidate key of the election), so neither a standby nor a deposed leader
 * ever wrote.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import t from 'tap';
import type { Etcd3, IKeyValue, Lease } from 'etcd3';
import { createEtcdClient } from '../../src/cluster/etcd-client';
import { EtcdStateStore } from '../../src/cluster/etcd-state-store';
import { keys, PREFIX } from '../../src/cluster/keys';
import { parseRecord, type AssignmentRecord, type HostRecord } from '../../src/cluster/records';
import { Scheduler, type PassReport } from '../../src/cluster/scheduler';
import { etcdMissing, startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster';
import { spawnTied } from './helpers/tied';

const GB = 1024 ** 3;
const TTL = 2;

const missing = etcdMissing();
if (missing) {
  t.plan(0, missing);
} else {
  main();
}

interface Assigned {
  host: string;
  app: string;
  slot: string;
  rec: AssignmentRecord;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function main(): void {
  let cluster: EtcdCluster;
  let client: Etcd3;
  /** Every election and assign event of the run, in revision order (the history check replays it). */
  const history: { type: 'put' | 'delete'; kv: IKeyValue }[] = [];
  const hostLeases = new Map<string, Lease>();
  const schedulers: Scheduler[] = [];
  const logs: string[] = [];

  const newScheduler = (hostId: string): Scheduler => {
    const s = new Scheduler({ client, hostId, ttlSeconds: TTL, fullPassMs: 1000, probationMs: 3000, log: (l) => logs.push(`${hostId}: ${l}`) });
    schedulers.push(s);
    return s;
  };

  const addHost = async (id: string, memBytes = 8 * GB, incarnation = `${id}-1`): Promise<void> => {
    const lease = client.lease(TTL);
    lease.on('lost', () => undefined); // revoked by the test on purpose
    const rec: HostRecord = { id, incarnation, uplink: '127.0.0.1', subnet: null, roles: ['dynos'], clusterPort: 1, memBytes, startedAt: Date.now() };
    await lease.put(keys.host(id)).value(JSON.stringify(rec));
    hostLeases.set(id, lease);
  };

  const killHost = async (id: string): Promise<void> => {
    await hostLeases.get(id)?.revoke();
    hostLeases.delete(id);
  };

  const assignments = async (): Promise<Assigned[]> => {
    const all = await client.getAll().prefix(keys.allAssignments()).exec();
    return all.kvs.map((kv) => {
      const [host, app, slot] = kv.key.toString().slice(keys.allAssignments().length).split('/');
      return { host: host ?? '', app: app ?? '', slot: slot ?? '', rec: parseRecord<AssignmentRecord>(kv.value) as AssignmentRecord };
    });
  };
  const running = async (): Promise<Assigned[]> => (await assignments()).filter((a) => a.rec.state === 'run');

  t.before(async () => {
    cluster = await startEtcdCluster(t);
    client = createEtcdClient(cluster.endpoints);
    const w = await client.watch().prefix(PREFIX).create();
    w.on('put', (kv) => history.push({ type: 'put', kv }));
    w.on('delete', (kv) => history.push({ type: 'delete', kv }));
    t.teardown(() => w.cancel());
  });
  t.teardown(async () => {
    await Promise.all(schedulers.map((s) => s.stop()));
    for (const l of hostLeases.values()) await l.revoke().catch(() => undefined);
    client?.close();
  });

  const store = (): EtcdStateStore => new EtcdStateStore(client, 'test');
  let s1: Scheduler;

  t.test('a web=3 worker=2 app is spread over 3 hosts', async (t) => {
    for (const h of ['h1', 'h2', 'h3']) await addHost(h);
    const st = store();
    await st.createApp('a', { slug: 'x', procfile: { web: 'node web.js', worker: 'node worker.js' }, config: {}, description: 'test', by: 'root' });
    await st.updateFormation('a', () => ({ web: { quantity: 3, size: 'standard-1x' }, worker: { quantity: 2, size: 'standard-1x' } }));
    s1 = newScheduler('sched-1');
    const elected = new Promise<string>((resolve) => s1.once('elected', resolve));
    s1.start();
    const rev = await elected;
    const run = await waitFor('5 run assignments', async () => {
      const r = await running();
      return r.length === 5 && r;
    });
    const web = run.filter((a) => a.rec.type === 'web').map((a) => a.host);
    const worker = run.filter((a) => a.rec.type === 'worker').map((a) => a.host);
    t.equal(new Set(web).size, 3, `one web per host (${web.join(',')})`);
    t.equal(new Set(worker).size, 2, `workers on different hosts (${worker.join(',')})`);
    for (const a of run) t.match(a.rec, { gen: 1, release: 1, size: 'standard-1x', state: 'run', leaderRev: rev });
    // Converged: the next passes write nothing.
    const quiet = await new Promise<PassReport>((resolve) => s1.once('pass', resolve));
    t.equal(quiet.ops, 0, 'a pass over a converged state writes nothing');
    t.ok(Number(await client.get(keys.tick()).string()) > Date.now() - 3000, 'tick written');
    const tick = (await client.get(keys.tick()).exec()).kvs[0];
    const leaderKv = (await client.getAll().prefix(keys.election()).exec()).kvs.find((kv) => kv.value.toString() === 'sched-1');
    t.equal(tick?.lease, leaderKv?.lease, 'tick on the leader lease');
  });

  t.test('a dead host (lease revoked): its slots replaced on the live hosts', async (t) => {
    const before = (await running()).filter((a) => a.host === 'h3');
    t.ok(before.length > 0, 'h3 ran something');
    const t0 = performance.now();
    await killHost('h3');
    const run = await waitFor('slots off h3', async () => {
      const all = await assignments();
      const r = all.filter((a) => a.rec.state === 'run');
      return r.length === 5 && !all.some((a) => a.host === 'h3') && r;
    });
    t.comment(`replaced ${(performance.now() - t0).toFixed(0)} ms after the revoke`);
    for (const b of before) {
      const now = run.find((a) => a.slot === b.slot);
      t.ok(now && now.host !== 'h3' && now.rec.gen === b.rec.gen + 1, `${b.slot} on ${now?.host} gen ${now?.rec.gen}`);
    }
    const web = run.filter((a) => a.rec.type === 'web').map((a) => a.host).sort();
    t.same(web.length, 3);
    t.ok(new Set(web).size === 2, 'web still on both live hosts');
  });

  t.test('a host back with a new incarnation: probation, then slots again', async (t) => {
    await addHost('h3', 8 * GB, 'h3-2');
    // Let the leader see the first incarnation; then the agent restarts: a new lease and incarnation.
    await waitFor('a pass seeing h3', () => new Promise<boolean>((resolve) => s1.once('pass', () => resolve(true))));
    await killHost('h3');
    await addHost('h3', 8 * GB, 'h3-3');
    await waitFor('a pass seeing h3 again', () => new Promise<boolean>((resolve) => s1.once('pass', () => resolve(true))));
    await store().updateFormation('a', () => ({ web: { quantity: 4, size: 'standard-1x' } }));
    const web4 = await waitFor('web.4', async () => (await running()).find((a) => a.slot === 'web.4'));
    t.not(web4.host, 'h3', `web.4 not placed on h3 while on probation (${web4.host})`);
    await store().updateFormation('a', () => ({ web: { quantity: 3, size: 'standard-1x' } }));
    const retired = await waitFor('web.4 retired', async () => (await assignments()).find((a) => a.slot === 'web.4' && a.rec.state === 'retire'));
    t.equal(retired.rec.gen, web4.rec.gen, 'scale down retires, gen kept');
    // An agent deletes what it retired.
    await client.delete().key(keys.assignment(retired.host, 'a', 'web.4'));
    // Probation (3 s here) over: h3, the emptiest host, gets the next slot.
    await new Promise((r) => setTimeout(r, 3000));
    await store().updateFormation('a', () => ({ web: { quantity: 4, size: 'standard-1x' } }));
    const again = await waitFor('web.4 again', async () => (await running()).find((a) => a.slot === 'web.4'));
    t.equal(again.host, 'h3', 'after probation h3 takes new slots');
    // Its earlier gen is forgotten once the agent deleted the retired key (no key, no endpoint): gen 1 again.
    t.equal(again.rec.state, 'run');
  });

  t.test('a new release: every run assignment gets it, same host and gen', async (t) => {
    const before = await running();
    const r2 = await store().createRelease('a', (cur) => ({ ...cur, slug: 'y', description: 'deploy', by: 'root' }));
    t.equal(r2?.version, 2);
    const after = await waitFor('release 2 everywhere', async () => {
      const r = await running();
      return r.every((a) => a.rec.release === 2) && r;
    });
    t.same(
      after.map((a) => `${a.slot}@${a.host}#${a.rec.gen}`).sort(),
      before.map((a) => `${a.slot}@${a.host}#${a.rec.gen}`).sort(),
    );
  });

  t.test('drain: every slot moves off with `after`, the new one placed first', async (t) => {
    const onH1 = (await running()).filter((a) => a.host === 'h1');
    t.ok(onH1.length > 0, 'h1 runs something');
    await client.put(keys.drain('h1')).value(JSON.stringify({ since: Date.now() }));
    const all = await waitFor('moves off h1', async () => {
      const a = await assignments();
      return a.filter((x) => x.host === 'h1' && x.rec.state === 'retire').length === onH1.length && a;
    });
    for (const old of onH1) {
      const moved = all.find((a) => a.slot === old.slot && a.host !== 'h1' && a.rec.state === 'run');
      const retire = all.find((a) => a.slot === old.slot && a.host === 'h1');
      t.ok(moved, `${old.slot} runs on ${moved?.host}`);
      t.match(retire?.rec, { state: 'retire', gen: old.rec.gen, after: moved?.rec.gen }, `${old.slot}: old retires after the new gen`);
    }
    // The old agent deletes its retired keys once the new instances are up; then undrain.
    for (const old of onH1) await client.delete().key(keys.assignment('h1', 'a', old.slot));
    await client.delete().key(keys.drain('h1'));
  });

  t.test('two schedulers: only the leader writes; a deposed leader writes nothing', async (t) => {
    const s2 = newScheduler('sched-2');
    const s2elected = new Promise<string>((resolve) => s2.once('elected', resolve));
    s2.start();
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(s2.isLeader, false, 'the standby is not leader');
    // Depose s1 behind its back: revoke its campaign lease (as an expiry would).
    const cands = await client.getAll().prefix(keys.election()).exec();
    const mine = cands.kvs.find((kv) => kv.value.toString() === 'sched-1');
    t.ok(mine, 's1 holds a candidate key');
    const s1deposed = new Promise<string>((resolve) => s1.once('deposed', resolve));
    await client.leaseClient.leaseRevoke({ ID: mine?.lease ?? '0' });
    const rev2 = await s2elected;
    t.comment(`s1 deposed: ${await s1deposed}`);
    // s2 now leads: a formation change is placed by it.
    await store().updateFormation('a', () => ({ worker: { quantity: 3, size: 'standard-1x' } }));
    const w3 = await waitFor('worker.3', async () => (await running()).find((a) => a.slot === 'worker.3'));
    t.equal(w3.rec.leaderRev, rev2, 'placed by the new leader');
    t.equal(s1.isLeader, false, 's1 stands by again');
  });

  t.test('a leader frozen past its lease (SIGSTOP) writes nothing when it wakes', async (t) => {
    const [first1, second] = schedulers;
    await first1?.stop(); // s1 stands by since it was deposed: out of the way
    const c = startChild(t, 'sched-child', cluster.endpoints);
    const candidates = async (): Promise<string[]> => Object.values(await client.getAll().prefix(keys.election()).strings());
    await waitFor('the child candidate key', async () => (await candidates()).includes('sched-child'));
    await second?.stop(); // resigns: the child is elected
    const first = await c.next('elected');
    process.kill(c.pid, 'SIGSTOP');
    try {
      // Its lease expires: its candidate key goes, and no candidate is left.
      await waitFor('the frozen leader key gone', async () => !(await candidates()).includes('sched-child'), 10_000);
      // Work for whoever leads next: the frozen child has this in its next plan when it wakes.
      await store().updateFormation('a', () => ({ worker: { quantity: 4, size: 'standard-1x' } }));
    } finally {
      process.kill(c.pid, 'SIGCONT');
    }
    const again = await c.next('elected', 10_000);
    t.not(again.rev, first.rev, 'elected anew, with a new fence revision');
    const w4 = await waitFor('worker.4', async () => (await running()).find((a) => a.slot === 'worker.4'));
    t.equal(w4.rec.leaderRev, again.rev, 'worker.4 placed in the new term');
    t.comment(`child events: ${c.seen().join(' ')}`);
    await c.stop();
  });

  t.test('etcd unreachable: no crash, failures logged, stop() returns', async (t) => {
    const dead = createEtcdClient(['http://127.0.0.1:1']);
    const lines: string[] = [];
    const s = new Scheduler({ client: dead, hostId: 'nowhere', ttlSeconds: TTL, recampaignMs: 100, log: (l) => lines.push(l) });
    s.start();
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(s.isLeader, false);
    await s.stop();
    dead.close();
    t.ok(lines.some((l) => /lost/.test(l)), `failure logged (${lines[0] ?? 'nothing'})`);
  });

  t.test('history: every assign write carried the then-leader fence revision', async (t) => {
    await new Promise((r) => setTimeout(r, 300)); // let the watch deliver the last events
    const election = keys.election();
    const candidates = new Map<string, string>(); // key → create revision
    let writes = 0;
    for (const e of history) {
      const key = e.kv.key.toString();
      if (key.startsWith(election)) {
        if (e.type === 'put') candidates.set(key, e.kv.create_revision);
        else candidates.delete(key);
        continue;
      }
      if (e.type !== 'put' || !key.startsWith(keys.allAssignments())) continue;
      const rec = parseRecord<AssignmentRecord>(e.kv.value);
      // Writes by this test (none here) would carry no leaderRev; the scheduler's always do.
      const leaderRev = [...candidates.values()].sort((a, b) => Number(a) - Number(b))[0];
      writes++;
      if (rec?.leaderRev !== leaderRev) t.fail(`${key} at rev ${e.kv.mod_revision} written with leaderRev ${rec?.leaderRev}, leader was ${leaderRev}`);
    }
    t.ok(writes > 10, `${writes} assign writes checked`);
    const revs = new Set(history.filter((e) => e.kv.key.toString().startsWith(keys.allAssignments()) && e.type === 'put').map((e) => parseRecord<AssignmentRecord>(e.kv.value)?.leaderRev));
    t.ok(revs.size >= 3, `${revs.size} terms wrote (s1, s2, the child after its thaw)`);
  });

  t.test('stop: both resign, no candidate key left', async (t) => {
    await Promise.all(schedulers.map((s) => s.stop()));
    const left = await client.getAll().prefix(keys.election()).keys();
    t.same(left, [], 'no candidate key');
    if (logs.length > 0) t.comment(logs.slice(-10).join('\n'));
  });
}

interface Child {
  pid: number;
  next(event: string, timeoutMs?: number): Promise<{ event: string; rev?: string }>;
  /** Every event name it printed so far. */
  seen(): string[];
  stop(): Promise<void>;
}

/**
 * A Scheduler in a child process (so the test can SIGSTOP it without freezing itself), from an inline
 * script over the compiled modules. Prints JSON lines {event, rev?, reason?}; stdin closed → stop, exit.
 */
function startChild(t: { teardown(fn: () => unknown): void }, id: string, endpoints: string[]): Child {
  const dir = path.join(__dirname, '../../src/cluster');
  const script = `
    const { createEtcdClient } = require(${JSON.stringify(path.join(dir, 'etcd-client.js'))});
    const { Scheduler } = require(${JSON.stringify(path.join(dir, 'scheduler.js'))});
    const [id, endpoints] = process.argv.slice(1);
    const say = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
    const client = createEtcdClient(endpoints.split(','));
    const s = new Scheduler({ client, hostId: id, ttlSeconds: ${TTL}, fullPassMs: 1000, recampaignMs: 200, log: (l) => say({ event: 'log', line: l }) });
    s.on('elected', (rev) => say({ event: 'elected', rev }));
    s.on('deposed', (reason) => say({ event: 'deposed', reason }));
    s.start();
    process.stdin.resume();
    process.stdin.on('end', () => s.stop().finally(() => { client.close(); process.exit(0); }));
  `;
  const child: ChildProcess = spawnTied(process.execPath, ['-e', script, id, endpoints.join(',')], { stdio: ['pipe', 'pipe', 'inherit'] });
  if (!child.stdout || child.pid === undefined) throw new Error('child scheduler did not start');
  const queue: { event: string; rev?: string }[] = [];
  const seen: string[] = [];
  const waiters: { event: string; resolve: (m: { event: string; rev?: string }) => void }[] = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as { event: string; rev?: string; reason?: string; line?: string };
    seen.push(msg.event === 'log' ? `log(${msg.line})` : msg.event);
    const i = waiters.findIndex((w) => w.event === msg.event);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(msg);
    else queue.push(msg);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await exited;
  });
  return {
    pid: child.pid,
    seen: () => seen,
    next: (event, timeoutMs = 8000) => {
      const i = queue.findIndex((m) => m.event === event);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0] as { event: string; rev?: string });
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child ${id}: no '${event}' within ${timeoutMs} ms (saw ${seen.join(' ')})`)), timeoutMs);
        waiters.push({ event, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      });
    },
    stop: async () => {
      child.stdin?.end();
      await exited;
    },
  };
}
