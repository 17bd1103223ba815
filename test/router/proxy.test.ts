/**
 * Byte-level proxy semantics through real sockets: a raw client, the router, and scripted fake
 * dynos that record exactly what they receive. Cases follow vegur's roundtrip suite (headers,
 * http_1_0, chunked, body_less, continue, backend_keepalive) written as our own tests.
 */
import t from 'tap';
import { RawClient, exchangeRaw } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';
import { normalizeLogLine, sleep, startRouter } from './helpers/router';

const app = (dyno: FakeDyno, extra = {}) => ({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dyno.address }], ...extra } });

t.test('GET: exact request to the dyno, added headers, response relayed, log line', async (t) => {
  const dyno = await FakeDyno.start(() => 'HTTP/1.1 200 OK\r\nContent-Length: 13\r\nX-App: yes\r\n\r\nHello, world!');
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  const before = Date.now();
  c.write('GET /path?q=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: raw\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n\r\n');
  const res = await c.readResponse();
  t.equal(res.startLine, 'HTTP/1.1 200 OK');
  t.equal(res.body.toString(), 'Hello, world!');
  t.same(res.headers, [['X-App', 'yes'], ['Content-Length', '13'], ['Via', '1.1 vegur']]);
  const got = dyno.conns[0]!.received.toString('latin1');
  const m = /^GET \/path\?q=1 HTTP\/1\.1\r\nHost: a\.test\r\nUser-Agent: raw\r\nAccept: \*\/\*\r\nX-Forwarded-For: 10\.0\.0\.1, 127\.0\.0\.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: (\d+)\r\nX-Request-Start: (\d+)\r\nX-Request-Id: ([0-9a-f-]{36})\r\nVia: 1\.1 vegur\r\nConnect-Time: (\d+)\r\nTotal-Route-Time: (\d+)\r\n\r\n$/.exec(got);
  t.ok(m, `dyno got exactly the expected head:\n${got}`);
  if (m) {
    t.equal(Number(m[1]), r.port, 'X-Forwarded-Port is the listener port');
    t.ok(Math.abs(Number(m[2]) - before) < 2000, 'X-Request-Start is epoch ms');
    t.match(m[3], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'new UUIDv4 request id');
  }
  const log = await r.waitLog(() => true);
  t.equal(normalizeLogLine(log.line), `at=info method=GET path="/path?q=1" host=a.test request_id=ID fwd="10.0.0.1, 127.0.0.1" dyno=web.1 connect=Nms service=Nms status=200 bytes=${res.raw.length} protocol=http`);
  t.equal(log.requestId, m?.[3]);
  c.close();
});

t.test('X-Request-Id kept when valid, replaced otherwise', async (t) => {
  const dyno = await FakeDyno.start((req) => okResponse(req.header('x-request-id') ?? ''));
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  const valid = 'abcDEF0123456789+/=-abc';
  c.write(`GET / HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: ${valid}\r\n\r\n`);
  t.equal((await c.readResponse()).body.toString(), valid);
  for (const bad of ['short', 'has space in it but long enough', 'x'.repeat(201), 'bad_chars_underscore_here']) {
    c.write(`GET / HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: ${bad}\r\n\r\n`);
    const got = (await c.readResponse()).body.toString();
    t.match(got, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, `replaced: ${bad.slice(0, 20)}`);
  }
  t.ok(r.logs.some((l) => l.line.includes(`request_id=${valid} `)), 'logged with the kept id');
  c.close();
});

