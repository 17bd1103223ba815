/**
 * The scheduler's placement decision (src/cluster/placement.ts), pure: no etcd. One case per rule of
 * spec §5 as built (docs/cluster.md), plus determinism and "converged → no ops".
 */
import t from 'tap';
import { canDrain, flatten, plan, type PlanApp, type PlanAssignment, type PlanHost, type PlanInput } from '../../src/cluster/placement';
import { MAX_TXN_OPS } from '../../src/cluster/leadership';
import type { AssignmentRecord, Role } from '../../src/cluster/records';
import { packBatches } from '../../src/cluster/scheduler';

const GB = 1024 ** 3;

function host(id: string, opts: { mem?: number; draining?: boolean; probation?: boolean; roles?: Role[] } = {}): PlanHost {
  return {
    record: { id, incarnation: `${id}-1`, uplink: '10.99.0.1', subnet: null, roles: opts.roles ?? ['dynos'], clusterPort: 1, memBytes: opts.mem ?? 8 * GB, startedAt: 0 },
    draining: opts.draining ?? false,
    probation: opts.probation ?? false,
  };
}

function app(name: string, formation: Record<string, number | [number, string]>, release = 1, types?: string[]): PlanApp {
  return {
    name,
    release,
    types: types ?? Object.keys(formation),
    formation: Object.entries(formation).map(([type, q]) => (Array.isArray(q) ? { type, quantity: q[0], size: q[1] } : { type, quantity: q, size: 'standard-1x' })),
  };
}

function asg(hostId: string, appName: string, slot: string, rec: Partial<AssignmentRecord> = {}): PlanAssignment {
  return {
    host: hostId,
    app: appName,
    slot,
    record: { type: slot.split('.')[0] ?? slot, gen: 1, release: 1, size: 'standard-1x', state: 'run', leaderRev: 'old', ...rec },
  };
}

const input = (p: Partial<PlanInput>): PlanInput => ({ apps: [], hosts: [], assignments: [], leaderRev: '7', ...p });

/** Where each slot's `run` put landed: "slot@host". */
function runs(p: ReturnType<typeof plan>): string[] {
  return flatten(p)
    .puts.filter((x) => x.record.state === 'run')
    .map((x) => `${x.slot}@${x.host}`)
    .sort();
}

/** The assignments the ops leave behind (applies puts/deletes to the input's assignments). */
function apply(inp: PlanInput, p: ReturnType<typeof plan>): PlanAssignment[] {
  const m = new Map(inp.assignments.map((a) => [`${a.host}/${a.app}/${a.slot}`, a]));
  const { puts, deletes } = flatten(p);
  for (const d of deletes) m.delete(`${d.host}/${d.app}/${d.slot}`);
  for (const x of puts) m.set(`${x.host}/${x.app}/${x.slot}`, { host: x.host, app: x.app, slot: x.slot, record: x.record });
  return [...m.values()];
}

t.test('rule 1+2: web=3 worker=2 over 3 hosts: one web per host, workers on different hosts', async (t) => {
  const inp = input({ apps: [app('a', { web: 3, worker: 2 })], hosts: [host('h1'), host('h2'), host('h3')] });
  const p = plan(inp);
  const puts = flatten(p).puts;
  t.equal(puts.length, 5);
  const webHosts = puts.filter((x) => x.record.type === 'web').map((x) => x.host);
  t.same(new Set(webHosts).size, 3, 'each host one web');
  const workerHosts = puts.filter((x) => x.record.type === 'worker').map((x) => x.host);
  t.equal(new Set(workerHosts).size, 2, 'workers on different hosts');
  for (const x of puts) t.match(x.record, { gen: 1, release: 1, size: 'standard-1x', state: 'run', leaderRev: '7' });
  t.same(p.unplaced, []);
  t.same(plan(input({ ...inp, assignments: apply(inp, p) })).changes, [], 'converged → no ops');
});

t.test('rule 1: only types of the current procfile; quantity 0 → nothing; non-dynos hosts ignored', async (t) => {
  const p = plan(input({ apps: [app('a', { web: 2, clock: 1, worker: 0 }, 1, ['web', 'worker'])], hosts: [host('r', { roles: ['router'] }), host('h1')] }));
  t.same(runs(p), ['web.1@h1', 'web.2@h1']);
  t.same(plan(input({ apps: [app('a', { web: 1 }, 1, [])], hosts: [host('h1')] })).changes, [], 'no slug-bearing release → no slots');
});

