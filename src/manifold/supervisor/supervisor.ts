/**
 * The dyno manager (spec heroku.md §3): keeps each app's formation running, one Slot per formation
 * dyno name (web.1, worker.2) and one Instance per process lifetime. It logs Heroku's state lines
 * (`manifold[web.1]: State changed from starting to up`), restarts crashes by policy, enforces
 * boot (R10) and stop (R12) timers, cycles dynos, reacts to memory events (R14/R15), and feeds
 * the router's route table: new web dynos get traffic once up, replaced ones drain first.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { DynoSpec, ExitStatus } from '../../runtime';
import { LineSplitter } from '../logs/log-buffer';
import type { LogHub } from '../logs/hub';
import { cycleDelay, DEFAULT_POLICY, restartDelay, type SupervisionPolicy } from '../policy';
import { DEFAULT_KILL_FACTOR, resourcesFor } from '../../runtime/sizes';
import { sizeOf } from '../sizes';
import type { AppSettings, FormationRow, Release } from '../store/store';
import { waitForPort, type PortWait } from './port-check';
import type { DrainWatcher, LaunchedDyno, Launcher, RouteBackend, RouteSink } from './types';

export type DynoState = 'starting' | 'up' | 'crashed' | 'down';

export interface DynoStatus {
  name: string;
  type: string;
  state: DynoState | 'complete';
  /** ms since epoch of the last state change. */
  since: number;
  command: string;
  size: string;
  release: number;
  pid: number | null;
  address: string | null;
  crashes: number;
  /** When crashed: the next restart time (ms since epoch). */
  restartAt: number | null;
  /** When crashed: why (exit status, signal, R10, R15). */
  reason: string | null;
  oneoff: boolean;
}

export interface SupervisorOptions {
  launcher: Launcher;
  logs: LogHub;
  routes?: RouteSink | undefined;
  drain?: DrainWatcher | undefined;
  policy?: Partial<SupervisionPolicy>;
  /** Network for dynos: 'bridge' gives each its own address the router connects to. */
  net?: 'none' | 'bridge';
  /** Value of $PORT for web dynos. */
  webPort?: number;
  /** Called when a dyno starts / ends, with its runtime id (the store remembers live dynos). */
  onDynoStarted?: (app: string, name: string, release: number, dyno: LaunchedDyno) => void;
  onDynoGone?: (id: string) => void;
  /** Hooks for tests and the benchmark. */
  onEvent?: (ev: SupervisorEvent) => void;
}

export type SupervisorEvent =
  | { kind: 'up'; app: string; dyno: string; at: number }
  | { kind: 'crashed'; app: string; dyno: string; at: number; delay: number }
  | { kind: 'r15'; app: string; dyno: string; at: number }
  | { kind: 'launch'; app: string; dyno: string; at: number };

type Intent = 'run' | 'down' | 'retire' | 'bounce';

class Instance {
  dyno: LaunchedDyno | undefined;
  address: string | undefined;
  state: 'starting' | 'up' | 'draining' | 'exited' = 'starting';
  intent: Intent = 'run';
  startedAt = Date.now();
  upAt: number | undefined;
  stopSent = false;
  pendingStop = false;
  bootTimer: NodeJS.Timeout | undefined;
  cycleTimer: NodeJS.Timeout | undefined;
  killTimer: NodeJS.Timeout | undefined;
  portWait: PortWait | undefined;
  r10 = false;
  r15 = false;
  lastR14 = 0;
  output: Promise<void> = Promise.resolve();
  readonly done: Promise<ExitStatus>;
  resolveDone!: (s: ExitStatus) => void;

