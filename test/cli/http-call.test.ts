/**
 * The CLI's hand-written HTTP call reads what Node's HTTP server sends: a content-length body, a
 * chunked one, an error status; connection failures keep their errno code.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseAnswer, postJson } from '../../src/cli/http-call';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-http-call-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('answers as the daemon frames them', async (t) => {
  const socketPath = path.join(dir, 'api.sock');
  const seen: { method?: string; url?: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body });
      if (req.url === '/v1/chunked') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"result":');
        setTimeout(() => res.end('[1,2,3]}'), 20); // two chunks, the second later
      } else if (req.url === '/v1/fails') {
        const data = JSON.stringify({ error: { code: 'ENOAPP', message: 'no such app' } });
        res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
        res.end(data);
      } else {
        const data = JSON.stringify({ result: { ok: 'ünïcode' } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
        res.end(data);
      }
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));

  const plain = await postJson(socketPath, '/v1/ps', JSON.stringify({ app: 'démo' }));
  t.equal(plain.status, 200);
  t.same(JSON.parse(plain.body.toString('utf8')), { result: { ok: 'ünïcode' } }, 'content-length body');
  t.same(seen[0], { method: 'POST', url: '/v1/ps', body: '{"app":"démo"}' }, 'the request as sent');

  const chunked = await postJson(socketPath, '/v1/chunked', '{}');
  t.same(JSON.parse(chunked.body.toString('utf8')), { result: [1, 2, 3] }, 'chunked body');

  const failed = await postJson(socketPath, '/v1/fails', '{}');
  t.equal(failed.status, 404);
  t.same(JSON.parse(failed.body.toString('utf8')), { error: { code: 'ENOAPP', message: 'no such app' } });
});

t.test('failures', async (t) => {
  await t.rejects(postJson(path.join(dir, 'nobody-here.sock'), '/v1/ps', '{}'), { code: 'ENOENT' }, 'no socket: ENOENT');
  t.throws(() => parseAnswer(Buffer.from('')), { code: 'EPROTO' }, 'closed before answering');
  t.throws(() => parseAnswer(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')), { code: 'EPROTO' }, 'not HTTP');
  t.same(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing')).body.toString(), '{}', 'content-length bounds the body');
});
