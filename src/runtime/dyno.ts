/**
 * Starting, watching and stopping dynos. A Runtime owns the host-side resources shared by dynos
 * (the cgroup subtree, the host stack skeleton, the scratch mount point); a Dyno is one running
 * process tree. Exit is reported by the addon from the dyno's pidfd; `exited` resolves only after
 * teardown (processes, cgroup, mounts gone). A bridged dyno's veth pair and address lease are
 * released right after, in the background: deleting a link waits for an RCU grace period (~20 ms
 * here), which a dyno's exit should not wait for. `runtime.settled()` (and `close()`) waits for it;
 * an address is never leased again before its old veth is gone.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CgroupTree } from './cgroup';
import { DynoError, fromNativeError, nativeStep } from './errors';
import { diffMemoryEvents, type MemoryCounters, type MemoryUsage, parseMemoryEvents, readMemoryUsage } from './memory';
import { native, type NativeExit, type NativeFileWatch, type NativeStatus } from './native';
import { isStopSignal } from './native-table';
import { BridgeNetwork, type BridgeOptions, DEFAULT_BRIDGE, type Lease, linkIndex } from './network';
import { applyResources } from './resources';
import { defaultScratchBudget, mb, ScratchBudget } from './scratch';
import { scratchBytesFor } from './sizes';
import { type DynoSpec, encodeConfig, validateSpec } from './spec';
import { directoryStack, hostStack, type PreparedStack } from './stack';
import { DEFAULT_RUN_DIR } from '../shared/defaults';

export interface ExitStatus {
  /** Exit code of the app, or null when it was killed by a signal. */
  code: number | null;
  /** Signal that killed the app (or dyno-init, when the dyno was force-stopped). */
  signal: NodeJS.Signals | null;
  /** Shell-style status: code, or 128 + signal number. */
  status: number;
  /** The kernel OOM-killed a process of the dyno (memory.events oom_kill grew). */
  oom: boolean;
  /** The dyno was stopped through stop()/kill rather than ending by itself. */
  stopped: boolean;
}

export interface RuntimeOptions {
  /** Host directory for the stack skeleton and the scratch mount point. */
  runDir?: string;
  /** Name of the subtree under the cgroup v2 mount. */
  cgroupName?: string;
  /** Bridge network settings, used by dynos with net.mode 'bridge'. */
  bridge?: BridgeOptions;
  /**
   * Bytes all live dynos' writable layers (tmpfs, RAM) may add up to; default half of RAM
   * (scratch.ts). A dyno that does not fit gets what is left, or is refused below 64 MiB.
   */
  scratchBudget?: number;
}

// defined with the other host defaults, which the CLI reads without loading the runtime
export { DEFAULT_RUN_DIR };
export const DEFAULT_STOP_GRACE_MS = 30_000;

function signalName(n: number): NodeJS.Signals | null {
  const entry = Object.entries(os.constants.signals).find(([, v]) => v === n);
  return entry ? (entry[0] as NodeJS.Signals) : null;
}

function signalNumber(sig: NodeJS.Signals | number): number {
  if (typeof sig === 'number') return sig;
  const n = os.constants.signals[sig];
  if (n === undefined) throw new DynoError({ errno: 22, syscall: 'pidfd_send_signal', step: 'signal', message: `unknown signal ${sig}` });
  return n;
}

export class Runtime {
  readonly runDir: string;
  readonly cgroups: CgroupTree;
  private readonly stacks = new Map<string, PreparedStack>();
  private readonly scratchDir: string;
  private readonly live = new Set<Dyno>();
  /** Network releases (veth deletion, then the lease) still under way. */
  private readonly releasing = new Set<Promise<void>>();
  private readonly bridgeOptions: BridgeOptions;
  readonly scratchBudget: ScratchBudget;
  private bridgeNetwork: BridgeNetwork | undefined;

