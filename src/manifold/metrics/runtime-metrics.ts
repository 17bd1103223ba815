/**
 * Heroku's log-runtime-metrics (docs/metrics.md#runtime-metrics): every running dyno's memory and
 * load, written into its app's log as `manifold[web.1]: source=web.1 dyno=… sample#…` every 20 s
 * (per app: `runtimeMetricsIntervalMs`; `runtimeMetrics: false`, i.e. `labs:disable
 * runtime-metrics`, stops the lines). The last hour of samples is kept for Prometheus and the
 * dashboard (DynoMetricsSource), whether the lines are on or not: the switch is about the log.
 *
 * One timer: each tick lists the supervisor's running dynos, counts each one's runnable threads
 * every LOAD_SAMPLE_MS (the load average needs a steady sample rate, the lines do not), and samples
 * memory for the dynos whose interval is due. Fallbacks a sample needed (no memory controller, no
 * swap accounting, pages from /proc/PID/io) are said once in the daemon's own log, never silently.
 */
import type { AppSettings } from '../store/store';
import { countRunnable, formatLoadLine, formatMemoryLine, MetricsError, sampleMemory, type SampleNote, type SampleSource } from './dyno-sample';
import { dampLoad, LOAD_SAMPLE_MS, ZERO_LOAD, type LoadAverage } from './load-average';
import type { DynoMetrics, DynoMetricsSource, MemoryPoint } from './types';

/** Heroku's cadence: "approximately once every 20 seconds". */
export const DEFAULT_RUNTIME_METRICS_INTERVAL_MS = 20_000;
const HOUR_MS = 3_600_000;

/** A running dyno as the supervisor lists it (Supervisor.runningDynos). */
export interface SampledDyno {
  app: string;
  name: string;
  id: string;
  cgroupDir: string | undefined;
  quota: number;
  settings: AppSettings;
}

export interface RuntimeMetricsOptions {
  dynos: { runningDynos(): SampledDyno[] };
  /** The app log: lines go in as `manifold[web.1]`. */
  logs: { push(app: string, source: 'manifold', dyno: string, message: string): void };
  /** The daemon's own log (fallback notices, unexpected read errors). */
  log: (line: string) => void;
  /** Default interval of the lines, for apps without runtimeMetricsIntervalMs. */
  intervalMs?: number;
  /** How often the runnable threads are counted (default the kernel's 5 s). */
  loadSampleMs?: number;
  now?: () => number;
}

interface Tracked {
  app: string;
  name: string;
  id: string;
  quota: number;
  source: SampleSource;
  memory: MemoryPoint[];
  load: LoadAverage;
  loadPoint: DynoMetrics['load'];
  lastLoad: number;
  lastMemory: number;
}

const NOTES: Record<SampleNote, string> = {
  'no-memory-controller':
    "runtime metrics: this host's cgroup v2 has no memory controller; dyno memory samples come from the dyno's processes instead (/proc/PID/status: RssAnon as rss, RssFile + RssShmem as cache, VmSwap as swap; pages shared between processes count once per process)",
  'no-swap-accounting': 'runtime metrics: cgroup v2 has no memory.swap.current here (swap accounting off); memory_swap is the dyno processes\' VmSwap',
  'pgpg-from-proc-io':
    "runtime metrics: cgroup v2's memory.stat has no pgpgin/pgpgout; memory_pgpgin/pgpgout are the pages the dyno's processes read from and wrote to storage (/proc/PID/io read_bytes, write_bytes)",
};

export class RuntimeMetrics implements DynoMetricsSource {
  private readonly tracked = new Map<string, Tracked>();
  private readonly said = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  private readonly loadSampleMs: number;
  private readonly tickMs: number;
  private readonly now: () => number;

  constructor(private readonly o: RuntimeMetricsOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_RUNTIME_METRICS_INTERVAL_MS;
    this.loadSampleMs = o.loadSampleMs ?? LOAD_SAMPLE_MS;
    // intervals go down to 1 s; a tick of at most a second keeps each within half a tick of its due time
    this.tickMs = Math.min(1000, this.loadSampleMs, this.intervalMs);
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    // sampling must never keep a stopping daemon alive
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.tracked.clear();
  }

  /** One round: load for every dyno due, memory (and the lines) for every dyno due. */
  tick(): void {
    const now = this.now();
    const running = this.o.dynos.runningDynos();
    const live = new Set<string>();
    // due within half a tick: timers slip by a few ms and must not skip a whole tick
    const slack = this.tickMs / 2;
    for (const d of running) {
      if (d.cgroupDir === undefined) continue;
      live.add(d.id);
      let t = this.tracked.get(d.id);
      if (!t) {
        t = { app: d.app, name: d.name, id: d.id, quota: d.quota, source: 'cgroup', memory: [], load: ZERO_LOAD, loadPoint: null, lastLoad: now, lastMemory: now };
        this.tracked.set(d.id, t);
        continue;
      }
      t.quota = d.quota;
      try {
        if (now - t.lastLoad >= this.loadSampleMs - slack) {
          t.load = dampLoad(t.load, countRunnable(d.cgroupDir), now - t.lastLoad);
          t.lastLoad = now;
          t.loadPoint = { t: now, ...t.load };
        }
        const interval = d.settings.runtimeMetricsIntervalMs ?? this.intervalMs;
        if (now - t.lastMemory >= interval - slack) {
          t.lastMemory = now;
          this.sampleMemory(t, d, now);
        }
      } catch (err) {
        // the dyno ended between the listing and the read (ENOCGROUP, ENOPROCS): it simply has no more samples
        if (err instanceof MetricsError) live.delete(d.id);
        else this.once(`error:${(err as NodeJS.ErrnoException).code ?? String(err)}`, `runtime metrics: sampling ${d.app} ${d.name} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const id of this.tracked.keys()) if (!live.has(id)) this.tracked.delete(id);
  }

  private sampleMemory(t: Tracked, d: SampledDyno, now: number): void {
    const s = sampleMemory(d.cgroupDir!);
    for (const note of s.notes) this.once(note, NOTES[note]);
    t.source = s.source;
    const m = s.memory;
    t.memory.push({ t: now, total: m.total, rss: m.rss, cache: m.cache, swap: m.swap });
    let old = 0;
    while (old < t.memory.length && t.memory[old]!.t < now - HOUR_MS) old++;
    if (old > 0) t.memory.splice(0, old);
    if (d.settings.runtimeMetrics === false) return;
    // Heroku's order: the load line, then the memory line
    this.o.logs.push(d.app, 'manifold', d.name, formatLoadLine(d.name, d.id, t.load));
    this.o.logs.push(d.app, 'manifold', d.name, formatMemoryLine(d.name, d.id, m, d.quota));
  }

  private once(key: string, line: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.o.log(line);
  }

  dynos(app?: string): DynoMetrics[] {
    const out: DynoMetrics[] = [];
    for (const t of this.tracked.values()) {
      if (app !== undefined && t.app !== app) continue;
      if (t.memory.length === 0 && t.loadPoint === null) continue;
      out.push({ app: t.app, dyno: t.name, id: t.id, quota: t.quota, source: t.source, memory: t.memory.slice(), load: t.loadPoint });
    }
    return out;
  }
}
