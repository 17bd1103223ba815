/**
 * Shared analysis of a load run around one fault (spec §7 Tier 2, issue 11). A fault is injected at
 * t0 (epoch ms, the clock the load client's records use: client and test run on one machine) and
 * healed at t1. The figures:
 *
 * - in flight at t0 on the faulted host: records with start < t0 < end whose dyno ran on that host
 *   (with `struckAt`, for a fault that takes a while to strike: records overlapping [t0, struckAt]).
 *   A request that got no answer from a dyno carries no dyno name (status 0 from the client's
 *   timeout, or a router H-code page); one of those in flight at t0 is counted as on the faulted
 *   host, so the bound is an upper bound. `failedNotInFlight` is what keeps it honest: a failure
 *   among requests not in flight at t0 can't be blamed on the fault's in-flight loss.
 * - failed: every non-200 record; failedAfterGrace: those started after t0 + graceMs (50 ms).
 * - added latency: p50/p99 of requests started in [t0, t1) minus those started in [t0 - beforeMs, t0).
 * - time to whole: poll `ps --json` through an API host until the process type runs `count` dynos,
 *   all up, one per slot name (no duplicate of a slot on two hosts).
 * - detection: when `hosts/<id>` is deleted (the host's lease expired), from an etcd watch.
 *
 * Used by faults-hosts.test.ts (host faults #1–#4) and the control-plane fault tests (#5–#8).
 */
import type { Etcd3 } from 'etcd3';
import type { LoadRecord } from './load';
import type { HostDaemon } from './cluster-hosts';
import { keys } from '../../../src/cluster/keys';

export interface PsDyno {
  name: string;
  type: string;
  state: string;
  host?: string;
}

/** `ps -a APP --json` through an API host (every host's dynos, with the host each runs on). */
export async function psOf(api: HostDaemon, app: string): Promise<PsDyno[]> {
  const r = await api.cli('ps', '-a', app, '--json');
  if (r.code !== 0) throw new Error(`ps through ${api.host} failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { dynos: PsDyno[] }).dynos;
}

/** Names of the dynos of `ps` that run on `host` (to attribute records to the faulted host). */
export function dynosOn(list: readonly PsDyno[], host: string): Set<string> {
  return new Set(list.filter((d) => d.host === host).map((d) => d.name));
}

export interface FaultWindow {
  /** Fault injected (epoch ms). */
  t0: number;
  /** Fault healed (epoch ms); the latency window ends here. Default: the last record's start. */
  t1?: number;
  /** Dyno names (web.3 …) that ran on the faulted host at t0; empty for a fault on no dyno host. */
  hostDynos: ReadonlySet<string>;
  /**
   * When the fault had fully struck, if later than t0: after a daemon's kill -9, the moment its dynos
   * were all dead (they die by PDEATHSIG, not at once). "In flight" then means in flight on the
   * faulted host at some moment of [t0, struckAt], and the grace counts from struckAt. Default t0.
   */
  struckAt?: number;
  /** Requests started this long after t0 (or struckAt) are "new" requests (default 50 ms). */
  graceMs?: number;
  /** The baseline latency window before t0 (default 5 s). */
  beforeMs?: number;
  /** When the fault was detected (e.g. hosts/<id> deleted): for failedAfterDetection. */
  detectedAt?: number;
}

export interface FaultFigures {
  /** Requests in flight at t0 (any host): at most C (closed loop, C connections). */
  inFlightAll: number;
  /** Requests in flight on the faulted host at t0 (or during [t0, struckAt]; upper bound, see the file comment): the failure bound. */
  inFlight: number;
  total: number;
  failed: number;
  /** Failed requests started after (struckAt ?? t0) + graceMs. */
  failedAfterGrace: number;
  /** Failed requests that were not in flight on the faulted host at t0 (0 when the bound holds for the right reason). */
  failedNotInFlight: number;
  /**
   * Failed requests started more than 500 ms after detectedAt (routers have dropped the faulted
   * host's backends by then); 0 when detectedAt is not given.
   */
  failedAfterDetection: number;
  /** A few failed records, for messages. */
  failedSample: LoadRecord[];
  p50Before: number;
  p99Before: number;
  p50During: number;
  p99During: number;
  /** p50During − p50Before, p99During − p99Before (ms). */
  addedP50: number;
  addedP99: number;
}

/** Nearest-rank percentile of `xs` (ms); 0 for no data. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const ok = (r: LoadRecord): boolean => r.status === 200;
const spans = (r: LoadRecord, t: number): boolean => r.start < t && t < r.end;
const overlaps = (r: LoadRecord, a: number, b: number): boolean => r.start < b && a < r.end;

export function analyzeFault(records: readonly LoadRecord[], w: FaultWindow): FaultFigures {
  const grace = w.graceMs ?? 50;
  const beforeMs = w.beforeMs ?? 5000;
  const t1 = w.t1 ?? Math.max(w.t0, ...records.map((r) => r.start));
  const inFlightAll = records.filter((r) => spans(r, w.t0));
  // a failed request has no dyno (no answer from one): counted for the faulted host, see above
  const onHost = (r: LoadRecord): boolean => (r.dyno !== undefined ? w.hostDynos.has(r.dyno) : !ok(r));
  const struck = Math.max(w.t0, w.struckAt ?? w.t0);
  const inFlight = new Set(records.filter((r) => overlaps(r, w.t0, struck) && onHost(r)));
  const failed = records.filter((r) => !ok(r));
  const lat = (from: number, to: number): number[] => records.filter((r) => r.start >= from && r.start < to).map((r) => r.end - r.start);
  const before = lat(w.t0 - beforeMs, w.t0);
  const during = lat(w.t0, t1);
  const p50Before = percentile(before, 50);
  const p99Before = percentile(before, 99);
  const p50During = percentile(during, 50);
  const p99During = percentile(during, 99);
  return {
    inFlightAll: inFlightAll.length,
    inFlight: inFlight.size,
    total: records.length,
    failed: failed.length,
    failedAfterGrace: failed.filter((r) => r.start > struck + grace).length,
    failedNotInFlight: failed.filter((r) => !inFlight.has(r)).length,
    failedAfterDetection: w.detectedAt === undefined ? 0 : failed.filter((r) => r.start > w.detectedAt! + 500).length,
    failedSample: failed.slice(0, 5),
    p50Before,
    p99Before,
    p50During,
    p99During,
    addedP50: p50During - p50Before,
    addedP99: p99During - p99Before,
  };
}

/** One line for t.comment. */
export function formatFigures(name: string, f: FaultFigures, extra: Record<string, number | string | undefined> = {}): string {
  const parts = [
    `${name}:`,
    ...Object.entries(extra).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v) + 'ms' : (v ?? '-')}`),
    `failed=${f.failed} (after t0+grace ${f.failedAfterGrace}, not in flight ${f.failedNotInFlight}, after detection ${f.failedAfterDetection})`,
    `inFlight@t0=${f.inFlight}/${f.inFlightAll}`,
    `requests=${f.total}`,
    `p50 ${Math.round(f.p50Before)}→${Math.round(f.p50During)}ms`,
    `p99 ${Math.round(f.p99Before)}→${Math.round(f.p99During)}ms`,
  ];
  return parts.join(' ');
}

