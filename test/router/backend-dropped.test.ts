/**
 * A backend dropped from the route table (its host died: the cluster feed removed its endpoints)
 * has its pending connects aborted and their requests retried on another dyno at once, instead of
 * waiting out the connect timeout; so do replayable requests (bodiless, idempotent) already sent
 * to it without a byte of answer, instead of waiting out the first-byte timeout; its idle pooled
 * connections are closed. Other requests already sent to it are left alone. Loopback only: the
 * "dead host" is a blackhole listener whose connects hang, or a silent dyno that reads and never answers.
 */
import * as net from 'node:net';
import t from 'tap';
import { addressDropped, backendDropped, RouteTable } from '../../src/router/routing/route-table';
import type { UpstreamConnection } from '../../src/router/conn/upstream';
import { startBlackhole } from './helpers/blackhole';
import { RawClient } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';
import { sleep, startRouter, type TestRouter } from './helpers/router';

const GET = 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n';
/** A connect timeout long enough that only the table change can explain a fast answer. */
const SLOW_CONNECT = { timeouts: { connectMs: 4000, quarantineMs: 5000 } };

/** A dyno on a cut link: accepts, reads the request, never answers. */
interface SilentDyno {
  address: string;
  sockets: net.Socket[];
  received(): string;
  close(): Promise<void>;
}

async function startSilentDyno(): Promise<SilentDyno> {
  const sockets: net.Socket[] = [];
  let bytes = '';
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('data', (d: Buffer) => { bytes += d.toString('latin1'); });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    sockets,
    received: () => bytes,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls `pred` every 5 ms until it holds, or fails after `ms`. */
async function until(pred: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Records every fresh dyno connection the router opens. */
function spyConnects(r: TestRouter): UpstreamConnection[] {
  const opened: UpstreamConnection[] = [];
  const pool = r.router.pool;
  const connect = pool.connect.bind(pool);
  pool.connect = (b) => {
    const c = connect(b);
    opened.push(c);
    return c;
  };
  return opened;
}

t.test('backendDropped: pure check against a snapshot', async (t) => {
  const table = new RouteTable();
  table.replace({ apps: { a: { hosts: ['a.test'], backends: [
    { dyno: 'web.1', address: '127.0.0.1:5001' },
    { dyno: 'web.2', address: '127.0.0.1:5002', state: 'draining' },
    { dyno: 'web.3', address: '127.0.0.1:5003', state: 'crashed' },
    { dyno: 'web.4', address: '127.0.0.1:5004', state: 'starting' },
  ] } } });
  const app = table.app('a');
  t.notOk(backendDropped(app, '127.0.0.1:5001'), 'up: kept');
  t.notOk(backendDropped(app, '127.0.0.1:5002'), 'draining: kept (it finishes what it has)');
  t.notOk(backendDropped(app, '127.0.0.1:5004'), 'starting: kept');
  t.ok(backendDropped(app, '127.0.0.1:5003'), 'crashed: dropped');
  t.ok(backendDropped(app, '127.0.0.1:5009'), 'absent: dropped');
  t.ok(backendDropped(undefined, '127.0.0.1:5001'), 'app gone: dropped');
  t.equal(backendDropped(app, '127.0.0.1:5001'), false, 'memoised answer is the same');
  const snap = table.snapshot;
  t.notOk(addressDropped(snap, '127.0.0.1:5002'), 'any app: a draining address is kept');
  t.ok(addressDropped(snap, '127.0.0.1:5003'), 'any app: a crashed address is dropped');
  t.ok(addressDropped(snap, '127.0.0.1:5009'), 'any app: an absent address is dropped');
});

t.test('a request stuck connecting to a dropped dyno is served by another one at once', async (t) => {
  const hole = await startBlackhole();
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const dead = `127.0.0.1:${hole.port}`;
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dead }] } }, SLOW_CONNECT);
  t.teardown(async () => { await r.close(); await b.close(); hole.close(); });
  const opened = spyConnects(r);
  const c = await RawClient.connect(r.port);
  c.write(GET);
  await sleep(300);
  t.equal(opened.length, 1, 'one connect under way to the dead dyno');
  t.equal(r.router.connecting.size, 1, 'the request is in the connect phase');
  // The host died: its endpoint goes, a dyno elsewhere takes its place.
  const dropped = Date.now();
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  const res = await c.readResponse();
  const took = Date.now() - dropped;
  t.equal(res.status, 200);
  t.equal(res.body.toString(), 'from-b', 'served by the other dyno');
  t.ok(took < 150, `answered ${took} ms after the drop (connect timeout is 4000 ms)`);
  t.ok(opened[0]!.socket.destroyed, 'the hung connect was closed');
  t.equal(r.router.connecting.size, 0, 'nothing left connecting');
  t.equal(r.router.quarantine.has(dead), false, 'a dropped dyno is not quarantined');
  const retry = r.logs.find((l) => l.code === null && l.at === 'warning');
  t.ok(retry, 'a retry notice is logged');
  t.match(retry!.line, /^sock=backend at=warning cause="backend removed from the route table while connecting; retrying on another dyno" method=GET path="\/" host=a\.test .* dyno=web\.1 connect=\d+ms service= status= bytes= protocol=http$/);
  const served = r.logs.find((l) => l.status === 200);
  t.equal(served?.dyno, 'web.2', 'the request line names the dyno that served it');
  t.equal(r.router.balancer.inFlight(dead), 0, 'no in-flight count left on the dropped dyno');
  t.equal(r.router.balancer.inFlight(b.address), 0);
  c.close();
});