  constructor(
    readonly app: string,
    readonly name: string,
    readonly type: string,
    readonly release: Release,
    readonly command: string,
    readonly size: string,
    readonly oneoff: boolean,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  clearTimers(): void {
    for (const t of [this.bootTimer, this.cycleTimer, this.killTimer]) if (t) clearTimeout(t);
    this.portWait?.cancel();
  }
}

interface Slot {
  name: string;
  type: string;
  current: Instance | undefined;
  retiring: Set<Instance>;
  state: DynoState;
  since: number;
  crashes: number;
  restartAt: number | null;
  restartTimer: NodeJS.Timeout | undefined;
  reason: string | null;
  size: string;
}

interface AppState {
  name: string;
  hosts: string[];
  release: Release | undefined;
  formation: Map<string, FormationRow>;
  settings: AppSettings;
  slots: Map<string, Slot>;
  oneoffs: Map<string, Instance>;
  oneoffSeq: number;
}

export interface OneOffOptions {
  attach: boolean;
  stdio?: { stdin: number; stdout: number; stderr: number };
  size?: string;
  env?: Record<string, string>;
}

export interface OneOff {
  name: string;
  started: Promise<void>;
  exited: Promise<ExitStatus>;
  stop(): void;
}

export function exitReason(s: ExitStatus, extra?: 'R10' | 'R15'): string {
  if (extra === 'R10') return 'R10 boot timeout';
  if (extra === 'R15' || s.oom) return 'R15 memory quota vastly exceeded';
  if (s.signal) return `killed by ${s.signal} (status ${s.status})`;
  return `exited with status ${s.status}`;
}

function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}

export class Supervisor {
  private readonly apps = new Map<string, AppState>();
  readonly policy: SupervisionPolicy;
  private readonly net: 'none' | 'bridge';
  private readonly webPort: number;
  private closing = false;
  private readonly memorySweep: NodeJS.Timeout;

  constructor(private readonly opts: SupervisorOptions) {
    this.policy = { ...DEFAULT_POLICY, ...(opts.policy ?? {}), restart: { ...DEFAULT_POLICY.restart, ...(opts.policy?.restart ?? {}) } };
    this.net = opts.net ?? 'none';
    this.webPort = opts.webPort ?? 5000;
    // A dyno idling above its quota raises no kernel event, yet Heroku logs R14 about every 20 s
    // while it stays there: one coarse sweep reads memory.current of every running dyno.
    this.memorySweep = setInterval(() => this.sweepMemory(), Math.max(250, this.policy.r14IntervalMs / 4));
    this.memorySweep.unref();
  }

  /** R14 quota of a dyno: the app's own setting, else its size's. */
  private quotaOf(app: AppState, inst: Instance): number {
    return app.settings.memoryQuota ?? sizeOf(inst.size).quota;
  }

  private sweepMemory(): void {
    for (const app of this.apps.values()) {
      const running = [...app.oneoffs.values(), ...[...app.slots.values()].flatMap((s) => [s.current, ...s.retiring])];
      for (const inst of running) {
        if (!inst || inst.state === 'exited' || !inst.dyno) continue;
        const mem = inst.dyno.memoryUsage?.();
        if (mem && mem.current > this.quotaOf(app, inst)) this.onMemory(app, inst, 'over-quota');
      }
    }
  }

  // ---- desired state in ----

  addApp(name: string, hosts: string[], release: Release | undefined, formation: FormationRow[], settings: AppSettings): void {
    const app: AppState = { name, hosts, release, formation: new Map(formation.map((f) => [f.type, f])), settings, slots: new Map(), oneoffs: new Map(), oneoffSeq: 0 };
    this.apps.set(name, app);
    this.pushRoutes(app);
    this.reconcile(app);
  }

  hasApp(name: string): boolean {
    return this.apps.has(name);
  }

  setSettings(name: string, settings: AppSettings): void {
    const app = this.need(name);
    app.settings = settings;
  }

  /** A new release: every formation dyno is replaced (web: new ones first, old ones drain), crash counts reset. */
  setRelease(name: string, release: Release): void {
    const app = this.need(name);
    app.release = release;
    for (const slot of app.slots.values()) slot.crashes = 0;
    this.reconcile(app, 'Restarting');
  }

  setFormation(name: string, formation: FormationRow[]): void {
    const app = this.need(name);
    app.formation = new Map(formation.map((f) => [f.type, f]));
    this.reconcile(app);
  }

  /** Manual restart of all dynos, one type, or one dyno; resets the crash cool-off. Returns the dynos restarted. */
  restart(name: string, target?: string): string[] {
    const app = this.need(name);
    const slots = this.select(app, target);
    for (const slot of slots) {
      slot.crashes = 0;
      this.replace(app, slot, 'Restarting');
    }
    return slots.map((s) => s.name);
  }

