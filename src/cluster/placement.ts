/**
 * The placement decision of the scheduler leader (spec §5), as a pure function of what it read from
 * etcd: no I/O, no clock, no randomness, so one input always gives the same ops (a new leader that
 * reads the same state writes the same keys) and an input already converged gives none.
 *
 * Output is grouped per slot: a group's ops must land in one Txn, so that a dead host's assignment is
 * deleted in the same Txn that creates its replacement, and a move's new `run` lands with the old
 * assignment's `retire`. The scheduler packs whole groups into fenced batches of ≤ MAX_TXN_OPS.
 */
import { sizeOf } from '../manifold/sizes';
import type { AssignmentRecord, HostRecord } from './records';

/** Room is counted against this share of a host's memBytes: the rest is for the daemon and the kernel. */
export const MEMORY_HEADROOM = 0.9;

export interface PlanFormation {
  type: string;
  quantity: number;
  size: string;
}

export interface PlanApp {
  name: string;
  /** Current release version. */
  release: number;
  /** Process types of the current release's procfile; empty when the release has no slug (nothing runnable). */
  types: readonly string[];
  formation: readonly PlanFormation[];
}

export interface PlanHost {
  record: HostRecord;
  /** A `drain/<id>` key exists: move every slot off, place nothing new. */
  draining: boolean;
  /** Re-registered with a new incarnation moments ago: keeps what it runs, gets no new slot. */
  probation: boolean;
}

export interface PlanAssignment {
  host: string;
  app: string;
  slot: string;
  record: AssignmentRecord;
}

/** An endpoint instance in state `up` (its gen counts when numbering a slot's next generation). */
export interface UpEndpoint {
  app: string;
  slot: string;
  gen: number;
  host: string;
}

export interface PlanInput {
  apps: readonly PlanApp[];
  /** Hosts whose `hosts/<id>` key exists; hosts without the dynos role are ignored. */
  hosts: readonly PlanHost[];
  assignments: readonly PlanAssignment[];
  endpointsUp?: readonly UpEndpoint[];
  /** The leader's fence revision, stamped on every record it writes. */
  leaderRev: string;
}

export interface AssignPut {
  host: string;
  app: string;
  slot: string;
  record: AssignmentRecord;
}

export interface AssignDelete {
  host: string;
  app: string;
  slot: string;
}

/** The ops of one slot: to be committed in one Txn. */
export interface SlotChange {
  app: string;
  slot: string;
  puts: AssignPut[];
  deletes: AssignDelete[];
}

export interface Unplaced {
  app: string;
  slot: string;
  size: string;
  reason: string;
}

export interface PlanOps {
  changes: SlotChange[];
  /** Desired slots left without a (new) host, for the daemon's log. */
  unplaced: Unplaced[];
}

interface Desired {
  app: string;
  slot: string;
  type: string;
  size: string;
  release: number;
}

/** What the plan knows of one live host while it places: memory in use and dyno counts. */
interface HostLoad {
  host: PlanHost;
  capacity: number;
  used: number;
  /** `app\0type` → running dynos (run state only: retiring ones are leaving). */
  perType: Map<string, number>;
  perApp: Map<string, number>;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const slotKey = (app: string, slot: string): string => `${app}\0${slot}`;
const quota = (size: string): number => sizeOf(size).quota;

function isDynosHost(h: PlanHost): boolean {
  return h.record.roles.includes('dynos');
}

/** Whether `hostId` may be drained: some other live, non-draining dynos host could take its slots. */
export function canDrain(hostId: string, hosts: readonly PlanHost[]): boolean {
  return hosts.some((h) => h.record.id !== hostId && isDynosHost(h) && !h.draining);
}

/** Desired slots, in a fixed order (app, type, index): `TYPE.1..quantity` of every runnable type. */
function desiredSlots(apps: readonly PlanApp[]): Desired[] {
  const out: Desired[] = [];
  for (const app of [...apps].sort((a, b) => cmp(a.name, b.name))) {
    const types = new Set(app.types);
    for (const f of [...app.formation].sort((a, b) => cmp(a.type, b.type))) {
      if (!types.has(f.type)) continue; // a formation row of a type the current release doesn't run
      for (let i = 1; i <= f.quantity; i++) out.push({ app: app.name, slot: `${f.type}.${i}`, type: f.type, size: f.size, release: app.release });
    }
  }
  return out;
}

function sameRecord(a: AssignmentRecord, b: AssignmentRecord): boolean {
  // leaderRev is left out: a new leader must not rewrite every key only to restamp it.
  return a.type === b.type && a.gen === b.gen && a.release === b.release && a.size === b.size && a.state === b.state && a.after === b.after;
}

class Planner {
  private readonly loads = new Map<string, HostLoad>();
  private readonly changes = new Map<string, SlotChange>();
  private readonly unplaced: Unplaced[] = [];

