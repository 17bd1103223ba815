/**
 * setSlots: a cluster agent hands the supervisor its assignments (distribution.md §2 item 2, §5)
 * instead of a formation. Slot names may have gaps (web.2, web.5), each slot has its own size,
 * and a slot whose generation changes is replaced on its own (web: new instance first). Directed
 * tests of those, then a property test as in supervisor-converge.test.ts: random assignment
 * changes (add with gaps, remove, gen bump, resize, re-add of a slot still stopping) among
 * restarts, ps:stop, crashes and deploys, under random stop times. Once quiet: exactly the
 * assigned slots run, each with its size and latest generation, nothing told to stop still runs,
 * no instance of an older generation survives, and ps and the router agree.
 *
 * MANIFOLD_PROP_SEED=<n> replays one sequence; MANIFOLD_PROP_RUNS sets how many run.
 */
import t from 'tap';
import { resourcesFor } from '../../src/runtime/sizes';
import type { Release } from '../../src/manifold/store/store';
import type { SlotAssignment } from '../../src/manifold/supervisor/supervisor';
import { prng } from './helpers/prng';
import { Disturbances, randomExitDelay, SIZES, TYPES } from './helpers/random-ops';
import { APP, harness, quiesce, releaseOf, type Harness } from './helpers/supervisor-harness';

type Wanted = Map<string, SlotAssignment>;

const slot = (name: string, gen: number, size = 'standard-1x'): SlotAssignment => ({ name, type: name.split('.')[0]!, size, gen });

/** Everything that is wrong once quiet; [] when the supervisor runs exactly `wanted`. */
function problems(h: Harness, wanted: Wanted, release: Release, stale: Set<string>): string[] {
  const out: string[] = [];
  const expected = [...wanted.values()].filter((s) => release.procfile[s.type] !== undefined).map((s) => s.name).sort();
  const live = h.launcher.running();
  const stopping = live.filter((d) => d.stopping).map((d) => d.id);
  if (stopping.length) out.push(`told to stop and still running: ${stopping.join(' ')}`);
  const old = live.filter((d) => stale.has(d.id)).map((d) => d.id);
  if (old.length) out.push(`instances of an older generation or size still running: ${old.join(' ')}`);
  const liveNames = live.map((d) => d.spec.name).sort();
  if (liveNames.join() !== expected.join()) out.push(`running dynos [${liveNames.join(' ')}], assigned [${expected.join(' ')}]`);
  const ps = h.supervisor.status(APP);
  const psNames = ps.map((d) => d.name).sort();
  if (psNames.join() !== expected.join()) out.push(`ps lists [${psNames.join(' ')}], assigned [${expected.join(' ')}]`);
  for (const d of ps) {
    const w = wanted.get(d.name);
    const dyno = live.find((x) => x.spec.name === d.name);
    if (d.state !== 'up') out.push(`${d.name} is ${d.state}`);
    if (!w || !dyno) continue;
    if (d.pid !== dyno.pid) out.push(`ps shows pid ${d.pid} for ${d.name}, running is ${dyno.id} (${dyno.pid})`);
    if (d.size !== w.size) out.push(`${d.name} has size ${d.size}, assigned ${w.size}`);
    if (d.gen !== w.gen) out.push(`${d.name} has gen ${String(d.gen)}, assigned ${w.gen}`);
    if (JSON.stringify(dyno.spec.resources) !== JSON.stringify(resourcesFor(w.size))) out.push(`${dyno.id} runs with the limits of another size`);
    if (dyno.spec.appDir !== release.slug) out.push(`${dyno.id} runs ${dyno.spec.appDir}, release is ${release.slug}`);
  }
  const routes = h.routes.at(-1);
  const webLive = live.filter((d) => d.spec.name.startsWith('web.')).map((d) => `${d.spec.name} ${d.address}:5000 up`).sort();
  const backends = (routes?.backends ?? []).map((b) => `${b.dyno} ${b.address} ${b.state}`).sort();
  if (backends.join() !== webLive.join()) out.push(`router backends [${backends.join(' ')}], running web [${webLive.join(' ')}]`);
  return out;
}