  private constructor(runDir: string, cgroups: CgroupTree, bridge: BridgeOptions, scratchBudget: number) {
    this.runDir = runDir;
    this.cgroups = cgroups;
    this.scratchDir = path.join(runDir, 'scratch');
    this.bridgeOptions = bridge;
    this.scratchBudget = new ScratchBudget(scratchBudget);
  }

  /** Checks the host (root, cgroup v2, the built addon) and prepares the shared directories. */
  static open(opts: RuntimeOptions = {}): Runtime {
    if (process.getuid?.() !== 0) {
      throw new DynoError({ errno: 1, syscall: 'getuid', step: 'spawn', message: 'Manifold must run as root to start dynos' });
    }
    const runDir = opts.runDir ?? DEFAULT_RUN_DIR;
    const cgroups = CgroupTree.open(opts.cgroupName ?? 'manifold');
    fs.mkdirSync(path.join(runDir, 'scratch'), { recursive: true, mode: 0o700 });
    native();
    return new Runtime(runDir, cgroups, opts.bridge ?? {}, opts.scratchBudget ?? defaultScratchBudget());
  }

  /** Name of the bridge this runtime's bridged dynos join. */
  get bridgeName(): string {
    return this.bridgeOptions.name ?? DEFAULT_BRIDGE;
  }

  /** The host bridge, created on first use by a bridge-networked dyno. */
  bridge(): BridgeNetwork {
    this.bridgeNetwork ??= BridgeNetwork.ensure(this.runDir, this.bridgeOptions);
    return this.bridgeNetwork;
  }

  /** One line for operators if this host cannot enforce some limits. */
  warning(): string | undefined {
    return this.cgroups.warning();
  }

  get running(): ReadonlySet<Dyno> {
    return this.live;
  }

  private stackFor(spec: DynoSpec): PreparedStack {
    const key = spec.stack ?? 'host';
    let stack = this.stacks.get(key);
    if (!stack) {
      stack = key === 'host' ? hostStack(this.runDir) : directoryStack(key);
      this.stacks.set(key, stack);
    }
    return stack;
  }

  /** Starts a dyno; resolves once its command has been exec'd, rejects with a DynoError otherwise. */
  start(spec: DynoSpec): Promise<Dyno> {
    // Every failure, a bad spec included, is a rejected promise: callers handle one path.
    const id = `${spec.name}-${randomBytes(4).toString('hex')}`;
    const bridged = spec.net?.mode === 'bridge';
    let lease: Lease | undefined;
    let leaf: { path: string; fd: number } | undefined;
    let nullFd = -1;
    let scratchBytes = 0; // reserved in the budget and not yet owned by a Dyno (whose teardown returns it)
    try {
      validateSpec(spec);
      const stack = this.stackFor(spec);
      const wanted = scratchBytesFor(spec);
      scratchBytes = this.scratchBudget.reserve(wanted);
      const shrunk = scratchBytes < wanted ? `writable layer ${mb(scratchBytes)} instead of ${mb(wanted)}: the runtime's budget for all dynos is nearly used` : undefined;
      if (bridged) lease = this.bridge().lease(this.cgroups.root);
      const config = encodeConfig(spec, { stackDir: stack.lowerDir, binds: stack.binds, scratchDir: this.scratchDir, scratchBytes, ...(lease ? { lease } : {}) });
      leaf = this.cgroups.create(id);
      const unenforced = applyResources(this.cgroups, id, spec.resources ?? {});
      nullFd = fs.openSync('/dev/null', 'r+');
      const stdio: [number, number, number] = [spec.stdio?.stdin ?? nullFd, spec.stdio?.stdout ?? nullFd, spec.stdio?.stderr ?? nullFd];
      const dyno = new Dyno(this, id, spec.name, leaf.path, { lease, unenforced, quota: spec.resources?.memoryQuota, scratchBytes, shrunk });
      dyno.watchMemory(this.cgroups.controllers.includes('memory'));
      this.live.add(dyno);
      native().spawn(config, leaf.fd, stdio, bridged, (s) => dyno.onStatus(s), (e) => dyno.onExit(e), (err, proc) => {
        if (proc) dyno.attach(proc);
        else dyno.onSpawnFailed(fromNativeError(err, 'spawn'));
      });
      scratchBytes = 0;
      return dyno.started;
    } catch (err) {
      if (lease) this.bridge().release(lease);
      this.scratchBudget.release(scratchBytes);
      if (leaf) void this.cgroups.remove(id).catch(() => undefined);
      return Promise.reject(fromNativeError(err, 'spawn'));
    } finally {
      if (leaf) fs.closeSync(leaf.fd);
      if (nullFd >= 0) fs.closeSync(nullFd);
    }
  }

