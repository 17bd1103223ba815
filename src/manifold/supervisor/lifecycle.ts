/**
 * One instance's life, from launch to exit (docs/dyno-lifecycle.md#transitions, #memory-r14-and-r15): start it through the
 * Launcher, read its output, declare it up (web: once $PORT is bound, else R10 after the boot
 * timeout), schedule its daily cycle, react to its memory events (R14/R15), stop it Heroku's way
 * (stop signal, grace, SIGKILL with R12: the runtime's Dyno.stop does the sequence) and log its
 * exit. What an up or an exit means for the formation is the owner's decision (InstanceOwner).
 */
import fs from 'node:fs';
import type { ExitStatus } from '../../runtime';
import { cycleDelay, type SupervisionPolicy } from '../policy';
import type { Clock } from './clock';
import { dynoSpecFor, readOutput, seconds, type DynoStdio } from './launch';
import { quotaOf, reactToMemory } from './memory';
import { instancesOf, type AppState, type Instance, type SupervisorEvent } from './model';
import { waitForPort } from './port-check';
import { backendAddress } from './routes';
import type { DrainWatcher, LaunchedDyno, Launcher } from './types';

export interface LifecycleContext {
  launcher: Launcher;
  clock: Clock;
  policy: SupervisionPolicy;
  net: 'none' | 'bridge';
  webPort: number;
  drain: DrainWatcher | undefined;
  /** A dyno manager line: `manifold[web.1]: …`. */
  log(app: string, dyno: string, message: string): void;
  /** A line of the dyno's own output: `app[web.1]: …`. */
  output(app: string, dyno: string, line: string): void;
  event(ev: SupervisorEvent): void;
  dynoStarted(app: string, name: string, release: number, dyno: LaunchedDyno): void;
  dynoGone(id: string): void;
}

/** The formation side: what an instance's up, exit or cycle means for its slot. */
export interface InstanceOwner {
  instanceUp(app: AppState, inst: Instance): void;
  instanceExited(app: AppState, inst: Instance, status: ExitStatus): void;
  cycleDue(app: AppState, inst: Instance): void;
  routesChanged(app: AppState): void;
}

/** A dyno that could not start ends like a shell's "command not found". */
const START_FAILED: ExitStatus = { code: 127, signal: null, status: 127, oom: false, stopped: false };

/** How long an exit waits for the dyno's last output, so it is logged before "Process exited". */
const OUTPUT_FLUSH_MS = 200;

export class Lifecycle {
  constructor(private readonly ctx: LifecycleContext, private readonly owner: InstanceOwner) {}

  /** Starts an instance; resolves once exec'd (rejects if the runtime could not start it). */
  launch(app: AppState, inst: Instance, stdio?: DynoStdio, extraEnv?: Record<string, string>): Promise<void> {
    const { ctx } = this;
    ctx.log(app.name, inst.name, `Starting process with command \`${inst.command}\``);
    ctx.event({ kind: 'launch', app: app.name, dyno: inst.name, at: ctx.clock.now() });
    // formation and detached dynos write into a pipe we read into the log; attached ones get the client's fds
    let readFd = -1;
    let writeFd = -1;
    if (!stdio) [readFd, writeFd] = ctx.launcher.pipe();
    let started: Promise<LaunchedDyno>;
    try {
      const spec = dynoSpecFor(inst, { settings: app.settings, net: ctx.net, webPort: ctx.webPort, stdio: stdio ?? { stdout: writeFd, stderr: writeFd }, extraEnv });
      started = ctx.launcher.start(spec);
    } catch (err) {
      started = Promise.reject(err);
    }
    // the dyno holds its own copy of the write end: ours must go, or the pipe never reaches EOF
    if (writeFd >= 0) fs.closeSync(writeFd);
    if (readFd >= 0) inst.output = readOutput(readFd, (line) => ctx.output(app.name, inst.name, line));
    return started.then(
      (dyno) => this.started(app, inst, dyno),
      (err: unknown) => {
        ctx.log(app.name, inst.name, `Error starting process: ${err instanceof Error ? err.message : String(err)}`);
        void this.exited(app, inst, START_FAILED);
        throw err;
      },
    );
  }