  constructor(private readonly input: PlanInput) {
    for (const h of input.hosts) {
      if (!isDynosHost(h)) continue;
      this.loads.set(h.record.id, { host: h, capacity: h.record.memBytes * MEMORY_HEADROOM, used: 0, perType: new Map(), perApp: new Map() });
    }
  }

  run(): PlanOps {
    const { assignments } = this.input;
    const desired = desiredSlots(this.input.apps);
    const wanted = new Map(desired.map((d) => [slotKey(d.app, d.slot), d]));
    const bySlot = new Map<string, PlanAssignment[]>();
    for (const a of [...assignments].sort((x, y) => cmp(x.host, y.host))) {
      const k = slotKey(a.app, a.slot);
      bySlot.set(k, [...(bySlot.get(k) ?? []), a]);
    }
    // Every assignment on a live host holds its memory until its agent deletes it, retiring ones too.
    for (const a of assignments) {
      const load = this.loads.get(a.host);
      if (load) load.used += quota(a.record.size);
    }
    // Rule 3/7: whatever sits under a dead host goes, in the slot's group (with its replacement if any).
    for (const a of assignments) if (!this.loads.has(a.host)) this.change(a.app, a.slot).deletes.push({ host: a.host, app: a.app, slot: a.slot });

    // Phase 1: slots that keep their host, counted first so that new placements see the real spread.
    const toPlace: { d: Desired; from?: PlanAssignment }[] = [];
    for (const d of desired) {
      const k = slotKey(d.app, d.slot);
      const live = (bySlot.get(k) ?? []).filter((a) => this.loads.has(a.host) && a.record.state === 'run');
      const keep = this.pickKeeper(live);
      for (const extra of live) if (extra !== keep && keep) this.retire(extra, keep.record.gen);
      if (!keep) {
        toPlace.push({ d });
        continue;
      }
      const load = this.loads.get(keep.host) as HostLoad;
      if (load.host.draining) {
        toPlace.push({ d, from: keep }); // rule 5: voluntary move
        continue;
      }
      if (keep.record.size !== d.size) {
        const room = load.capacity - load.used + quota(keep.record.size);
        if (quota(d.size) > room) {
          toPlace.push({ d, from: keep }); // the host lacks room for the new size: move it
          continue;
        }
        load.used += quota(d.size) - quota(keep.record.size);
        this.count(load, d, 1);
        this.put(keep.host, d, { ...keep.record, size: d.size, release: d.release, gen: this.nextGen(d), state: 'run' }, keep.record);
        continue;
      }
      this.count(load, d, 1);
      // Rule 6: same gen, new release: the agent replaces its dyno locally, with overlap.
      if (keep.record.release !== d.release) this.put(keep.host, d, { ...keep.record, release: d.release }, keep.record);
    }

    // Phase 2: new placements and moves, in the fixed slot order.
    for (const { d, from } of toPlace) this.place(d, from);

    // Rule 4: slots no longer desired retire where they run (gen kept). One still waiting for a
    // successor (a move) stops waiting: the successor retires too, so it would wait forever.
    for (const a of assignments) {
      if (wanted.has(slotKey(a.app, a.slot)) || !this.loads.has(a.host)) continue;
      if (a.record.state === 'run') this.putRecord(a.host, a.app, a.slot, { ...a.record, state: 'retire' }, a.record);
      else if (a.record.after !== undefined) this.putRecord(a.host, a.app, a.slot, { ...a.record, after: undefined }, a.record);
    }

    const changes = [...this.changes.values()]
      .filter((c) => c.puts.length + c.deletes.length > 0)
      .sort((a, b) => cmp(a.app, b.app) || cmp(a.slot, b.slot));
    return { changes, unplaced: this.unplaced };
  }

  /** Of several `run` assignments of one slot (a transient), keep the highest gen that is up, else the highest gen. */
  private pickKeeper(live: PlanAssignment[]): PlanAssignment | undefined {
    const up = new Set((this.input.endpointsUp ?? []).map((e) => `${slotKey(e.app, e.slot)}\0${e.host}\0${e.gen}`));
    const isUp = (a: PlanAssignment): boolean => up.has(`${slotKey(a.app, a.slot)}\0${a.host}\0${a.record.gen}`);
    return [...live].sort((a, b) => Number(isUp(b)) - Number(isUp(a)) || b.record.gen - a.record.gen || cmp(a.host, b.host))[0];
  }

