/**
 * One HTTP/1.1 POST over the daemon's unix socket, written and read by hand. A client command makes
 * exactly one such call, and loading node:http (agent, parser, streams of messages) cost a CLI run
 * more than the call itself; node:net is loaded anyway. `Connection: close`: the answer ends where
 * the connection does, whatever framing the server chose (content-length or chunked).
 */
import net from 'node:net';

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** The response's status and body, or an Error with code EPROTO when it is not HTTP/1.x. */
export function parseAnswer(raw: Buffer): HttpAnswer {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0) throw protocolError('the daemon closed the connection before answering');
  const [statusLine = '', ...headerLines] = raw.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] ([0-9]{3})/.exec(statusLine);
  if (!status) throw protocolError(`bad answer from the daemon: ${statusLine.slice(0, 80)}`);
  const headers = new Map(headerLines.map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  let body = raw.subarray(headEnd + 4);
  if (/\bchunked\b/i.test(headers.get('transfer-encoding') ?? '')) body = dechunk(body);
  else if (headers.has('content-length')) body = body.subarray(0, Number(headers.get('content-length')));
  return { status: Number(status[1]), body };
}

/** Joins the chunks of a chunked body (trailers ignored). */
function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) throw protocolError('truncated chunked answer from the daemon');
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size)) throw protocolError('bad chunk in the answer from the daemon');
    if (size === 0) return Buffer.concat(parts);
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

function protocolError(message: string): Error {
  return Object.assign(new Error(message), { code: 'EPROTO' });
}

/** POSTs a JSON body to path on the unix socket; connection errors reject with their errno code. */
export function postJson(socketPath: string, path: string, json: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(json);
    const head = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const chunks: Buffer[] = [];
    // write, not end: a half-closed request may lose its answer; the server closes after answering
    const socket = net.connect(socketPath, () => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body])));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        resolve(parseAnswer(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    });
  });
}
