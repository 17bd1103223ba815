/**
 * `--stop-after-disconnect DURATION` (spec §5; Nomad's `stop_on_client_after`): opt-in, for process
 * types that must never run twice. An agent with no successful etcd round-trip for DURATION
 * continuously is presumed cut off (the scheduler has replaced its slots elsewhere by now), so it
 * stops its dynos; once etcd answers again it resumes and its assignments bring back whatever is
 * still assigned to it.
 *
 * The guard only measures: every `intervalMs` it runs one cheap probe (a Get), and calls `onCutOff`
 * once the last success is `afterMs` old, then `onReconnected` at the first success after that.
 * Off by default because a quorum loss that the leases survive would stop every host's dynos.
 * Time and timers are injected so the logic is tested without waiting.
 */

export interface GuardTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface DisconnectGuardOptions {
  /** Silence (no successful probe) after which the dynos stop. */
  afterMs: number;
  /** One etcd round-trip; resolves on an answer, rejects (or hangs) otherwise. */
  probe: () => Promise<unknown>;
  /** Called once per cut-off, when the silence reaches `afterMs`. */
  onCutOff: (silentMs: number) => void | Promise<void>;
  /** Called at the first successful probe after a cut-off. */
  onReconnected: (downMs: number) => void | Promise<void>;
  log?: (line: string) => void;
  /** Probe period (default: afterMs / 4, between 100 ms and 1 s). */
  intervalMs?: number;
  /** A probe unanswered this long counts as failed (default: min(2 s, afterMs / 2)). */
  probeTimeoutMs?: number;
  timers?: GuardTimers;
}

const REAL_TIMERS: GuardTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class DisconnectGuard {
  private readonly timers: GuardTimers;
  private readonly intervalMs: number;
  private readonly probeTimeoutMs: number;
  private lastOk = 0;
  private cutAt = 0;
  private running = false;
  private probing = false;
  private next: unknown = undefined;
  /** True between a cut-off and the next successful probe. */
  cutOff = false;

  constructor(private readonly o: DisconnectGuardOptions) {
    if (!(o.afterMs > 0)) throw new RangeError('afterMs must be positive');
    this.timers = o.timers ?? REAL_TIMERS;
    this.intervalMs = o.intervalMs ?? Math.min(1000, Math.max(100, Math.floor(o.afterMs / 4)));
    this.probeTimeoutMs = o.probeTimeoutMs ?? Math.min(2000, Math.max(50, Math.floor(o.afterMs / 2)));
  }

  /** Starts probing; the silence is measured from now. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.lastOk = this.timers.now();
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.next !== undefined) this.timers.clearTimeout(this.next);
    this.next = undefined;
  }

  /** Milliseconds since the last successful probe. */
  silentMs(): number {
    return this.timers.now() - this.lastOk;
  }

  private schedule(): void {
    if (!this.running) return;
    this.next = this.timers.setTimeout(() => {
      this.next = undefined;
      // ticks keep their pace while a probe hangs (it is not re-sent, but the silence is checked)
      this.schedule();
      void this.tick();
    }, this.intervalMs);
  }

  /** One probe (unless one is still out) and a check of the silence; exposed for tests. */
  async tick(): Promise<void> {
    if (!this.running) return;
    if (this.probing) {
      await this.check();
      return;
    }
    this.probing = true;
    let ok = false;
    try {
      ok = await this.probeWithin();
    } finally {
      this.probing = false;
    }
    if (!this.running) return;
    if (ok) {
      const now = this.timers.now();
      const silent = now - this.lastOk;
      this.lastOk = now;
      if (this.cutOff) {
        this.cutOff = false;
        this.o.log?.(`etcd answers again after ${Math.round(silent / 100) / 10} s of silence: resuming this host's assigned dynos`);
        await this.call(() => this.o.onReconnected(now - this.cutAt));
      }
      return;
    }
    await this.check();
  }

  private async check(): Promise<void> {
    if (!this.running || this.cutOff) return;
    const silent = this.silentMs();
    if (silent < this.o.afterMs) return;
    this.cutOff = true;
    this.cutAt = this.timers.now();
    this.o.log?.(`no answer from etcd for ${Math.round(silent / 100) / 10} s (--stop-after-disconnect ${this.o.afterMs / 1000}s): stopping this host's dynos`);
    await this.call(() => this.o.onCutOff(silent));
  }

  /** Resolves true on an answer within probeTimeoutMs, false on an error or no answer. */
  private probeWithin(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const timer = this.timers.setTimeout(() => {
        if (settled) return;
        settled = true;
        resolve(false);
      }, this.probeTimeoutMs);
      let p: Promise<unknown>;
      try {
        p = Promise.resolve(this.o.probe());
      } catch {
        p = Promise.reject(new Error('probe threw'));
      }
      p.then(
        () => true,
        () => false,
      ).then((ok) => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timer);
        resolve(ok);
      });
    });
  }

  private async call(f: () => void | Promise<void>): Promise<void> {
    try {
      await f();
    } catch (err) {
      this.o.log?.(`stop-after-disconnect: ${(err as Error).message}`);
    }
  }
}