export interface WholeOptions {
  app: string;
  type: string;
  count: number;
  /** Extra condition on the list (e.g. "no dyno on h3"); default none. */
  also?: (list: PsDyno[]) => boolean;
  timeoutMs?: number;
  intervalMs?: number;
}

/** The formation of `type` is whole: `count` dynos, all up, each slot name once. */
export function isWhole(list: readonly PsDyno[], o: Pick<WholeOptions, 'type' | 'count'>): boolean {
  const of = list.filter((d) => d.type === o.type);
  return of.length === o.count && of.every((d) => d.state === 'up') && new Set(of.map((d) => d.name)).size === o.count;
}

/**
 * Polls ps through `api` until the formation is whole (and `also` holds); resolves with the epoch ms
 * it was first seen so (the caller subtracts its t0), rejects after timeoutMs (default 30 s) with the
 * last list. A failing ps (the API host busy or cut off) counts as "not yet".
 */
export async function waitWhole(api: HostDaemon, o: WholeOptions): Promise<{ at: number; list: PsDyno[] }> {
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  let last: PsDyno[] = [];
  for (;;) {
    try {
      last = await psOf(api, o.app);
      if (isWhole(last, o) && (o.also?.(last) ?? true)) return { at: Date.now(), list: last };
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`formation ${o.app} ${o.type}=${o.count} not whole after ${o.timeoutMs ?? 30_000} ms: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 100));
  }
}

export interface HostWatch {
  /** Epoch ms of each DELETE of hosts/<id> (lease expiry or revoke) and of each PUT creating it again. */
  deletes: number[];
  creates: number[];
  /** Resolves with the epoch ms of the first DELETE at or after `since`. */
  goneAfter(since: number, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

/** Watches hosts/<id> from now on (detection time = first DELETE after t0). */
export async function watchHost(client: Etcd3, hostId: string): Promise<HostWatch> {
  const deletes: number[] = [];
  const creates: number[] = [];
  const key = keys.host(hostId);
  const w = await client.watch().key(key).create();
  w.on('data', (r) => {
    const now = Date.now();
    for (const ev of r.events) {
      if (ev.type === 'Delete') deletes.push(now);
      else if (ev.kv.version === '1') creates.push(now);
    }
  });
  return {
    deletes,
    creates,
    async goneAfter(since, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const d = deletes.find((x) => x >= since);
        if (d !== undefined) return d;
        if (Date.now() > deadline) throw new Error(`${key} not deleted within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      await w.cancel().catch(() => undefined);
    },
  };
}
