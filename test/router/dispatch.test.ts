/**
 * The routing policy without sockets (src/router/conn/dispatch.ts): admission (H80/H10/H14/H11),
 * dyno choice against the tried set and the quarantine, the boot queue, and running out of dynos.
 * Each row: an app, what the router knows, and the decision.
 */
import t from 'tap';
import type { AppRoute, Backend } from '../../src/router/routing/route-table';
import { Balancer } from '../../src/router/routing/balancer';
import {
  admit,
  bootQueueExpired,
  connectFailureCode,
  dispatchStep,
  dynoChosenFor,
  retryAfterConnectFailure,
  type Dispatch,
} from '../../src/router/conn/dispatch';

function backend(n: number): Backend {
  return { dyno: `web.${n}`, address: `127.0.0.1:${5000 + n}`, host: '127.0.0.1', port: 5000 + n, state: 'up' };
}

interface AppShape {
  up?: number;
  /** Backends listed but not up (starting / draining). */
  down?: number;
  maintenance?: boolean;
  crashed?: string;
}

function app(shape: AppShape): AppRoute {
  const up = Array.from({ length: shape.up ?? 0 }, (_, i) => backend(i + 1));
  const down = Array.from({ length: shape.down ?? 0 }, (_, i) => ({ ...backend(100 + i), state: 'starting' as const }));
  return {
    name: 'app',
    hosts: ['app.example.com'],
    backends: [...up, ...down],
    up,
    starting: down.length,
    maintenance: shape.maintenance ?? false,
    crashed: shape.crashed ?? null,
  };
}

const addr = (n: number): string => backend(n).address;

t.test('admit: halts in priority order, then the backlog', async (t) => {
  const rows: Array<[string, AppRoute | undefined, number, number, ReturnType<typeof admit>]> = [
    ['no app for the host', undefined, 0, 0, 'no-app'],
    ['maintenance wins over crashed and empty', app({ maintenance: true, crashed: 'boom' }), 0, 0, 'H80'],
    ['crashed', app({ up: 2, crashed: 'boom' }), 0, 0, 'H10'],
    ['no backends at all', app({}), 0, 0, 'H14'],
    ['one up dyno, under the backlog', app({ up: 1 }), 49, 50, null],
    ['one up dyno, backlog full', app({ up: 1 }), 50, 50, 'H11'],
    ['three up dynos: 3× the per-dyno backlog', app({ up: 3 }), 149, 50, null],
    ['three up dynos, backlog full', app({ up: 3 }), 150, 50, 'H11'],
    ['booting only: counts as one dyno', app({ down: 2 }), 50, 50, 'H11'],
    ['booting only, room left: admitted (it will queue)', app({ down: 2 }), 10, 50, null],
    ['backlog limit off', app({ up: 1 }), 1_000_000, 0, null],
  ];
  for (const [name, a, inFlight, perDyno, want] of rows) t.equal(admit(a, inFlight, perDyno), want, name);
});

interface Row {
  name: string;
  app: AppRoute | undefined;
  tried?: number[];
  /** Dyno number → quarantine end (clock is 1000). */
  quarantined?: Array<[number, number]>;
  /** The dyno picked (its number), or the halt. */
  want: number | Exclude<Dispatch, Backend>;
  /** Dynos left in quarantine afterwards (default: unchanged). */
  quarantineAfter?: number[];
}

t.test('dispatchStep: decision table (round-robin from the first dyno)', async (t) => {
  const rows: Row[] = [
    { name: 'app gone from the table', app: undefined, want: 'no-app' },
    { name: 'app put in maintenance while queued', app: app({ up: 2, maintenance: true }), want: 'H80' },
    { name: 'app crashed while queued', app: app({ up: 2, crashed: 'x' }), want: 'H10' },
    { name: 'every backend removed while queued', app: app({}), want: 'H14' },
    { name: 'plain pick', app: app({ up: 3 }), want: 1 },
    { name: 'tried dyno skipped', app: app({ up: 3 }), tried: [1], want: 2 },
    { name: 'quarantined dyno skipped', app: app({ up: 3 }), quarantined: [[1, 2000]], want: 2 },
    { name: 'lapsed quarantine: picked and forgotten', app: app({ up: 2 }), quarantined: [[1, 1000]], want: 1, quarantineAfter: [] },
    { name: 'tried and quarantined together', app: app({ up: 3 }), tried: [1], quarantined: [[2, 5000]], want: 3 },
    { name: 'only booting dynos: queue', app: app({ down: 2 }), want: 'queue' },
    { name: 'all up dynos quarantined: queue', app: app({ up: 2 }), quarantined: [[1, 2000], [2, 2000]], want: 'queue' },
    { name: 'all up dynos tried: exhausted', app: app({ up: 2 }), tried: [1, 2], want: 'exhausted' },
    { name: 'some tried, rest quarantined: queue (a quarantine may lapse)', app: app({ up: 2 }), tried: [1], quarantined: [[2, 2000]], want: 'queue' },
    { name: 'tried a dyno since removed, none up: queue', app: app({ down: 1 }), tried: [1], want: 'queue' },
  ];
  for (const row of rows) {
    const quarantine = new Map((row.quarantined ?? []).map(([n, until]) => [addr(n), until] as const));
    const tried = row.tried === undefined ? null : new Set(row.tried.map(addr));
    const got = dispatchStep(row.app, tried, quarantine, () => 1000, new Balancer('round-robin'));
    const label = typeof got === 'string' ? got : Number(got.dyno.slice(4));
    t.equal(label, row.want, row.name);
    const after = row.quarantineAfter ?? (row.quarantined ?? []).map(([n]) => n);
    t.same([...quarantine.keys()].sort(), after.map(addr).sort(), `${row.name}: quarantine afterwards`);
  }
});

t.test('dispatchStep: the common case reads no clock', async (t) => {
  let reads = 0;
  const clock = (): number => ++reads;
  dispatchStep(app({ up: 2 }), null, new Map(), clock, new Balancer('least-outstanding'));
  t.equal(reads, 0, 'nothing tried, nothing quarantined');
  dispatchStep(app({ up: 2 }), new Set([addr(1)]), new Map(), clock, new Balancer('least-outstanding'));
  t.equal(reads, 1, 'a filter needs the time');
});

t.test('retries, connect failures, boot queue, log lines', async (t) => {
  const retries: Array<[number, number, boolean]> = [
    [1, 3, true],
    [2, 3, true],
    [3, 3, false],
    [1, 1, false],
  ];
  for (const [attempts, max, want] of retries) t.equal(retryAfterConnectFailure(attempts, max), want, `attempt ${attempts} of ${max}`);
  t.equal(connectFailureCode('timeout'), 'H19');
  t.equal(connectFailureCode('refused'), 'H21');
  t.equal(connectFailureCode(null), 'H21', 'no connect error recorded: refused');
  t.equal(bootQueueExpired(app({ up: 1 })), 'H99', 'up dynos that stayed quarantined');
  t.equal(bootQueueExpired(app({ down: 1 })), 'H20', 'nothing came up');
  t.equal(bootQueueExpired(null), 'H20');
  for (const code of ['H10', 'H11', 'H14', 'H20', 'H80'] as const) t.notOk(dynoChosenFor(code), `${code}: no dyno on the line`);
  for (const code of [null, 'H12', 'H13', 'H18', 'H19', 'H21', 'H27'] as const) t.ok(dynoChosenFor(code), `${code ?? 'success'}: the dyno is named`);
});