t.test('without a table change the connect waits for its timeout (the contrast)', async (t) => {
  const hole = await startBlackhole();
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [
    { dyno: 'web.1', address: `127.0.0.1:${hole.port}` },
    { dyno: 'web.2', address: b.address },
  ] } }, { timeouts: { connectMs: 600, quarantineMs: 5000 } });
  t.teardown(async () => { await r.close(); await b.close(); hole.close(); });
  const c = await RawClient.connect(r.port);
  const start = Date.now();
  c.write(GET); // round-robin: web.1 (the blackhole) first
  const res = await c.readResponse();
  const took = Date.now() - start;
  t.equal(res.body.toString(), 'from-b');
  t.ok(took >= 550, `retried only after the connect timeout (${took} ms)`);
  // An unrelated table change (another app) does not disturb a pending connect either.
  r.router.table.setApp('other', { hosts: ['other.test'], backends: [] });
  c.close();
});

t.test('a dropped dyno that already has a non-replayable request keeps it; an unrelated change keeps a pending connect', async (t) => {
  let release: (() => void) | null = null;
  const a = await FakeDyno.start((_req, conn) => {
    release = () => conn.socket.write(okResponse('from-a'));
    return null;
  }, 'web.1');
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: a.address }, { dyno: 'web.2', address: b.address }] } });
  t.teardown(async () => { await r.close(); await a.close(); await b.close(); });
  const c = await RawClient.connect(r.port);
  c.write('POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\nx');
  await a.waitFor(() => a.requests.length === 1);
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  await sleep(50);
  t.equal(b.requests.length, 0, 'no replay of a POST already sent');
  release!();
  const res = await c.readResponse();
  t.equal(res.body.toString(), 'from-a', 'the answer of the dropped dyno reaches the client');
  t.equal(r.logs.filter((l) => l.code === null && l.at === 'warning').length, 0, 'no retry notice');
  c.close();

  // A pending connect to a backend still in the table survives table changes.
  const hole = await startBlackhole();
  t.teardown(() => hole.close());
  const r2 = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: `127.0.0.1:${hole.port}` }] } }, SLOW_CONNECT);
  t.teardown(() => r2.close());
  const c2 = await RawClient.connect(r2.port);
  t.teardown(() => c2.close());
  c2.write(GET);
  await sleep(200);
  r2.router.table.setApp('other', { hosts: ['other.test'], backends: [] });
  r2.router.table.setBackends('a', [{ dyno: 'web.1', address: `127.0.0.1:${hole.port}` }, { dyno: 'web.2', address: b.address, state: 'starting' }]);
  await sleep(50);
  t.equal(r2.router.connecting.size, 1, 'still connecting to the dyno that is still there');
});

