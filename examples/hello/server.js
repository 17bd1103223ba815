// A tiny web app for Manifold: answers every request with the name of the dyno that served it.
// Shuts down cleanly on SIGTERM (finishes in-flight requests), as Heroku apps should.
'use strict';
const http = require('node:http');

const port = Number(process.env.PORT || 5000);
const dyno = process.env.DYNO || 'unknown';

const server = http.createServer((req, res) => {
  const body = `Hello from ${dyno}\n`;
  const delay = Number(new URL(req.url, 'http://x').searchParams.get('delay') || 0);
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }, delay);
});
server.keepAliveTimeout = 4000;
server.listen(port, () => console.log(`${dyno} listening on port ${port}`));

process.on('SIGTERM', () => {
  console.log(`${dyno} got SIGTERM, closing`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 10000).unref();
});