  private started(app: AppState, inst: Instance, dyno: LaunchedDyno): void {
    const { ctx } = this;
    inst.dyno = dyno;
    inst.address = dyno.address;
    ctx.dynoStarted(app.name, inst.name, inst.release.version, dyno);
    // react as soon as the processes are gone (an R15 restart must not wait for teardown);
    // inst.done still waits for the teardown, so a shutdown leaves nothing behind
    void (dyno.ended ?? dyno.exited).then((s) => this.exited(app, inst, s));
    dyno.on('memory', (ev) => this.memoryEvent(app, inst, ev.kind));
    // the runtime's own warnings (a stored stop signal it replaced with SIGTERM, a failed teardown
    // step) concern this dyno: they belong in the app's log, where whoever runs it looks
    dyno.on('warning', (msg) => ctx.log(app.name, inst.name, `Warning: ${msg}`));
    if (inst.pendingStop) {
      inst.stopSent = false;
      this.stop(app, inst, inst.pendingSignal);
      return;
    }
    if (inst.type === 'web' && !inst.oneoff) {
      const boot = app.settings.bootTimeoutMs ?? ctx.policy.bootTimeoutMs;
      inst.bootTimer = ctx.clock.after(boot, () => this.bootTimedOut(app, inst, boot));
      inst.portWait = ctx.launcher.waitForPort?.(dyno, ctx.webPort) ?? waitForPort({ pid: dyno.pid, address: inst.address }, ctx.webPort);
      void inst.portWait.promise.then((bound) => {
        if (bound && inst.state === 'starting') this.markUp(app, inst);
      });
    } else {
      // non-web dynos are up as soon as their process runs
      this.markUp(app, inst);
    }
    if (!inst.oneoff) {
      const delay = cycleDelay(ctx.policy);
      if (delay !== null) inst.cycleTimer = ctx.clock.after(delay, () => this.owner.cycleDue(app, inst));
    }
  }

  private markUp(app: AppState, inst: Instance): void {
    if (inst.state !== 'starting') return;
    inst.state = 'up';
    inst.upAt = this.ctx.clock.now();
    inst.bootTimer?.cancel();
    this.ctx.event({ kind: 'up', app: app.name, dyno: inst.name, at: inst.upAt });
    if (inst.oneoff) this.ctx.log(app.name, inst.name, 'State changed from starting to up');
    else this.owner.instanceUp(app, inst);
  }

  private bootTimedOut(app: AppState, inst: Instance, ms: number): void {
    if (inst.state !== 'starting' || inst.stopSent || !inst.dyno) return;
    inst.r10 = true;
    inst.portWait?.cancel();
    this.ctx.log(app.name, inst.name, `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${seconds(ms)} seconds of launch`);
    this.ctx.event({ kind: 'r10', app: app.name, dyno: inst.name, at: this.ctx.clock.now() });
    this.ctx.log(app.name, inst.name, 'Stopping process with SIGKILL');
    inst.stopSent = true;
    void inst.dyno.kill();
  }

  /**
   * Heroku's stop: the app's stop signal (or `signal`: SIGHUP for a one-off whose client hung up)
   * to every process, SIGKILL and R12 after the grace.
   */
  stop(app: AppState, inst: Instance, signal?: NodeJS.Signals): void {
    if (inst.stopSent || inst.state === 'exited') return;
    inst.stopSent = true;
    inst.portWait?.cancel();
    inst.bootTimer?.cancel();
    inst.cycleTimer?.cancel();
    if (!inst.dyno) {
      inst.pendingStop = true;
      inst.pendingSignal = signal;
      return;
    }
    const sig = signal ?? app.settings.stopSignal ?? this.ctx.policy.stopSignal;
    const grace = app.settings.stopGraceMs ?? this.ctx.policy.stopGraceMs;
    this.ctx.log(app.name, inst.name, `Stopping all processes with ${sig}`);
    inst.dyno.on('stop-timeout', () => {
      this.ctx.log(app.name, inst.name, `Error R12 (Exit timeout) -> Process failed to exit within ${seconds(grace)} seconds of ${sig}`);
      this.ctx.event({ kind: 'r12', app: app.name, dyno: inst.name, at: this.ctx.clock.now() });
      this.ctx.log(app.name, inst.name, 'Stopping all processes with SIGKILL');
    });
    void inst.dyno.stop(grace, sig);
  }

