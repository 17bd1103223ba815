/**
 * The set of requests or connections the router core tracks (connecting, awaiting a reply, clients):
 * an array with swap-remove, each member holding its own index in a numeric field.
 *
 * Why not a `Set`: membership here churns with every request, and a V8 Set (an OrderedHashTable)
 * rehashes every few add/delete pairs. A rehashed table keeps its entries and a link to its
 * successor (for live iterators), so once one table has been promoted to the old generation, every
 * later table and every member it ever held stays reachable from it until the next mark-compact.
 * Every request's objects were promoted that way: 1-5 MB per scavenge, scavenges of 3-9 ms instead
 * of ~0.4, and the router's half-load p99 tail (BENCHMARKS.md, "where the half-load p99 tail comes
 * from"). An array slot that is overwritten drops its reference; nothing links old storage to new.
 */
export type SlotField<T> = { [K in keyof T]: T[K] extends number ? K : never }[keyof T];

export class MemberList<T> {
  private items: (T | undefined)[] = [];
  private count = 0;

  /** `slot`: the member's numeric field this list owns (-1 when not a member). */
  constructor(private readonly slot: SlotField<T>) {}

  get size(): number {
    return this.count;
  }

  has(item: T): boolean {
    return (item[this.slot] as number) >= 0;
  }

  add(item: T): void {
    if ((item[this.slot] as number) >= 0) return;
    this.items[this.count] = item;
    (item[this.slot] as number) = this.count++;
  }

  delete(item: T): boolean {
    const i = item[this.slot] as number;
    if (i < 0) return false;
    const last = this.items[--this.count]!;
    this.items[i] = last;
    (last[this.slot] as number) = i;
    this.items[this.count] = undefined;
    (item[this.slot] as number) = -1;
    return true;
  }

  /** A copy of the members, for callers that act on each (acting may remove members). */
  toArray(): T[] {
    return this.items.slice(0, this.count) as T[];
  }

  /**
   * Visits every member present at the start, newest first. `visit` may remove the member it is
   * given (its place is taken by one already visited); if it removes others, a member may be
   * visited twice (callers make a second visit a no-op).
   */
  forEachRemovable(visit: (item: T) => void): void {
    for (let i = this.count - 1; i >= 0; i--) {
      if (i >= this.count) continue;
      visit(this.items[i]!);
    }
  }
}