t.test('the last dyno dropped: the request waits in the boot queue for a new one', async (t) => {
  const hole = await startBlackhole();
  const b = await FakeDyno.start(() => okResponse('replacement'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: `127.0.0.1:${hole.port}` }] } }, SLOW_CONNECT);
  t.teardown(async () => { await r.close(); await b.close(); hole.close(); });
  const opened = spyConnects(r);
  const c = await RawClient.connect(r.port);
  c.write(GET);
  await sleep(200);
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address, state: 'starting' }]);
  await sleep(50);
  t.equal(r.router.connecting.size, 0);
  t.equal(r.router.waiting.size, 1, 'queued while the replacement boots');
  t.ok(opened[0]!.socket.destroyed, 'the hung connect was closed');
  r.router.table.setBackendState('a', 'web.2', 'up');
  t.equal((await c.readResponse()).body.toString(), 'replacement');
  c.close();
});

t.test('many requests connecting to a dropped dyno all move, with no leak', async (t) => {
  const hole = await startBlackhole();
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: `127.0.0.1:${hole.port}` }] } }, SLOW_CONNECT);
  t.teardown(async () => { await r.close(); await b.close(); hole.close(); });
  const opened = spyConnects(r);
  const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(r.port)));
  for (const c of clients) c.write(GET);
  await sleep(300);
  t.equal(r.router.connecting.size, 20);
  const dropped = Date.now();
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  const bodies = await Promise.all(clients.map(async (c) => (await c.readResponse()).body.toString()));
  const took = Date.now() - dropped;
  t.same(new Set(bodies), new Set(['from-b']));
  t.ok(took < 500, `all 20 answered ${took} ms after the drop`);
  t.equal(opened.filter((c) => c.backend.dyno === 'web.1').length, 20);
  t.ok(opened.filter((c) => c.backend.dyno === 'web.1').every((c) => c.socket.destroyed), 'every hung connect closed');
  t.equal(r.router.connecting.size, 0);
  t.equal(r.router.load().inFlight.size, 0, 'no in-flight count left');
  for (const c of clients) c.close();
});

t.test('a GET already sent to a dyno that then drops, unanswered, is served by another one at once', async (t) => {
  const a = await startSilentDyno();
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: a.address }] } });
  t.teardown(async () => { await r.close(); await b.close(); await a.close(); });
  const c = await RawClient.connect(r.port);
  c.write(GET);
  await until(() => a.received().includes('\r\n\r\n'), 3000, 'the request at the silent dyno');
  t.equal(r.router.awaitingReply.size, 1, 'sent, awaiting a reply');
  const dropped = Date.now();
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  const res = await c.readResponse();
  const took = Date.now() - dropped;
  t.equal(res.status, 200);
  t.equal(res.body.toString(), 'from-b', 'served by the other dyno');
  t.ok(took < 150, `answered ${took} ms after the drop (first-byte timeout is 30 s)`);
  await until(() => a.sockets.every((s) => s.destroyed || s.readableEnded), 1000, 'the silent dyno connection closed');
  t.pass('the connection to the dropped dyno was closed');
  t.equal(r.router.awaitingReply.size, 0);
  t.equal(r.router.connecting.size, 0);
  t.equal(r.router.quarantine.has(a.address), false, 'a dropped dyno is not quarantined');
  const retry = r.logs.find((l) => l.code === null && l.at === 'warning');
  t.match(retry?.line, /^sock=backend at=warning cause="backend removed from the route table before it answered; retrying on another dyno" method=GET path="\/" host=a\.test .* dyno=web\.1 connect=\d+ms service= status= bytes= protocol=http$/);
  t.equal(r.logs.find((l) => l.status === 200)?.dyno, 'web.2');
  t.equal(r.router.balancer.inFlight(a.address), 0, 'no in-flight count left on the dropped dyno');
  t.equal(r.router.balancer.inFlight(b.address), 0);
  t.equal(r.router.load().inFlight.size, 0);
  // The client connection is still good for the next request.
  c.write(GET);
  t.equal((await c.readResponse()).body.toString(), 'from-b');
  c.close();
});

