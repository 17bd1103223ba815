// Single-process Node `http` hello server (run as a script): `node hello-http.js PORT`.
import http from 'node:http';

const port = Number(process.argv[2]);
const body = Buffer.from('Hello, World!');
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 3_600_000;
server.listen({ port, host: '127.0.0.1', backlog: 4096 });
