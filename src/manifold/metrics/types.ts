/**
 * What the daemon's observability parts hand each other (issue 13): the runtime-metrics sampler
 * (runtime-metrics.ts) keeps each dyno's recent memory; the router statistics (router-stats.ts) keep
 * each app's recent traffic; Prometheus (prometheus.ts) and the dashboard (../dashboard/) read both.
 * Series are in time order, oldest first, and cover at most the last hour.
 */

/** One memory sample of a dyno, as its `sample#memory_*` line reported it. Bytes. */
export interface MemoryPoint {
  /** ms since epoch */
  t: number;
  total: number;
  rss: number;
  cache: number;
  swap: number;
}

/** A running dyno's latest sample and its history. */
export interface DynoMetrics {
  app: string;
  /** web.1 */
  dyno: string;
  /** The runtime's dyno id (the `dyno=` field of the line). */
  id: string;
  /** The app's R14 quota for this dyno, bytes. */
  quota: number;
  /** Where the samples come from: the dyno's cgroup v2 files, or its processes (/proc) where the memory controller is missing. */
  source: 'cgroup' | 'proc';
  memory: MemoryPoint[];
  load: { t: number; avg1m: number; avg5m: number; avg15m: number } | null;
}

export interface DynoMetricsSource {
  /** Every dyno sampled in the last hour that still runs, of one app or of all. */
  dynos(app?: string): DynoMetrics[];
}

/** One router request as the statistics need it (from the router's log record; no paths, no ids). */
export interface RequestSample {
  app: string;
  /** Status sent to the client; null when none was (client gone). */
  status: number | null;
  /** H-code, or null for a normal request. */
  code: string | null;
  serviceMs: number | null;
  connectMs: number | null;
  bytes: number | null;
}

/** One app's router traffic in one time bucket. */
export interface TrafficPoint {
  /** Bucket start, ms since epoch. */
  t: number;
  requests: number;
  /** Requests by status class: '2xx', '3xx', '4xx', '5xx' (and 'none' when no status was sent). */
  byClass: Record<string, number>;
  /** Requests by H-code (only codes that occurred). */
  byCode: Record<string, number>;
  /** Service time percentiles in ms over the bucket's requests; null when the bucket had none. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface TrafficSource {
  /** Bucket length in ms (the x-step of the dashboard's charts). */
  readonly bucketMs: number;
  /** The app's buckets over the last hour, oldest first (buckets without requests may be absent). */
  traffic(app: string): TrafficPoint[];
}
