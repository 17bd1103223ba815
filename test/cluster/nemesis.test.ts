/**
 * CI's slice of the nemesis (issue 11): MANIFOLD_NEMESIS_MINUTES (default 3) of random faults under
 * load, then every checker. The seed is printed first; replay a failure with
 * `npm run test:nemesis -- --seed N --minutes M` or MANIFOLD_NEMESIS_SEED=N.
 */
import fs from 'node:fs';
import t from 'tap';
import { fabricMissing } from './helpers/fabric';
import { etcdMissing } from './helpers/etcd-cluster';
import { runNemesis } from './nemesis/run';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, dynos)' : (fabricMissing() ?? etcdMissing());
const seed = Number(process.env.MANIFOLD_NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const minutes = Number(process.env.MANIFOLD_NEMESIS_MINUTES ?? 3);

t.test(`nemesis, seed ${seed}, ${minutes} min`, { skip, timeout: (minutes * 60 + 600) * 1000 }, async (t) => {
  t.comment(`seed ${seed} (replay: npm run test:nemesis -- --seed ${seed} --minutes ${minutes})`);
  const r = await runNemesis({ seed, minutes, log: (l) => t.comment(l) });
  t.ok(r.faults.length >= Math.floor((minutes * 60) / 40), `${r.faults.length} faults injected: ${r.faults.map((f) => f.name).join('; ')}`);
  t.same(r.safety, [], `safety over ${r.historyEvents} etcd events: ≤ 1 running assignment per slot on live hosts, every assignment by the leader of its time`);
  t.ok(r.availability.failed <= r.availability.bound, `availability: ${r.availability.failed} failed of ${r.availability.total} requests, bound ${r.availability.bound} (in flight on faulted hosts) ${r.availability.sample.join(' | ')}`);
  t.ok(r.liveness.ok, `liveness: ${r.liveness.detail}`);
  t.ok(r.convergence.ok, `convergence: ${r.convergence.detail}`);
  t.comment(`records kept in ${r.dir} (removed when every checker passed)`);
  if (r.safety.length === 0 && r.availability.failed <= r.availability.bound && r.liveness.ok && r.convergence.ok) fs.rmSync(r.dir, { recursive: true, force: true });
});

t.test('60 s under load with no fault: no spurious host expiry at the test TTL of 3 s (spec §7 gate)', { skip, timeout: 600_000 }, async (t) => {
  const r = await runNemesis({ seed, minutes: 1, ttl: 3, faults: false, log: (l) => t.comment(l) });
  t.same(r.hostExpiries, [], 'no host lease expired');
  t.equal(r.availability.failed, 0, `no failed request of ${r.availability.total}`);
  t.ok(r.liveness.ok && r.convergence.ok, `${r.liveness.detail}; ${r.convergence.detail}`);
  if (r.hostExpiries.length === 0 && r.availability.failed === 0) fs.rmSync(r.dir, { recursive: true, force: true });
});
