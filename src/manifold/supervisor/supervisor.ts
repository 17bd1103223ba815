/**
 * The dyno manager (docs/dyno-lifecycle.md): keeps each app's formation running, one Slot per formation
 * dyno name (web.1, worker.2) and one Instance per process lifetime. It logs Heroku's state lines
 * (`manifold[web.1]: State changed from starting to up`), restarts crashes by policy, replaces
 * dynos on release, restart and cycling, and feeds the router's route table: new web dynos get
 * traffic once up, replaced ones drain first. One instance's life (launch, R10, R12, R14/R15,
 * exit) is lifecycle.ts; time comes from a Clock and dynos from a Launcher, so tests can fake both.
 */
import type { ExitStatus } from '../../runtime';
import type { LogHub } from '../logs/hub';
import { DEFAULT_POLICY, restartDelay, type SupervisionPolicy } from '../policy';
import type { AppSettings, FormationRow, Release } from '../store/store';
import { systemClock, type Clock, type Timer } from './clock';
import { SupervisorError } from './errors';
import { exitReason, type DynoStdio } from './launch';
import { quotaOf } from './memory';
import { Lifecycle, type InstanceOwner } from './lifecycle';
import { Instance, instancesOf, type AppState, type CrashReason, type DynoState, type DynoStatus, type OneOff, type OneOffOptions, type RestartReason, type Slot, type SupervisorEvent } from './model';
import { routesOf } from './routes';
import { statusOf } from './status';
import type { DrainWatcher, LaunchedDyno, Launcher, RouteSink } from './types';
import { assignedSlots, formationSlots, runnable, type SlotAssignment, type WantedSlot } from './wanted';

export type { CrashReason, DynoState, DynoStatus, OneOff, OneOffOptions, RestartReason, SupervisorEvent } from './model';
export type { SlotAssignment } from './wanted';

/** A dyno process that runs now, as the runtime-metrics sampler sees it (src/manifold/metrics/). */
export interface RunningDyno {
  app: string;
  /** web.1 */
  name: string;
  /** The runtime's dyno id. */
  id: string;
  pid: number;
  /** The dyno's cgroup v2 leaf; undefined for a launcher that has none (tests' fakes). */
  cgroupDir: string | undefined;
  /** R14 quota, bytes. */
  quota: number;
  settings: AppSettings;
}

export interface SupervisorOptions {
  launcher: Launcher;
  logs: LogHub;
  routes?: RouteSink | undefined;
  drain?: DrainWatcher | undefined;
  policy?: Partial<SupervisionPolicy>;
  /** Time source for every timer; default the system clock (tests pass a fake one). */
  clock?: Clock;
  /** Network for dynos: 'bridge' gives each its own address the router connects to. */
  net?: 'none' | 'bridge';
  /** Value of $PORT for web dynos. */
  webPort?: number;
  /** Called when a dyno starts / ends, with its runtime id (the store remembers live dynos). */
  onDynoStarted?: (app: string, name: string, release: number, dyno: LaunchedDyno) => void;
  onDynoGone?: (id: string) => void;
  /** Hooks for tests and the benchmark. */
  onEvent?: (ev: SupervisorEvent) => void;
  /**
   * A web dyno scaled away (or moved off this host by the cluster scheduler) drains first: no new
   * requests, SIGTERM once every router reports it idle (the drain watcher) or after the drain cap.
   * Off on one host, where a scale-down stops at once as Heroku's does; a cluster agent turns it on,
   * since a move must lose no request.
   */
  drainOnScaleDown?: boolean;
}

export class Supervisor {
  private readonly apps = new Map<string, AppState>();
  readonly policy: SupervisionPolicy;
  private readonly clock: Clock;
  private readonly webPort: number;
  private readonly lifecycle: Lifecycle;
  private closing = false;
  private readonly memorySweep: Timer;

