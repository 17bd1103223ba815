// Benchmark backend on raw `net` (run as a script): `node aux-backend.js PORT [STREAM_MB]`.
//   GET /stream -> STREAM_MB MiB as chunked, 64 KiB chunks, with backpressure
//   GET /poll   -> never answers (long poll held open)
//   anything    -> 200, 13-byte body
// Requests are expected to be bodiless GETs (this is a benchmark peer, not a server).
import net from 'node:net';

const port = Number(process.argv[2]);
const streamMiB = Number(process.argv[3] ?? '1024');
const CHUNK = 64 * 1024;
const PER_WRITE = 16; // 16 framed 64 KiB chunks per write(): fewer syscalls, same wire format
const oneFrame = Buffer.concat([Buffer.from(`${CHUNK.toString(16)}\r\n`), Buffer.alloc(CHUNK, 0x61), Buffer.from('\r\n')]);
const manyFrames = Buffer.concat(Array.from({ length: PER_WRITE }, () => oneFrame));
const HELLO = Buffer.from(
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!',
);
const STREAM_HEAD = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
const LAST = Buffer.from('0\r\n\r\n');
let pending = 0;

function stream(sock: net.Socket, done: () => void): void {
  let left = Math.round((streamMiB * 1024 * 1024) / CHUNK);
  sock.write(STREAM_HEAD);
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, PER_WRITE);
      left -= n;
      const frames = n === PER_WRITE ? manyFrames : manyFrames.subarray(0, n * oneFrame.length);
      if (!sock.write(frames)) {
        sock.once('drain', pump);
        return;
      }
    }
    sock.write(LAST);
    done();
  };
  pump();
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  let busy = false;
  const next = (): void => {
    while (!busy) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      buf = buf.subarray(end + 4);
      const sp = head.indexOf(' ');
      const target = head.slice(sp + 1, head.indexOf(' ', sp + 1));
      if (target.startsWith('/stream')) {
        busy = true;
        stream(sock, () => {
          busy = false;
          next();
        });
      } else if (target.startsWith('/poll')) {
        pending++;
        busy = true; // hold forever
      } else {
        sock.write(HELLO);
      }
    }
  };
  sock.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    next();
  });
  sock.on('error', () => undefined);
  sock.on('close', () => {
    if (busy && pending > 0) pending--;
  });
});
server.maxConnections = 19_000;
server.listen({ port, host: '127.0.0.1', backlog: 4096 });
process.on('SIGUSR2', () => process.stdout.write(`pending=${pending}\n`));
