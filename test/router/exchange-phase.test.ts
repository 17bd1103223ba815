/**
 * The exchange's phase table (src/router/conn/exchange-phase.ts): every legal move, every other
 * move refused (a throw when strict, a warning otherwise).
 */
import t from 'tap';
import { checkedMove, isLegalMove, Phase } from '../../src/router/conn/exchange-phase';

const P = Phase;
const LEGAL: Array<[Phase, Phase]> = [
  [P.Routing, P.Queued],
  [P.Routing, P.Connecting],
  [P.Routing, P.Done],
  [P.Queued, P.Connecting],
  [P.Queued, P.Done],
  [P.Connecting, P.Sent],
  [P.Connecting, P.Routing], // connect failed or the dyno was dropped: another one
  [P.Connecting, P.Done],
  [P.Sent, P.Routing], // unanswered on a dropped dyno, or a stale pooled socket: replayed
  [P.Sent, P.Tunnel],
  [P.Sent, P.Done],
  [P.Tunnel, P.Done],
];
const phases = Object.values(Phase).filter((v): v is Phase => typeof v === 'number');

t.test('the table: exactly the legal moves', async (t) => {
  const legal = new Set(LEGAL.map(([a, b]) => `${P[a]}>${P[b]}`));
  for (const from of phases) {
    for (const to of phases) t.equal(isLegalMove(from, to), legal.has(`${P[from]}>${P[to]}`), `${P[from]} → ${P[to]}`);
  }
});

t.test('an illegal move throws when strict, warns otherwise', async (t) => {
  t.equal(checkedMove(P.Routing, P.Connecting, true), P.Connecting);
  t.throws(() => checkedMove(P.Done, P.Sent, true), /illegal exchange transition Done → Sent/);
  t.throws(() => checkedMove(P.Queued, P.Tunnel, true), /Queued → Tunnel/);
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on('warning', onWarning);
  t.equal(checkedMove(P.Tunnel, P.Sent, false), P.Sent, 'made anyway');
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  t.match(warnings, [/Tunnel → Sent/]);
});

t.test('under tap the default is strict', async (t) => {
  t.equal(process.env.TAP, '1');
  t.throws(() => checkedMove(P.Done, P.Routing));
});
