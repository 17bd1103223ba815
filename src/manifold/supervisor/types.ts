/** What the supervisor needs from the runtime and the router, as narrow interfaces (tests can fake them). */
import type { DynoSpec, ExitStatus } from '../../runtime';
import type { PortWait } from './port-check';

export interface MemoryEvent {
  kind: 'oom_kill' | 'high' | 'max' | string;
  count?: number;
}

/** The part of runtime's Dyno the supervisor uses. `address` arrives with bridge networking. */
export interface LaunchedDyno {
  readonly id: string;
  readonly pid: number;
  /** Bridge networking: the dyno's own address, where the router reaches $PORT. */
  readonly address?: string | undefined;
  readonly exited: Promise<ExitStatus>;
  /** Resolves as soon as the dyno's processes are gone, before its teardown (cgroup, address). */
  readonly ended?: Promise<ExitStatus>;
  signal(sig: NodeJS.Signals | number): boolean;
  /** Heroku's stop: `sig` to every process, SIGKILL after `graceMs` ('stop-timeout' just before it). */
  stop(graceMs: number, sig: NodeJS.Signals): Promise<ExitStatus>;
  kill(): Promise<ExitStatus>;
  on(event: 'memory', listener: (ev: MemoryEvent) => void): unknown;
  /** The grace of stop() ran out and SIGKILL follows (R12). */
  on(event: 'stop-timeout', listener: () => void): unknown;
  on(event: 'warning', listener: (msg: string) => void): unknown;
  /** memory.current / memory.stat now; undefined without a memory controller. */
  memoryUsage?(): { current: number; rss: number; cache: number; swap: number } | undefined;
}

export interface Launcher {
  start(spec: DynoSpec): Promise<LaunchedDyno>;
  /** Pipe for a dyno's stdout/stderr: [readFd, writeFd]. */
  pipe(): [number, number];
  /** Pseudo-terminal for an attached one-off dyno: [master, slave]; optional. */
  openPty?(cols: number, rows: number): [number, number];
  resizePty?(masterFd: number, cols: number, rows: number): void;
  /**
   * Resolves true once the web dyno listens on `port` (R10 measures this); default: probe its
   * address, or its network namespace's sockets (port-check.ts).
   */
  waitForPort?(dyno: LaunchedDyno, port: number): PortWait;
}

export type BackendState = 'starting' | 'up' | 'crashed' | 'draining';

export interface RouteBackend {
  dyno: string;
  address: string;
  state: BackendState;
  /** The instance's assignment generation and release (a cluster agent publishes them per instance). */
  gen?: number;
  release?: number;
}

export interface RouteAppInput {
  hosts: string[];
  backends: RouteBackend[];
  crashed?: false | { message?: string };
}

/** The router's route table as the supervisor feeds it (structurally router/RouteTable). */
export interface RouteSink {
  setApp(name: string, input: RouteAppInput): void;
  removeApp(name: string): void;
}

/** Optional: the router tells when a draining backend has no request in flight. */
export interface DrainWatcher {
  waitIdle(app: string, address: string, timeoutMs: number): Promise<void>;
}