  /** A replaced web dyno: no new requests, wait for in-flight ones (router) or the drain time, then stop. */
  async retire(app: AppState, inst: Instance): Promise<void> {
    inst.state = 'draining';
    this.owner.routesChanged(app);
    if (inst.address !== undefined) {
      const max = this.ctx.policy.drainMs;
      const drain = this.ctx.drain;
      if (drain) await drain.waitIdle(app.name, backendAddress(inst.address, this.ctx.webPort), max).catch(() => undefined);
      // without a router nothing is in flight that we could see: a short pause stands in for it
      else await new Promise<void>((r) => this.ctx.clock.after(Math.min(max, 250), r));
    }
    this.stop(app, inst);
  }

  /** A memory event of the kernel, or 'over-quota' from the sweep. */
  memoryEvent(app: AppState, inst: Instance, kind: string): void {
    if (inst.state === 'exited') return;
    const now = this.ctx.clock.now();
    const reaction = reactToMemory(kind, inst, inst.dyno?.memoryUsage?.(), quotaOf(app.settings, inst.size), now, this.ctx.policy.r14IntervalMs);
    if (reaction.action === 'none') return;
    for (const line of reaction.lines) this.ctx.log(app.name, inst.name, line);
    if (reaction.action === 'warn') {
      inst.lastR14 = now;
      this.ctx.event({ kind: 'r14', app: app.name, dyno: inst.name, at: now });
      return;
    }
    inst.r15 = true;
    this.ctx.event({ kind: 'r15', app: app.name, dyno: inst.name, at: now });
    inst.stopSent = true;
    void inst.dyno?.kill();
  }

  /**
   * A dyno idling above its quota raises no kernel event, yet Heroku logs R14 about every 20 s
   * while it stays there: the sweep reads memory.current of every running dyno.
   */
  sweepMemory(apps: Iterable<AppState>): void {
    for (const app of apps) {
      for (const inst of instancesOf(app)) {
        if (inst.state === 'exited' || !inst.dyno) continue;
        const mem = inst.dyno.memoryUsage?.();
        if (mem && mem.current > quotaOf(app.settings, inst.size)) this.memoryEvent(app, inst, 'over-quota');
      }
    }
  }

  private async exited(app: AppState, inst: Instance, status: ExitStatus): Promise<void> {
    if (inst.state === 'exited') return;
    const wasUp = inst.state === 'up' || inst.state === 'draining';
    inst.state = 'exited';
    inst.clearTimers();
    if (inst.dyno) this.ctx.dynoGone(inst.dyno.id);
    // app output written just before the exit comes first in the log
    await Promise.race([inst.output, new Promise<void>((r) => this.ctx.clock.after(OUTPUT_FLUSH_MS, r))]);
    if (inst.dyno) this.ctx.log(app.name, inst.name, `Process exited with status ${status.status}`);
    const torn = inst.dyno ? inst.dyno.exited : Promise.resolve(status);
    void torn.then(() => inst.resolveDone(status));
    if (inst.oneoff) {
      // one-off dynos never restart
      this.ctx.log(app.name, inst.name, `State changed from ${wasUp ? 'up' : 'starting'} to complete`);
      app.oneoffs.delete(inst.name);
      return;
    }
    this.owner.instanceExited(app, inst, status);
  }
}