  constructor(private readonly opts: SupervisorOptions) {
    this.policy = { ...DEFAULT_POLICY, ...(opts.policy ?? {}), restart: { ...DEFAULT_POLICY.restart, ...(opts.policy?.restart ?? {}) } };
    this.clock = opts.clock ?? systemClock;
    this.webPort = opts.webPort ?? 5000;
    this.lifecycle = new Lifecycle(
      {
        launcher: opts.launcher,
        clock: this.clock,
        policy: this.policy,
        net: opts.net ?? 'none',
        webPort: this.webPort,
        drain: opts.drain,
        log: (app, dyno, message) => this.log(app, dyno, message),
        output: (app, dyno, line) => opts.logs.push(app, 'app', dyno, line),
        event: (ev) => opts.onEvent?.(ev),
        dynoStarted: (app, name, release, dyno) => opts.onDynoStarted?.(app, name, release, dyno),
        dynoGone: (id) => opts.onDynoGone?.(id),
      },
      this.instanceOwner(),
    );
    // a quarter of the R14 interval: a dyno over quota is noticed well within one interval
    this.memorySweep = this.clock.every(Math.max(250, this.policy.r14IntervalMs / 4), () => this.lifecycle.sweepMemory(this.apps.values()));
  }

  // ---- desired state in ----

  addApp(name: string, hosts: string[], release: Release | undefined, formation: FormationRow[], settings: AppSettings): void {
    const app: AppState = { name, hosts, release, formation: new Map(formation.map((f) => [f.type, f])), assigned: undefined, settings, slots: new Map(), oneoffs: new Map(), oneoffSeq: 0 };
    this.apps.set(name, app);
    this.routesChanged(app);
    this.reconcile(app);
  }

  setSettings(name: string, settings: AppSettings): void {
    this.need(name).settings = settings;
  }

  /** A new release: every formation dyno is replaced (web: new ones first, old ones drain), crash counts reset. */
  setRelease(name: string, release: Release): void {
    const app = this.need(name);
    app.release = release;
    for (const slot of app.slots.values()) slot.crashes = 0;
    this.reconcile(app, 'Restarting');
  }

  /** Single host: the formation's type.1..N slots are wanted (and a cluster agent's assignments no longer are). */
  setFormation(name: string, formation: FormationRow[]): void {
    const app = this.need(name);
    app.formation = new Map(formation.map((f) => [f.type, f]));
    app.assigned = undefined;
    this.reconcile(app);
  }

  /**
   * Cluster agent: exactly these slots are wanted, whatever the formation says (the scheduler
   * already placed them). A slot whose `gen` changed is replaced as a restart replaces it, so
   * the scheduler can restart or move a single slot. Throws, changing nothing, on a bad name.
   */
  setSlots(name: string, slots: readonly SlotAssignment[]): void {
    const app = this.need(name);
    app.assigned = assignedSlots(slots);
    this.reconcile(app);
  }

  /** Manual restart of all dynos, one type, or one dyno; resets the crash cool-off. Returns the dynos restarted. */
  restart(name: string, target?: string): string[] {
    const app = this.need(name);
    const slots = this.select(app, target);
    for (const slot of slots) {
      slot.crashes = 0;
      this.replace(app, slot, 'Restarting', 'restart');
    }
    return slots.map((s) => s.name);
  }

  /** ps:stop: one-off dynos end; formation dynos are stopped and then started again by the manager. */
  stop(name: string, target: string): string[] {
    const app = this.need(name);
    const one = app.oneoffs.get(target);
    if (one) {
      this.lifecycle.stop(app, one);
      return [target];
    }
    const slots = this.select(app, target);
    for (const slot of slots) {
      const inst = slot.current;
      if (inst && inst.state !== 'exited') {
        inst.intent = 'bounce';
        this.lifecycle.stop(app, inst);
      }
    }
    return slots.map((s) => s.name);
  }

  /** Stops everything of an app and forgets it. */
  async removeApp(name: string): Promise<void> {
    const app = this.apps.get(name);
    if (!app) return;
    app.formation.clear();
    app.assigned = undefined;
    app.release = undefined;
    const waits: Promise<unknown>[] = [];
    for (const slot of [...app.slots.values()]) {
      for (const inst of [slot.current, ...slot.retiring]) if (inst) waits.push(inst.done);
      this.scaleDown(app, slot);
    }
    for (const one of app.oneoffs.values()) {
      waits.push(one.done);
      this.lifecycle.stop(app, one);
    }
    await Promise.all(waits);
    this.apps.delete(name);
    this.opts.routes?.removeApp(name);
  }

