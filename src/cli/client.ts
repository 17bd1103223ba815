/**
 * The CLI side of the control API: JSON calls, log tails and attached one-off sessions over the
 * unix socket. A call is one hand-written request (http-call.ts); node:http, which tails and
 * attached sessions use, is loaded only for them.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { FRAME, frame, FrameReader } from '../manifold/api/protocol';
import { ApiError, DaemonUnavailableError, NotPermittedError } from './errors';
import { postJson } from './http-call';

const httpModule = (): typeof import('node:http') => require('node:http') as typeof import('node:http');

function connError(err: NodeJS.ErrnoException, socketPath: string): Error {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
    return new DaemonUnavailableError(`daemon not running (no answer on ${socketPath}; start it with: manifold daemon, or set MANIFOLD_SOCKET / --socket)`);
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') return new NotPermittedError(`not permitted to use ${socketPath} (the control socket is root-only; run as root)`);
  return err;
}

/** A non-200 answer carries {error: {code, message}}: reject with it (or with EPROTO if it does not). */
function rejectWithApiError(res: IncomingMessage, reject: (err: Error) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    try {
      const e = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: { code: string; message: string } }).error;
      reject(new ApiError(e.code, e.message));
    } catch {
      reject(new ApiError('EPROTO', `HTTP ${res.statusCode}`));
    }
  });
}

export class ApiClient {
  constructor(readonly socketPath: string) {}

  async call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    let answer;
    try {
      answer = await postJson(this.socketPath, `/v1/${method}`, JSON.stringify(params));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EPROTO') throw new ApiError('EPROTO', e.message);
      throw connError(e, this.socketPath);
    }
    let parsed: { result?: T; error?: { code: string; message: string } };
    try {
      parsed = JSON.parse(answer.body.toString('utf8')) as typeof parsed;
    } catch {
      throw new ApiError('EPROTO', `bad answer from the daemon (HTTP ${answer.status})`);
    }
    if (parsed.error) throw new ApiError(parsed.error.code, parsed.error.message);
    return parsed.result as T;
  }

  /** Streams log lines (already formatted) until the connection ends; returns a stop function via onStart. */
  tail(params: Record<string, unknown>, onLine: (line: string) => void): Promise<void> {
    const body = JSON.stringify({ ...params, tail: true });
    return new Promise<void>((resolve, reject) => {
      const req = httpModule().request(
        { socketPath: this.socketPath, method: 'POST', path: '/v1/logs', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          if (res.statusCode !== 200) {
            rejectWithApiError(res, reject);
            return;
          }
          let rest = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            rest += c;
            let nl: number;
            while ((nl = rest.indexOf('\n')) >= 0) {
              onLine(JSON.parse(rest.slice(0, nl)) as string);
              rest = rest.slice(nl + 1);
            }
          });
          res.on('end', () => resolve());
          res.on('error', () => resolve());
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(connError(err, this.socketPath)));
      req.end(body);
    });
  }

  /**
   * A call whose answer streams: NDJSON `{progress}` lines (to onProgress), then `{result}` or
   * `{error}`. The deploy uses it to show its copy as it goes.
   */
  callWithProgress<T, P>(method: string, params: Record<string, unknown>, onProgress: (p: P) => void): Promise<T> {
    const body = JSON.stringify({ ...params, progress: true });
    return new Promise<T>((resolve, reject) => {
      const req = httpModule().request(
        { socketPath: this.socketPath, method: 'POST', path: `/v1/${method}`, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          if (res.statusCode !== 200) {
            rejectWithApiError(res, reject);
            return;
          }
          let rest = '';
          let settled = false;
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            rest += c;
            let nl: number;
            while ((nl = rest.indexOf('\n')) >= 0) {
              const line = rest.slice(0, nl);
              rest = rest.slice(nl + 1);
              let msg: { progress?: P; result?: T; error?: { code: string; message: string } };
              try {
                msg = JSON.parse(line) as typeof msg;
              } catch {
                settled = true;
                reject(new ApiError('EPROTO', 'bad answer from the daemon'));
                return;
              }
              if (msg.progress !== undefined) onProgress(msg.progress);
              else if (msg.error) {
                settled = true;
                reject(new ApiError(msg.error.code, msg.error.message));
              } else if ('result' in msg) {
                settled = true;
                resolve(msg.result as T);
              }
            }
          });
          res.on('end', () => {
            if (!settled) reject(new ApiError('EPROTO', 'the daemon ended the answer early'));
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(connError(err, this.socketPath)));
      req.end(body);
    });
  }

  /** Opens an attached one-off session; resolves with the exit status. */
  attach(
    params: { app: string; command: string; tty?: { cols: number; rows: number; term: string } },
    io: {
      stdin: NodeJS.ReadableStream;
      stdout: NodeJS.WritableStream;
      stderr: NodeJS.WritableStream;
      onStarted?: (name: string) => void;
      /** Terminal mode: called with a function that sends a new window size. */
      onResizer?: (send: (cols: number, rows: number) => void) => void;
    },
  ): Promise<{ status: number; signal: string | null }> {
    return new Promise((resolve, reject) => {
      const req = httpModule().request({
        socketPath: this.socketPath,
        method: 'POST',
        path: '/v1/run',
        headers: { connection: 'upgrade', upgrade: 'manifold-attach', 'x-manifold-params': Buffer.from(JSON.stringify(params)).toString('base64') },
      });
      req.on('error', (err: NodeJS.ErrnoException) => reject(connError(err, this.socketPath)));
      req.on('response', (res) => rejectWithApiError(res, reject));
      req.on('upgrade', (_res: IncomingMessage, socket: Duplex, head: Buffer) => {
        let done = false;
        const onData = (d: Buffer | string): void => {
          socket.write(frame(FRAME.STDIN, typeof d === 'string' ? Buffer.from(d) : d));
        };
        const onEnd = (): void => {
          socket.write(frame(FRAME.STDIN_EOF));
        };
        io.onResizer?.((cols, rows) => socket.write(frame(FRAME.RESIZE, JSON.stringify({ cols, rows }))));
        const reader = new FrameReader((type, payload) => {
          if (type === FRAME.STDOUT) io.stdout.write(payload);
          else if (type === FRAME.STDERR) io.stderr.write(payload);
          else if (type === FRAME.STARTED) io.onStarted?.((JSON.parse(payload.toString('utf8')) as { name: string }).name);
          else if (type === FRAME.ERROR) {
            done = true;
            cleanup();
            reject(new ApiError('ERUN', payload.toString('utf8')));
          } else if (type === FRAME.EXIT) {
            done = true;
            cleanup();
            const s = JSON.parse(payload.toString('utf8')) as { status: number; signal: string | null };
            resolve({ status: s.status, signal: s.signal });
          }
        });
        const cleanup = (): void => {
          io.stdin.removeListener('data', onData);
          io.stdin.removeListener('end', onEnd);
          io.stdin.pause();
        };
        if (head.length) reader.push(head);
        socket.on('data', (d: Buffer) => reader.push(d));
        socket.on('close', () => {
          if (!done) {
            cleanup();
            reject(new ApiError('ERUN', 'connection to the daemon lost'));
          }
        });
        socket.on('error', () => undefined);
        io.stdin.on('data', onData);
        io.stdin.on('end', onEnd);
        io.stdin.resume();
      });
      req.end();
    });
  }

  /** Sends a stop request for an attached session (Ctrl-C). */
  static interruptFrame(): Buffer {
    return frame(FRAME.SIGNAL, 'SIGTERM');
  }
}
