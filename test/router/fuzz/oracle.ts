/**
 * The oracle: Node's own HTTP server (llhttp, default options, insecureHTTPParser false) on
 * 127.0.0.1. Each case gets a fresh connection: the client writes the bytes and half-closes; the
 * case is finished when both ends of the connection have closed (no timers decide anything; a
 * watchdog only guards against a hang).
 */
import http from 'node:http';
import net from 'node:net';
import { outcome, type Outcome } from './outcome';

interface CaseState {
  req: http.IncomingMessage | null;
  bodyParts: Buffer[];
  clientError: string | null;
  clientErrorAfterComplete: boolean;
  expectationFailed: boolean;
  connect: boolean;
  upgrade: http.IncomingMessage | null;
  serverClosed: boolean;
  serverSeen: boolean;
  onServerClose: (() => void) | null;
}

function newState(): CaseState {
  return {
    req: null,
    bodyParts: [],
    clientError: null,
    clientErrorAfterComplete: false,
    expectationFailed: false,
    connect: false,
    upgrade: null,
    serverClosed: false,
    serverSeen: false,
    onServerClose: null,
  };
}

export class Oracle {
  private server: http.Server;
  private port = 0;
  private readonly states = new Map<number, CaseState>();
  private readonly portOf = new WeakMap<net.Socket, number>();

  constructor() {
    // Default options on purpose: this is the parser Node users get.
    this.server = http.createServer();
    const s = this.server;
    s.on('connection', (sock: net.Socket) => {
      const port = sock.remotePort ?? -1;
      this.portOf.set(sock, port);
      const st = this.state(port);
      st.serverSeen = true;
      sock.on('close', () => {
        st.serverClosed = true;
        st.onServerClose?.();
      });
    });
    s.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const st = this.state(this.portOf.get(req.socket) ?? -1);
      if (st.req !== null) {
        // a pipelined second message: only the first one is compared
        req.resume();
        req.on('end', () => res.end());
        return;
      }
      st.req = req;
      req.on('data', (d: Buffer) => st.bodyParts.push(d));
      req.on('error', () => undefined);
      req.on('end', () => res.end('ok'));
    });
    s.on('clientError', (err: NodeJS.ErrnoException, sock: net.Socket) => {
      const st = this.state(this.portOf.get(sock) ?? -1);
      if (st.clientError === null) {
        st.clientError = err.code ?? err.message;
        st.clientErrorAfterComplete = st.req !== null && st.req.complete;
      }
      sock.destroy();
    });
    s.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const st = this.state(this.portOf.get(req.socket) ?? -1);
      st.expectationFailed = true;
      res.writeHead(417);
      res.end();
    });
    s.on('connect', (req: http.IncomingMessage, sock: net.Socket) => {
      const st = this.state(this.portOf.get(req.socket) ?? -1);
      st.connect = true;
      sock.destroy();
    });
    s.on('upgrade', (req: http.IncomingMessage, sock: net.Socket) => {
      const st = this.state(this.portOf.get(req.socket) ?? -1);
      st.upgrade = req;
      sock.destroy();
    });
  }

  private state(port: number): CaseState {
    let st = this.states.get(port);
    if (!st) {
      st = newState();
      this.states.set(port, st);
    }
    return st;
  }

  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        const a = this.server.address();
        this.port = typeof a === 'object' && a ? a.port : 0;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }

  /** Send `bytes` on a fresh connection, half-close, and report what llhttp/Node made of them. */
  run(bytes: Buffer, watchdogMs = 10_000): Promise<Outcome> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port: this.port });
      const received: Buffer[] = [];
      let localPort = -1;
      let clientClosed = false;
      let finished = false;
      let watchdog: NodeJS.Timeout | undefined;
      const tryFinish = (): void => {
        if (finished || !clientClosed || localPort < 0) return;
        const st = this.states.get(localPort);
        if (st && st.serverSeen && !st.serverClosed) {
          st.onServerClose = tryFinish;
          return;
        }
        finished = true;
        if (watchdog) clearTimeout(watchdog);
        // let already-queued stream events ('data', 'end') run before reading the state
        setImmediate(() => {
          this.states.delete(localPort);
          resolve(this.decide(st ?? newState(), Buffer.concat(received), false));
        });
      };
      sock.on('connect', () => {
        localPort = sock.localPort ?? -1;
        sock.end(bytes);
      });
      sock.on('data', (d: Buffer) => received.push(d));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        clientClosed = true;
        tryFinish();
      });
      watchdog = setTimeout(() => {
        if (finished) return;
        finished = true;
        sock.destroy();
        const st = this.states.get(localPort) ?? newState();
        this.states.delete(localPort);
        resolve(this.decide(st, Buffer.concat(received), true));
      }, watchdogMs);
    });
  }

  private decide(st: CaseState, response: Buffer, hung: boolean): Outcome {
    if (st.connect) return outcome('connect', 'connect event');
    if (st.upgrade) {
      const { framing, length } = framingOf(st.upgrade);
      return outcome('upgrade', 'upgrade event', framing, length, null);
    }
    const req = st.req;
    if (req) {
      if (req.complete) {
        const { framing, length } = framingOf(req);
        return outcome('accept', st.clientError && st.clientErrorAfterComplete ? `then ${st.clientError} on trailing bytes` : '', framing, length, Buffer.concat(st.bodyParts));
      }
      if (st.clientError === 'HPE_INVALID_EOF_STATE' || st.clientError === null) return outcome('incomplete', `body: ${st.clientError ?? (hung ? 'hung' : 'no error')}`);
      return outcome('reject', `body: ${st.clientError}`);
    }
    if (st.expectationFailed) return outcome('reject', '417 expectation failed');
    if (st.clientError === 'HPE_INVALID_EOF_STATE') return outcome('incomplete', 'head: EOF');
    if (st.clientError) return outcome('reject', st.clientError);
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(response.toString('latin1'));
    if (status) return outcome('reject', `answered ${status[1]} without a request event`);
    return outcome('incomplete', hung ? 'hung' : 'no event');
  }
}

function framingOf(req: http.IncomingMessage): { framing: 'none' | 'length' | 'chunked'; length: number } {
  if (req.headers['transfer-encoding'] !== undefined) return { framing: 'chunked', length: -1 };
  const cl = req.headers['content-length'];
  if (cl !== undefined) return { framing: 'length', length: Number(cl) };
  return { framing: 'none', length: -1 };
}