  /** Daemon shutdown: every dyno gets its stop signal and grace; resolves when all are gone. */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.memorySweep.cancel();
    await Promise.all([...this.apps.keys()].map((n) => this.removeApp(n)));
  }

  // ---- one-off dynos ----

  runOneOff(name: string, command: string, o: OneOffOptions): OneOff {
    const app = this.need(name);
    if (!app.release || app.release.slug === null) throw new SupervisorError('NOT_DEPLOYED', `app ${name} has no deployed release (run: manifold deploy DIR -a ${name})`);
    let n = ++app.oneoffSeq;
    while (app.oneoffs.has(`run.${n}`)) n = ++app.oneoffSeq;
    const inst = new Instance(app.name, `run.${n}`, 'run', app.release, command, o.size ?? 'standard-1x', true, this.clock.now());
    app.oneoffs.set(inst.name, inst);
    const stdio: DynoStdio | undefined = o.attach ? o.stdio : undefined;
    const started = this.lifecycle.launch(app, inst, stdio, o.env);
    return { name: inst.name, started, exited: inst.done, stop: (signal) => this.lifecycle.stop(app, inst, signal) };
  }

  // ---- status out ----

  has(name: string): boolean {
    return this.apps.has(name);
  }

  appNames(): string[] {
    return [...this.apps.keys()];
  }

  releaseOf(name: string): Release | undefined {
    return this.apps.get(name)?.release;
  }

  status(name: string): DynoStatus[] {
    return statusOf(this.need(name));
  }

  /** Every dyno process that runs now (a replaced one still draining too), for sampling; read-only. */
  runningDynos(): RunningDyno[] {
    const out: RunningDyno[] = [];
    for (const app of this.apps.values()) {
      for (const inst of instancesOf(app)) {
        const dyno = inst.dyno;
        if (!dyno || inst.state === 'exited') continue;
        // the runtime's Dyno has its leaf; LaunchedDyno leaves it out so fakes need none
        const cg = (dyno as LaunchedDyno & { cgroupPath?: unknown }).cgroupPath;
        out.push({ app: app.name, name: inst.name, id: dyno.id, pid: dyno.pid, cgroupDir: typeof cg === 'string' ? cg : undefined, quota: quotaOf(app.settings, inst.size), settings: app.settings });
      }
    }
    return out;
  }

  // ---- what an instance's life means for its slot ----

  private instanceOwner(): InstanceOwner {
    return {
      instanceUp: (app, inst) => this.instanceUp(app, inst),
      instanceExited: (app, inst, status) => this.instanceExited(app, inst, status),
      cycleDue: (app, inst) => this.cycleDue(app, inst),
      routesChanged: (app) => this.routesChanged(app),
    };
  }

  private instanceUp(app: AppState, inst: Instance): void {
    const slot = app.slots.get(inst.name);
    if (slot && slot.current === inst) {
      this.setSlotState(app, slot, 'up');
      // the successor is up: its predecessors drain now, so traffic never has nowhere to go
      // (one already stopping, e.g. scaled away before the slot was wanted again, just goes on stopping)
      for (const old of slot.retiring) if (old.state === 'up' && !old.stopSent) void this.lifecycle.retire(app, old);
    }
    this.routesChanged(app);
  }

  private instanceExited(app: AppState, inst: Instance, status: ExitStatus): void {
    const slot = app.slots.get(inst.name);
    if (!slot) return;
    if (slot.retiring.delete(inst)) {
      this.forgetIfGone(app, slot);
      this.routesChanged(app);
      return;
    }
    if (slot.current !== inst) return;
    slot.current = undefined;
    if (inst.intent === 'down') {
      this.forgetIfGone(app, slot);
    } else if (inst.intent === 'bounce') {
      this.opts.onEvent?.({ kind: 'restart', app: app.name, dyno: slot.name, at: this.clock.now(), reason: 'stop' });
      this.setSlotState(app, slot, 'down');
      this.startSlot(app, slot, true);
    } else {
      this.crashed(app, slot, inst, status);
    }
    this.routesChanged(app);
  }

  private cycleDue(app: AppState, inst: Instance): void {
    const slot = app.slots.get(inst.name);
    if (!slot || slot.current !== inst || inst.state !== 'up') return;
    this.replace(app, slot, 'Cycling', 'cycle');
  }

  private routesChanged(app: AppState): void {
    const routes = this.opts.routes;
    if (!routes || !this.apps.has(app.name)) return;
    try {
      routes.setApp(app.name, routesOf(app, this.webPort));
    } catch (err) {
      this.log(app.name, 'router', `route table update failed: ${(err as Error).message}`);
    }
  }

  // ---- internals ----

  private need(name: string): AppState {
    const app = this.apps.get(name);
    if (!app) throw new SupervisorError('NO_SUCH_APP', `no such app: ${name}`);
    return app;
  }

  private log(app: string, dyno: string, message: string): void {
    this.opts.logs.push(app, 'manifold', dyno, message);
  }

  /**
   * `web.1` → that dyno; `web` → every web dyno; nothing → all formation dynos. A dyno being
   * scaled away is named without error (ps still lists it) but never selected: restarting or
   * bouncing it would start a dyno the formation no longer has.
   */
  private select(app: AppState, target?: string): Slot[] {
    const all = [...app.slots.values()];
    let of: Slot[];
    if (target === undefined || target === '') of = all;
    else if (target.includes('.')) {
      const s = app.slots.get(target);
      if (!s) throw new SupervisorError('NO_SUCH_DYNO', `no dyno ${target} in app ${app.name}`);
      of = [s];
    } else {
      of = all.filter((s) => s.type === target);
      if (of.length === 0) throw new SupervisorError('NO_SUCH_TYPE', `no ${target} dynos in app ${app.name}`);
    }
    return of.filter((s) => !s.leaving);
  }

  private setSlotState(app: AppState, slot: Slot, to: DynoState, log = true): void {
    if (slot.state === to) return;
    if (log) this.log(app.name, slot.name, `State changed from ${slot.state} to ${to}`);
    slot.state = to;
    slot.since = this.clock.now();
  }

  /** Brings slots in line with the wanted slots (wanted.ts). `replaceReason` also replaces every kept slot. */
  private reconcile(app: AppState, replaceReason?: string): void {
    if (this.closing) return;
    const procfile = app.release?.slug ? app.release.procfile : {};
    this.converge(app, runnable(app.assigned ?? formationSlots(app.formation.values()), procfile), replaceReason);
  }

  private converge(app: AppState, wanted: Map<string, WantedSlot>, replaceReason: string | undefined): void {
    for (const slot of [...app.slots.values()]) {
      const w = wanted.get(slot.name);
      if (!w) this.scaleDown(app, slot);
      else if (slot.leaving) this.revive(app, slot, w);
      // any other generation, lower included: the scheduler deleted and re-created the
      // assignment, which is a new placement and wants a new instance too
      else if (replaceReason !== undefined || w.size !== slot.size || w.gen !== slot.gen) {
        // a new generation is the scheduler's restart of this slot: its crash cool-off starts over, as with `restart`
        if (w.gen !== slot.gen) slot.crashes = 0;
        slot.size = w.size;
        slot.gen = w.gen;
        this.replace(app, slot, replaceReason ?? 'Restarting', replaceReason !== undefined ? 'release' : 'reassign');
      }
    }
    for (const [name, w] of wanted) {
      if (app.slots.has(name)) continue;
      const slot: Slot = { name, type: w.type, current: undefined, retiring: new Set(), state: 'down', since: this.clock.now(), crashes: 0, restartAt: null, restartTimer: undefined, reason: null, size: w.size, gen: w.gen, leaving: false };
      app.slots.set(name, slot);
      this.startSlot(app, slot, false);
    }
    this.routesChanged(app);
  }

  private startSlot(app: AppState, slot: Slot, logStateChange: boolean): void {
    if (!app.release) return;
    const command = app.release.procfile[slot.type];
    if (command === undefined) return;
    slot.restartTimer?.cancel();
    slot.restartTimer = undefined;
    slot.restartAt = null;
    this.setSlotState(app, slot, 'starting', logStateChange);
    const inst = new Instance(app.name, slot.name, slot.type, app.release, command, slot.size, false, this.clock.now());
    inst.gen = slot.gen;
    slot.current = inst;
    // a start failure is logged and handled as a crash by the lifecycle
    void this.lifecycle.launch(app, inst).catch(() => undefined);
  }

  private scaleDown(app: AppState, slot: Slot): void {
    slot.restartTimer?.cancel();
    slot.restartTimer = undefined;
    slot.leaving = true;
    const inst = slot.current;
    this.setSlotState(app, slot, 'down');
    if (inst && inst.state !== 'exited') {
      inst.intent = 'down';
      if (this.opts.drainOnScaleDown && inst.state === 'up' && inst.address !== undefined && !inst.stopSent && slot.type === 'web') void this.lifecycle.retire(app, inst);
      else this.lifecycle.stop(app, inst);
    } else {
      slot.current = undefined;
    }
    for (const old of slot.retiring) this.lifecycle.stop(app, old);
    if (!slot.current && slot.retiring.size === 0) app.slots.delete(slot.name);
  }

  /**
   * A slot scaled away and wanted again while its instances still stop (web=3, web=1, web=3 within
   * the grace): they keep stopping as replaced ones, and a new instance starts now. Waiting for
   * them instead would leave the formation short for up to the grace, and the exit of an instance
   * stopped for a scale-down would forget the slot.
   */
  private revive(app: AppState, slot: Slot, w: WantedSlot): void {
    slot.leaving = false;
    slot.size = w.size;
    slot.gen = w.gen;
    const old = slot.current;
    slot.current = undefined;
    if (old && old.state !== 'exited') {
      old.intent = 'retire';
      slot.retiring.add(old);
    }
    this.startSlot(app, slot, true);
  }

  /**
   * Restart/release/cycle of one slot. Web with an address: the new instance starts next to the
   * old one, which keeps its traffic until the new one is up, then drains and stops. Others: the
   * old one gets SIGTERM and the new one starts at once (Heroku's overlap).
   */
  private replace(app: AppState, slot: Slot, reason: string, why: RestartReason): void {
    this.opts.onEvent?.({ kind: 'restart', app: app.name, dyno: slot.name, at: this.clock.now(), reason: why });
    const old = slot.current;
    if (old && old.state !== 'exited') {
      this.log(app.name, slot.name, reason);
      old.intent = 'retire';
      slot.retiring.add(old);
      slot.current = undefined;
      const overlap = slot.type === 'web' && old.state === 'up' && old.address !== undefined;
      if (!overlap) this.lifecycle.stop(app, old);
      this.setSlotState(app, slot, 'starting');
      this.startSlot(app, slot, false);
    } else {
      this.startSlot(app, slot, slot.state !== 'down');
    }
  }

  /** Any exit of a formation dyno we did not ask for, code 0 included: restart by the cool-off schedule. */
  private crashed(app: AppState, slot: Slot, inst: Instance, status: ExitStatus): void {
    const now = this.clock.now();
    // an instance that stayed up long enough proves the app healthy again: the schedule starts over
    if (inst.upAt !== undefined && now - inst.upAt >= this.policy.restart.stableMs) slot.crashes = 0;
    slot.crashes++;
    slot.reason = exitReason(status, inst.r10 ? 'R10' : inst.r15 ? 'R15' : undefined);
    this.setSlotState(app, slot, 'crashed');
    const delay = restartDelay(slot.crashes, this.policy.restart);
    slot.restartAt = now + delay;
    this.opts.onEvent?.({ kind: 'crashed', app: app.name, dyno: slot.name, at: now, delay, reason: crashReason(status, inst) });
    if (this.closing) return;
    slot.restartTimer = this.clock.after(delay, () => {
      slot.restartTimer = undefined;
      if (app.slots.get(slot.name) === slot && slot.state === 'crashed') {
        this.opts.onEvent?.({ kind: 'restart', app: app.name, dyno: slot.name, at: this.clock.now(), reason: 'crash' });
        this.startSlot(app, slot, true);
      }
      this.routesChanged(app);
    });
  }

  /** A scaled-away slot is forgotten once its last instance is gone. */
  private forgetIfGone(app: AppState, slot: Slot): void {
    if (slot.leaving && !slot.current && slot.retiring.size === 0) app.slots.delete(slot.name);
  }
}

/** The crash's reason as one of a few fixed words (exitReason says it in full for ps). */
function crashReason(status: ExitStatus, inst: Instance): CrashReason {
  if (inst.r10) return 'R10';
  if (inst.r15 || status.oom) return 'R15';
  if (!inst.dyno) return 'start-failed';
  return status.signal ? 'signal' : 'exit';
}