t.test('rule 2: existing placements count before new ones (anti-affinity against what runs)', async (t) => {
  const inp = input({ apps: [app('a', { web: 2 })], hosts: [host('h1'), host('h2')], assignments: [asg('h1', 'a', 'web.2')] });
  t.same(runs(plan(inp)), ['web.1@h2']);
});

t.test('rule 2: fewest of the app, then most free memory, then host id', async (t) => {
  const other = [asg('h1', 'b', 'web.1', { size: 'performance-m' })];
  const inp = input({ apps: [app('a', { web: 1 }), app('b', { web: [1, 'performance-m'] })], hosts: [host('h1'), host('h2'), host('h3', { mem: 4 * GB })], assignments: other });
  t.same(runs(plan(inp)), ['web.1@h2'], 'h1 has less room, h2 has more memory than h3');
  const spread = input({ apps: [app('a', { web: 1, worker: 1 })], hosts: [host('h1', { mem: 2 * GB }), host('h2')], assignments: [asg('h2', 'a', 'worker.1')] });
  t.same(runs(plan(spread)), ['web.1@h1'], 'fewest of the app beats more free memory');
  const tie = input({ apps: [app('a', { web: 1 })], hosts: [host('h2'), host('h1')] });
  t.same(runs(plan(tie)), ['web.1@h1'], 'tie → lowest id');
});

t.test('rule 2: capacity: hosts too small → unplaced with a reason', async (t) => {
  // 1 GB × 0.9 = 921 MB: one 512 MB dyno fits, a second does not.
  const inp = input({ apps: [app('a', { web: 3 })], hosts: [host('h1', { mem: GB }), host('h2', { mem: GB })] });
  const p = plan(inp);
  t.same(runs(p), ['web.1@h1', 'web.2@h2']);
  t.equal(p.unplaced.length, 1);
  t.match(p.unplaced[0], { app: 'a', slot: 'web.3', reason: /room/ });
  const none = plan(input({ apps: [app('a', { web: 1 })], hosts: [] }));
  t.match(none.unplaced, [{ slot: 'web.1', reason: /no live host/ }]);
  const big = plan(input({ apps: [app('a', { web: [1, 'performance-l'] })], hosts: [host('h1', { mem: 8 * GB })] }));
  t.match(big.unplaced, [{ slot: 'web.1', reason: /performance-l/ }]);
});

t.test('rule 3: a dead host: its assignments deleted in the same group as the replacement, gen+1', async (t) => {
  const inp = input({
    apps: [app('a', { web: 2 })],
    hosts: [host('h1'), host('h3')],
    assignments: [asg('h1', 'a', 'web.1', { gen: 1 }), asg('h2', 'a', 'web.2', { gen: 4 }), asg('h2', 'a', 'old.1', { state: 'retire' })],
  });
  const p = plan(inp);
  const c = p.changes.find((x) => x.slot === 'web.2');
  t.same(c?.deletes, [{ host: 'h2', app: 'a', slot: 'web.2' }]);
  t.match(c?.puts, [{ host: 'h3', slot: 'web.2', record: { gen: 5, state: 'run' } }]);
  const retired = p.changes.find((x) => x.slot === 'old.1');
  t.same(retired, { app: 'a', slot: 'old.1', puts: [], deletes: [{ host: 'h2', app: 'a', slot: 'old.1' }] }, 'rule 7: retire on a dead host deleted');
  t.same(plan(input({ ...inp, assignments: apply(inp, p) })).changes, []);
});

t.test('rule 4: scale down / type gone / app gone → retire, gen kept; retire is never counted as running', async (t) => {
  const inp = input({
    apps: [app('a', { web: 1, worker: 1 }, 1, ['web'])],
    hosts: [host('h1')],
    assignments: [asg('h1', 'a', 'web.1'), asg('h1', 'a', 'web.2', { gen: 3 }), asg('h1', 'a', 'worker.1'), asg('h1', 'gone', 'web.1')],
  });
  const { puts, deletes } = flatten(plan(inp));
  t.same(deletes, []);
  t.same(
    puts.map((x) => `${x.app}/${x.slot}:${x.record.state}:${x.record.gen}`),
    ['a/web.2:retire:3', 'a/worker.1:retire:1', 'gone/web.1:retire:1'],
  );
  const later = input({ ...inp, apps: [app('a', { web: 2 })], assignments: [asg('h1', 'a', 'web.1'), asg('h1', 'a', 'web.2', { gen: 3, state: 'retire' })] });
  t.match(flatten(plan(later)).puts, [{ slot: 'web.2', host: 'h1', record: { gen: 4, state: 'run' } }], 'a retiring slot is placed anew');
});

