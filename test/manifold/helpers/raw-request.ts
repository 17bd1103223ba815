/**
 * One HTTP request as raw bytes on a fresh loopback connection, for the tests that attack the
 * daemon's own HTTP servers (dashboard, /metrics): nothing between the test and the socket may
 * normalise what is sent. The head is read loosely (status, lower-cased headers); the router's
 * tests split messages strictly with test/router/helpers/raw-http.ts.
 */
import fs from 'node:fs';
import net from 'node:net';

export interface RawResponse {
  /** 0 when no response came. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The connection ended (the server closed it, or answered and closed). */
  closed: boolean;
  /** ms from the request until the connection closed (-1: still open when we stopped waiting). */
  closedAfter: number;
}

/**
 * Sends `request` and resolves with the first response once the connection closes or `waitMs`
 * passes. `keepSending`, when given, is written every 500 ms (a client dripping a body).
 */
export function rawRequest(port: number, request: string, waitMs = 2000, keepSending?: () => string): Promise<RawResponse> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const t0 = Date.now();
    let text = '';
    let done = false;
    const drip = keepSending ? setInterval(() => s.write(keepSending()), 500) : undefined;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(drip);
      s.destroy();
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0), headers, body: rest.join('\r\n\r\n'), closed, closedAfter: closed ? Date.now() - t0 : -1 });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.write(request);
  });
}

/** Open file descriptors of a process (a connection flood shows here). */
export const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;
