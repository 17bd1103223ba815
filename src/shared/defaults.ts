/**
 * Where a Manifold host keeps things, and the defaults both sides agree on. The CLI reads these
 * without loading the daemon (its store, runtime and router cost more than Node's own start).
 */
import net from 'node:net';

export const DEFAULT_STATE_DIR = '/var/lib/manifold';
export const DEFAULT_SOCKET = '/run/manifold/api.sock';
/** Runtime directory: stack skeleton, scratch, address leases. */
export const DEFAULT_RUN_DIR = '/run/manifold';
/** cgroup v2 subtree of the daemon's dynos. */
export const DEFAULT_CGROUP = 'manifold-daemon';
/** $PORT of every dyno (Heroku sets it for one-off dynos too). */
export const DEFAULT_PORT = 5000;

/** The control socket: --socket, else $MANIFOLD_SOCKET, else the default. */
export function socketPathFrom(explicit?: string): string {
  return explicit ?? process.env.MANIFOLD_SOCKET ?? DEFAULT_SOCKET;
}

/** True if something answers on the socket. */
export function socketAlive(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
