/**
 * Router configuration: every limit and timeout is here, with Heroku's values as defaults
 * (docs/router.md#timeouts, docs/router.md#limits). Tests pass short timeouts.
 */
import { DEFAULT_CHUNKED_LIMITS, type ChunkedLimits } from './http1/chunked';
import { DEFAULT_REQUEST_LIMITS, DEFAULT_RESPONSE_LIMITS, type HeadLimits } from './http1/head-parser';
import { RouterError } from './errors';

export type BalanceStrategy = 'round-robin' | 'random' | 'least-outstanding';

export interface ListenSpec {
  host: string;
  port: number;
  /** Value of X-Forwarded-Proto for this listener (TLS is terminated in front of us, if at all). */
  proto?: 'http' | 'https';
}

export interface RouterTimeouts {
  /** Per connection attempt to a dyno (H19). */
  connectMs: number;
  /** From request fully sent to the first response byte (H12). */
  firstByteMs: number;
  /** Rolling idle window once data flows, either direction (H15 / H28). */
  idleMs: number;
  /** How long a request waits for a starting dyno to come up (H20), or for a quarantine to lift. */
  bootQueueMs: number;
  /** Idle keep-alive client connection, or a head that does not finish (→ 408). */
  clientIdleMs: number;
  /** Idle pooled dyno connection; below Node's 5 s server keepAliveTimeout. */
  upstreamIdleMs: number;
  /** How long a dyno that refused or timed out is skipped. */
  quarantineMs: number;
}

export interface RouterLimits {
  request: HeadLimits;
  response: HeadLimits;
  chunked: ChunkedLimits;
  /** Client bytes buffered while a request waits or a response is pending (pipelining); beyond it the client is paused. */
  clientBufferBytes: number;
  /** Connection attempts per request across dynos (Heroku: 10). */
  maxConnectAttempts: number;
  /** Interim (1xx) responses tolerated before the final one. */
  maxInterimResponses: number;
  /** Outstanding requests per up dyno before H11 (Heroku: 200·n). 0 disables. */
  backlogPerDyno: number;
  /** Requests per client connection (0 = unlimited). */
  maxRequestsPerConnection: number;
}

export interface RouterConfig {
  listen: ListenSpec[];
  balance: BalanceStrategy;
  timeouts: RouterTimeouts;
  limits: RouterLimits;
  /** Appended to Via in both directions. */
  via: string;
  /** `protocol=` on log lines. */
  protocol: string;
  /** Keep connections to dynos alive and reuse them. */
  upstreamKeepAlive: boolean;
  /** Idle connections kept per dyno address. */
  maxIdlePerBackend: number;
  /** Sweep period for deadlines; default derived from the shortest timeout. */
  sweepMs: number;
}

export interface RouterConfigInput {
  listen?: ListenSpec[];
  balance?: BalanceStrategy;
  timeouts?: Partial<RouterTimeouts>;
  limits?: Partial<Omit<RouterLimits, 'request' | 'response' | 'chunked'>> & {
    request?: Partial<HeadLimits>;
    response?: Partial<HeadLimits>;
    chunked?: Partial<ChunkedLimits>;
  };
  via?: string;
  protocol?: string;
  upstreamKeepAlive?: boolean;
  maxIdlePerBackend?: number;
  sweepMs?: number;
}

export const DEFAULT_TIMEOUTS: RouterTimeouts = {
  connectMs: 5_000,
  firstByteMs: 30_000,
  idleMs: 55_000,
  bootQueueMs: 75_000,
  clientIdleMs: 60_000,
  upstreamIdleMs: 4_000,
  quarantineMs: 5_000,
};

export function resolveConfig(input: RouterConfigInput = {}): RouterConfig {
  const timeouts: RouterTimeouts = { ...DEFAULT_TIMEOUTS, ...input.timeouts };
  for (const [k, v] of Object.entries(timeouts)) {
    if (!Number.isFinite(v) || v <= 0) throw new RouterError('ECONFIG', `timeout ${k} must be a positive number of ms`);
  }
  const l = input.limits ?? {};
  const limits: RouterLimits = {
    request: { ...DEFAULT_REQUEST_LIMITS, ...l.request },
    response: { ...DEFAULT_RESPONSE_LIMITS, ...l.response },
    chunked: { ...DEFAULT_CHUNKED_LIMITS, ...l.chunked },
    clientBufferBytes: l.clientBufferBytes ?? 64 * 1024,
    maxConnectAttempts: l.maxConnectAttempts ?? 10,
    maxInterimResponses: l.maxInterimResponses ?? 8,
    backlogPerDyno: l.backlogPerDyno ?? 200,
    maxRequestsPerConnection: l.maxRequestsPerConnection ?? 0,
  };
  const shortest = Math.min(...Object.values(timeouts));
  return {
    listen: input.listen ?? [],
    balance: input.balance ?? 'round-robin',
    timeouts,
    limits,
    via: input.via ?? '1.1 vegur',
    protocol: input.protocol ?? 'http',
    upstreamKeepAlive: input.upstreamKeepAlive ?? true,
    maxIdlePerBackend: input.maxIdlePerBackend ?? 256,
    // Deadlines are checked by one sweep; its period bounds how late a timeout fires.
    sweepMs: input.sweepMs ?? Math.max(10, Math.min(1000, Math.floor(shortest / 10))),
  };
}

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000 };
const TIMEOUT_KEYS: Readonly<Record<string, keyof RouterTimeouts>> = {
  connect: 'connectMs',
  'first-byte': 'firstByteMs',
  idle: 'idleMs',
  'boot-queue': 'bootQueueMs',
  'client-idle': 'clientIdleMs',
  'upstream-idle': 'upstreamIdleMs',
  quarantine: 'quarantineMs',
};

/** Parses `connect=5s,first-byte=30s,idle=55s,boot-queue=75s` (units ms, s, m; bare numbers are ms). */
export function parseTimeouts(spec: string): Partial<RouterTimeouts> {
  const out: Partial<RouterTimeouts> = {};
  for (const part of spec.split(',')) {
    if (part.trim() === '') continue;
    const m = /^\s*([a-z-]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*$/.exec(part);
    const key = m ? TIMEOUT_KEYS[m[1]!] : undefined;
    if (!m || key === undefined) throw new RouterError('ECONFIG', `bad timeout "${part}" (expected e.g. first-byte=30s; keys: ${Object.keys(TIMEOUT_KEYS).join(', ')})`);
    out[key] = Number(m[2]) * UNITS[m[3] ?? 'ms']!;
  }
  return out;
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function parseListen(spec: string): ListenSpec {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):([0-9]{1,5})$/.exec(spec);
  if (!m) throw new RouterError('ECONFIG', `bad listen address "${spec}" (expected HOST:PORT)`);
  const port = Number(m[3]);
  if (port > 65535) throw new RouterError('ECONFIG', `bad port in "${spec}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
