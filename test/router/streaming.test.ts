/**
 * Streaming without buffering: a long poll, server-sent events byte by byte under a short rolling
 * idle window, backpressure from a slow client, and 1 GiB chunked through a router running in its
 * own process with its RSS measured.
 */
import * as net from 'node:net';
import t from 'tap';
import { startChildRouter } from './helpers/child';
import { RawClient } from './helpers/client';
import { FakeDyno } from './helpers/fake-dyno';
import { sleep, startRouter } from './helpers/router';

const one = (d: FakeDyno) => ({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: d.address }] } });

t.test('long poll answered after 3 s (default 30 s first-byte window)', async (t) => {
  const dyno = await FakeDyno.start((_req, conn) => {
    setTimeout(() => conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnews!'), 3000);
    return null;
  });
  const r = await startRouter(one(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  const started = Date.now();
  c.write('GET /poll HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const res = await c.readResponse({}, 6000);
  t.equal(res.body.toString(), 'news!');
  t.ok(Date.now() - started >= 2900, 'held open until the dyno answered');
  const log = await r.waitLog(() => true);
  t.match(log.line, /^at=info .* status=200 /);
  t.ok((log.serviceMs ?? 0) >= 2900, `service=${log.serviceMs}ms`);
  c.close();
});

t.test('server-sent events stream event by event; the idle window rolls with every byte', async (t) => {
  const sent: number[] = [];
  const dyno = await FakeDyno.start((_req, conn) => {
    conn.socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    let n = 0;
    const timer = setInterval(() => {
      const ev = `data: ${n}\n\n`;
      sent.push(Date.now());
      conn.socket.write(`${ev.length.toString(16)}\r\n${ev}\r\n`);
      if (++n === 10) {
        clearInterval(timer);
        conn.socket.write('0\r\n\r\n');
      }
    }, 100);
    return null;
  });
  // 300 ms idle window, 1 s of events: only a rolling window lets this finish.
  const r = await startRouter(one(dyno), { timeouts: { idleMs: 300, firstByteMs: 300 } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  const arrivals: number[] = [];
  let seen = 0;
  c.socket.on('data', () => {
    const count = (c.received.toString().match(/data: \d+/g) ?? []).length;
    while (seen < count) {
      arrivals.push(Date.now());
      seen++;
    }
  });
  c.write('GET /events HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const res = await c.readResponse({}, 5000);
  t.equal((res.body.toString().match(/data: \d+\n\n/g) ?? []).length, 10, 'all ten events');
  const lags = arrivals.map((a, i) => a - sent[i]!);
  t.ok(Math.max(...lags) < 60, `each event relayed as it was sent (max lag ${Math.max(...lags)} ms)`);
  t.equal(r.logs.filter((l) => l.code !== null).length, 0, 'no H15 despite 1 s > idle window');
  c.close();
});

t.test('a slow client slows its dyno: bounded buffering (backpressure)', async (t) => {
  let written = 0;
  let stop = false;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const dyno = await FakeDyno.start((_req, conn) => {
    conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n');
    const pump = (): void => {
      while (!stop && !conn.socket.destroyed) {
        written += chunk.length;
        if (!conn.socket.write(chunk)) {
          conn.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
    return null;
  });
  const r = await startRouter(one(dyno));
  t.teardown(async () => { stop = true; await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.socket.pause(); // a client that reads nothing
  c.write('GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n');
  await sleep(1500);
  const stalled = written;
  t.ok(stalled < 48 * 1024 * 1024, `dyno stalled after ${(stalled / 1048576).toFixed(1)} MiB (kernel + router buffers only)`);
  await sleep(500);
  t.ok(written - stalled <= 1024 * 1024, 'and stays stalled while the client does not read');
  let got = 0;
  c.socket.removeAllListeners('data');
  c.socket.on('data', (d: Buffer) => { got += d.length; });
  c.socket.resume();
  // event-driven, not a fixed wait: on a loaded machine 8 MiB can take longer than half a second
  const resumedBy = Date.now() + 15_000;
  while (written <= stalled + 8 * 1024 * 1024 && Date.now() < resumedBy) await sleep(50);
  t.ok(written > stalled + 8 * 1024 * 1024, 'reading resumes the dyno');
  t.ok(got > 8 * 1024 * 1024);
  stop = true;
  c.close();
});

t.test('1 GiB chunked through the router with bounded router memory', async (t) => {
  const TOTAL = 1024 * 1024 * 1024;
  const CHUNK = 64 * 1024;
  const frame = Buffer.concat([Buffer.from(`${CHUNK.toString(16)}\r\n`), Buffer.alloc(CHUNK, 0x62), Buffer.from('\r\n')]);
  const dyno = await FakeDyno.start((_req, conn) => {
    conn.socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    let sent = 0;
    const pump = (): void => {
      while (sent < TOTAL) {
        sent += CHUNK;
        const ok = conn.socket.write(frame);
        if (sent >= TOTAL) conn.socket.write('0\r\n\r\n');
        if (!ok) {
          conn.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
    return null;
  });
  const router = await startChildRouter(one(dyno), {});
  t.teardown(async () => { await router.close(); await dyno.close(); });
  const baseline = await router.rss();
  let peak = baseline;
  // RSS once a quarter has gone through (Node's own buffers and GC pace settled) and the peak after it
  let atQuarter: number | undefined;
  let peakAfterQuarter = 0;
  const sock = net.connect(router.port, '127.0.0.1');
  let bytes = 0;
  let tail = Buffer.alloc(0);
  const started = Date.now();
  const sampler = setInterval(() => void router.rss().then((v) => {
    peak = Math.max(peak, v);
    if (atQuarter === undefined && bytes >= TOTAL / 4) atQuarter = v;
    else if (atQuarter !== undefined) peakAfterQuarter = Math.max(peakAfterQuarter, v);
  }), 200);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${bytes} bytes`)), 60_000);
    sock.on('data', (d: Buffer) => {
      bytes += d.length;
      tail = Buffer.concat([tail, d]).subarray(-16);
      if (tail.toString().endsWith('\r\n0\r\n\r\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    sock.on('error', reject);
    sock.write('GET /gig HTTP/1.1\r\nHost: a.test\r\n\r\n');
  });
  clearInterval(sampler);
  const seconds = (Date.now() - started) / 1000;
  peak = Math.max(peak, await router.rss());
  const growth = peak - baseline;
  t.ok(bytes > TOTAL, `received ${bytes} bytes in ${seconds.toFixed(1)} s (${(TOTAL / 1048576 / seconds).toFixed(0)} MiB/s)`);
  // Bounded means not growing with the stream: after the first quarter the router may not grow by more
  // than a fraction of what is still to come. The absolute growth is mostly Node's own: a blind net
  // pipe in one Node 24 process grows ~90 MiB over 1 GiB (Node 20: ~50 MiB), as its read buffers
  // wait for the GC; a router holding the stream would grow by hundreds of MiB.
  t.ok(growth < 160 * 1024 * 1024, `router RSS grew by ${(growth / 1048576).toFixed(1)} MiB (baseline ${(baseline / 1048576).toFixed(0)} MiB)`);
  const late = Math.max(0, peakAfterQuarter - (atQuarter ?? peak));
  t.ok(late < 48 * 1024 * 1024, `after the first 256 MiB the router grew by ${(late / 1048576).toFixed(1)} MiB more over the next 768 MiB`);
  sock.destroy();
});
