/**
 * Issue 12, defect 1: bytes a dyno sends after a body-less response (a late body to HEAD, junk after
 * a 204) must never reach another client through a pooled dyno connection. The backend here is a
 * plain `net` server written in the test, answering the requests of one connection in order.
 */
import * as net from 'node:net';
import t from 'tap';
import { RawClient } from './helpers/client';
import { sleep, startRouter } from './helpers/router';

/** What the backend writes for one request: immediately, then optionally `late` after `lateMs`. */
interface Reply {
  now: string;
  late?: string;
  lateMs?: number;
}

interface Backend {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Request lines received, with the index of the connection they came on. */
  requests: Array<{ line: string; conn: number }>;
  close(): Promise<void>;
}

/**
 * A keep-alive HTTP/1.1 backend that answers each connection's requests strictly one after the
 * other (like most servers): a reply's late part is written before the next request is answered.
 */
async function startBackend(reply: (requestLine: string) => Reply): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const b: Backend = { port: 0, connections: 0, requests: [], close: async () => undefined };
  const server = net.createServer({ noDelay: true }, (socket) => {
    const conn = b.connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    let busy = Promise.resolve();
    socket.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const line = pending.slice(0, pending.indexOf('\r\n'));
        pending = pending.slice(end + 4);
        b.requests.push({ line, conn });
        const r = reply(line);
        busy = busy.then(async () => {
          if (socket.destroyed) return;
          socket.write(r.now, 'latin1');
          if (r.late !== undefined) {
            await sleep(r.lateMs ?? 100);
            if (!socket.destroyed) socket.write(r.late, 'latin1');
          }
        });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  b.port = (server.address() as net.AddressInfo).port;
  b.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return b;
}

const apps = (port: number) => ({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: `127.0.0.1:${port}` }] } });
const EVIL = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL';
const mine = (line: string): string => `HTTP/1.1 200 OK\r\nContent-Length: ${line.length}\r\n\r\n${line}`;

t.test('a late body to HEAD never reaches the next client on a reused dyno connection', async (t) => {
  // The HEAD response announces the 38-byte body it then sends 100 ms late: a valid-looking
  // response, so a client given that connection would take it for its own.
  const backend = await startBackend((line) =>
    line.startsWith('HEAD ')
      ? { now: `HTTP/1.1 200 OK\r\nContent-Length: ${EVIL.length}\r\n\r\n`, late: EVIL, lateMs: 100 }
      : { now: mine(line) },
  );
  const r = await startRouter(apps(backend.port));
  t.teardown(async () => { await r.close(); await backend.close(); });
  const a = await RawClient.connect(r.port);
  const b = await RawClient.connect(r.port);
  a.write('HEAD /a HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const head = await a.readResponse({ noBody: true });
  t.equal(head.status, 200, 'A gets its HEAD response');
  // B asks while the late body is still to come (well within the 100 ms).
  b.write('GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const res = await b.readResponse();
  t.equal(res.body.toString(), 'GET /b HTTP/1.1', 'B gets its own response');
  await sleep(300);
  t.equal(b.unread, '', 'and nothing else');
  t.notMatch(b.received.toString('latin1'), /EVIL/, 'B never sees the late HEAD body');
  t.equal(a.unread, '', 'A gets no body either');
  a.close();
  b.close();
});

t.test('bytes after a body-less response in the same read: that dyno connection is not reused', async (t) => {
  const backend = await startBackend((line) => (line.startsWith('GET /204') ? { now: `HTTP/1.1 204 No Content\r\n\r\n${EVIL}` } : { now: mine(line) }));
  const r = await startRouter(apps(backend.port));
  t.teardown(async () => { await r.close(); await backend.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET /204 HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).status, 204);
  c.write('GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const res = await c.readResponse();
  t.equal(res.body.toString(), 'GET /next HTTP/1.1', 'the next request gets its own response');
  await sleep(100);
  t.equal(c.unread, '', 'and nothing else');
  t.same(backend.requests.map((q) => q.conn), [0, 1], 'the next request went on a new dyno connection');
  c.close();
});

t.test('a clean 204, and a HEAD declaring Content-Length: 0, keep the dyno connection reusable', async (t) => {
  const backend = await startBackend((line) =>
    line.startsWith('GET /204') ? { now: 'HTTP/1.1 204 No Content\r\n\r\n' } : line.startsWith('HEAD ') ? { now: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' } : { now: mine(line) },
  );
  const r = await startRouter(apps(backend.port));
  t.teardown(async () => { await r.close(); await backend.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET /204 HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).status, 204);
  c.write('HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse({ noBody: true })).status, 200);
  c.write('GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'GET /next HTTP/1.1');
  t.same(backend.requests.map((q) => q.conn), [0, 0, 0], 'one dyno connection throughout');
  c.close();
});

t.test('bytes on an idle pooled dyno connection: it is closed, never handed to a request', async (t) => {
  const backend = await startBackend((line) => (line.startsWith('GET /first') ? { now: mine(line), late: 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL', lateMs: 50 } : { now: mine(line) }));
  const r = await startRouter(apps(backend.port));
  t.teardown(async () => { await r.close(); await backend.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'GET /first HTTP/1.1');
  await sleep(150);
  c.write('GET /second HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'GET /second HTTP/1.1');
  await sleep(100);
  t.equal(c.unread, '');
  t.same(backend.requests.map((q) => q.conn), [0, 1], 'the connection that spoke out of turn was dropped');
  c.close();
});
