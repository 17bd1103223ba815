/**
 * The dashboard's access rules (docs/dashboard.md#access): one random token per daemon start, in a
 * root-only file; a browser shows it once (`/?token=T`) and gets it back as an HttpOnly,
 * SameSite=Strict cookie, so the token leaves the address bar and no other site can send it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const COOKIE_NAME = 'manifold_dashboard';
export const TOKEN_FILE = 'dashboard.token';

/** 32 random bytes, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Writes the token where only root can read it. The file is created anew (O_EXCL after an unlink),
 * so a link planted at the path is replaced, never followed.
 */
export function writeTokenFile(dir: string, token: string): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, TOKEN_FILE);
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${token}\n`);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/**
 * Constant-time equality of a presented token and the real one: both are hashed first, so the
 * compare never depends on the presented length either.
 */
export function tokenMatches(presented: string | undefined, token: string): boolean {
  if (presented === undefined || presented === '') return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** The value of one cookie in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(token: string): string {
  return `${COOKIE_NAME}=${token}; Path=/; HttpOnly; SameSite=Strict`;
}

export interface DashboardListen {
  host: string;
  port: number;
}

/** `HOST:PORT` or `[V6]:PORT`; a non-loopback host only with `allowPublic` (--dashboard-public). */
export function parseDashboardListen(spec: string, allowPublic: boolean): DashboardListen {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:]+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`invalid --dashboard '${spec}' (HOST:PORT, e.g. 127.0.0.1:7000)`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`invalid --dashboard port ${port}`);
  if (!allowPublic && !isLoopback(host)) {
    throw new Error(`--dashboard ${spec} is not a loopback address; the dashboard shows every app's logs: add --dashboard-public to serve it there anyway`);
  }
  return { host, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

/**
 * A request target in origin form (`/path?query`): the only form a browser sends to a server it is
 * not using as a proxy. `//host/…`, `http://host/…` and `*` name a host, which URL would read as one.
 */
export function originForm(target: string | undefined): boolean {
  return target !== undefined && target.startsWith('/') && !target.startsWith('//');
}

/**
 * Whether a Host header names this server as a loopback one: `localhost`, a loopback IP, or the
 * listen host, any port (an ssh tunnel may use another one). A page of another site that rebinds
 * its name to 127.0.0.1 sends its own name and is refused (DNS rebinding).
 */
export function hostAllowed(header: string | undefined, listenHost: string): boolean {
  if (header === undefined || header === '') return false;
  let name: string;
  try {
    name = new URL(`http://${header}`).hostname;
  } catch {
    return false;
  }
  // URL keeps an IPv6 literal in brackets and lowercases names
  const bare = name.startsWith('[') ? name.slice(1, -1) : name;
  return isLoopback(bare) || bare === listenHost.toLowerCase();
}