  /** ps:stop: one-off dynos end; formation dynos are stopped and then started again by the manager. */
  stop(name: string, target: string): string[] {
    const app = this.need(name);
    const one = app.oneoffs.get(target);
    if (one) {
      this.stopInstance(app, one);
      return [target];
    }
    const slots = this.select(app, target);
    for (const slot of slots) {
      const inst = slot.current;
      if (inst && inst.state !== 'exited') {
        inst.intent = 'bounce';
        this.stopInstance(app, inst);
      }
    }
    return slots.map((s) => s.name);
  }

  /** Stops everything of an app and forgets it. */
  async removeApp(name: string): Promise<void> {
    const app = this.apps.get(name);
    if (!app) return;
    app.formation.clear();
    app.release = undefined;
    const waits: Promise<unknown>[] = [];
    for (const slot of [...app.slots.values()]) {
      for (const inst of [slot.current, ...slot.retiring]) if (inst) waits.push(inst.done);
      this.scaleDown(app, slot);
    }
    for (const one of app.oneoffs.values()) {
      waits.push(one.done);
      this.stopInstance(app, one);
    }
    await Promise.all(waits);
    this.apps.delete(name);
    this.opts.routes?.removeApp(name);
  }

  /** Daemon shutdown: every dyno gets its stop signal and grace; resolves when all are gone. */
  async shutdown(): Promise<void> {
    this.closing = true;
    clearInterval(this.memorySweep);
    await Promise.all([...this.apps.keys()].map((n) => this.removeApp(n)));
  }

  // ---- one-off dynos ----

  runOneOff(name: string, command: string, o: OneOffOptions): OneOff {
    const app = this.need(name);
    if (!app.release || app.release.slug === null) throw new Error(`app ${name} has no deployed release (run: manifold deploy DIR -a ${name})`);
    let n = ++app.oneoffSeq;
    while (app.oneoffs.has(`run.${n}`)) n = ++app.oneoffSeq;
    const inst = new Instance(app.name, `run.${n}`, 'run', app.release, command, o.size ?? 'standard-1x', true);
    app.oneoffs.set(inst.name, inst);
    const started = this.launch(app, inst, o.attach ? o.stdio : undefined, o.env);
    return {
      name: inst.name,
      started,
      exited: inst.done,
      stop: () => this.stopInstance(app, inst),
    };
  }

  // ---- status out ----

  status(name: string): DynoStatus[] {
    const app = this.need(name);
    const out: DynoStatus[] = [];
    for (const slot of app.slots.values()) {
      const inst = slot.current;
      out.push({
        name: slot.name,
        type: slot.type,
        state: slot.state,
        since: slot.since,
        command: inst?.command ?? app.release?.procfile[slot.type] ?? '',
        size: slot.size,
        release: inst?.release.version ?? app.release?.version ?? 0,
        pid: inst?.dyno?.pid ?? null,
        address: inst?.address ?? null,
        crashes: slot.crashes,
        restartAt: slot.state === 'crashed' ? slot.restartAt : null,
        reason: slot.state === 'crashed' ? slot.reason : null,
        oneoff: false,
      });
    }
    for (const inst of app.oneoffs.values()) {
      out.push({
        name: inst.name,
        type: 'run',
        state: inst.state === 'up' ? 'up' : inst.state === 'exited' ? 'complete' : 'starting',
        since: inst.upAt ?? inst.startedAt,
        command: inst.command,
        size: inst.size,
        release: inst.release.version,
        pid: inst.dyno?.pid ?? null,
        address: null,
        crashes: 0,
        restartAt: null,
        reason: null,
        oneoff: true,
      });
    }
    return out.sort((a, b) => (a.type === b.type ? Number(a.name.split('.')[1]) - Number(b.name.split('.')[1]) : a.type < b.type ? -1 : 1));
  }

  /** Every live instance (for leak checks and the benchmark). */
  liveCount(): number {
    let n = 0;
    for (const app of this.apps.values()) {
      for (const s of app.slots.values()) n += (s.current ? 1 : 0) + s.retiring.size;
      n += app.oneoffs.size;
    }
    return n;
  }

  // ---- internals ----

