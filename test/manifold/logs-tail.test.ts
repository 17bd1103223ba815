/**
 * A `logs --tail` reader that stops reading during a log flood costs the daemon a bounded amount of
 * memory; it loses lines and is told how many (L10) when it reads again (issue 9, item 9).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { BoundedTail } from '../../src/manifold/logs/bounded-tail';
import { sleep, TestDaemon, waitFor } from './helpers/daemon';

/** A real Writable that takes nothing until `open()`; then it accepts everything. */
class StalledReader extends Writable {
  readonly got: string[] = [];
  private pending: (() => void)[] = [];
  private opened = false;
  constructor() {
    super({ highWaterMark: 1, decodeStrings: false });
  }
  override _write(chunk: string | Buffer, _enc: BufferEncoding, done: () => void): void {
    this.got.push(String(chunk));
    if (this.opened) done();
    else this.pending.push(done);
  }
  open(): void {
    this.opened = true;
    for (const done of this.pending.splice(0)) done();
  }
}

t.test('BoundedTail: queue bounded, the rest dropped and counted, order kept', async (t) => {
  const sink = new StalledReader();
  const tail = new BoundedTail(sink, (l) => `${l}\n`, { lines: 10, bytes: 1 << 20 });
  for (let i = 0; i < 1000; i++) tail.offer(`line ${i}`);
  t.equal(sink.got.length, 1, 'one line reached the stalled socket');
  t.equal(tail.droppedTotal, 1000 - 1 - 10, 'ten queued, the rest dropped');
  sink.open();
  await new Promise((r) => setImmediate(r));
  const lines = sink.got.join('').trimEnd().split('\n');
  t.same(lines.slice(0, 11), Array.from({ length: 11 }, (_, i) => `line ${i}`), 'the oldest lines, in order');
  t.match(lines[11], /manifold\[logplex\]: Error L10 \(output buffer overflow\): 989 messages dropped since \d{4}-\d\d-\d\dT[\d:.]+\+00:00\.$/);
  tail.offer('after');
  await new Promise((r) => setImmediate(r));
  t.equal(sink.got.join('').trimEnd().split('\n').pop(), 'after', 'back to direct delivery');
});

t.test('BoundedTail: the byte bound holds for long lines', async (t) => {
  const sink = new StalledReader();
  const tail = new BoundedTail(sink, (l) => `${l}\n`, { lines: 1000, bytes: 50_000 });
  for (let i = 0; i < 100; i++) tail.offer('x'.repeat(10_000));
  t.equal(tail.droppedTotal, 100 - 1 - 4, 'four 10 kB lines fit in 50 kB');
});

if (process.getuid?.() !== 0) {
  t.test('daemon under a log flood', { skip: 'needs root: runs the daemon and a flooding dyno' }, async () => undefined);
} else {
  t.test('daemon: a stalled tail reader during a flood does not grow the daemon', async (t) => {
    const d = new TestDaemon();
    const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-flood-'));
    await d.start();
    t.teardown(async () => {
      await d.stop();
      d.cleanup();
      fs.rmSync(apps, { recursive: true, force: true });
    });
    fs.writeFileSync(path.join(apps, 'Procfile'), `worker: yes ${'flood-'.repeat(30)}\n`);
    t.equal((await d.cli('apps:create', 'flood')).code, 0);
    t.equal((await d.cli('deploy', apps, '-a', 'flood')).code, 0);

    // a client that asks for the tail and then never reads (as ^Z would leave it)
    const sock = net.connect(d.socket);
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    const body = JSON.stringify({ app: 'flood', tail: true, n: 0 });
    sock.write(`POST /v1/logs HTTP/1.1\r\nhost: manifold\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    sock.pause();
    const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${d.child!.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const before = rss();
    t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'flood')).code, 0);
    let peak = before;
    // 20 s: long enough to tell the two regimes apart on a loaded box. With the bound the daemon grows
    // by what ingesting the flood costs in garbage before the GC catches up, which plateaus (measured
    // 120-230 MB, the top under load); without it the stalled reader's queue grows without end (measured
    // with the bound taken out: 156 → 2 438 MB in these 20 s).
    for (let i = 0; i < 80; i++) {
      await sleep(250);
      peak = Math.max(peak, rss());
    }
    t.equal((await d.cli('ps:scale', 'worker=0', '-a', 'flood')).code, 0);
    t.ok(peak - before < 350 * 1024 * 1024, `daemon RSS ${Math.round(before / 2 ** 20)} → peak ${Math.round(peak / 2 ** 20)} MB`);

    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (s: string) => (text += s));
    sock.resume();
    const m = await waitFor('an L10 line once the reader reads again', async () => /Error L10 \(output buffer overflow\): (\d+) messages dropped/.exec(text) ?? undefined, 20_000);
    t.ok(Number(m[1]) > 0, `${m[1]} messages dropped, and the reader was told`);
    sock.destroy();
  });
}
