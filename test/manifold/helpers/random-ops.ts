/**
 * The random operations the supervisor's property tests share (supervisor-converge, supervisor-slots):
 * dyno stop times, and the disturbances between the changes each test makes itself (restart,
 * ps:stop, crash, deploy, binding $PORT, clock advances). Each test keeps its own mix through the
 * cut points it passes, so a seed replays the same sequence.
 */
import type { Release } from '../../../src/manifold/store/store';
import { SupervisorError } from '../../../src/manifold/supervisor/errors';
import type { Rng } from './prng';
import { APP, listenAll, releaseOf, type Harness } from './supervisor-harness';

export const TYPES = ['web', 'worker'] as const;
export const SIZES = ['standard-1x', 'standard-2x'] as const;
/** The supervisor's default stop grace (R12). */
export const GRACE = 30_000;
export const PROCFILE_FULL = { web: 'node server.js', worker: 'node worker.js' };

/** How long a dyno takes to exit after its stop signal: at once, inside the grace, never (SIGKILL), or around the grace. */
export function randomExitDelay(rng: Rng): () => number | null {
  return () => {
    const r = rng.next();
    if (r < 0.35) return 0;
    if (r < 0.7) return rng.int(1, GRACE - 1);
    if (r < 0.85) return null;
    return rng.pick([GRACE - 1, GRACE, GRACE + 1]);
  };
}

/** Upper bounds (of the r passed to step) for restart, ps:stop, crash, deploy and listen; above: a clock advance. */
export interface DisturbanceCuts {
  restart: number;
  stop: number;
  crash: number;
  deploy: number;
  listen: number;
}

export class Disturbances {
  release: Release = releaseOf(1, PROCFILE_FULL);
  private version = 1;

  constructor(
    private readonly h: Harness,
    private readonly rng: Rng,
    private readonly ops: string[],
    /** Highest N of a random `TYPE.N` target. */
    private readonly maxSlot: number,
    private readonly cuts: DisturbanceCuts,
  ) {}

  /** One disturbance chosen by r (the caller's draw, above its own operations' share). */
  async step(r: number): Promise<void> {
    const { h, rng, ops, cuts } = this;
    if (r < cuts.restart) {
      const to = this.target();
      ops.push(`restart ${to ?? 'all'}`);
      tolerant(() => h.supervisor.restart(APP, to));
    } else if (r < cuts.stop) {
      const to = this.target() ?? 'web';
      ops.push(`ps:stop ${to}`);
      tolerant(() => h.supervisor.stop(APP, to));
    } else if (r < cuts.crash) {
      const running = h.launcher.running();
      if (running.length) {
        const d = rng.pick(running);
        const code = rng.pick([0, 1, 137]);
        ops.push(`crash ${d.id} ${code}${d.stopping ? ' (while stopping)' : ''}`);
        d.exit(code);
      }
    } else if (r < cuts.deploy) {
      this.version++;
      // sometimes a release without the worker type: its dynos go, the wanted rows stay
      this.release = releaseOf(this.version, rng.chance(0.2) ? { web: PROCFILE_FULL.web } : PROCFILE_FULL);
      ops.push(`deploy v${this.version} (${Object.keys(this.release.procfile).join(', ')})`);
      h.supervisor.setRelease(APP, this.release);
    } else if (r < cuts.listen) {
      ops.push('listen');
      listenAll(h, rng);
    } else {
      const ms = rng.chance(0.5) ? rng.pick([0, 1, 200, 250, GRACE - 1, GRACE, 60_000]) : rng.int(0, 45_000);
      ops.push(`advance ${ms}`);
      listenAll(h, rng);
      await h.clock.advance(ms);
    }
  }

  /** A random restart or ps:stop target: all, a type, or a dyno name that may not exist. */
  private target(): string | undefined {
    const r = this.rng.next();
    if (r < 0.3) return undefined;
    if (r < 0.6) return this.rng.pick(TYPES);
    return `${this.rng.pick(TYPES)}.${this.rng.int(1, this.maxSlot)}`;
  }
}

/** An API error (no such dyno or type) is a fine answer to a random target. */
function tolerant(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof SupervisorError)) throw err;
  }
}
