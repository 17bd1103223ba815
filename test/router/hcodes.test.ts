/**
 * Every H-code the router produces, through real sockets, with its exact log line (request id and
 * timings normalised) and the status the client sees. Timeouts are shortened to 300 ms.
 */
import t from 'tap';
import { startBlackhole } from './helpers/blackhole';
import { RawClient, exchangeRaw } from './helpers/client';
import { closedPort, FakeDyno, okResponse } from './helpers/fake-dyno';
import { normalizeLogLine, sleep, startRouter } from './helpers/router';
import type { AppInput, RouterConfigInput } from '../../src/router/index';

const FAST: RouterConfigInput = {
  timeouts: { connectMs: 300, firstByteMs: 300, idleMs: 300, bootQueueMs: 400, clientIdleMs: 300, quarantineMs: 2000 },
};
const GET = 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n';
const line = (prefix: string, rest: string): string => `${prefix} method=GET path="/" host=a.test request_id=ID fwd="127.0.0.1" ${rest} protocol=http`;
const NO_DYNO = 'dyno= connect= service= status=503 bytes=';
const one = (address: string, extra: Partial<AppInput> = {}): Record<string, AppInput> => ({
  a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address }], ...extra },
});

/** The assertions expectLog needs (any tap Test provides them). */
type Asserts = Pick<typeof t, 'match' | 'equal'>;

async function expectLog(t: Asserts, apps: Record<string, AppInput>, request: string, status: number, expected: string): Promise<void> {
  const r = await startRouter(apps, FAST);
  try {
    const res = await exchangeRaw(r.port, request, 3000);
    t.match(res.text, new RegExp(`^HTTP/1\\.1 ${status} `), `client gets ${status}`);
    const log = await r.waitLog((l) => l.code !== null);
    t.equal(normalizeLogLine(log.line), expected);
  } finally {
    await r.close();
  }
}

t.test('H10 app crashed', (t) => expectLog(t, one('127.0.0.1:1', { crashed: { message: 'exit 1' } }), GET, 503, line('at=error code=H10 desc="App crashed"', NO_DYNO)));

t.test('H10 when every web dyno is crashed', (t) =>
  expectLog(t, { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:1', state: 'crashed' }] } }, GET, 503, line('at=error code=H10 desc="App crashed"', NO_DYNO)));

t.test('H14 no web dynos', (t) => expectLog(t, { a: { hosts: ['a.test'], backends: [] } }, GET, 503, line('at=error code=H14 desc="No web processes running"', NO_DYNO)));

t.test('H80 maintenance mode', (t) => expectLog(t, one('127.0.0.1:1', { maintenance: true }), GET, 503, line('at=info code=H80 desc="Maintenance mode"', NO_DYNO)));

t.test('H21 connection refused; H99 while every up dyno is quarantined', async (t) => {
  const port = await closedPort();
  const r = await startRouter(one(`127.0.0.1:${port}`), FAST);
  t.teardown(() => r.close());
  const res = await exchangeRaw(r.port, GET);
  t.match(res.text, /^HTTP\/1\.1 503 /);
  t.equal(normalizeLogLine((await r.waitLog((l) => l.code === 'H21')).line), line('at=error code=H21 desc="Backend connection refused"', 'dyno=web.1 connect=Nms service=Nms status=503 bytes=0'));
  const started = Date.now();
  const res2 = await exchangeRaw(r.port, GET);
  t.match(res2.text, /^HTTP\/1\.1 503 /);
  t.ok(Date.now() - started >= 350, 'waited for the quarantine to lift (boot-queue timeout)');
  t.equal(normalizeLogLine((await r.waitLog((l) => l.code === 'H99')).line), line('at=error code=H99 desc="Platform error"', NO_DYNO));
});

t.test('refused dyno is quarantined and the request retried on another', async (t) => {
  const port = await closedPort();
  const good = await FakeDyno.start(() => okResponse('good'), 'web.2');
  const apps = { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: `127.0.0.1:${port}` }, { dyno: 'web.2', address: good.address }] } };
  const r = await startRouter(apps, FAST);
  t.teardown(async () => { await r.close(); await good.close(); });
  const c = await RawClient.connect(r.port);
  for (let i = 0; i < 4; i++) {
    c.write(GET);
    t.equal((await c.readResponse()).body.toString(), 'good', `request ${i} served by the good dyno`);
  }
  t.equal(r.logs.filter((l) => l.code !== null).length, 0, 'no error logged');
  t.ok(r.router.quarantine.has(`127.0.0.1:${port}`), 'refusing dyno is quarantined');
  c.close();
});