  private need(name: string): AppState {
    const app = this.apps.get(name);
    if (!app) throw new Error(`no app ${name}`);
    return app;
  }

  private log(app: string, dyno: string, message: string): void {
    this.opts.logs.push(app, 'manifold', dyno, message);
  }

  private select(app: AppState, target?: string): Slot[] {
    const all = [...app.slots.values()];
    if (target === undefined || target === '') return all;
    if (target.includes('.')) {
      const s = app.slots.get(target);
      if (!s) throw new Error(`no dyno ${target} in app ${app.name}`);
      return [s];
    }
    const of = all.filter((s) => s.type === target);
    if (of.length === 0) throw new Error(`no ${target} dynos in app ${app.name}`);
    return of;
  }

  private setSlotState(app: AppState, slot: Slot, to: DynoState, log = true): void {
    if (slot.state === to) return;
    if (log) this.log(app.name, slot.name, `State changed from ${slot.state} to ${to}`);
    slot.state = to;
    slot.since = Date.now();
  }

  /** Brings slots in line with formation × procfile. `replaceReason` also replaces every kept slot. */
  private reconcile(app: AppState, replaceReason?: string): void {
    if (this.closing) return;
    const wanted = new Map<string, { type: string; size: string }>();
    const procfile = app.release?.slug ? app.release.procfile : {};
    for (const [type, f] of app.formation) {
      if (procfile[type] === undefined) continue;
      for (let i = 1; i <= f.quantity; i++) wanted.set(`${type}.${i}`, { type, size: f.size });
    }
    for (const slot of [...app.slots.values()]) {
      const w = wanted.get(slot.name);
      if (!w) this.scaleDown(app, slot);
      else if (replaceReason !== undefined || w.size !== slot.size) {
        slot.size = w.size;
        this.replace(app, slot, replaceReason ?? 'Restarting');
      }
    }
    for (const [name, w] of wanted) {
      if (app.slots.has(name)) continue;
      const slot: Slot = { name, type: w.type, current: undefined, retiring: new Set(), state: 'down', since: Date.now(), crashes: 0, restartAt: null, restartTimer: undefined, reason: null, size: w.size };
      app.slots.set(name, slot);
      this.startSlot(app, slot, false);
    }
    this.pushRoutes(app);
  }

  private startSlot(app: AppState, slot: Slot, logStateChange: boolean): void {
    if (!app.release) return;
    const command = app.release.procfile[slot.type];
    if (command === undefined) return;
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    slot.restartAt = null;
    this.setSlotState(app, slot, 'starting', logStateChange);
    const inst = new Instance(app.name, slot.name, slot.type, app.release, command, slot.size, false);
    slot.current = inst;
    void this.launch(app, inst).catch(() => undefined);
  }

  private scaleDown(app: AppState, slot: Slot): void {
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    const inst = slot.current;
    if (inst && inst.state !== 'exited') {
      this.setSlotState(app, slot, 'down');
      inst.intent = 'down';
      this.stopInstance(app, inst);
    } else {
      this.setSlotState(app, slot, 'down');
      slot.current = undefined;
    }
    for (const old of slot.retiring) this.stopInstance(app, old);
    if (!slot.current && slot.retiring.size === 0) app.slots.delete(slot.name);
  }

  /**
   * Restart/release/cycle of one slot. Web with an address: the new instance starts next to the
   * old one, which keeps its traffic until the new one is up, then drains and stops. Others: the
   * old one gets SIGTERM and the new one starts at once (Heroku's overlap).
   */
  private replace(app: AppState, slot: Slot, reason: string): void {
    const old = slot.current;
    if (old && old.state !== 'exited') {
      this.log(app.name, slot.name, reason);
      old.intent = 'retire';
      slot.retiring.add(old);
      slot.current = undefined;
      const overlap = slot.type === 'web' && old.state === 'up' && old.address !== undefined;
      if (!overlap) this.stopInstance(app, old);
      this.setSlotState(app, slot, 'starting');
      this.startSlot(app, slot, false);
    } else {
      this.startSlot(app, slot, slot.state !== 'down');
    }
  }

