/**
 * Issue 12, defect 2: a malformed chunked body found before the client got the response head is
 * answered with the router's error page and logged with its H-code (H17), not relayed as a bare FIN
 * logged `status=200`. Once the head is out, the client connection is cut and the line still says H17.
 */
import * as net from 'node:net';
import t from 'tap';
import { exchangeRaw } from './helpers/client';
import { normalizeLogLine, sleep, startRouter } from './helpers/router';

/** A backend written on `net`: for each request head it writes `parts` in order, `gapMs` apart. */
async function startBackend(parts: string[], gapMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    socket.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      if (!pending.includes('\r\n\r\n')) return;
      pending = '';
      void (async () => {
        for (const [i, p] of parts.entries()) {
          if (i > 0) await sleep(gapMs);
          if (!socket.destroyed) socket.write(p, 'latin1');
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const apps = (port: number) => ({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: `127.0.0.1:${port}` }] } });
const GET = 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n';
const HEAD200 = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

t.test('invalid chunk size right after the head: the client gets the 503 page, the log H17', async (t) => {
  const backend = await startBackend([`${HEAD200}ZZ\r\nhello\r\n`], 0);
  const r = await startRouter(apps(backend.port));
  t.teardown(async () => { await r.close(); await backend.close(); });
  const res = await exchangeRaw(r.port, GET);
  t.match(res.text, /^HTTP\/1\.1 503 Service Unavailable\r\n/, 'the error page, not a bare close');
  t.match(res.text, /Application Error/);
  t.notMatch(res.text, /200 OK/, 'nothing of the dyno\'s head');
  t.ok(res.closed, 'then the connection closes');
  const log = await r.waitLog((l) => l.status !== null);
  t.equal(
    normalizeLogLine(log.line),
    'at=error code=H17 desc="Poorly formatted HTTP response" cause="bad chunk" method=GET path="/" host=a.test request_id=ID fwd="127.0.0.1" dyno=web.1 connect=Nms service=Nms status=503 bytes=0 protocol=http',
  );
  t.equal(r.logs.length, 1, 'one log line');
});

t.test('invalid chunk size after the head went out: the client is cut, the log says H17 with the status sent', async (t) => {
  const backend = await startBackend([HEAD200, 'ZZ\r\nhello\r\n'], 100);
  const r = await startRouter(apps(backend.port));
  t.teardown(async () => { await r.close(); await backend.close(); });
  const res = await exchangeRaw(r.port, GET);
  t.match(res.text, /^HTTP\/1\.1 200 OK\r\n/, 'the head was relayed before the bad chunk came');
  t.notMatch(res.text, /0\r\n\r\n$/, 'no last chunk: the client can tell the body is incomplete');
  t.ok(res.closed, 'cut');
  const log = await r.waitLog((l) => l.status !== null);
  t.match(log.line, /^at=error code=H17 desc="Poorly formatted HTTP response" cause="bad chunk" .* status=200 bytes=\d+ protocol=http$/);
});
