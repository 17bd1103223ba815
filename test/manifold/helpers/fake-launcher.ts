/**
 * A Launcher without processes: each start makes a FakeDyno the test drives (exit, bind $PORT,
 * memory usage and events), and every start, signal and exit is written to one journal so tests
 * can check the order of things (new dyno up before the old one is stopped, and so on).
 */
import { EventEmitter } from 'node:events';
import type { DynoSpec, ExitStatus } from '../../../src/runtime';
import type { MemoryUsage } from '../../../src/runtime/memory';
import type { PortWait } from '../../../src/manifold/supervisor/port-check';
import type { LaunchedDyno, Launcher } from '../../../src/manifold/supervisor/types';
import type { FakeClock } from './fake-clock';

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };

export class FakeDyno extends EventEmitter implements LaunchedDyno {
  readonly exited: Promise<ExitStatus>;
  readonly ended: Promise<ExitStatus>;
  /** Every signal the supervisor sent, SIGKILL included. */
  readonly signals: string[] = [];
  /** Calls of stop(grace, signal). */
  readonly stops: { graceMs: number; signal: string }[] = [];
  usage: MemoryUsage | undefined;
  bound = false;
  private resolveExit!: (s: ExitStatus) => void;
  private stopRequested = false;
  private gone = false;
  private bind: ((bound: boolean) => void) | undefined;

  constructor(
    readonly spec: DynoSpec,
    readonly id: string,
    readonly pid: number,
    readonly address: string | undefined,
    private readonly launcher: FakeLauncher,
  ) {
    super();
    this.exited = new Promise((r) => (this.resolveExit = r));
    this.ended = this.exited;
  }

  get name(): string {
    return this.spec.name;
  }

  get running(): boolean {
    return !this.gone;
  }

  /** Told to stop (stop signal or SIGKILL) and not gone yet. */
  get stopping(): boolean {
    return this.stopRequested && !this.gone;
  }

  signal(sig: NodeJS.Signals | number): boolean {
    this.signals.push(String(sig));
    this.launcher.journal.push(`signal ${this.id} ${String(sig)}`);
    return !this.gone;
  }

  /** The runtime's stop sequence on the fake clock: the signal, then SIGKILL after the grace unless it exited. */
  stop(graceMs: number, sig: NodeJS.Signals): Promise<ExitStatus> {
    if (this.stopRequested) return this.exited;
    this.stopRequested = true;
    this.stops.push({ graceMs, signal: sig });
    this.signal(sig);
    const delay = this.launcher.stubborn.has(this.name) ? null : this.launcher.exitDelay ? this.launcher.exitDelay(this, sig) : 0;
    // the runtime's SIGKILL at the end of the grace, unless the app has exited by then
    const killAtGrace = (): void => {
      this.launcher.clock.after(graceMs, () => {
        if (this.gone) return;
        this.emit('stop-timeout');
        void this.kill();
      });
    };
    if (delay === null || delay >= graceMs) killAtGrace();
    else if (delay === 0) {
      // a well-behaved app exits on the stop signal
      queueMicrotask(() => this.exitBySignal(sig));
    } else {
      // an app that takes a while to shut down, within the grace
      killAtGrace();
      this.launcher.clock.after(delay, () => this.exitBySignal(sig));
    }
    return this.exited;
  }

  kill(): Promise<ExitStatus> {
    this.stopRequested = true;
    this.signal('SIGKILL');
    queueMicrotask(() => this.exitBySignal('SIGKILL'));
    return this.exited;
  }

  /** The app exits by itself with `code`. */
  exit(code: number): void {
    this.finish({ code, signal: null, status: code, oom: false, stopped: this.stopRequested });
  }

  /** The web app starts listening on $PORT. */
  listen(): void {
    this.bound = true;
    this.bind?.(true);
  }

  memoryEvent(kind: string): void {
    this.emit('memory', { kind });
  }

  memoryUsage(): MemoryUsage | undefined {
    return this.usage;
  }

  /** @internal the launcher's port probe */
  portWait(): PortWait {
    const promise = new Promise<boolean>((r) => {
      this.bind = r;
      if (this.bound) r(true);
    });
    return { promise, cancel: () => this.bind?.(false) };
  }

  private exitBySignal(sig: string): void {
    this.finish({ code: null, signal: sig as NodeJS.Signals, status: 128 + (SIGNAL_NUMBERS[sig] ?? 0), oom: false, stopped: this.stopRequested });
  }

  private finish(status: ExitStatus): void {
    if (this.gone) return;
    this.gone = true;
    this.launcher.journal.push(`exit ${this.id} ${status.status}`);
    this.resolveExit(status);
  }
}

export class FakeLauncher implements Launcher {
  readonly dynos: FakeDyno[] = [];
  readonly journal: string[] = [];
  /** Dyno names whose app ignores the stop signal (R12 after the grace). */
  readonly stubborn = new Set<string>();
  /**
   * How long a dyno takes to exit after its stop signal: ms (0 = at once, the default; at or past
   * the grace = SIGKILL at the grace), or null to ignore the signal like a stubborn one.
   */
  exitDelay: ((dyno: FakeDyno, sig: string) => number | null) | undefined;
  /** Dyno names whose start fails like a missing command. */
  readonly failing = new Set<string>();
  private seq = 0;

  constructor(readonly clock: FakeClock, private readonly addresses = true) {}

  start(spec: DynoSpec): Promise<LaunchedDyno> {
    const n = ++this.seq;
    if (this.failing.has(spec.name)) {
      this.journal.push(`fail ${spec.name}`);
      return Promise.reject(new Error('exec: execve failed: ENOENT'));
    }
    const dyno = new FakeDyno(spec, `${spec.name}#${n}`, 1000 + n, this.addresses ? `10.0.0.${n}` : undefined, this);
    this.dynos.push(dyno);
    this.journal.push(`start ${dyno.id}`);
    return Promise.resolve(dyno);
  }

  pipe(): [number, number] {
    // no output pipe: the fake dynos write nothing
    return [-1, -1];
  }

  waitForPort(dyno: LaunchedDyno): PortWait {
    const fake = this.dynos.find((d) => d.id === dyno.id);
    if (!fake) throw new Error(`${dyno.id} is not a dyno of this launcher`);
    return fake.portWait();
  }

  /** The newest dyno started under `name` (web.1 after a restart is a new FakeDyno). */
  latest(name: string): FakeDyno {
    const d = this.dynos.filter((x) => x.name === name).at(-1);
    if (!d) throw new Error(`no dyno ${name} was started`);
    return d;
  }

  startsOf(name: string): number {
    return this.dynos.filter((x) => x.name === name).length;
  }

  running(): FakeDyno[] {
    return this.dynos.filter((d) => d.running);
  }
}
