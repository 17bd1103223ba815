/**
 * The supervisor's state: one AppState per app, one Slot per formation dyno name (web.1,
 * worker.2) that outlives restarts, and one Instance per process lifetime. Slots carry what
 * `ps` shows (state, crashes, next restart); instances carry timers and the runtime handle.
 */
import type { ExitStatus } from '../../runtime';
import type { AppSettings, FormationRow, Release } from '../store/store';
import type { Timer } from './clock';
import type { PortWait } from './port-check';
import type { LaunchedDyno } from './types';
import type { WantedSlot } from './wanted';

/** Heroku's dyno states as `ps` and the state-change log lines name them. */
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
  /** Only for slots a cluster agent assigned (setSlots): the generation the running instance belongs to. */
  gen?: number;
  /** Cluster mode: the host the dyno runs on. */
  host?: string;
}

/** Why a formation dyno crashed, as a small fixed set (Prometheus labels them; `reason` in ps says more). */
export type CrashReason = 'R10' | 'R15' | 'signal' | 'exit' | 'start-failed';

/**
 * Why a formation dyno was started again: `crash` = the restart after a crash's cool-off; `restart` =
 * ps:restart; `stop` = ps:stop (stopped, then started by the manager); `release` = a new release;
 * `cycle` = daily cycling; `reassign` = a new size or cluster generation of the slot.
 */
export type RestartReason = 'crash' | 'restart' | 'stop' | 'release' | 'cycle' | 'reassign';

export type SupervisorEvent =
  | { kind: 'up'; app: string; dyno: string; at: number }
  | { kind: 'crashed'; app: string; dyno: string; at: number; delay: number; reason: CrashReason }
  | { kind: 'restart'; app: string; dyno: string; at: number; reason: RestartReason }
  /** Heroku's R-errors as they are logged: R10 boot timeout, R12 exit timeout, R14 over quota, R15 killed. */
  | { kind: 'r10' | 'r12' | 'r14' | 'r15'; app: string; dyno: string; at: number }
  | { kind: 'launch'; app: string; dyno: string; at: number };

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
  /**
   * Heroku's stop with the app's grace: `signal` (default the app's stop signal) to every process,
   * SIGKILL once the grace is over. An attached dyno whose client went away gets SIGHUP.
   */
  stop(signal?: NodeJS.Signals): void;
}

/**
 * Why an instance is (or will be) stopped, which decides what its exit means: `run` = any exit is
 * a crash; `down` = scaled away; `retire` = replaced by a successor; `bounce` = ps:stop, start again.
 */
export type Intent = 'run' | 'down' | 'retire' | 'bounce';

export type InstanceState = 'starting' | 'up' | 'draining' | 'exited';

/** One process lifetime of a dyno. */
export class Instance {
  dyno: LaunchedDyno | undefined;
  address: string | undefined;
  state: InstanceState = 'starting';
  intent: Intent = 'run';
  upAt: number | undefined;
  /** The stop signal (or a SIGKILL) went out: never send another. */
  stopSent = false;
  /** Asked to stop before the runtime handed us the dyno: stop it once it does, with this signal. */
  pendingStop = false;
  pendingSignal: NodeJS.Signals | undefined;
  bootTimer: Timer | undefined;
  cycleTimer: Timer | undefined;
  portWait: PortWait | undefined;
  /** The slot's generation when this instance was launched (0 on a single host). */
  gen = 0;
  /** Killed for R10 / R15: the crash reason says so instead of "killed by SIGKILL". */
  r10 = false;
  r15 = false;
  lastR14 = Number.NEGATIVE_INFINITY;
  /** Resolves when the dyno's stdout/stderr pipe is closed and read to the end. */
  output: Promise<void> = Promise.resolve();
  /** Resolves after the runtime's teardown: nothing of this instance is left on the host. */
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
    readonly startedAt: number,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  clearTimers(): void {
    this.bootTimer?.cancel();
    this.cycleTimer?.cancel();
    this.portWait?.cancel();
  }
}

/** A formation dyno name: its current instance and the replaced ones still stopping. */
export interface Slot {
  name: string;
  type: string;
  current: Instance | undefined;
  retiring: Set<Instance>;
  state: DynoState;
  since: number;
  crashes: number;
  restartAt: number | null;
  restartTimer: Timer | undefined;
  reason: string | null;
  size: string;
  /** Generation of the wanted slot this slot runs (wanted.ts); a different one replaces the instance. */
  gen: number;
  /**
   * Scaled away: its instances are stopping and the slot is forgotten once they are gone. Wanted
   * again before that, it starts a new instance beside the stopping ones (it must not wait for
   * them, nor be forgotten at their exit); restart and ps:stop leave it alone.
   */
  leaving: boolean;
}

export interface AppState {
  name: string;
  hosts: string[];
  release: Release | undefined;
  formation: Map<string, FormationRow>;
  /** Set by setSlots (a cluster agent's assignments): wanted instead of the formation; undefined on a single host. */
  assigned: Map<string, WantedSlot> | undefined;
  settings: AppSettings;
  slots: Map<string, Slot>;
  oneoffs: Map<string, Instance>;
  oneoffSeq: number;
}

/** Every instance of an app whose process may still run. */
export function instancesOf(app: AppState): Instance[] {
  const out = [...app.oneoffs.values()];
  for (const slot of app.slots.values()) {
    if (slot.current) out.push(slot.current);
    out.push(...slot.retiring);
  }
  return out;
}
