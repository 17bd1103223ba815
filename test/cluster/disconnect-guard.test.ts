/**
 * DisconnectGuard (--stop-after-disconnect) with fake time: it trips once after DURATION of
 * continuous silence, never on shorter gaps, counts a hung probe as silence, and resumes at the
 * first answer after a trip.
 */
import t from 'tap';
import { DisconnectGuard, type GuardTimers } from '../../src/cluster/disconnect-guard';
import { clusterFrom } from '../../src/cli/daemon-command';

class FakeClock implements GuardTimers {
  t = 0;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  get timers(): number {
    return this.pending.size;
  }
  /** Moves time forward in 10 ms steps, firing what is due and letting promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    while (this.t < end) {
      this.t = Math.min(end, this.t + 10);
      for (const [id, p] of [...this.pending].sort((a, b) => a[1].at - b[1].at)) {
        if (p.at <= this.t && this.pending.has(id)) {
          this.pending.delete(id);
          p.fn();
        }
      }
      for (let i = 0; i < 5; i++) await Promise.resolve();
      await new Promise((r) => setImmediate(r));
    }
  }
}

type Mode = 'ok' | 'fail' | 'hang';

function setup(afterMs = 3000): { clock: FakeClock; guard: DisconnectGuard; events: string[]; set(m: Mode): void; probes: () => number } {
  const clock = new FakeClock();
  const events: string[] = [];
  let mode: Mode = 'ok';
  let probes = 0;
  const guard = new DisconnectGuard({
    afterMs,
    timers: clock,
    probe: () => {
      probes++;
      if (mode === 'ok') return Promise.resolve('answer');
      if (mode === 'fail') return Promise.reject(new Error('UNAVAILABLE'));
      return new Promise(() => undefined);
    },
    onCutOff: (silent) => void events.push(`cut@${clock.t}:${silent}`),
    onReconnected: () => void events.push(`back@${clock.t}`),
    log: (l) => events.push(`log:${l}`),
  });
  return { clock, guard, events, set: (m) => (mode = m), probes: () => probes };
}

const trips = (events: string[]): string[] => events.filter((e) => !e.startsWith('log:'));

t.test('healthy etcd: never trips, probes about every afterMs/4', async (t) => {
  const { clock, guard, events, probes } = setup();
  guard.start();
  await clock.advance(20_000);
  t.same(trips(events), []);
  t.ok(probes() >= 25 && probes() <= 27, `${probes()} probes in 20 s (period 750 ms)`);
  guard.stop();
  t.equal(clock.timers, 0, 'stop leaves no timer');
});

t.test('failing probes: trips once, about afterMs after the last answer; resumes at the first answer', async (t) => {
  const { clock, guard, events, set } = setup();
  guard.start();
  await clock.advance(1000); // last answer at 750
  set('fail');
  await clock.advance(6000);
  const cut = trips(events);
  t.equal(cut.length, 1, 'one cut-off, however long the silence');
  const at = Number(/^cut@(\d+):/.exec(cut[0]!)![1]);
  t.ok(at >= 3750 && at <= 3750 + 760, `cut off at ${at} ms (last answer 750 ms, DURATION 3 s)`);
  t.ok(guard.cutOff);
  t.ok(events.some((e) => /^log:no answer from etcd for 3(\.\d)? s \(--stop-after-disconnect 3s\): stopping/.test(e)), 'logged');
  set('ok');
  await clock.advance(1000);
  t.equal(trips(events).length, 2);
  t.match(trips(events)[1], /^back@/);
  t.notOk(guard.cutOff);
  t.ok(events.some((e) => /^log:etcd answers again after \d+(\.\d)? s of silence/.test(e)));
  // a second partition trips again
  set('fail');
  await clock.advance(5000);
  t.equal(trips(events).filter((e) => e.startsWith('cut@')).length, 2, 'a new partition, a new cut-off');
  guard.stop();
});

t.test('gaps shorter than DURATION never trip', async (t) => {
  const { clock, guard, events, set } = setup();
  guard.start();
  for (let i = 0; i < 5; i++) {
    set('fail');
    await clock.advance(2000);
    set('ok');
    await clock.advance(800);
  }
  t.same(trips(events), [], '2 s gaps under a 3 s DURATION');
  guard.stop();
});

t.test('a hung probe counts as silence (probe timeout), and is not re-sent while out', async (t) => {
  const { clock, guard, events, set, probes } = setup();
  guard.start();
  await clock.advance(800);
  set('hang');
  const before = probes();
  await clock.advance(4500);
  t.equal(trips(events).length, 1, 'tripped on hung probes');
  t.ok(probes() - before <= 4, `hung probes time out (1.5 s) and are not stacked: ${probes() - before} sent`);
  set('ok');
  await clock.advance(2500);
  t.match(trips(events)[1], /^back@/);
  guard.stop();
});

t.test('a throwing callback is logged, the guard keeps going', async (t) => {
  const clock = new FakeClock();
  const logs: string[] = [];
  let ok = true;
  const guard = new DisconnectGuard({
    afterMs: 1000,
    timers: clock,
    probe: () => (ok ? Promise.resolve() : Promise.reject(new Error('down'))),
    onCutOff: () => {
      throw new Error('boom');
    },
    onReconnected: () => undefined,
    log: (l) => logs.push(l),
  });
  guard.start();
  ok = false;
  await clock.advance(2000);
  t.ok(logs.some((l) => l === 'stop-after-disconnect: boom'));
  ok = true;
  await clock.advance(500);
  t.notOk(guard.cutOff, 'resumed anyway');
  guard.stop();
  t.throws(() => new DisconnectGuard({ afterMs: 0, probe: () => Promise.resolve(), onCutOff: () => undefined, onReconnected: () => undefined }), RangeError);
});

t.test('--stop-after-disconnect: parsed with the duration parser, only with --etcd and the dynos role, at least 1s', async (t) => {
  const base = { etcd: 'http://127.0.0.1:2379', 'host-id': 'h1', uplink: '10.0.0.1' } as const;
  const parse = (extra: Record<string, unknown>): { stopAfterDisconnectMs?: number } => clusterFrom({ ...base, ...extra } as never)!;
  t.equal(parse({}).stopAfterDisconnectMs, undefined, 'off by default');
  t.equal(parse({ 'stop-after-disconnect': '3s' }).stopAfterDisconnectMs, 3000);
  t.equal(parse({ 'stop-after-disconnect': '2m' }).stopAfterDisconnectMs, 120_000);
  t.throws(() => parse({ 'stop-after-disconnect': '500ms' }), /at least 1s/);
  t.throws(() => parse({ 'stop-after-disconnect': 'soon' }), /invalid --stop-after-disconnect 'soon'/);
  t.throws(() => parse({ 'stop-after-disconnect': '30s', roles: 'router,api' }), /needs the dynos role/);
  t.throws(() => clusterFrom({ 'stop-after-disconnect': '30s' } as never), /--stop-after-disconnect needs --etcd/);
});
