// The floor for any proxy built on Node's `net` (run as a script): `node net-floor-peer.js PORT HOST:PORT[,…]`.
// Not a proxy anyone should run: each client connection gets its own upstream connection (opened
// on the client's first bytes, round-robin over the targets) and bytes are forwarded blindly both
// ways with plain backpressure: no parsing, no routing, no headers, no timeouts, no logging. What
// it costs per request, per byte and per connection is what Node's `net` layer (V8, libuv, the
// stream machinery) costs before a router has done any work of its own, so the benchmark prints
// it next to nginx to show which goals a Node router can reach at all.
import net from 'node:net';

const port = Number(process.argv[2]);
const targets = (process.argv[3] ?? '')
  .split(',')
  .filter(Boolean)
  .map((a) => {
    const i = a.lastIndexOf(':');
    return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
  });
let next = 0;

function forward(from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
}

const server = net.createServer({ noDelay: true }, (client) => {
  client.on('error', () => client.destroy());
  client.once('data', (first: Buffer) => {
    const target = targets[next++ % targets.length] as { host: string; port: number };
    const upstream = net.connect({ ...target, noDelay: true });
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.write(first);
    forward(client, upstream);
    forward(upstream, client);
  });
});
server.listen({ port, host: '127.0.0.1', backlog: 4096 });