  /** Starts an instance; resolves once exec'd (rejects if the runtime could not start it). */
  private launch(app: AppState, inst: Instance, stdio?: { stdin: number; stdout: number; stderr: number }, extraEnv?: Record<string, string>): Promise<void> {
    const release = inst.release;
    this.log(app.name, inst.name, `Starting process with command \`${inst.command}\``);
    this.opts.onEvent?.({ kind: 'launch', app: app.name, dyno: inst.name, at: Date.now() });
    const isWeb = inst.type === 'web';
    let readFd = -1;
    let writeFd = -1;
    if (!stdio) [readFd, writeFd] = this.opts.launcher.pipe();
    const spec: DynoSpec = {
      name: inst.name,
      command: { shell: inst.command },
      appDir: release.slug as string,
      env: { ...release.config, ...(extraEnv ?? {}) },
      net: this.net === 'bridge' ? { mode: 'bridge' } : { mode: 'none' },
      stdio: stdio ?? { stdout: writeFd, stderr: writeFd },
      resources: {
        ...resourcesFor(sizeOf(inst.size).name, {
          ...(app.settings.memoryKillFactor !== undefined ? { killFactor: app.settings.memoryKillFactor } : {}),
          ...(app.settings.memoryQuota !== undefined
            ? { memoryMax: Math.round(app.settings.memoryQuota * (app.settings.memoryKillFactor ?? DEFAULT_KILL_FACTOR)) }
            : {}),
        }),
        memoryQuota: this.quotaOf(app, inst),
      },
      ...(isWeb ? { port: this.webPort } : {}),
    };
    let started: Promise<LaunchedDyno>;
    try {
      started = this.opts.launcher.start(spec);
    } catch (err) {
      started = Promise.reject(err);
    }
    if (writeFd >= 0) fs.closeSync(writeFd);
    if (readFd >= 0) inst.output = this.readOutput(app.name, inst.name, readFd);
    return started.then(
      (dyno) => {
        inst.dyno = dyno;
        inst.address = (dyno as { address?: string }).address;
        this.opts.onDynoStarted?.(app.name, inst.name, release.version, dyno);
        // react as soon as the processes are gone (an R15 restart must not wait for teardown);
        // inst.done still waits for the teardown, so a shutdown leaves nothing behind
        void (dyno.ended ?? dyno.exited).then((s) => this.onExit(app, inst, s));
        dyno.on('memory', (ev) => this.onMemory(app, inst, ev.kind));
        if (inst.pendingStop) {
          inst.stopSent = false;
          this.stopInstance(app, inst);
          return;
        }
        if (isWeb && !inst.oneoff) {
          const boot = app.settings.bootTimeoutMs ?? this.policy.bootTimeoutMs;
          inst.bootTimer = setTimeout(() => this.onBootTimeout(app, inst, boot), boot);
          inst.portWait = waitForPort({ pid: dyno.pid, address: inst.address }, this.webPort);
          void inst.portWait.promise.then((bound) => {
            if (bound && inst.state === 'starting') this.markUp(app, inst);
          });
        } else {
          this.markUp(app, inst);
        }
        if (!inst.oneoff) {
          const c = cycleDelay(this.policy);
          if (c !== null) inst.cycleTimer = setTimeout(() => this.onCycle(app, inst), c);
        }
      },
      (err: unknown) => {
        const msg = err instanceof Error ? err.message : String(err);
        this.log(app.name, inst.name, `Error starting process: ${msg}`);
        this.onExit(app, inst, { code: 127, signal: null, status: 127, oom: false, stopped: false });
        throw err;
      },
    );
  }

