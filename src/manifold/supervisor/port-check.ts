/**
 * "Has the web process bound $PORT?", asked from the host side. A dyno with an address (bridge
 * networking) is probed with a TCP connect to address:PORT; any dyno can be checked without
 * touching the app by reading the LISTEN sockets of its network namespace from
 * /proc/<pid>/net/tcp{,6} (pid = the dyno's PID 1, inside that namespace).
 * Polling backs off from 5 ms to 250 ms: fast for apps that boot fast, cheap for slow ones.
 */
import fs from 'node:fs/promises';
import net from 'node:net';

const LISTEN = '0A';

/** True if a socket in /proc/<pid>/net/tcp or tcp6 listens on `port`. */
export async function listeningInNetns(pid: number, port: number): Promise<boolean> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await fs.readFile(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const local = cols[1] ?? '';
      if (cols[3] === LISTEN && local.endsWith(`:${hex}`)) return true;
    }
  }
  return false;
}

export function connects(address: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port });
    const done = (ok: boolean): void => {
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface PortWait {
  promise: Promise<boolean>;
  cancel(): void;
}

/** Resolves true once bound, false if cancelled. */
export function waitForPort(target: { pid: number; address?: string | undefined }, port: number, opts: { minMs?: number; maxMs?: number } = {}): PortWait {
  let cancelled = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const minMs = opts.minMs ?? 5;
  const maxMs = opts.maxMs ?? 250;
  const promise = (async () => {
    let delay = minMs;
    while (!cancelled) {
      const bound = target.address ? await connects(target.address, port) : await listeningInNetns(target.pid, port);
      if (cancelled) return false;
      if (bound) return true;
      await new Promise<void>((r) => {
        wake = r;
        timer = setTimeout(r, delay);
      });
      delay = Math.min(maxMs, delay * 2);
    }
    return false;
  })();
  return {
    promise,
    cancel: () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
      wake?.();
    },
  };
}