t.test('H19 connect timeout (then quarantine)', async (t) => {
  const hole = await startBlackhole();
  t.teardown(() => hole.close());
  await expectLog(t, one(`127.0.0.1:${hole.port}`), GET, 503, line('at=error code=H19 desc="Backend connection timeout"', 'dyno=web.1 connect=Nms service=Nms status=503 bytes=0'));
});

t.test('H20 boot timeout; a queued request is served once a dyno comes up', async (t) => {
  const dyno = await FakeDyno.start(() => okResponse('booted'));
  await expectLog(t, { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dyno.address, state: 'starting' }] } }, GET, 503, line('at=error code=H20 desc="App boot timeout"', NO_DYNO));
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dyno.address, state: 'starting' }] } }, { ...FAST, timeouts: { ...FAST.timeouts, bootQueueMs: 3000 } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write(GET);
  await sleep(200);
  t.equal(dyno.requests.length, 0, 'held while starting');
  r.router.table.setBackendState('a', 'web.1', 'up');
  t.equal((await c.readResponse()).body.toString(), 'booted');
  c.close();
});

t.test('H11 backlog too deep', async (t) => {
  const dyno = await FakeDyno.start(() => null);
  const r = await startRouter(one(dyno.address), { ...FAST, timeouts: { ...FAST.timeouts, firstByteMs: 2000 }, limits: { backlogPerDyno: 1 } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const first = await RawClient.connect(r.port);
  first.write(GET);
  await dyno.waitFor(() => dyno.requests.length === 1);
  const res = await exchangeRaw(r.port, GET);
  t.match(res.text, /^HTTP\/1\.1 503 /);
  t.equal(normalizeLogLine((await r.waitLog((l) => l.code === 'H11')).line), line('at=error code=H11 desc="Backlog too deep"', NO_DYNO));
  first.close();
});

t.test('H12 request timeout closes the dyno connection', async (t) => {
  const dyno = await FakeDyno.start(() => null);
  const r = await startRouter(one(dyno.address), FAST);
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  const started = Date.now();
  c.write(GET);
  const res = await c.readResponse();
  t.equal(res.status, 503);
  t.ok(Date.now() - started >= 300, 'not before first-byte timeout');
  const log = await r.waitLog((l) => l.code === 'H12');
  t.equal(normalizeLogLine(log.line), line('at=error code=H12 desc="Request timeout"', 'dyno=web.1 connect=Nms service=Nms status=503 bytes=0'));
  t.ok((log.serviceMs ?? 0) >= 290, `service=${log.serviceMs}ms covers the wait`);
  await dyno.waitFor(() => dyno.conns[0]!.closed, 2000, 'dyno connection closed');
  c.write(GET);
  await dyno.waitFor(() => dyno.requests.length === 2, 2000, 'client connection still usable');
  c.close();
});

t.test('H13 connection closed without response', (t) => {
  return FakeDyno.start((_req, conn) => {
    conn.socket.destroy();
    return null;
  }).then(async (dyno) => {
    await expectLog(t, one(dyno.address), GET, 503, line('at=error code=H13 desc="Connection closed without response"', 'dyno=web.1 connect=Nms service=Nms status=503 bytes=0'));
    await dyno.close();
  });
});

t.test('H15 idle dyno mid-response; H18 dyno closed mid-response', async (t) => {
  const idle = await FakeDyno.start(() => 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
  const gone = await FakeDyno.start((_req, conn) => {
    conn.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    return null;
  });
  t.teardown(async () => { await idle.close(); await gone.close(); });
  for (const [dyno, code, prefix] of [
    [idle, 'H15', 'at=error code=H15 desc="Idle connection"'],
    [gone, 'H18', 'sock=backend at=error code=H18 desc="Server Request Interrupted"'],
  ] as const) {
    const r = await startRouter(one(dyno.address), FAST);
    const res = await exchangeRaw(r.port, GET);
    t.match(res.text, /^HTTP\/1\.1 200 OK\r\n[^]*partial$/, `${code}: the client got what was sent`);
    t.ok(res.closed, `${code}: then a cut connection`);
    const log = await r.waitLog((l) => l.code === code);
    t.equal(normalizeLogLine(log.line), line(prefix, `dyno=web.1 connect=Nms service=Nms status=200 bytes=${res.text.length}`));
    await r.close();
  }
});

t.test('H17 bad chunk mid-response cuts the client', async (t) => {
  const dyno = await FakeDyno.start(() => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n');
  const r = await startRouter(one(dyno.address), FAST);
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const res = await exchangeRaw(r.port, GET);
  t.ok(res.closed);
  t.notMatch(res.text, /0\r\n\r\n$/, 'no terminating chunk: the client can tell the body is incomplete');
  const log = await r.waitLog((l) => l.code === 'H17');
  t.match(log.line, /^at=error code=H17 desc="Poorly formatted HTTP response" cause="bad chunk" /);
});

t.test('H26 bad chunk in a request body', async (t) => {
  const dyno = await FakeDyno.start(() => okResponse('x'));
  const r = await startRouter(one(dyno.address), FAST);
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const res = await exchangeRaw(r.port, 'POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnope\r\n');
  t.match(res.text, /^HTTP\/1\.1 400 /);
  const log = await r.waitLog((l) => l.code === 'H26');
  t.equal(normalizeLogLine(log.line), 'at=error code=H26 desc="Request Error" cause="bad chunk" method=POST path="/" host=a.test request_id=ID fwd="127.0.0.1" dyno=web.1 connect=Nms service=Nms status=400 bytes=0 protocol=http');
  await dyno.waitFor(() => dyno.conns[0]!.closed, 2000, 'dyno connection closed');
});

t.test('H27 client closes before the response', async (t) => {
  const dyno = await FakeDyno.start(() => null);
  const r = await startRouter(one(dyno.address), { ...FAST, timeouts: { ...FAST.timeouts, firstByteMs: 5000 } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write(GET);
  await dyno.waitFor(() => dyno.requests.length === 1);
  c.close();
  const log = await r.waitLog((l) => l.code === 'H27');
  t.equal(normalizeLogLine(log.line), line('sock=client at=warning code=H27 desc="Client Request Interrupted"', 'dyno=web.1 connect=Nms service=Nms status=499 bytes=0'));
  await dyno.waitFor(() => dyno.conns[0]!.closed, 2000, 'dyno connection closed so the app notices');
});

t.test('H28 client idle mid-request body', async (t) => {
  const dyno = await FakeDyno.start(() => okResponse('x'));
  const r = await startRouter(one(dyno.address), FAST);
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const res = await exchangeRaw(r.port, 'POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nabc');
  t.ok(res.closed, 'client connection closed');
  const log = await r.waitLog((l) => l.code === 'H28');
  t.equal(normalizeLogLine(log.line), 'sock=client at=warning code=H28 desc="Client Connection Idle" method=POST path="/" host=a.test request_id=ID fwd="127.0.0.1" dyno=web.1 connect=Nms service=Nms status=499 bytes=0 protocol=http');
  t.equal(dyno.requests.length, 0, 'the dyno never saw a complete request');
});

t.test('408 for a head that never completes', async (t) => {
  const r = await startRouter(one('127.0.0.1:1'), FAST);
  t.teardown(() => r.close());
  const res = await exchangeRaw(r.port, 'GET / HTTP/1.1\r\nHost: a.te');
  t.match(res.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.ok(res.closed);
});