  private readOutput(app: string, dyno: string, fd: number): Promise<void> {
    return new Promise((resolve) => {
      const sock = new net.Socket({ fd, readable: true, writable: false });
      const split = new LineSplitter((line) => this.opts.logs.push(app, 'app', dyno, line));
      sock.on('data', (d: Buffer) => split.write(d));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        split.end();
        resolve();
      });
    });
  }

  private markUp(app: AppState, inst: Instance): void {
    if (inst.state !== 'starting') return;
    inst.state = 'up';
    inst.upAt = Date.now();
    if (inst.bootTimer) clearTimeout(inst.bootTimer);
    this.opts.onEvent?.({ kind: 'up', app: app.name, dyno: inst.name, at: inst.upAt });
    if (inst.oneoff) {
      this.log(app.name, inst.name, 'State changed from starting to up');
      return;
    }
    const slot = app.slots.get(inst.name);
    if (slot && slot.current === inst) {
      this.setSlotState(app, slot, 'up');
      for (const old of slot.retiring) if (old.state === 'up') void this.retire(app, old);
    }
    this.pushRoutes(app);
  }

  /** A replaced web dyno: no new requests, wait for in-flight ones (router) or the drain time, then stop. */
  private async retire(app: AppState, inst: Instance): Promise<void> {
    inst.state = 'draining';
    this.pushRoutes(app);
    if (inst.address !== undefined) {
      const max = this.policy.drainMs;
      if (this.opts.drain) await this.opts.drain.waitIdle(app.name, `${inst.address}:${this.webPort}`, max).catch(() => undefined);
      else await new Promise((r) => setTimeout(r, Math.min(max, 250)));
    }
    this.stopInstance(app, inst);
  }

  private stopInstance(app: AppState, inst: Instance): void {
    if (inst.stopSent || inst.state === 'exited') return;
    inst.stopSent = true;
    inst.portWait?.cancel();
    if (inst.bootTimer) clearTimeout(inst.bootTimer);
    if (inst.cycleTimer) clearTimeout(inst.cycleTimer);
    if (!inst.dyno) {
      inst.pendingStop = true;
      return;
    }
    const sig = app.settings.stopSignal ?? this.policy.stopSignal;
    const grace = app.settings.stopGraceMs ?? this.policy.stopGraceMs;
    this.log(app.name, inst.name, `Stopping all processes with ${sig}`);
    const dyno = inst.dyno;
    dyno.signal(sig);
    inst.killTimer = setTimeout(() => {
      if (inst.state === 'exited') return;
      this.log(app.name, inst.name, `Error R12 (Exit timeout) -> Process failed to exit within ${seconds(grace)} seconds of ${sig}`);
      this.log(app.name, inst.name, 'Stopping all processes with SIGKILL');
      void dyno.kill();
    }, grace);
  }

  private onBootTimeout(app: AppState, inst: Instance, ms: number): void {
    if (inst.state !== 'starting' || inst.stopSent || !inst.dyno) return;
    inst.r10 = true;
    inst.portWait?.cancel();
    this.log(app.name, inst.name, `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${seconds(ms)} seconds of launch`);
    this.log(app.name, inst.name, 'Stopping process with SIGKILL');
    inst.stopSent = true;
    void inst.dyno.kill();
  }

  private onCycle(app: AppState, inst: Instance): void {
    const slot = app.slots.get(inst.name);
    if (!slot || slot.current !== inst || inst.state !== 'up') return;
    this.replace(app, slot, 'Cycling');
  }

  private onMemory(app: AppState, inst: Instance, kind: string): void {
    if (inst.state === 'exited') return;
    const quota = this.quotaOf(app, inst);
    const mem = inst.dyno?.memoryUsage?.();
    // R14 counts RSS + swap + cache (memory.current); R15 RSS + swap (heroku.md §3.7)
    const bytes = mem === undefined ? undefined : kind === 'oom_kill' ? mem.rss + mem.swap : mem.current;
    const usage = bytes !== undefined ? `Process running mem=${Math.round(bytes / (1024 * 1024))}MB(${((bytes / quota) * 100).toFixed(1)}%)` : null;
    if (kind === 'oom_kill' || kind === 'oom_group_kill') {
      if (inst.r15) return;
      inst.r15 = true;
      if (usage) this.log(app.name, inst.name, usage);
      this.log(app.name, inst.name, 'Error R15 (Memory quota vastly exceeded)');
      this.log(app.name, inst.name, 'Stopping process with SIGKILL');
      this.opts.onEvent?.({ kind: 'r15', app: app.name, dyno: inst.name, at: Date.now() });
      inst.stopSent = true;
      void inst.dyno?.kill();
      return;
    }
    if (kind !== 'high' && kind !== 'max' && kind !== 'over-quota') return;
    const now = Date.now();
    if (now - inst.lastR14 < this.policy.r14IntervalMs) return;
    inst.lastR14 = now;
    if (usage) this.log(app.name, inst.name, usage);
    this.log(app.name, inst.name, 'Error R14 (Memory quota exceeded)');
  }

  private async onExit(app: AppState, inst: Instance, status: ExitStatus): Promise<void> {
    if (inst.state === 'exited') return;
    const wasUp = inst.state === 'up' || inst.state === 'draining';
    inst.state = 'exited';
    inst.clearTimers();
    if (inst.dyno) this.opts.onDynoGone?.(inst.dyno.id);
    // app output written just before the exit comes first in the log
    await Promise.race([inst.output, new Promise((r) => setTimeout(r, 200))]);
    if (inst.dyno) this.log(app.name, inst.name, `Process exited with status ${status.status}`);
    const torn = inst.dyno ? inst.dyno.exited : Promise.resolve(status);
    void torn.then(() => inst.resolveDone(status));
    if (inst.oneoff) {
      this.log(app.name, inst.name, `State changed from ${wasUp ? 'up' : 'starting'} to complete`);
      app.oneoffs.delete(inst.name);
      return;
    }
    const slot = app.slots.get(inst.name);
    if (!slot) return;
    if (slot.retiring.delete(inst)) {
      this.finishSlot(app, slot);
      this.pushRoutes(app);
      return;
    }
    if (slot.current !== inst) return;
    slot.current = undefined;
    if (inst.intent === 'down') {
      this.finishSlot(app, slot);
      this.pushRoutes(app);
      return;
    }
    if (inst.intent === 'bounce') {
      this.setSlotState(app, slot, 'down');
      this.startSlot(app, slot, true);
      this.pushRoutes(app);
      return;
    }
    // a crash: any exit of a formation dyno we did not ask for
    const now = Date.now();
    if (inst.upAt !== undefined && now - inst.upAt >= this.policy.restart.stableMs) slot.crashes = 0;
    slot.crashes++;
    slot.reason = exitReason(status, inst.r10 ? 'R10' : inst.r15 ? 'R15' : undefined);
    this.setSlotState(app, slot, 'crashed');
    const delay = restartDelay(slot.crashes, this.policy.restart);
    slot.restartAt = now + delay;
    this.opts.onEvent?.({ kind: 'crashed', app: app.name, dyno: slot.name, at: now, delay });
    if (!this.closing) {
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = undefined;
        if (app.slots.get(slot.name) === slot && slot.state === 'crashed') this.startSlot(app, slot, true);
        this.pushRoutes(app);
      }, delay);
    }
    this.pushRoutes(app);
  }

  private finishSlot(app: AppState, slot: Slot): void {
    if (!slot.current && slot.retiring.size === 0 && slot.state === 'down') app.slots.delete(slot.name);
  }

  private pushRoutes(app: AppState): void {
    const routes = this.opts.routes;
    if (!routes || !this.apps.has(app.name)) return;
    const backends: RouteBackend[] = [];
    const crashedWeb: Slot[] = [];
    let webSlots = 0;
    for (const slot of app.slots.values()) {
      if (slot.type !== 'web') continue;
      webSlots++;
      if (slot.state === 'crashed') crashedWeb.push(slot);
      for (const inst of [slot.current, ...slot.retiring]) {
        if (!inst || inst.address === undefined || inst.state === 'exited') continue;
        backends.push({ dyno: inst.name, address: `${inst.address}:${this.webPort}`, state: inst.state === 'up' ? 'up' : inst.state === 'draining' ? 'draining' : 'starting' });
      }
    }
    const allCrashed = webSlots > 0 && crashedWeb.length === webSlots;
    const message = allCrashed
      ? crashedWeb
          .map((s) => `${s.name} ${s.reason ?? 'crashed'}${s.restartAt !== null ? `, restart at ${new Date(s.restartAt).toISOString()}` : ''}`)
          .join('; ')
      : undefined;
    try {
      routes.setApp(app.name, { hosts: app.hosts, backends, crashed: allCrashed ? { message: message ?? 'crashed' } : false });
    } catch (err) {
      this.log(app.name, 'router', `route table update failed: ${(err as Error).message}`);
    }
  }
}