t.test('hop-by-hop fields are stripped both ways (vegur delete_hop_by_hop)', async (t) => {
  const dyno = await FakeDyno.start(() =>
    'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\nTrailer: X-T\r\nContent-Length: 2\r\n\r\nok',
  );
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\nX-Keep: k\r\nTrailer: X-T\r\n\r\n');
  const res = await c.readResponse();
  t.same(res.headers.map(([n]) => n), ['Trailer', 'Content-Length', 'Via']);
  const got = dyno.requests[0]!;
  t.same(got.headers.map(([n]) => n).slice(0, 3), ['Host', 'X-Keep', 'Trailer']);
  for (const n of ['connection', 'x-secret', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization']) t.equal(got.header(n), undefined, `${n} not forwarded`);
  c.close();
});

t.test('Via is appended to an existing chain (vegur via_chain)', async (t) => {
  const dyno = await FakeDyno.start(() => 'HTTP/1.1 200 OK\r\nVia: 1.0 app-cache\r\nContent-Length: 0\r\n\r\n');
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\nVia: 1.1 happyproxy\r\n\r\n');
  const res = await c.readResponse();
  t.equal(res.header('via'), '1.0 app-cache, 1.1 vegur');
  t.equal(dyno.requests[0]!.header('via'), '1.1 happyproxy, 1.1 vegur');
  c.close();
});

t.test('keep-alive: sequential requests share one client and one dyno connection', async (t) => {
  const dyno = await FakeDyno.start((req) => okResponse(req.startLine));
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  for (let i = 0; i < 5; i++) {
    c.write(`GET /${i} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    t.equal((await c.readResponse()).body.toString(), `GET /${i} HTTP/1.1`);
  }
  t.equal(dyno.conns.length, 1, 'one pooled dyno connection reused');
  t.notOk(c.closed, 'client connection still open');
  c.close();
});

t.test('pipelined requests are answered in order', async (t) => {
  const dyno = await FakeDyno.start((req) => okResponse(req.startLine.split(' ')[1]!));
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), '/1');
  t.equal((await c.readResponse()).body.toString(), '/2');
  t.equal((await c.readResponse()).body.toString(), '/3');
  t.equal(dyno.requests[1]!.body.toString(), 'abc');
  c.close();
});

t.test('HTTP/1.0 (vegur http_1_0 group)', async (t) => {
  const dyno = await FakeDyno.start((req) =>
    req.startLine.startsWith('GET /chunked')
      ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n'
      : okResponse('one-oh'),
  );
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });

  const def = await exchangeRaw(r.port, 'GET / HTTP/1.0\r\nHost: a.test\r\n\r\n');
  t.match(def.text, /^HTTP\/1\.1 200 OK\r\n/, 'advertises HTTP/1.1 (advertise_1_1)');
  t.match(def.text, /Connection: close\r\n/, 'conn_close_default');
  t.ok(def.closed, 'closed after the response');
  t.equal(dyno.requests[0]!.startLine, 'GET / HTTP/1.1', 'dyno gets HTTP/1.1');

  const c = await RawClient.connect(r.port);
  c.write('GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n');
  const ka = await c.readResponse();
  t.equal(ka.header('connection'), 'keep-alive', 'conn_keepalive_opt');
  c.write('GET /chunked HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n');
  await c.waitClose();
  const text = c.received.subarray(c.consumed).toString('latin1');
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  t.notMatch(text, /Transfer-Encoding/i, 'no TE to a 1.0 client (chunked_to_1_0)');
  t.match(text, /Connection: close\r\n/);
  t.ok(text.endsWith('\r\n\r\nhello world'), 'de-chunked body, close-delimited, trailers dropped');
});

t.test('chunked both ways, with trailers, byte-exact (vegur chunked group)', async (t) => {
  const respBody = '4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Checksum: abc\r\n\r\n';
  const dyno = await FakeDyno.start(() => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n${respBody}`);
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  const reqBody = '3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sig: 1\r\n\r\n';
  c.write(`POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n${reqBody}`);
  const res = await c.readResponse();
  t.equal(res.body.toString(), 'Wikipedia');
  t.equal(res.trailers, 'X-Checksum: abc\r\n');
  t.ok(res.raw.toString('latin1').endsWith(`\r\n\r\n${respBody}`), 'response chunks relayed byte for byte');
  const got = dyno.conns[0]!.received.toString('latin1');
  t.ok(got.endsWith(`Transfer-Encoding: chunked\r\n`.length ? `\r\n\r\n${reqBody}` : ''), 'request chunks relayed byte for byte');
  t.match(got, /\r\nTransfer-Encoding: chunked\r\n/);
  t.equal(dyno.requests[0]!.trailers, 'X-Sig: 1\r\n');
  c.close();
});

t.test('chunked response whose head arrives in its own packet (the hang in baselines.md)', async (t) => {
  const dyno = await FakeDyno.start((_req, conn) => {
    conn.socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    setTimeout(() => conn.socket.write('5\r\nhello\r\n'), 60);
    setTimeout(() => conn.socket.write('0\r\n\r\n'), 120);
    return null;
  });
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const head = Date.now();
  await c.waitFor(() => c.received.includes('\r\n\r\n'), 2000, 'head');
  t.ok(Date.now() - head < 60, 'head relayed before any body byte exists');
  t.equal((await c.readResponse()).body.toString(), 'hello');
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'hello', 'connection still usable');
  c.close();
});

t.test('body-less responses: HEAD, 204, 304 (vegur body_less group)', async (t) => {
  const dyno = await FakeDyno.start((req) => {
    const path = req.startLine.split(' ')[1];
    if (path === '/204') return 'HTTP/1.1 204 No Content\r\n\r\n';
    if (path === '/304') return 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: "x"\r\n\r\n';
    if (path === '/headchunked') return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
    return 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n';
  });
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const h = await c.readResponse({ noBody: true });
  t.equal(h.header('content-length'), '1234', 'HEAD keeps the declared length');
  c.write('HEAD /headchunked HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse({ noBody: true })).header('transfer-encoding'), 'chunked');
  c.write('GET /204 HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).status, 204);
  c.write('GET /304 HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const n = await c.readResponse();
  t.equal(n.status, 304);
  t.equal(n.header('content-length'), '10');
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  await c.waitFor(() => c.unread.startsWith('HTTP/1.1 200 OK') && c.unread.includes('\r\n\r\n'));
  await sleep(50);
  t.equal(c.unread.split('\r\n\r\n')[1], '', 'no stray body bytes after body-less responses');
  t.equal(dyno.conns.length, 1, 'dyno connection reused across body-less responses');
  c.close();
});

t.test('close-delimited response: Connection: close to the client', async (t) => {
  const dyno = await FakeDyno.start((_req, conn) => {
    conn.socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
    return null;
  });
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const res = await exchangeRaw(r.port, 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.match(res.text, /Connection: close\r\n/);
  t.ok(res.text.endsWith('\r\n\r\nuntil the end'));
  t.ok(res.closed);
  t.match((await r.waitLog(() => true)).line, /status=200 bytes=\d+ protocol=http$/);
});

t.test('Expect: 100-continue answered by the router; 417 for other expectations (vegur continue group)', async (t) => {
  const dyno = await FakeDyno.start((req) => okResponse(`${req.header('expect') ?? 'none'}:${req.body.toString()}`));
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('PUT /up HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
  await c.waitFor(() => c.received.toString().startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 2000, '100 Continue');
  c.consumed = 25;
  c.write('hello');
  t.equal((await c.readResponse()).body.toString(), 'none:hello', 'dyno never sees Expect');

  const u = await exchangeRaw(r.port, 'PUT / HTTP/1.1\r\nHost: a.test\r\nExpect: whatever\r\nContent-Length: 5\r\n\r\nhello');
  t.match(u.text, /^HTTP\/1\.1 417 Expectation Failed\r\n/);
  const log = await r.waitLog((l) => l.code === 'H26');
  t.equal(log.line, 'at=error code=H26 desc="Request Error" cause="unsupported expect header value" method=PUT path="/" host= request_id= fwd="127.0.0.1" dyno= connect= service= status=417 bytes= protocol=http');

  const ten = await exchangeRaw(r.port, 'PUT / HTTP/1.0\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi');
  t.notMatch(ten.text, /100 Continue/, 'no 100 to an HTTP/1.0 client (http_1_0_continue)');
  t.match(ten.text, /none:hi$/);
  c.close();
});

t.test('strict rejections: 400 + close, nothing sent upstream', async (t) => {
  const dyno = await FakeDyno.start(() => okResponse('should not happen'));
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const cases: Array<[string, number]> = [
    ['POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG', 400],
    ['POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400],
    ['POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 5\r\n\r\nhello', 400],
    ['POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n', 400],
    ['POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a.test\r\nX: a\r\n b\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost : a.test\r\n\r\n', 400],
    ['GET / HTTP/1.1\nHost: a.test\n\n', 400],
    ['GET / HTTP/1.1\r\nHost: a.test\r\nX: a\rb\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a.test\r\nX: a\x00b\r\n\r\n', 400],
    ['POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: \r\n\r\n', 400],
    ['CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n', 400],
    ['GET / HTTP/2.0\r\nHost: a.test\r\n\r\n', 505],
    [`GET /${'a'.repeat(10000)} HTTP/1.1\r\nHost: a.test\r\n\r\n`, 414],
  ];
  for (const [raw, status] of cases) {
    const res = await exchangeRaw(r.port, raw);
    t.match(res.text, new RegExp(`^HTTP/1\\.1 ${status} `), `${status} for ${JSON.stringify(raw.slice(0, 70))}`);
    t.match(res.text, /Connection: close\r\n/);
    t.ok(res.closed, 'connection closed');
  }
  // Chunked-body errors are found only after the head went upstream: those requests were cut off
  // at the bad chunk; every other case never reached the dyno.
  const reached = dyno.requests.length;
  t.equal(reached, 0, 'no complete request reached the dyno');
  t.ok(dyno.conns.length <= 2, 'only the two bad-chunk requests opened a dyno connection');
});

t.test('POST never reuses a pooled connection; a stale pooled GET is retried once', async (t) => {
  let n = 0;
  const dyno = await FakeDyno.start((req, conn) => {
    n++;
    // The 3rd request arrives on a connection the dyno "already closed": drop it unanswered.
    if (n === 3) {
      conn.socket.destroy();
      return null;
    }
    return okResponse(req.startLine);
  });
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n');
  await c.readResponse();
  c.write('POST /b HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\nx');
  await c.readResponse();
  t.equal(dyno.conns.length, 2, 'POST opened a fresh connection');
  c.write('GET /c HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const res = await c.readResponse();
  t.equal(res.body.toString(), 'GET /c HTTP/1.1', 'GET replayed on a new connection after the stale one died');
  t.equal(dyno.conns.length, 3);
  c.close();
});

t.test('error pages: HTML by default, JSON when Accept prefers it', async (t) => {
  const r = await startRouter({ down: { hosts: ['down.test'], backends: [] } });
  t.teardown(() => r.close());
  const html = await exchangeRaw(r.port, 'GET / HTTP/1.1\r\nHost: down.test\r\nConnection: close\r\n\r\n');
  t.match(html.text, /^HTTP\/1\.1 503 Service Unavailable\r\nContent-Type: text\/html; charset=utf-8\r\n/);
  t.match(html.text, /<title>Application Error<\/title>/);
  const json = await exchangeRaw(r.port, 'GET / HTTP/1.1\r\nHost: down.test\r\nAccept: application/json, text/html;q=0.5\r\nConnection: close\r\n\r\n');
  t.match(json.text, /Content-Type: application\/json\r\n/);
  const body = JSON.parse(json.text.split('\r\n\r\n')[1]!) as { status: number; code: string };
  t.equal(body.status, 503);
  t.equal(body.code, 'H14');
  const nope = await exchangeRaw(r.port, 'GET / HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n');
  t.match(nope.text, /^HTTP\/1\.1 404 Not Found\r\n/);
});

t.test('response-side limits → 502 H25; malformed → 503 H17; connection never reused', async (t) => {
  const dyno = await FakeDyno.start((req) => {
    const p = req.startLine.split(' ')[1];
    if (p === '/cookie') return `HTTP/1.1 200 OK\r\nSet-Cookie: ${'c'.repeat(9000)}\r\nContent-Length: 0\r\n\r\n`;
    if (p === '/cl') return 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd';
    if (p === '/status') return `HTTP/1.1 200 ${'x'.repeat(9000)}\r\n\r\n`;
    return 'HTTP/1.1 2000 OK\r\n\r\n';
  });
  const r = await startRouter(app(dyno));
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const expect: Array<[string, number, string]> = [
    ['/cookie', 502, 'at=error code=H25 desc="HTTP restriction" cause="HTTP restriction: oversized cookie"'],
    ['/cl', 502, 'at=error code=H25 desc="HTTP restriction" cause="HTTP restriction: invalid content length"'],
    ['/status', 502, 'at=error code=H25 desc="HTTP restriction" cause="HTTP restriction: oversized status line"'],
    ['/bad', 503, 'at=error code=H17 desc="Poorly formatted HTTP response"'],
  ];
  for (const [path, status, prefix] of expect) {
    const res = await exchangeRaw(r.port, `GET ${path} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    t.match(res.text, new RegExp(`^HTTP/1\\.1 ${status} `), path);
    const log = await r.waitLog((l) => l.path === path);
    if (!log.line.startsWith(prefix)) t.comment(log.line);
    t.equal(normalizeLogLine(log.line), `${prefix} method=GET path="${path}" host=a.test request_id=ID fwd="127.0.0.1" dyno=web.1 connect=Nms service=Nms status=${status} bytes=0 protocol=http`);
  }
  await dyno.waitFor(() => dyno.conns.every((c) => c.closed), 2000, 'dyno connections closed');
  t.pass('every dyno connection that misbehaved was closed');
});