  /**
   * After a crash of the supervising process: kills and removes every dyno cgroup leaf of this
   * subtree that no live Dyno of ours owns (their processes died with their supervisor through
   * PDEATHSIG, or are killed now with cgroup.kill), and frees the address leases made for this
   * subtree but not for a live Dyno of ours, and those of dead owners.
   * Returns the ids of the leaves removed.
   */
  async reclaimStale(): Promise<string[]> {
    const ours = new Set([...this.live].map((d) => d.id));
    const stale = this.cgroups.leaves().filter((id) => !ours.has(id));
    await Promise.all(stale.map(async (id) => {
      this.cgroups.kill(id);
      await this.cgroups.remove(id);
    }));
    if (linkIndex(this.bridgeName) !== undefined) {
      // leases of this subtree are ours alike: a killed predecessor's, even while its pid shows
      const live = new Set([...this.live].flatMap((d) => (d.lease ? [d.lease.address] : [])));
      this.bridge().reclaimStaleLeases({ subtree: this.cgroups.root, live });
    }
    return stale;
  }

  /** Resolves once every ended dyno's network is released (its veth deleted, its lease freed). */
  async settled(): Promise<void> {
    while (this.releasing.size > 0) await Promise.all([...this.releasing]);
  }

  /**
   * Waits for network releases, then removes this runtime's cgroup subtree if no dyno is left in
   * it (a stopped daemon leaves nothing).
   */
  async close(): Promise<void> {
    await this.settled();
    if (this.live.size > 0) return;
    try {
      fs.rmdirSync(this.cgroups.root);
    } catch {
      /* leaves of another process, or already gone */
    }
  }

  /** Called by a Dyno when it is gone: removes its cgroup, then releases its network in the background. */
  async teardown(dyno: Dyno): Promise<void> {
    // every process is gone, and with dyno-init its mount namespace and the tmpfs in it
    if (this.live.delete(dyno)) this.scratchBudget.release(dyno.scratchBytes);
    this.cgroups.kill(dyno.id);
    try {
      await this.cgroups.remove(dyno.id);
    } finally {
      if (dyno.lease) this.releaseNetwork(dyno, dyno.lease);
    }
  }

  private releaseNetwork(dyno: Dyno, lease: Lease): void {
    const release: Promise<void> = this.bridge()
      .releaseWithVeth(lease)
      .catch((err: unknown) => {
        dyno.emit('warning', `releasing the network of ${dyno.id}: ${(err as Error).message}`);
      })
      .finally(() => this.releasing.delete(release));
    this.releasing.add(release);
  }
}

export interface DynoExtras {
  lease: Lease | undefined;
  /** cgroup files requested by the spec that this host could not apply. */
  unenforced: string[];
  quota: number | undefined;
  scratchBytes: number;
  /** Why the writable layer is smaller than the dyno's size asks, if it is. */
  shrunk?: string | undefined;
}

/**
 * Events: 'memory' (MemoryEvent: high, max, oom, oom_kill... as the kernel counts them),
 * 'warning' (string), 'stop-timeout' (stop()'s grace ran out, SIGKILL follows), 'exit' (ExitStatus).
 */
