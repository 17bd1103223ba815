/**
 * What the dashboard page shows, as JSON: a state snapshot (apps, formation, dynos, releases) and
 * chart series (per dyno memory, per app traffic), columnar as uPlot takes them. Pure apart from
 * the reads it is given, so it is tested without a daemon.
 */
import type { AppInfo, PsResult, ReleaseInfo } from '../api/protocol';
import type { DynoMetricsSource, TrafficPoint, TrafficSource } from '../metrics/types';

/** The reads a snapshot needs; the Manifold has them (and, in a cluster, answers for every host). */
export interface DashboardModel {
  listApps(): Promise<string[]>;
  info(app: string): Promise<AppInfo>;
  ps(app: string): Promise<PsResult>;
  releases(app: string): Promise<ReleaseInfo[]>;
}

export interface DynoView {
  name: string;
  type: string;
  state: string;
  since: number;
  host: string;
  crashes: number;
  reason: string | null;
  restartAt: number | null;
  size: string;
  release: number;
  oneoff: boolean;
}

export interface AppView {
  name: string;
  url: string;
  release: number;
  formation: AppInfo['formation'];
  dynos: DynoView[];
  /** Newest first, at most RELEASES_SHOWN; each with its author (`by`) when it has one. */
  releases: ReleaseInfo[];
}

export interface StateView {
  now: number;
  apps: AppView[];
}

export const RELEASES_SHOWN = 10;
const HOUR = 3600_000;

export async function stateView(model: DashboardModel, thisHost: string, now = Date.now()): Promise<StateView> {
  const apps: AppView[] = [];
  for (const name of await model.listApps()) {
    try {
      const [info, ps, releases] = await Promise.all([model.info(name), model.ps(name), model.releases(name)]);
      apps.push({
        name,
        url: info.url,
        release: info.release,
        formation: info.formation,
        dynos: ps.dynos.map((d) => ({
          name: d.name,
          type: d.type,
          state: d.state,
          since: d.since,
          host: d.host ?? thisHost,
          crashes: d.crashes,
          reason: d.reason,
          restartAt: d.restartAt,
          size: d.size,
          release: d.release,
          oneoff: d.oneoff,
        })),
        releases: releases.slice(0, RELEASES_SHOWN),
      });
    } catch {
      // destroyed between the list and the reads: it is simply gone from this snapshot
    }
  }
  return { now, apps };
}

/** One dyno's memory chart: seconds, bytes (uPlot's x is seconds). */
export interface MemorySeries {
  app: string;
  dyno: string;
  quota: number;
  source: string;
  t: number[];
  total: number[];
  rss: number[];
}

/** One app's traffic charts on a regular grid of buckets (absent buckets are 0 requests). */
export interface TrafficSeries {
  t: number[];
  /** requests per second */
  rps: number[];
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
  /** errors per bucket, by H-code */
  codes: Record<string, number[]>;
}

export interface MetricsView {
  now: number;
  bucketMs: number | null;
  memory: MemorySeries[];
  traffic: Record<string, TrafficSeries>;
}

export function memorySeries(src: DynoMetricsSource | undefined, now: number): MemorySeries[] {
  if (!src) return [];
  return src.dynos().map((d) => {
    const pts = d.memory.filter((p) => p.t >= now - HOUR);
    return { app: d.app, dyno: d.dyno, quota: d.quota, source: d.source, t: pts.map((p) => p.t / 1000), total: pts.map((p) => p.total), rss: pts.map((p) => p.rss) };
  });
}

/** Buckets onto a full grid from the first bucket of the last hour to now, so gaps read as zero traffic. */
export function trafficSeries(points: TrafficPoint[], bucketMs: number, now: number): TrafficSeries {
  const out: TrafficSeries = { t: [], rps: [], p50: [], p95: [], p99: [], codes: {} };
  const recent = points.filter((p) => p.t >= now - HOUR);
  if (recent.length === 0 || bucketMs <= 0) return out;
  const byT = new Map(recent.map((p) => [p.t, p]));
  const codes = [...new Set(recent.flatMap((p) => Object.keys(p.byCode)))].sort();
  for (const c of codes) out.codes[c] = [];
  const last = Math.max(recent[recent.length - 1]!.t, now - (now % bucketMs));
  for (let t = recent[0]!.t; t <= last; t += bucketMs) {
    const p = byT.get(t);
    out.t.push(t / 1000);
    // the bucket still filling is a rate over its elapsed part, not a dip at the right edge
    const span = Math.min(bucketMs, Math.max(1000, now - t));
    out.rps.push(p ? p.requests / (span / 1000) : 0);
    out.p50.push(p?.p50 ?? null);
    out.p95.push(p?.p95 ?? null);
    out.p99.push(p?.p99 ?? null);
    for (const c of codes) out.codes[c]!.push(p?.byCode[c] ?? 0);
  }
  return out;
}

export function metricsView(apps: string[], memory: DynoMetricsSource | undefined, traffic: TrafficSource | undefined, now = Date.now()): MetricsView {
  const view: MetricsView = { now, bucketMs: traffic?.bucketMs ?? null, memory: memorySeries(memory, now), traffic: {} };
  if (traffic) for (const app of apps) view.traffic[app] = trafficSeries(traffic.traffic(app), traffic.bucketMs, now);
  return view;
}