t.test('a GET on a pooled keep-alive connection into a cut link is replayed elsewhere; idle pooled sockets to the dropped dyno close', async (t) => {
  let n = 0;
  // Answers the first two requests (two connections, both pooled), then goes silent (the link is cut).
  const a = await FakeDyno.start((_req, conn) => {
    n++;
    if (n > 2) return null;
    const sock = conn.socket;
    setTimeout(() => sock.write(okResponse('from-a')), 50);
    return null;
  }, 'web.1');
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: a.address }] } });
  t.teardown(async () => { await r.close(); await b.close(); await a.close(); });
  const [c1, c2] = await Promise.all([RawClient.connect(r.port), RawClient.connect(r.port)]);
  c1!.write(GET);
  c2!.write(GET);
  t.same([(await c1!.readResponse()).body.toString(), (await c2!.readResponse()).body.toString()], ['from-a', 'from-a']);
  t.equal(a.conns.length, 2, 'two pooled connections to web.1');
  c1!.write(GET); // takes one pooled socket; web.1 reads it and stays silent
  await a.waitFor(() => a.requests.length === 3);
  t.equal(a.conns.length, 2, 'sent on a pooled connection');
  const dropped = Date.now();
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  t.equal((await c1!.readResponse()).body.toString(), 'from-b');
  t.ok(Date.now() - dropped < 150, 'answered at once');
  await a.waitFor(() => a.conns.every((c) => c.closed), 1000, 'both web.1 connections closed');
  t.pass('the busy and the idle pooled connection to web.1 are closed');
  t.equal(a.requests.length, 3, 'nothing more sent to web.1');
  c2!.write(GET);
  t.equal((await c2!.readResponse()).body.toString(), 'from-b');
  t.equal(r.router.load().inFlight.size, 0);
  t.equal(r.router.awaitingReply.size, 0);
  c1!.close();
  c2!.close();
});

t.test('not replayed: a POST with a body, a bodiless POST; they end as before (H12)', async (t) => {
  const a = await startSilentDyno();
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: a.address }] } }, { timeouts: { firstByteMs: 400 } });
  t.teardown(async () => { await r.close(); await b.close(); await a.close(); });
  const c1 = await RawClient.connect(r.port);
  const c2 = await RawClient.connect(r.port);
  c1.write('POST /body HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello');
  c2.write('POST /empty HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n');
  await until(() => a.received().includes('hello') && a.received().includes('/empty'), 3000, 'both requests at the silent dyno');
  t.equal(r.router.awaitingReply.size, 0, 'neither is replayable');
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  const [r1, r2] = await Promise.all([c1.readResponse(), c2.readResponse()]);
  t.equal(b.requests.length, 0, 'nothing replayed on web.2');
  t.equal(r1.status, 503);
  t.equal(r2.status, 503);
  t.equal(r.logs.filter((l) => l.code === 'H12').length, 2, 'both end with H12 as before');
  t.equal(r.logs.filter((l) => l.code === null && l.at === 'warning').length, 0, 'no retry notice');
  t.equal(r.router.balancer.inFlight(a.address), 0);
  t.equal(r.router.load().inFlight.size, 0);
  c1.close();
  c2.close();
});

t.test('not replayed: a response already started (head, or a first byte) when the dyno drops', async (t) => {
  const writers: Array<(s: string) => void> = [];
  const a = await FakeDyno.start((_req, conn) => {
    writers.push((s) => conn.socket.write(s));
    return null;
  }, 'web.1');
  const b = await FakeDyno.start(() => okResponse('from-b'), 'web.2');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: a.address }] } });
  t.teardown(async () => { await r.close(); await b.close(); await a.close(); });
  const c1 = await RawClient.connect(r.port);
  const c2 = await RawClient.connect(r.port);
  c1.write(GET);
  c2.write(GET);
  await a.waitFor(() => a.requests.length === 2);
  writers[0]!('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfro'); // head and part of the body
  writers[1]!('HTTP/1.1 2'); // one byte is enough
  await c1.waitFor(() => c1.received.length > 0, 3000, 'the head at the client');
  await until(() => r.router.awaitingReply.size === 0, 1000, 'both answers started');
  r.router.table.setBackends('a', [{ dyno: 'web.2', address: b.address }]);
  await sleep(50);
  t.equal(b.requests.length, 0, 'no replay');
  writers[0]!('m-a');
  writers[1]!('00 OK\r\nContent-Length: 6\r\n\r\nfrom-a');
  t.equal((await c1.readResponse()).body.toString(), 'from-a');
  t.equal((await c2.readResponse()).body.toString(), 'from-a');
  t.equal(r.logs.filter((l) => l.code === null && l.at === 'warning').length, 0, 'no retry notice');
  t.equal(r.router.balancer.inFlight(a.address), 0);
  t.equal(r.router.load().inFlight.size, 0);
  c1.close();
  c2.close();
});