export class Dyno extends EventEmitter {
  readonly id: string;
  readonly name: string;
  readonly cgroupPath: string;
  /** Bridge mode: the dyno's IPv4 address; the router connects to address:PORT. */
  readonly address: string | undefined;
  readonly lease: Lease | undefined;
  readonly unenforced: readonly string[];
  /** Memory quota (R14 threshold) in bytes, if any. */
  readonly quota: number | undefined;
  /** Size of the writable layer (tmpfs under / and /app) in bytes: where the app gets ENOSPC. */
  readonly scratchBytes: number;
  /** Host pid of the dyno's PID 1 (dyno-init). */
  pid = -1;
  /** pid of the app inside the dyno (normally 2). */
  appPid = -1;
  readonly started: Promise<Dyno>;
  /** Resolves once every process of the dyno is gone, before teardown: a supervisor can restart now. */
  readonly ended: Promise<ExitStatus>;
  /**
   * Resolves after teardown too: no process, cgroup or mount of the dyno is left on the host (a
   * bridged dyno's veth and lease follow in the background: `runtime.settled()`).
   */
  readonly exited: Promise<ExitStatus>;

  private readonly runtime: Runtime;
  private process: { kill(signal: number): boolean } | undefined;
  private setupError: Error | undefined;
  private appExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stopRequested = false;
  private killTimer: NodeJS.Timeout | undefined;
  private resolveStarted!: (d: Dyno) => void;
  private rejectStarted!: (e: Error) => void;
  private resolveExited!: (s: ExitStatus) => void;
  private resolveEnded!: (s: ExitStatus) => void;
  private isStarted = false;
  private memoryWatch: NativeFileWatch | undefined;
  private memoryCounters: MemoryCounters | undefined;
  private readonly shrunk: string | undefined;

  constructor(runtime: Runtime, id: string, name: string, cgroupPath: string, extras: DynoExtras) {
    super();
    this.runtime = runtime;
    this.id = id;
    this.name = name;
    this.cgroupPath = cgroupPath;
    this.lease = extras.lease;
    this.address = extras.lease?.address;
    this.unenforced = extras.unenforced;
    this.quota = extras.quota;
    this.scratchBytes = extras.scratchBytes;
    this.shrunk = extras.shrunk;
    this.started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.exited = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
    // A caller that only awaits `exited` must not see an unhandled rejection from `started`.
    this.started.catch(() => undefined);
  }

  /** @internal Starts the memory.events watch (kernel push, no polling). */
  watchMemory(available: boolean): void {
    if (!available) return;
    const file = path.join(this.cgroupPath, 'memory.events');
    this.memoryCounters = parseMemoryEvents(fs.readFileSync(file, 'utf8'));
    this.memoryWatch = native().watchFile(file, (text) => this.onMemoryEvents(text));
  }

  private onMemoryEvents(text: string): void {
    if (!this.memoryCounters) return;
    const now = parseMemoryEvents(text);
    const events = diffMemoryEvents(this.memoryCounters, now);
    this.memoryCounters = now;
    for (const event of events) this.emit('memory', event);
  }

  /** memory.current and memory.stat, read now (for R14 and `ps`); undefined without a memory controller. */
  memoryUsage(): MemoryUsage | undefined {
    return readMemoryUsage(this.cgroupPath);
  }

  /** @internal */
  attach(proc: { pid: number; kill(signal: number): boolean }): void {
    this.process = proc;
    this.pid = proc.pid;
    if (this.stopRequested) proc.kill(signalNumber('SIGKILL'));
  }

  /** @internal clone3 itself failed: nothing ran, only our host-side pieces need undoing. */
  onSpawnFailed(err: Error): void {
    this.setupError = err;
    this.memoryWatch?.close();
    this.memoryWatch = undefined;
    this.onExit({ code: null, signal: null });
  }

