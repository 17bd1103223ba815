/**
 * The host-wide bound on dynos' writable layers. Each dyno's throw-away layer is a tmpfs: RAM the
 * host holds until the dyno ends. With the memory controller its pages are charged to the dyno
 * (memory.max bounds them like any other memory of the app); without it they are charged to no
 * one. Either way the runtime keeps the sum of its live dynos' tmpfs sizes within a budget: by
 * default half of RAM, the share the kernel itself gives a tmpfs mounted without a size, leaving
 * the other half to the apps' processes, the daemon and the page cache.
 *
 * A dyno that does not fit in what is left gets what is left (its app sees a smaller /tmp and
 * ENOSPC sooner) rather than not running at all; below MIN_SCRATCH_BYTES it is refused with
 * ENOSPC. The budget is per runtime: one daemon per host.
 */
import os from 'node:os';
import { DynoError } from './errors';

const MB = 1024 * 1024;
const ENOSPC = 28;

export const DEFAULT_SCRATCH_FRACTION = 0.5;
/** Less than this and a writable layer is too small to be useful (an npm cache, a few uploads). */
export const MIN_SCRATCH_BYTES = 64 * MB;

export function defaultScratchBudget(): number {
  return Math.floor(os.totalmem() * DEFAULT_SCRATCH_FRACTION);
}

export class ScratchBudget {
  private reserved = 0;

  constructor(readonly total: number) {}

  /** Bytes still free for new dynos. */
  get available(): number {
    return Math.max(0, this.total - this.reserved);
  }

  /**
   * Reserves up to `wanted` bytes and returns what was granted: `wanted`, or what is left if that
   * is at least min(wanted, MIN_SCRATCH_BYTES). Throws a DynoError (ENOSPC) otherwise.
   */
  reserve(wanted: number): number {
    const granted = Math.min(wanted, this.available);
    if (granted < Math.min(wanted, MIN_SCRATCH_BYTES)) {
      throw new DynoError({
        errno: ENOSPC,
        syscall: 'mount',
        step: 'spawn',
        message: `no room for the dyno's writable layer: ${mb(this.available)} of the ${mb(this.total)} budget left, ${mb(wanted)} wanted`,
      });
    }
    this.reserved += granted;
    return granted;
  }

  release(bytes: number): void {
    this.reserved = Math.max(0, this.reserved - bytes);
  }
}

export function mb(bytes: number): string {
  return `${Math.round(bytes / MB)} MiB`;
}
