/**
 * BucketMap (the route table's persistent map) against a plain Map, on random operation sequences:
 * the same contents after every `with()`, and every earlier version unchanged (a request holding an
 * old snapshot keeps reading the table it started with).
 */
import t from 'tap';
import { BucketMap } from '../../src/router/routing/bucket-map';

/** Deterministic (seeded) so a failure replays. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function contents<V>(m: ReadonlyMap<string, V>): [string, V][] {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

t.test('random batches of sets and deletes: equal to a Map, old versions untouched', async (t) => {
  const random = rng(12345);
  // few keys per bucket and many: 300 keys spread thin, 30 000 crowd every bucket
  for (const keySpace of [300, 30_000]) {
    let map = BucketMap.empty<number>();
    let ref = new Map<string, number>();
    const history: [BucketMap<number>, [string, number][]][] = [];
    for (let round = 0; round < 60; round++) {
      const batch: [string, number | undefined][] = [];
      const n = 1 + Math.floor(random() * (keySpace / 10));
      for (let i = 0; i < n; i++) {
        const key = `app-${Math.floor(random() * keySpace)}.example.test`;
        batch.push([key, random() < 0.3 ? undefined : Math.floor(random() * 1e6)]);
      }
      const next = map.with(batch);
      ref = new Map(ref);
      for (const [k, v] of batch) {
        if (v === undefined) ref.delete(k);
        else ref.set(k, v);
      }
      history.push([map, contents(map)]);
      map = next;
      if (map.size !== ref.size) t.fail(`round ${round}: size ${map.size}, expected ${ref.size}`);
      for (const [k, v] of batch) {
        if (map.get(k) !== ref.get(k) || map.has(k) !== ref.has(k)) t.fail(`round ${round}: ${k} is ${map.get(k)}, expected ${ref.get(k)} (set ${v})`);
      }
    }
    t.same(contents(map), contents(ref), `${keySpace} keys: the final contents equal the Map's (${map.size} entries)`);
    t.equal([...map.keys()].length, map.size, 'keys() yields size keys');
    t.equal([...map.values()].length, map.size, 'values() yields size values');
    let changed = 0;
    for (const [old, snapshot] of history) if (JSON.stringify(contents(old)) !== JSON.stringify(snapshot)) changed++;
    t.equal(changed, 0, `none of the ${history.length} earlier versions changed`);
  }
});

t.test('a key set and deleted in one batch, deletes of missing keys, an emptied map', async (t) => {
  const a = BucketMap.empty<string>().with([
    ['x', '1'],
    ['y', '2'],
    ['x', undefined],
    ['nothing', undefined],
  ]);
  t.equal(a.size, 1);
  t.equal(a.get('x'), undefined);
  t.equal(a.get('y'), '2');
  const b = a.with([['y', undefined]]);
  t.equal(b.size, 0);
  t.same([...b], []);
  t.equal(a.get('y'), '2', 'the earlier map still has it');
  const c = b.with([['y', '3']]);
  t.equal(c.get('y'), '3');
  const seen: string[] = [];
  c.forEach((v, k) => seen.push(`${k}=${v}`));
  t.same(seen, ['y=3']);
});
