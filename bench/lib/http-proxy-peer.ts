// node http-proxy peer (run as a script): `node http-proxy-peer.js PORT HOST:PORT[,HOST:PORT...]`.
// Round-robin over the targets, keep-alive agent to the backends.
import http from 'node:http';
import httpProxy from 'http-proxy';

const port = Number(process.argv[2]);
const targets = (process.argv[3] ?? '').split(',').filter(Boolean).map((a) => `http://${a}`);
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ agent });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) {
    res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
});
let next = 0;
const server = http.createServer((req, res) => {
  const target = targets[next++ % targets.length] as string;
  proxy.web(req, res, { target });
});
server.keepAliveTimeout = 3_600_000;
server.headersTimeout = 3_600_000;
server.requestTimeout = 0;
server.listen({ port, host: '127.0.0.1', backlog: 4096 });