  /** One more than any generation of the slot seen anywhere (assignments, dead hosts' too, and up endpoints). */
  private nextGen(d: Desired): number {
    let max = 0;
    for (const a of this.input.assignments) if (a.app === d.app && a.slot === d.slot) max = Math.max(max, a.record.gen, a.record.after ?? 0);
    for (const e of this.input.endpointsUp ?? []) if (e.app === d.app && e.slot === d.slot) max = Math.max(max, e.gen);
    return max + 1;
  }

  private place(d: Desired, from: PlanAssignment | undefined): void {
    const load = this.chooseHost(d);
    if (!load) {
      const reason = from ? `no other host with room for ${d.size} (stays on ${from.host})` : this.whyNoHost(d);
      this.unplaced.push({ app: d.app, slot: d.slot, size: d.size, reason });
      // A slot that cannot move keeps running where it is; count it there.
      const there = from && this.loads.get(from.host);
      if (there) this.count(there, d, 1);
      return;
    }
    const gen = this.nextGen(d);
    load.used += quota(d.size);
    this.count(load, d, 1);
    this.put(load.host.record.id, d, { type: d.type, gen, release: d.release, size: d.size, state: 'run', leaderRev: this.input.leaderRev });
    if (from) this.putRecord(from.host, from.app, from.slot, { ...from.record, state: 'retire', after: gen }, from.record);
    // An earlier move whose new instance died with its host: the old one still waits for that gen to be
    // up, which will never happen. It now waits for this one, and keeps serving until then.
    for (const a of this.input.assignments) {
      if (a.app !== d.app || a.slot !== d.slot || a === from || !this.loads.has(a.host)) continue;
      if (a.record.state === 'retire' && a.record.after !== undefined && a.record.after !== gen) this.putRecord(a.host, a.app, a.slot, { ...a.record, after: gen }, a.record);
    }
  }

  /** Rule 2: fewest of the same app and type, then fewest of the app, then most free memory, then id. */
  private chooseHost(d: Desired): HostLoad | undefined {
    const need = quota(d.size);
    const eligible = [...this.loads.values()].filter((l) => !l.host.draining && !l.host.probation && l.used + need <= l.capacity);
    const typeKey = slotKey(d.app, d.type);
    eligible.sort(
      (a, b) =>
        (a.perType.get(typeKey) ?? 0) - (b.perType.get(typeKey) ?? 0) ||
        (a.perApp.get(d.app) ?? 0) - (b.perApp.get(d.app) ?? 0) ||
        b.capacity - b.used - (a.capacity - a.used) ||
        cmp(a.host.record.id, b.host.record.id),
    );
    return eligible[0];
  }

  private whyNoHost(d: Desired): string {
    const loads = [...this.loads.values()];
    if (loads.length === 0) return 'no live host with the dynos role';
    const open = loads.filter((l) => !l.host.draining && !l.host.probation);
    if (open.length === 0) return 'every live host is draining or on probation';
    return `no host with room for ${d.size} (${quota(d.size)} bytes)`;
  }

  private count(load: HostLoad, d: Desired, n: number): void {
    const typeKey = slotKey(d.app, d.type);
    load.perType.set(typeKey, (load.perType.get(typeKey) ?? 0) + n);
    load.perApp.set(d.app, (load.perApp.get(d.app) ?? 0) + n);
  }

  private retire(a: PlanAssignment, after: number): void {
    this.putRecord(a.host, a.app, a.slot, { ...a.record, state: 'retire', after }, a.record);
  }

  private put(host: string, d: Desired, record: AssignmentRecord, old?: AssignmentRecord): void {
    this.putRecord(host, d.app, d.slot, record, old);
  }

  private putRecord(host: string, app: string, slot: string, record: AssignmentRecord, old?: AssignmentRecord): void {
    if (old && sameRecord(old, record)) return;
    const rec: AssignmentRecord = { ...record, leaderRev: this.input.leaderRev };
    if (rec.after === undefined) delete rec.after;
    this.change(app, slot).puts.push({ host, app, slot, record: rec });
  }

  private change(app: string, slot: string): SlotChange {
    const k = slotKey(app, slot);
    let c = this.changes.get(k);
    if (!c) {
      c = { app, slot, puts: [], deletes: [] };
      this.changes.set(k, c);
    }
    return c;
  }
}

/** Computes the assign/ ops that bring the assignments to the desired state (spec §5, rules in docs/cluster.md). */
export function plan(input: PlanInput): PlanOps {
  return new Planner(input).run();
}

/** Every put and delete of a plan, flat (tests and logs). */
export function flatten(ops: PlanOps): { puts: AssignPut[]; deletes: AssignDelete[] } {
  return { puts: ops.changes.flatMap((c) => c.puts), deletes: ops.changes.flatMap((c) => c.deletes) };
}
