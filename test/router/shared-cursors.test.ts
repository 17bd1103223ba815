/**
 * The round-robin cursors a router's workers share (src/router/workers/shared-cursors.ts): slot
 * assignment on the main thread, reuse after removal, the capacity bound, and turns taken by two
 * views of one buffer as two workers would (the cross-thread case runs in workers.test.ts).
 */
import t from 'tap';
import { CursorSlots, CursorView } from '../../src/router/workers/shared-cursors';
import { Balancer } from '../../src/router/routing/balancer';
import { RouteTable } from '../../src/router/routing/route-table';

t.test('slots: one per present app, freed on removal and reused, none beyond capacity', async (t) => {
  const slots = new CursorSlots(2);
  t.same(slots.update([['a', true], ['b', true]]), [['a', 0], ['b', 1]]);
  t.same(slots.update([['a', true]]), [['a', 0]], 'a changed app keeps its slot');
  t.same(slots.update([['c', true]]), [['c', -1]], 'no slot left: -1 (the app keeps a cursor in each worker)');
  t.same(slots.update([['a', false]]), [['a', -1]], 'removal frees the slot');
  t.same(slots.update([['c', true]]), [['c', 0]], 'the freed slot goes to the next app');
  t.same(slots.update([['zz', false]]), [], 'removing an app that had no slot says nothing');
  t.same(new Map(slots.all()), new Map([['b', 1], ['c', 0]]));
});

t.test('two views of one buffer take turns from one cursor per app', async (t) => {
  const slots = new CursorSlots(4);
  const w1 = new CursorView(slots.buffer);
  const w2 = new CursorView(slots.buffer);
  const assigned = slots.update([['a', true], ['b', true]]);
  w1.apply(assigned);
  w2.apply(assigned);
  t.same([w1.next('a'), w2.next('a'), w1.next('a'), w2.next('b')], [0, 1, 2, 0]);
  t.equal(w1.next('unknown'), -1, 'an app without a slot');
  w1.apply(slots.update([['a', false]]));
  t.equal(w1.next('a'), -1, 'a removed app has no slot any more');
});

t.test('a balancer with shared cursors alternates across balancers; without a slot it keeps its own', async (t) => {
  const table = new RouteTable();
  const backends = [
    { dyno: 'web.1', address: '10.0.0.1:5000' },
    { dyno: 'web.2', address: '10.0.0.2:5000' },
  ];
  table.replace({ apps: { web: { hosts: ['web.test'], backends }, other: { hosts: ['other.test'], backends } } });
  const app = table.app('web')!;
  const slots = new CursorSlots(1);
  const views = [new CursorView(slots.buffer), new CursorView(slots.buffer)];
  const assigned = slots.update([['web', true]]);
  const balancers = views.map((v) => {
    v.apply(assigned);
    const b = new Balancer('round-robin');
    b.shareCursors(v);
    return b;
  });
  const picks = [0, 1, 0, 1, 1, 0].map((i) => balancers[i]!.pick(app, null)!.dyno);
  t.same(picks, ['web.1', 'web.2', 'web.1', 'web.2', 'web.1', 'web.2'], 'turns alternate whichever balancer picks');
  const other = table.app('other')!;
  t.same([0, 1].map((i) => balancers[i]!.pick(other, null)!.dyno), ['web.1', 'web.1'], 'no slot: each balancer starts its own cursor');
});