t.test('rule 4: size change: same host with gen+1 if it fits, else moved like a drain', async (t) => {
  const inp = input({ apps: [app('a', { web: [1, 'standard-2x'] })], hosts: [host('h1'), host('h2')], assignments: [asg('h1', 'a', 'web.1', { gen: 2 })] });
  t.same(flatten(plan(inp)).puts.map((x) => [x.host, x.record.size, x.record.gen, x.record.state]), [['h1', 'standard-2x', 3, 'run']]);
  // h1 has 1.5 GB: 0.9 × 1.5 GB = 1382 MB < 512 MB (other app) + 1024 MB.
  const tight = input({
    apps: [app('a', { web: [1, 'standard-2x'] }), app('b', { web: 1 })],
    hosts: [host('h1', { mem: 1.5 * GB }), host('h2')],
    assignments: [asg('h1', 'a', 'web.1', { gen: 2 }), asg('h1', 'b', 'web.1')],
  });
  const p = plan(tight);
  t.same(
    flatten(p).puts.map((x) => [x.host, x.app, x.record.size, x.record.gen, x.record.state, x.record.after]),
    [
      ['h2', 'a', 'standard-2x', 3, 'run', undefined],
      ['h1', 'a', 'standard-1x', 2, 'retire', 3],
    ],
  );
});

t.test('rule 5: drain moves with `after`; nowhere to go → stays, reported', async (t) => {
  const inp = input({ apps: [app('a', { web: 2 })], hosts: [host('h1', { draining: true }), host('h2'), host('h3')], assignments: [asg('h1', 'a', 'web.1', { gen: 2 }), asg('h2', 'a', 'web.2')] });
  const p = plan(inp);
  t.same(p.changes.length, 1);
  t.match(p.changes[0]?.puts, [
    { host: 'h3', slot: 'web.1', record: { gen: 3, state: 'run', leaderRev: '7' } },
    { host: 'h1', slot: 'web.1', record: { gen: 2, state: 'retire', after: 3, leaderRev: '7' } },
  ]);
  t.same(plan(input({ ...inp, assignments: apply(inp, p) })).changes, [], 'converged after the move');
  const alone = plan(input({ apps: [app('a', { web: 1 })], hosts: [host('h1', { draining: true })], assignments: [asg('h1', 'a', 'web.1')] }));
  t.same(alone.changes, []);
  t.match(alone.unplaced, [{ slot: 'web.1', reason: /stays on h1/ }]);
});

t.test('rule 5: the new host of a move dies: the old instance waits for the replacement instead', async (t) => {
  const inp = input({
    apps: [app('a', { web: 1 })],
    hosts: [host('h1', { draining: true }), host('h2')],
    assignments: [asg('h1', 'a', 'web.1', { gen: 2, state: 'retire', after: 3 }), asg('h3', 'a', 'web.1', { gen: 3 })],
  });
  const p = plan(inp);
  t.equal(p.changes.length, 1, 'one Txn for the slot');
  t.same(p.changes[0]?.deletes, [{ host: 'h3', app: 'a', slot: 'web.1' }]);
  t.match(p.changes[0]?.puts, [
    { host: 'h2', record: { gen: 4, state: 'run' } },
    { host: 'h1', record: { gen: 2, state: 'retire', after: 4 } },
  ]);
  t.same(plan(input({ ...inp, assignments: apply(inp, p) })).changes, []);
});

t.test('rule 4+5: a slot scaled away during its move: the old instance stops waiting for its successor', async (t) => {
  const inp = input({
    apps: [app('a', { web: 1 })],
    hosts: [host('h1', { draining: true }), host('h2'), host('h3')],
    assignments: [asg('h1', 'a', 'web.1'), asg('h1', 'a', 'web.2', { gen: 2, state: 'retire', after: 3 }), asg('h3', 'a', 'web.2', { gen: 3 })],
  });
  const p = plan(inp);
  const puts = flatten(p).puts.filter((x) => x.slot === 'web.2').sort((a, b) => (a.host < b.host ? -1 : 1));
  t.match(puts, [{ host: 'h1', record: { gen: 2, state: 'retire' } }, { host: 'h3', record: { gen: 3, state: 'retire' } }]);
  t.notOk(puts.some((x) => x.record.after !== undefined), 'no retire waits for a successor that retires too');
  t.same(plan(input({ ...inp, assignments: apply(inp, p) })).changes.filter((c) => c.slot === 'web.2'), [], 'converged');
});