  /**
   * Sends a signal to dyno-init. It forwards the stop signals (STOP_SIGNALS) to every process of
   * the dyno; SIGKILL ends dyno-init and with it the whole dyno; anything else stops at dyno-init.
   */
  signal(sig: NodeJS.Signals | number): boolean {
    return this.process?.kill(signalNumber(sig)) ?? false;
  }

  /**
   * Heroku's stop: SIGTERM (or another of STOP_SIGNALS) to every process, then SIGKILL after the
   * grace period. A signal dyno-init would not relay (one stored before the list was enforced)
   * becomes SIGTERM with a warning: sent as is, the app would never see it and only SIGKILL would end it.
   */
  stop(graceMs = DEFAULT_STOP_GRACE_MS, sig: NodeJS.Signals = 'SIGTERM'): Promise<ExitStatus> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      if (!isStopSignal(sig)) this.emit('warning', `${sig} is not a stop signal dyno-init forwards; sending SIGTERM`);
      this.signal(isStopSignal(sig) ? sig : 'SIGTERM');
      this.killTimer = setTimeout(() => {
        // the dyno manager logs R12 before the SIGKILL
        this.emit('stop-timeout');
        void this.kill();
      }, graceMs);
    }
    return this.exited;
  }

  /** Immediate SIGKILL of the whole dyno (its PID 1 dies, so the kernel kills the namespace). */
  kill(): Promise<ExitStatus> {
    this.stopRequested = true;
    this.signal('SIGKILL');
    return this.exited;
  }

  /** @internal */
  onStatus(s: NativeStatus): void {
    switch (s.kind) {
      case 'started':
        this.appPid = s.pid ?? -1;
        this.isStarted = true;
        this.resolveStarted(this);
        // after the starter's continuation has had its turn to listen
        if (this.shrunk) setImmediate(() => this.emit('warning', this.shrunk));
        break;
      case 'error':
        this.setupError = new DynoError({ errno: s.errno ?? 5, syscall: s.syscall || 'unknown', step: nativeStep(s.step, 'init'), path: s.detail || undefined });
        break;
      case 'exited':
        this.appExit = { code: s.code ?? null, signal: s.signal !== undefined ? signalName(s.signal) : null };
        break;
      case 'warning':
        this.emit('warning', s.detail ?? '');
        break;
      default:
        break;
    }
  }

  /** @internal */
  onExit(e: NativeExit): void {
    if (this.killTimer) clearTimeout(this.killTimer);
    const exit = this.appExit ?? { code: e.code, signal: e.signal !== null ? signalName(e.signal) : null };
    const status: ExitStatus = {
      code: exit.code,
      signal: exit.signal,
      status: exit.code ?? 128 + (exit.signal ? os.constants.signals[exit.signal] : 0),
      oom: this.finalOomCheck(),
      stopped: this.stopRequested,
    };
    if (this.isStarted) this.resolveEnded(status);
    void this.runtime.teardown(this).then(
      () => this.finish(status),
      (err: unknown) => {
        this.emit('warning', `teardown of ${this.id}: ${(err as Error).message}`);
        this.finish(status);
      },
    );
  }

  /** Re-reads memory.events after the exit (crun/containerd do the same): an OOM kill may not have been pushed yet. */
  private finalOomCheck(): boolean {
    if (!this.memoryCounters) return false;
    try {
      this.onMemoryEvents(fs.readFileSync(path.join(this.cgroupPath, 'memory.events'), 'utf8'));
    } catch {
      /* leaf already gone */
    }
    this.memoryWatch?.close();
    this.memoryWatch = undefined;
    return this.memoryCounters.oom_kill > 0 || this.memoryCounters.oom_group_kill > 0;
  }

  private finish(status: ExitStatus): void {
    if (!this.isStarted) {
      this.rejectStarted(
        this.setupError ??
          new DynoError({ errno: 5, syscall: 'waitid', step: 'init', message: `dyno-init ended during setup (code ${status.code}, signal ${status.signal})` }),
      );
    }
    this.resolveEnded(status);
    this.resolveExited(status);
    this.emit('exit', status);
  }
}
