/**
 * Upgrades: a WebSocket echo through the router (the ws package on both ends), tunnelling only
 * after a 101, and an upgrade the dyno refuses staying plain HTTP (no WebSocket smuggling).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { RawClient } from './helpers/client';
import { FakeDyno } from './helpers/fake-dyno';
import { startRouter } from './helpers/router';

t.test('WebSocket echo through the router', async (t) => {
  const backend = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server: backend });
  const seenHeaders: http.IncomingHttpHeaders[] = [];
  wss.on('connection', (ws, req) => {
    seenHeaders.push(req.headers);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const r = await startRouter({ ws: { hosts: ['ws.test'], backends: [{ dyno: 'web.1', address }] } }, { timeouts: { idleMs: 2000 } });
  t.teardown(async () => {
    await r.close();
    wss.close();
    backend.close();
  });

  const ws = new WebSocket(`ws://127.0.0.1:${r.port}/chat`, { headers: { Host: 'ws.test' } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const replies: Array<Buffer | string> = [];
  ws.on('message', (d, isBinary) => replies.push(isBinary ? Buffer.from(d as Buffer) : d.toString()));
  const big = Buffer.alloc(1024 * 1024, 7);
  ws.send('hello');
  ws.send(big);
  for (let i = 0; i < 50; i++) ws.send(`msg ${i}`);
  const deadline = Date.now() + 5000;
  while (replies.length < 52 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
  t.equal(replies.length, 52, 'every message echoed');
  t.equal(replies[0], 'hello');
  t.ok(Buffer.isBuffer(replies[1]) && (replies[1] as Buffer).equals(big), '1 MiB binary frame intact');
  t.equal(replies[51], 'msg 49', 'order kept');
  t.equal(seenHeaders[0]!.upgrade, 'websocket');
  t.match(String(seenHeaders[0]!.connection), /upgrade/i);
  t.equal(seenHeaders[0]!['x-forwarded-for'], '127.0.0.1');
  const log = await r.waitLog((l) => l.status === 101);
  t.match(log.line, /^at=info method=GET path="\/chat" host=ws\.test .* dyno=web\.1 .* status=101 /);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(1000, 'bye');
  t.equal(await closed, 1000, 'close handshake passes through');
});

t.test('upgrade refused by the dyno stays HTTP: later bytes are parsed as requests', async (t) => {
  const dyno = await FakeDyno.start((req) =>
    req.startLine.startsWith('GET /ws') ? 'HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  );
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dyno.address }] } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 1337\r\n\r\n');
  t.equal((await c.readResponse()).status, 426);
  // A smuggling attempt: pretend the tunnel is open and talk to the dyno directly.
  c.write('GET /internal HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).status, 200);
  t.equal(dyno.requests.length, 2, 'the second request was parsed and routed like any other');
  t.equal(dyno.requests[0]!.header('upgrade'), 'websocket');
  t.equal(dyno.requests[0]!.header('connection'), 'Upgrade');
  c.close();
});

t.test('raw 101 tunnel: bytes after the 101 head pass both ways untouched', async (t) => {
  const dyno = await FakeDyno.start((_req, conn) => {
    conn.socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nWELCOME');
    conn.socket.on('data', (d: Buffer) => {
      if (!d.toString().includes('HTTP/1.1')) conn.socket.write(Buffer.concat([Buffer.from('echo:'), d]));
    });
    return null;
  });
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: dyno.address }] } });
  t.teardown(async () => { await r.close(); await dyno.close(); });
  const c = await RawClient.connect(r.port);
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n');
  await c.waitFor(() => c.received.toString().endsWith('WELCOME'));
  t.match(c.received.toString(), /^HTTP\/1\.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nVia: 1\.1 vegur\r\n\r\nWELCOME$/);
  c.write('\x00\xffnot http at all\r\n\r\n');
  await c.waitFor(() => c.received.toString('latin1').endsWith('echo:\x00\xffnot http at all\r\n\r\n'));
  t.pass('raw bytes echoed through the tunnel');
  dyno.conns[0]!.socket.end();
  await c.waitClose();
  t.pass('dyno closing closes the client');
});
