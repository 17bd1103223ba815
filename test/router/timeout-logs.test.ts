/**
 * Issue 12, defect 3: the two timeouts that used to close connections without a log line. A
 * request head not finished in time gets a 408 and an H28 line with status=408; a WebSocket tunnel
 * idle for the idle window is closed with an H15 line (status=101, the status the client had).
 */
import * as net from 'node:net';
import t from 'tap';
import { RawClient, exchangeRaw } from './helpers/client';
import { normalizeLogLine, startRouter } from './helpers/router';

const apps = (address: string) => ({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address }] } });

t.test('slow request head: 408, and a log line saying so', async (t) => {
  const r = await startRouter(apps('127.0.0.1:1'), { timeouts: { clientIdleMs: 300 } });
  t.teardown(() => r.close());
  const res = await exchangeRaw(r.port, 'GET /slow HTTP/1.1\r\nHost: a.te');
  t.match(res.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.ok(res.closed);
  const log = await r.waitLog((l) => l.status === 408);
  t.equal(
    normalizeLogLine(log.line),
    'sock=client at=warning code=H28 desc="Client Connection Idle" method=GET path="/slow" host= request_id= fwd="127.0.0.1" dyno= connect= service= status=408 bytes= protocol=http',
  );
  t.equal(r.logs.length, 1, 'exactly one line');

  // Not even a request line: the line has no method or path.
  const res2 = await exchangeRaw(r.port, 'GET /no-end-of-line');
  t.match(res2.text, /^HTTP\/1\.1 408 /);
  await r.waitLog((l) => l.status === 408 && l.path === '');
  t.equal(r.logs.length, 2);
});

t.test('an idle keep-alive client connection is still closed silently', async (t) => {
  const r = await startRouter(apps('127.0.0.1:1'), { timeouts: { clientIdleMs: 200 } });
  t.teardown(() => r.close());
  const c = await RawClient.connect(r.port);
  await c.waitClose(3000);
  t.equal(c.received.length, 0, 'no 408 to a client that sent nothing');
  t.equal(r.logs.length, 0, 'and no log line');
});

t.test('WebSocket closed by the idle timeout: an H15 line', async (t) => {
  // A backend on `net` that accepts the upgrade, echoes once, then says nothing.
  const backend = net.createServer((s) => {
    s.on('error', () => undefined);
    let upgraded = false;
    s.on('data', (d) => {
      if (!upgraded) {
        upgraded = true;
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        return;
      }
      s.write(d);
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const r = await startRouter(apps(`127.0.0.1:${(backend.address() as net.AddressInfo).port}`), { timeouts: { idleMs: 300 } });
  t.teardown(async () => {
    await r.close();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });
  const c = await RawClient.connect(r.port);
  c.write('GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  await c.waitFor(() => c.received.includes('\r\n\r\n'), 3000, '101');
  t.match(c.received.toString('latin1'), /^HTTP\/1\.1 101 /);
  const headBytes = c.received.length;
  c.write('ping');
  await c.waitFor(() => c.received.length === headBytes + 4, 3000, 'echo');
  const started = Date.now();
  await c.waitClose(3000);
  t.ok(Date.now() - started >= 250, 'closed by the idle timeout');
  const log = await r.waitLog((l) => l.code !== null);
  t.equal(
    normalizeLogLine(log.line),
    `at=error code=H15 desc="Idle connection" method=GET path="/chat" host=a.test request_id=ID fwd="127.0.0.1" dyno=web.1 connect=Nms service=Nms status=101 bytes=${headBytes + 4} protocol=http`,
  );
  t.same(r.logs.map((l) => l.code), [null, 'H15'], 'the upgrade line, then the idle close');
  c.close();
});
