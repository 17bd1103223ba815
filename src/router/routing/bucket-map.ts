/**
 * A persistent string-keyed map: a fixed array of small frozen buckets. `with()` returns a new map
 * that shares every bucket it did not touch, so a table swap costs O(changed apps), not O(apps):
 * copying a 10 000-app Map on every swap was the bulk of a reload's stall. Old maps never change,
 * so a request holding a snapshot keeps reading the table it started with.
 */
const BITS = 10;
const MASK = (1 << BITS) - 1;

/** FNV-1a: cheap per lookup (a hostname is a few dozen chars) and spreads similar names. */
function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) & MASK;
}

type Bucket<V> = ReadonlyMap<string, V>;

export class BucketMap<V> implements ReadonlyMap<string, V> {
  static empty<V>(): BucketMap<V> {
    return new BucketMap<V>(new Array<Bucket<V> | undefined>(MASK + 1).fill(undefined), 0);
  }

  private constructor(
    private readonly buckets: readonly (Bucket<V> | undefined)[],
    readonly size: number,
  ) {}

  get(key: string): V | undefined {
    return this.buckets[bucketOf(key)]?.get(key);
  }

  has(key: string): boolean {
    return this.buckets[bucketOf(key)]?.has(key) ?? false;
  }

  /** A new map with `changes` applied in order (undefined deletes); this one is untouched. */
  with(changes: Iterable<readonly [string, V | undefined]>): BucketMap<V> {
    const buckets = this.buckets.slice();
    const copied = new Set<number>();
    let size = this.size;
    for (const [key, value] of changes) {
      const i = bucketOf(key);
      let b = buckets[i] as Map<string, V> | undefined;
      if (!copied.has(i)) {
        b = new Map(b ?? []);
        buckets[i] = b;
        copied.add(i);
      }
      const had = b!.has(key);
      if (value === undefined) {
        if (had) {
          b!.delete(key);
          size--;
        }
      } else {
        b!.set(key, value);
        if (!had) size++;
      }
    }
    for (const i of copied) if (buckets[i]!.size === 0) buckets[i] = undefined;
    return new BucketMap(buckets, size);
  }

  *entries(): MapIterator<[string, V]> {
    for (const b of this.buckets) if (b !== undefined) yield* b.entries();
  }

  *keys(): MapIterator<string> {
    for (const b of this.buckets) if (b !== undefined) yield* b.keys();
  }

  *values(): MapIterator<V> {
    for (const b of this.buckets) if (b !== undefined) yield* b.values();
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}
