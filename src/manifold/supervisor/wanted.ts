/**
 * What `reconcile()` brings an app's slots in line with: a map from slot name (web.1) to what
 * should run there. Single-host expands the formation into it (type.1..N, generation 0); a cluster
 * agent passes its assignments instead (docs/dyno-lifecycle.md, "Slots and generations"), which
 * may leave gaps (web.2, web.5), give each slot its own size, and bump one slot's generation to
 * have just that slot replaced.
 */
import { PROCESS_TYPE } from '../procfile';
import type { FormationRow } from '../store/store';

export interface WantedSlot {
  type: string;
  size: string;
  /** The assignment's generation: a different one asks for a new instance in the slot. */
  gen: number;
}

/** One slot as a cluster agent hands it over (`assign/<host>/<app>/<slot>` in the spec). */
export interface SlotAssignment extends WantedSlot {
  name: string;
}

/** type.1..N for each formation row, generation 0: today's single-host behaviour. */
export function formationSlots(formation: Iterable<FormationRow>): Map<string, WantedSlot> {
  const out = new Map<string, WantedSlot>();
  for (const f of formation) for (let i = 1; i <= f.quantity; i++) out.set(`${f.type}.${i}`, { type: f.type, size: f.size, gen: 0 });
  return out;
}

/**
 * The assignments as a map. Names must be `TYPE.N` (N ≥ 1) of their own type and unique: `ps`,
 * `restart web.2` and the log lines all read the type and number from the name, so a bad one is a
 * bug in the caller and is refused whole rather than half applied.
 */
export function assignedSlots(slots: readonly SlotAssignment[]): Map<string, WantedSlot> {
  const out = new Map<string, WantedSlot>();
  for (const s of slots) {
    const m = /^(.+)\.[1-9][0-9]*$/.exec(s.name);
    if (!m || m[1] !== s.type || !PROCESS_TYPE.test(s.type)) throw new Error(`bad slot name ${JSON.stringify(s.name)} for type ${JSON.stringify(s.type)}`);
    if (!Number.isSafeInteger(s.gen) || s.gen < 0) throw new Error(`bad generation ${s.gen} for slot ${s.name}`);
    if (out.has(s.name)) throw new Error(`slot ${s.name} assigned twice`);
    out.set(s.name, { type: s.type, size: s.size, gen: s.gen });
  }
  return out;
}

/** Only the types the release can run: a row or assignment for a type missing from its Procfile starts nothing. */
export function runnable(wanted: Map<string, WantedSlot>, procfile: Record<string, string>): Map<string, WantedSlot> {
  return new Map([...wanted].filter(([, w]) => procfile[w.type] !== undefined));
}