t.test('rule 6: release change → same gen, new release, same host', async (t) => {
  const inp = input({ apps: [app('a', { web: 1 }, 5)], hosts: [host('h1'), host('h2')], assignments: [asg('h1', 'a', 'web.1', { gen: 3, release: 4 })] });
  t.same(flatten(plan(inp)).puts, [{ host: 'h1', app: 'a', slot: 'web.1', record: { type: 'web', gen: 3, release: 5, size: 'standard-1x', state: 'run', leaderRev: '7' } }]);
});

t.test('probation: keeps what it runs, gets no new slot', async (t) => {
  const inp = input({ apps: [app('a', { web: 3 })], hosts: [host('h1', { probation: true }), host('h2')], assignments: [asg('h1', 'a', 'web.1')] });
  t.same(runs(plan(inp)), ['web.2@h2', 'web.3@h2']);
  t.match(plan(input({ ...inp, hosts: [host('h1', { probation: true })] })).unplaced, [{ reason: /probation/ }, { reason: /probation/ }]);
});

t.test('duplicate run assignments of a slot: the up one kept, the other retired after it', async (t) => {
  const inp = input({
    apps: [app('a', { web: 1 })],
    hosts: [host('h1'), host('h2')],
    assignments: [asg('h1', 'a', 'web.1', { gen: 2 }), asg('h2', 'a', 'web.1', { gen: 3 })],
    endpointsUp: [{ app: 'a', slot: 'web.1', gen: 2, host: 'h1' }],
  });
  t.match(flatten(plan(inp)).puts, [{ host: 'h2', record: { gen: 3, state: 'retire', after: 2 } }]);
});

t.test('up endpoints count when numbering gens', async (t) => {
  const p = plan(input({ apps: [app('a', { web: 1 })], hosts: [host('h1')], endpointsUp: [{ app: 'a', slot: 'web.1', gen: 6, host: 'h9' }] }));
  t.match(flatten(p).puts, [{ record: { gen: 7 } }]);
});

t.test('determinism: same input (any order) → same output; converged → no ops', async (t) => {
  const hosts = [host('h1'), host('h2'), host('h3'), host('h4', { mem: 2 * GB })];
  const apps = [app('a', { web: 4, worker: 2 }), app('b', { web: 2, clock: 1 }), app('c', { web: [3, 'standard-2x'] })];
  const assignments = [asg('h1', 'a', 'web.1'), asg('h9', 'b', 'web.1', { gen: 2 }), asg('h2', 'c', 'web.9')];
  const one = plan(input({ apps, hosts, assignments }));
  const two = plan(input({ apps: [...apps].reverse(), hosts: [...hosts].reverse(), assignments: [...assignments].reverse() }));
  t.same(two, one);
  t.same(JSON.stringify(plan(input({ apps, hosts, assignments }))), JSON.stringify(one));
  const after = apply(input({ apps, hosts, assignments }), one);
  t.same(plan(input({ apps, hosts, assignments: after, leaderRev: '99' })).changes, [], 'a new leader rewrites nothing');
});

t.test('canDrain: needs another live, non-draining dynos host', async (t) => {
  t.equal(canDrain('h1', [host('h1'), host('h2')]), true);
  t.equal(canDrain('h1', [host('h1'), host('h2', { draining: true })]), false);
  t.equal(canDrain('h1', [host('h1'), host('r', { roles: ['router'] })]), false);
  t.equal(canDrain('h1', [host('h1')]), false);
});

t.test('packBatches: ≤ MAX_TXN_OPS ops per Txn, a slot\'s ops never split', async (t) => {
  // 150 web dynos on a dead host: 150 deletes + 150 replacements, 2 ops per slot.
  const hosts = Array.from({ length: 10 }, (_, i) => host(`h${i}`, { mem: 64 * GB }));
  const dead = Array.from({ length: 150 }, (_, i) => asg('dead', 'a', `web.${i + 1}`));
  const p = plan(input({ apps: [app('a', { web: 150 })], hosts, assignments: dead }));
  const batches = packBatches(p.changes);
  const sizes = batches.map((b) => b.reduce((n, c) => n + c.puts.length + c.deletes.length, 0));
  t.ok(sizes.every((n) => n <= MAX_TXN_OPS), `batch sizes ${sizes.join(',')}`);
  t.equal(sizes.reduce((a, b) => a + b, 0), 300);
  t.ok(p.changes.every((c) => c.puts.length === 1 && c.deletes.length === 1), 'each slot: its delete with its replacement');
  const perHost = new Map<string, number>();
  for (const x of flatten(p).puts) perHost.set(x.host, (perHost.get(x.host) ?? 0) + 1);
  t.same([...perHost.values()], Array(10).fill(15), 'spread evenly');
});
