/**
 * A persistent string-keyed map: a fixed array of small frozen buckets. `with()` returns a new map
 * that shares every bucket it did not touch, so a table swap costs O(changed apps), not O(apps):
 * copying a 10 000-app Map on every swap was the bulk of a reload's stall. Old maps never change,
 * so a request holding a snapshot keeps reading the table it started with.
 *
 * A bucket is a flat array [key0, value0, key1, value1, …], not a Map: copying one is a memcpy,
 * where `new Map(bucket)` walked an iterator and built a hash table. With Map buckets and 1 024 of
 * them, a reload of 10 000 changed apps spent ~340 ms of its main-thread time copying buckets (the
 * top self-time function in `--cpu-prof`). 4 096 buckets keep a bucket at a few entries up to
 * tens of thousands of keys, so a linear scan beats hashing the key a second time.
 */
const BITS = 12;
const MASK = (1 << BITS) - 1;

/** FNV-1a: cheap per lookup (a hostname is a few dozen chars) and spreads similar names. */
function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) & MASK;
}

/** [key, value, key, value, …]; never changed once a map holding it exists (readonly by type). */
type Bucket = readonly unknown[];

function indexIn(bucket: Bucket, key: string): number {
  for (let i = 0; i < bucket.length; i += 2) if (bucket[i] === key) return i;
  return -1;
}

export class BucketMap<V> implements ReadonlyMap<string, V> {
  static empty<V>(): BucketMap<V> {
    return new BucketMap<V>(new Array<Bucket | undefined>(MASK + 1).fill(undefined), 0);
  }

  private constructor(
    private readonly buckets: readonly (Bucket | undefined)[],
    readonly size: number,
  ) {}

  get(key: string): V | undefined {
    const b = this.buckets[bucketOf(key)];
    if (b === undefined) return undefined;
    const i = indexIn(b, key);
    return i < 0 ? undefined : (b[i + 1] as V);
  }

  has(key: string): boolean {
    const b = this.buckets[bucketOf(key)];
    return b !== undefined && indexIn(b, key) >= 0;
  }

  /** A new map with `changes` applied in order (undefined deletes); this one is untouched. */
  with(changes: Iterable<readonly [string, V | undefined]>): BucketMap<V> {
    const buckets = this.buckets.slice();
    /** Buckets copied by this call: changed in place from then on (nobody else holds them yet). */
    const copied = new Set<number>();
    let size = this.size;
    for (const [key, value] of changes) {
      const n = bucketOf(key);
      let b = buckets[n] as unknown[] | undefined;
      if (!copied.has(n)) {
        b = b === undefined ? [] : b.slice();
        buckets[n] = b;
        copied.add(n);
      }
      const bucket = b!;
      const i = indexIn(bucket, key);
      if (value === undefined) {
        if (i >= 0) {
          // swap-remove: order inside a bucket means nothing
          const last = bucket.length - 2;
          bucket[i] = bucket[last];
          bucket[i + 1] = bucket[last + 1];
          bucket.length = last;
          size--;
        }
      } else if (i >= 0) {
        bucket[i + 1] = value;
      } else {
        bucket.push(key, value);
        size++;
      }
    }
    // not Object.freeze'd: slice() of a frozen array takes V8's slow path (~60% of this copying's time)
    for (const n of copied) if (buckets[n]!.length === 0) buckets[n] = undefined;
    return new BucketMap(buckets, size);
  }

  *entries(): MapIterator<[string, V]> {
    for (const b of this.buckets) if (b !== undefined) for (let i = 0; i < b.length; i += 2) yield [b[i] as string, b[i + 1] as V];
  }

  *keys(): MapIterator<string> {
    for (const b of this.buckets) if (b !== undefined) for (let i = 0; i < b.length; i += 2) yield b[i] as string;
  }

  *values(): MapIterator<V> {
    for (const b of this.buckets) if (b !== undefined) for (let i = 0; i < b.length; i += 2) yield b[i + 1] as V;
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}
