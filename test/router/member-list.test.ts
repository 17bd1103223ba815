// MemberList: the router core's churn-free membership lists (src/router/member-list.ts).
import t from 'tap';
import { MemberList } from '../../src/router/member-list';

interface Item {
  name: string;
  slot: number;
}
const item = (name: string): Item => ({ name, slot: -1 });
const names = (l: MemberList<Item>): string[] => l.toArray().map((i) => i.name).sort();

t.test('add, has, delete keep each member’s slot in step with its place', async (t) => {
  const l = new MemberList<Item>('slot');
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item) as [Item, Item, Item, Item];
  for (const i of [a, b, c, d]) l.add(i);
  l.add(b); // a second add is a no-op
  t.equal(l.size, 4);
  t.same(names(l), ['a', 'b', 'c', 'd']);
  t.ok(l.delete(b));
  t.notOk(l.delete(b), 'deleting a non-member says so');
  t.equal(b.slot, -1);
  t.notOk(l.has(b));
  t.same(names(l), ['a', 'c', 'd']);
  // every member's slot points at itself
  l.toArray().forEach((i, idx) => t.equal(i.slot, idx, `${i.name} knows its index`));
  t.ok(l.delete(d));
  t.ok(l.delete(a));
  t.ok(l.delete(c));
  t.equal(l.size, 0);
  t.same(l.toArray(), []);
});

t.test('forEachRemovable visits every member once when each visit removes its member', async (t) => {
  const l = new MemberList<Item>('slot');
  const all = Array.from({ length: 50 }, (_, i) => item(`m${i}`));
  for (const i of all) l.add(i);
  const seen: string[] = [];
  l.forEachRemovable((i) => {
    seen.push(i.name);
    if (Number(i.name.slice(1)) % 3 === 0) l.delete(i);
  });
  t.equal(seen.length, 50);
  t.equal(new Set(seen).size, 50, 'no member visited twice');
  t.equal(l.size, 50 - 17);
  t.ok(l.toArray().every((i) => Number(i.name.slice(1)) % 3 !== 0));
});

t.test('a member added during a visit is not visited in that pass', async (t) => {
  const l = new MemberList<Item>('slot');
  l.add(item('x'));
  const seen: string[] = [];
  l.forEachRemovable((i) => {
    seen.push(i.name);
    l.add(item('late'));
  });
  t.same(seen, ['x']);
  t.equal(l.size, 2);
});
