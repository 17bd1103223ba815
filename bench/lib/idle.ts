// Idle / long-poll connection memory: open N client connections to a proxy, measure the proxy's
// RSS growth per connection while idle and then with one long-poll request pending on each.
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { rssBytes } from './procstat';
import { sleep } from './procs';

export function fdCount(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      n += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone
    }
  }
  return n;
}

export interface IdleResult {
  connections: number;
  baseRss: number;
  idleRss: number;
  pendingRss: number;
  idlePerConn: number;
  pendingPerConn: number;
  idleFdsSeen: number;
  pendingFdsSeen: number;
  failedConnects: number;
  note: string;
}

/** Wait until the tree holds about `target` fds (a few pooled upstream sockets may be reused). */
async function waitFds(pids: readonly number[], target: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const enough = target - Math.max(16, Math.ceil(target * 0.002));
  let n = fdCount(pids);
  while (n < enough && Date.now() < deadline) {
    await sleep(100);
    n = fdCount(pids);
  }
  return n;
}

/** Sample RSS until two consecutive samples differ by < 1 % (bounded). */
async function settledRss(pids: readonly number[], maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let prev = rssBytes(pids);
  for (;;) {
    await sleep(300);
    const cur = rssBytes(pids);
    if (Math.abs(cur - prev) <= prev * 0.01 || Date.now() > deadline) return cur;
    prev = cur;
  }
}

function connectOne(port: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const onErr = (): void => {
      s.destroy();
      resolve(null);
    };
    s.once('error', onErr);
    s.once('connect', () => {
      s.removeListener('error', onErr);
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}

export async function measureIdle(opts: {
  port: number;
  pids: () => number[];
  connections: number;
  request: Buffer;
  /** number of upstream connections expected per pending request (1 for a proxy) */
  upstreamPerRequest: number;
  timeoutMs: number;
}): Promise<IdleResult> {
  const pids = opts.pids();
  const sockets: net.Socket[] = [];
  let failed = 0;
  const notes: string[] = [];
  try {
    // Warm the proxy (first requests allocate pools, JIT, buffers) before the baseline.
    const baseFds = fdCount(pids);
    const baseRss = await settledRss(pids, 3000);
    const batch = 256;
    for (let i = 0; i < opts.connections; i += batch) {
      const n = Math.min(batch, opts.connections - i);
      const got = await Promise.all(Array.from({ length: n }, () => connectOne(opts.port)));
      for (const s of got) {
        if (s) sockets.push(s);
        else failed++;
      }
    }
    const live = sockets.length;
    const idleFdsSeen = (await waitFds(opts.pids(), baseFds + live, opts.timeoutMs)) - baseFds;
    if (idleFdsSeen < live - 16) notes.push(`idle: proxy holds ${idleFdsSeen} fds for ${live} conns`);
    const idleRss = await settledRss(opts.pids(), 5000);
    for (const s of sockets) s.write(opts.request);
    const pendingFdsSeen =
      (await waitFds(opts.pids(), baseFds + live * (1 + opts.upstreamPerRequest), opts.timeoutMs)) - baseFds;
    if (pendingFdsSeen < live * (1 + opts.upstreamPerRequest) - 16)
      notes.push(`pending: proxy holds ${pendingFdsSeen} fds for ${live} conns`);
    const pendingRss = await settledRss(opts.pids(), 5000);
    const closedEarly = sockets.filter((s) => s.destroyed || s.readableEnded).length;
    if (closedEarly > 0) notes.push(`${closedEarly} connections closed by the proxy`);
    return {
      connections: live,
      baseRss,
      idleRss,
      pendingRss,
      idlePerConn: live > 0 ? (idleRss - baseRss) / live : Number.NaN,
      pendingPerConn: live > 0 ? (pendingRss - baseRss) / live : Number.NaN,
      idleFdsSeen,
      pendingFdsSeen,
      failedConnects: failed,
      note: notes.join('; '),
    };
  } finally {
    for (const s of sockets) s.destroy();
  }
}
