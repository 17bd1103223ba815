/**
 * The nemesis's checkers on hand-made histories: each property must catch its violation (a checker
 * that never fails proves nothing) and pass the legal transients (a move, a dead host's replacement).
 */
import t from 'tap';
import { keys } from '../../src/cluster/keys';
import { checkAvailability, checkSafety } from './nemesis/checkers';
import type { HistoryEvent } from './nemesis/history';
import type { LoadRecord } from './helpers/load';

let rev = 100;
const put = (key: string, value: unknown, createRev?: number): HistoryEvent => {
  rev++;
  return { rev, type: 'put', key, value: typeof value === 'string' ? value : JSON.stringify(value), createRev: createRev ?? rev };
};
const del = (key: string): HistoryEvent => ({ rev: ++rev, type: 'delete', key, value: '', createRev: 0 });
const asg = (state: 'run' | 'retire', leaderRev: string, gen = 1): Record<string, unknown> => ({ type: 'web', gen, release: 2, size: 'standard-1x', state, leaderRev });
const LEADER = `${keys.election()}aaa`;

function base(): Map<string, { value: string; createRev: number }> {
  return new Map([
    [LEADER, { value: 'h3', createRev: 50 }],
    [keys.host('h1'), { value: '{}', createRev: 10 }],
    [keys.host('h2'), { value: '{}', createRev: 11 }],
  ]);
}

t.test('safety: a slot running on two live hosts is caught', async (t) => {
  const h = [put(keys.assignment('h1', 'a', 'web.1'), asg('run', '50')), put(keys.assignment('h2', 'a', 'web.1'), asg('run', '50', 2))];
  const v = checkSafety(h, base());
  t.equal(v.length, 1);
  t.match(v[0]?.what, /a\/web\.1 runs on h1 and h2/);
});

t.test('safety: a move (run + retire) and a dead host\'s leftover are legal', async (t) => {
  const h = [
    put(keys.assignment('h1', 'a', 'web.1'), asg('run', '50')),
    put(keys.assignment('h2', 'a', 'web.1'), asg('run', '50', 2)),
  ];
  // the two puts above in one revision with the old one retired: a Txn
  h[1]!.rev = h[0]!.rev;
  h[0]!.value = JSON.stringify({ ...asg('retire', '50'), after: 2 });
  t.same(checkSafety(h, base()), [], 'retire does not count');
  const dead = [del(keys.host('h2')), put(keys.assignment('h1', 'a', 'web.2'), asg('run', '50', 2))];
  const init = base();
  init.set(keys.assignment('h2', 'a', 'web.2'), { value: JSON.stringify(asg('run', '50')), createRev: 60 });
  t.same(checkSafety(dead, init), [], 'an assignment under a host whose lease is gone does not count');
});

t.test('fence: an assignment written with a stale leaderRev is caught', async (t) => {
  const newLeader = `${keys.election()}bbb`;
  const h = [del(LEADER), put(newLeader, 'h4', 120), put(keys.assignment('h1', 'a', 'web.1'), asg('run', '50'))];
  const v = checkSafety(h, base());
  t.equal(v.length, 1);
  t.match(v[0]?.what, /leaderRev 50, leader key then had create revision 120/);
  const ok = [del(LEADER), put(newLeader, 'h4', 130), put(keys.assignment('h1', 'a', 'web.1'), asg('run', '130'))];
  t.same(checkSafety(ok, base()), [], "the new leader's own writes pass");
});

t.test('availability: the bound counts requests in flight to the faulted host at t0 (and failed ones, whose dyno is unknown)', async (t) => {
  const r = (start: number, end: number, status: number, dyno?: string): LoadRecord => ({ id: `${start}`, start, end, status, target: 't', worker: 0, ...(dyno ? { dyno } : {}) });
  const records = [r(90, 110, 200, 'web.3'), r(95, 130, 0), r(99, 101, 200, 'web.1'), r(120, 125, 200, 'web.3'), r(200, 210, 502)];
  const a = checkAvailability(records, [{ name: 'kill', at: 100, dynosOnHost: ['web.3'] }]);
  t.same({ failed: a.failed, bound: a.bound }, { failed: 2, bound: 2 });
  const none = checkAvailability(records, [{ name: 'etcd', at: 100, dynosOnHost: [] }]);
  t.equal(none.bound, 0, 'a fault that risks no host allows no failure');
  // a kill whose dynos were all dead only at 121: the request started at 120 on web.3 was at risk too
  const slow = checkAvailability(records, [{ name: 'kill', at: 100, dynosOnHost: ['web.3'], until: 121 }]);
  t.equal(slow.bound, 3, 'requests in flight on the host until the fault had struck count');
  const early = checkAvailability(records, [{ name: 'kill', at: 100, dynosOnHost: ['web.3'], until: 50 }]);
  t.equal(early.bound, 2, 'an until before the fault changes nothing');
});
