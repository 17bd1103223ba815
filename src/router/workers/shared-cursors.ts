/**
 * Round-robin cursors shared by every router worker: one Uint32 per app in a SharedArrayBuffer,
 * advanced with Atomics.add, so the workers of one router take turns over an app's dynos exactly as
 * one event loop would (requests on different connections land on different workers under
 * SO_REUSEPORT; per-worker cursors would send consecutive requests to the same dyno).
 *
 * The main thread owns the slot of each app (CursorSlots) and sends the assignments with the route
 * deltas, in order; a worker only reads them (CursorView). Apps beyond the capacity get no slot and
 * fall back to a cursor in their worker (docs/router.md#workers).
 */

/** Slots in one pool's buffer (4 bytes each: 64 KiB for 16 384 apps). */
export const DEFAULT_CURSOR_SLOTS = 16_384;

/** Slot assignments for the apps of one delta: [app, slot] (slot -1: the app has none). */
export type CursorAssignments = [string, number][];

/** Main thread: which slot each app has. Slots of removed apps are reused. */
export class CursorSlots {
  readonly buffer: SharedArrayBuffer;
  readonly #slots = new Map<string, number>();
  readonly #free: number[] = [];
  #next = 0;

  constructor(readonly capacity: number = DEFAULT_CURSOR_SLOTS) {
    this.buffer = new SharedArrayBuffer(capacity * 4);
  }

  /** Assigns or frees the slots of a delta's apps (`present`: the app is in the table after it). */
  update(apps: readonly [string, boolean][]): CursorAssignments {
    const out: CursorAssignments = [];
    for (const [app, present] of apps) {
      const had = this.#slots.get(app);
      if (present) {
        const slot = had ?? this.#take();
        if (had === undefined && slot >= 0) this.#slots.set(app, slot);
        out.push([app, slot]);
      } else if (had !== undefined) {
        this.#slots.delete(app);
        this.#free.push(had);
        out.push([app, -1]);
      }
    }
    return out;
  }

  /** Every assignment (for a worker that starts with the whole table). */
  all(): CursorAssignments {
    return [...this.#slots];
  }

  #take(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    return this.#next < this.capacity ? this.#next++ : -1;
  }
}

/** Worker side: the shared cursors, by app. */
export class CursorView {
  readonly #cells: Uint32Array;
  readonly #slots = new Map<string, number>();

  constructor(buffer: SharedArrayBuffer) {
    this.#cells = new Uint32Array(buffer);
  }

  apply(assignments: CursorAssignments): void {
    for (const [app, slot] of assignments) {
      if (slot < 0) this.#slots.delete(app);
      else this.#slots.set(app, slot);
    }
  }

  /** The app's next cursor value (taken atomically), or -1 if it has no shared slot. */
  next(app: string): number {
    const slot = this.#slots.get(app);
    return slot === undefined ? -1 : Atomics.add(this.#cells, slot, 1);
  }
}
