/**
 * Test-side HTTP/1.1 message splitting, deliberately independent of the router's parser: find the
 * head, read its framing headers, and cut one message (Content-Length, chunked, or until close).
 */

export interface RawMessage {
  /** Start line, e.g. "HTTP/1.1 200 OK" or "GET / HTTP/1.1". */
  startLine: string;
  status: number;
  /** Header lines in order, names as received. */
  headers: Array<[string, string]>;
  /** Lower-cased name → values. */
  header(name: string): string | undefined;
  headerAll(name: string): string[];
  /** Decoded body (de-chunked). */
  body: Buffer;
  /** Raw bytes of the whole message. */
  raw: Buffer;
  /** Trailer section text for chunked messages. */
  trailers: string;
}

export interface SplitOptions {
  /** Response to a HEAD request, or a message known to have no body. */
  noBody?: boolean;
  /** Treat a message with no framing as ending at the end of the data (a closed connection). */
  closed?: boolean;
  /** Messages are requests (no body unless framed). */
  request?: boolean;
}

/** Parses the first message in `data`; null if incomplete. */
export function splitMessage(data: Buffer, opts: SplitOptions = {}): { message: RawMessage; rest: Buffer } | null {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = data.subarray(0, headEnd).toString('latin1').split('\r\n');
  const startLine = lines.shift()!;
  const headers = lines.map((l): [string, string] => {
    const c = l.indexOf(':');
    return [l.slice(0, c), l.slice(c + 1).trim()];
  });
  const headerAll = (name: string): string[] => headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  const header = (name: string): string | undefined => headerAll(name)[0];
  const status = opts.request ? 0 : Number(startLine.split(' ')[1]);
  let pos = headEnd + 4;
  let body: Buffer = Buffer.alloc(0);
  let trailers = '';
  const te = header('transfer-encoding');
  const cl = header('content-length');
  const bodiless = opts.noBody || (status >= 100 && status < 200) || status === 204 || status === 304;
  if (bodiless) {
    // nothing
  } else if (te !== undefined && /chunked\s*$/i.test(te)) {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = data.indexOf('\r\n', pos);
      if (lineEnd < 0) return null;
      const size = parseInt(data.subarray(pos, lineEnd).toString('latin1').split(';')[0]!, 16);
      pos = lineEnd + 2;
      if (size === 0) {
        const end = data.indexOf('\r\n\r\n', pos - 2);
        if (end < 0) return null;
        trailers = data.subarray(pos, end + 2).toString('latin1');
        pos = end + 4;
        break;
      }
      if (data.length < pos + size + 2) return null;
      parts.push(data.subarray(pos, pos + size));
      pos += size + 2;
    }
    body = Buffer.concat(parts);
  } else if (cl !== undefined) {
    const n = Number(cl);
    if (data.length < pos + n) return null;
    body = data.subarray(pos, pos + n);
    pos += n;
  } else if (!opts.request) {
    if (!opts.closed) return null;
    body = data.subarray(pos);
    pos = data.length;
  }
  const message: RawMessage = { startLine, status, headers, header, headerAll, body, raw: data.subarray(0, pos), trailers };
  return { message, rest: data.subarray(pos) };
}

/** All complete messages in `data`. */
export function splitAll(data: Buffer, opts: SplitOptions = {}): RawMessage[] {
  const out: RawMessage[] = [];
  let rest = data;
  while (rest.length > 0) {
    const r = splitMessage(rest, opts);
    if (r === null) break;
    out.push(r.message);
    rest = r.rest;
  }
  return out;
}