t.test('assigned slots run under their own names and sizes, gaps included', async (t) => {
  const h = harness({ formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }] });
  await quiesce(h);
  const wanted: Wanted = new Map([slot('web.2', 1), slot('web.5', 3, 'standard-2x'), slot('worker.3', 1)].map((s) => [s.name, s]));
  h.supervisor.setSlots(APP, [...wanted.values()]);
  await quiesce(h);
  t.same(problems(h, wanted, releaseOf(1, h.procfile), new Set()), []);
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.size} ${d.gen}`), ['web.2 standard-1x 1', 'web.5 standard-2x 3', 'worker.3 standard-1x 1']);
  t.equal(h.launcher.running().some((d) => d.spec.name === 'web.1'), false, 'the formation no longer counts');

  h.supervisor.setFormation(APP, [{ type: 'web', quantity: 1, size: 'standard-1x' }]);
  await quiesce(h);
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.size} ${d.gen ?? '-'}`), ['web.1 standard-1x -'], 'setFormation goes back to the formation');
});

t.test('a gen bump replaces that slot only, the new web instance first', async (t) => {
  const h = harness({ formation: [], drain: true });
  h.supervisor.setSlots(APP, [slot('web.2', 1), slot('web.5', 1)]);
  await quiesce(h);
  const old = h.launcher.latest('web.2');
  h.launcher.journal.length = 0;
  h.supervisor.setSlots(APP, [slot('web.2', 2), slot('web.5', 1)]);
  await h.clock.advance(0);
  const fresh = h.launcher.latest('web.2');
  t.not(fresh.id, old.id, 'a new instance starts');
  t.same(old.signals, [], 'the old one keeps serving until the new one is up');
  t.same(h.routes.at(-1)!.backends.filter((b) => b.address === `${old.address}:5000`).map((b) => b.state), ['up'], 'and its traffic');
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.state} ${d.gen}`), ['web.2 starting 2', 'web.5 up 1']);
  await quiesce(h);
  const j = h.launcher.journal;
  t.ok(j.indexOf(`start ${fresh.id}`) >= 0 && j.indexOf(`start ${fresh.id}`) < j.indexOf(`signal ${old.id} SIGTERM`), `new first: ${j.join(', ')}`);
  t.equal(h.launcher.startsOf('web.5'), 1, 'web.5 untouched');
  t.ok(h.lines('web.2').includes('manifold[web.2]: Restarting'));
  t.same(problems(h, new Map([slot('web.2', 2), slot('web.5', 1)].map((s) => [s.name, s])), releaseOf(1, h.procfile), new Set([old.id])), []);
});

t.test('setSlots refuses bad assignments whole', async (t) => {
  const h = harness({ formation: [] });
  h.supervisor.setSlots(APP, [slot('web.1', 1)]);
  await quiesce(h);
  for (const bad of [
    [{ name: 'web.1', type: 'worker', size: 'standard-1x', gen: 1 }],
    [slot('web.0', 1)],
    [slot('web', 1)],
    [slot('web.2', 1), slot('web.2', 2)],
    [slot('web.2', -1)],
  ]) {
    t.throws(() => h.supervisor.setSlots(APP, bad), JSON.stringify(bad));
  }
  await quiesce(h);
  t.same(h.supervisor.status(APP).map((d) => `${d.name} ${d.state} ${d.gen}`), ['web.1 up 1'], 'nothing changed');
});

/** One random sequence; returns the problems found once quiet, with the operations that led there. */
async function sequence(seed: number, steps: number): Promise<{ problems: string[]; ops: string[] }> {
  const rng = prng(seed);
  const h = harness({ formation: [] });
  h.launcher.exitDelay = randomExitDelay(rng);
  const wanted: Wanted = new Map();
  const lastGen = new Map<string, number>();
  const removed: SlotAssignment[] = [];
  // ids of instances whose slot was handed a new generation or size while they ran: none may survive
  const stale = new Set<string>();
  const ops: string[] = [];
  const others = new Disturbances(h, rng, ops, 8, { restart: 0.42, stop: 0.47, crash: 0.57, deploy: 0.62, listen: 0.68 });
  const put = (s: SlotAssignment): void => {
    wanted.set(s.name, s);
    lastGen.set(s.name, Math.max(s.gen, lastGen.get(s.name) ?? 0));
  };
  const change = (): string => {
    const names = [...wanted.keys()];
    const r = rng.next();
    if (r < 0.35 || names.length === 0) {
      const name = `${rng.pick(TYPES)}.${rng.int(1, 8)}`;
      if (wanted.has(name)) return `keep ${name}`;
      put(slot(name, (lastGen.get(name) ?? 0) + 1, rng.chance(0.7) ? 'standard-1x' : rng.pick(SIZES)));
      return `add ${name}`;
    }
    if (r < 0.55) {
      const name = rng.pick(names);
      removed.push(wanted.get(name)!);
      wanted.delete(name);
      return `remove ${name}`;
    }
    if (r < 0.7) {
      const s = wanted.get(rng.pick(names))!;
      put({ ...s, gen: s.gen + 1 });
      return `bump ${s.name} to ${s.gen + 1}`;
    }
    if (r < 0.8) {
      const s = wanted.get(rng.pick(names))!;
      const size = s.size === SIZES[0] ? SIZES[1] : SIZES[0];
      put({ ...s, size });
      return `resize ${s.name} ${size}`;
    }
    // a slot removed a moment ago, likely still stopping: as it was, one gen on, or a fresh count
    const back = removed.filter((s) => !wanted.has(s.name));
    if (back.length === 0) return 'nothing to re-add';
    const s = rng.pick(back);
    const gen = rng.pick([s.gen, s.gen + 1, 1]);
    put({ ...s, gen });
    return `re-add ${s.name} gen ${gen}`;
  };
  const assign = (): void => {
    const before = new Map(wanted);
    const done: string[] = [];
    for (let k = rng.int(1, 3); k > 0; k--) done.push(change());
    // compared with what the supervisor last got: a resize and its undo in one call change nothing
    for (const [name, s] of wanted) {
      const was = before.get(name);
      if (!was || (was.gen === s.gen && was.size === s.size)) continue;
      for (const d of h.launcher.running()) if (d.spec.name === name) stale.add(d.id);
    }
    ops.push(`slots (${done.join(', ')}) = ${[...wanted.values()].map((s) => `${s.name}:${s.size}:${s.gen}`).join(' ')}`);
    h.supervisor.setSlots(APP, [...wanted.values()]);
  };
  for (let i = 0; i < steps; i++) {
    const r = rng.next();
    if (r < 0.32) assign();
    else if (r < 0.36) {
      // a burst of watch events, applied one after the other
      for (let k = 0; k < 10; k++) assign();
    } else await others.step(r);
  }
  await quiesce(h);
  return { problems: problems(h, wanted, others.release, stale), ops };
}

t.test('property: random assignments and stop times converge to the assigned slots', async (t) => {
  const fixed = process.env.MANIFOLD_PROP_SEED;
  const runs = fixed !== undefined ? 1 : Number(process.env.MANIFOLD_PROP_RUNS ?? 200);
  const base = fixed !== undefined ? Number(fixed) : (Date.now() ^ (process.pid << 16)) >>> 0;
  let failed = 0;
  for (let i = 0; i < runs && failed < 3; i++) {
    const seed = (base + i) >>> 0;
    const r = await sequence(seed, 40);
    if (r.problems.length) {
      failed++;
      t.fail(`seed ${seed} (replay: MANIFOLD_PROP_SEED=${seed}): ${r.problems.join('; ')}\n  ops: ${r.ops.join(' | ')}`);
    }
  }
  t.equal(failed, 0, `${runs} sequences from seed ${base}`);
});
