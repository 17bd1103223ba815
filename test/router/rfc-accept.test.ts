/**
 * Issue 12, defect 4: requests the RFCs allow that the router used to refuse or misroute, through
 * real sockets: a Host with a trailing dot, HTTP/1.2 (RFC 9110 §2.5), and a too-long header value
 * answered 431 (RFC 6585 §5) rather than 400.
 */
import t from 'tap';
import { RawClient, exchangeRaw } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';
import { startRouter } from './helpers/router';

type HasTeardown = Pick<typeof t, 'teardown'>;

async function setup(t: HasTeardown) {
  const dyno = await FakeDyno.start((req) => okResponse(`${req.startLine} ${req.header('host') ?? ''}`));
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dyno.address }] } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  return { dyno, r };
}

t.test('Host with a trailing dot routes like the host without it', async (t) => {
  const { r } = await setup(t);
  const c = await RawClient.connect(r.port);
  for (const host of ['a.test.', 'A.TEST.', 'a.test.:8080']) {
    c.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    const res = await c.readResponse();
    t.equal(res.status, 200, `Host: ${host}`);
    t.equal(res.body.toString(), `GET / HTTP/1.1 ${host}`, 'the dyno sees the Host as sent');
  }
  c.close();
  const twoDots = await exchangeRaw(r.port, 'GET / HTTP/1.1\r\nHost: a.test..\r\nConnection: close\r\n\r\n');
  t.match(twoDots.text, /^HTTP\/1\.1 404 /, 'only one root dot is dropped');
});

t.test('HTTP/1.2 is served as HTTP/1.1', async (t) => {
  const { dyno, r } = await setup(t);
  const c = await RawClient.connect(r.port);
  c.write('GET /v HTTP/1.2\r\nHost: a.test\r\n\r\n');
  const res = await c.readResponse();
  t.equal(res.startLine, 'HTTP/1.1 200 OK');
  t.equal(res.body.toString(), 'GET /v HTTP/1.1 a.test', 'forwarded as HTTP/1.1');
  c.write('GET /again HTTP/1.9\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).status, 200, 'keep-alive as for 1.1; any 1.x minor');
  t.equal(dyno.requests.length, 2);
  c.close();
  const v2 = await exchangeRaw(r.port, 'GET / HTTP/2.0\r\nHost: a.test\r\n\r\n');
  t.match(v2.text, /^HTTP\/1\.1 505 /, 'another major version is still 505');
});

t.test('a 9000-byte header value gets 431, and so do too many header lines', async (t) => {
  const { dyno, r } = await setup(t);
  const long = await exchangeRaw(r.port, `GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ${'v'.repeat(9000)}\r\n\r\n`);
  t.match(long.text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  t.ok(long.closed);
  const log = await r.waitLog((l) => l.status === 431);
  t.match(log.line, /^at=error code=H26 desc="Request Error" cause="bad header" .* status=431 /);
  const many = Array.from({ length: 1001 }, (_, i) => `X-${i}: v\r\n`).join('');
  const res = await exchangeRaw(r.port, `GET / HTTP/1.1\r\nHost: a.test\r\n${many}\r\n`);
  t.match(res.text, /^HTTP\/1\.1 431 /, '1001 header lines');
  const name = await exchangeRaw(r.port, `GET / HTTP/1.1\r\nHost: a.test\r\n${'n'.repeat(1001)}: v\r\n\r\n`);
  t.match(name.text, /^HTTP\/1\.1 431 /, 'a 1001-byte header name');
  const line = await exchangeRaw(r.port, `GET /${'p'.repeat(9000)} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  t.match(line.text, /^HTTP\/1\.1 414 /, 'a long request line is still 414');
  t.equal(dyno.requests.length, 0, 'none reached the dyno');
});
