import { getSystemErrorName } from 'node:util';
import { NATIVE_STEPS, type NativeStep } from './native-table';

/** Where in a dyno's life a runtime error happened: a native step, or the host cgroup work done here. */
export type DynoStep = NativeStep | 'cgroup';

/**
 * A failure of the runtime, shaped like Node's SystemError: `code` is the errno name (ENOENT...),
 * `syscall` the call that failed, `step` the setup step, `path` a related path if any.
 */
export class DynoError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly step: DynoStep;
  readonly path: string | undefined;

  constructor(opts: { errno: number; syscall: string; step: DynoStep; path?: string; message?: string }) {
    const code = errnoName(opts.errno);
    const where = opts.path ? ` '${opts.path}'` : '';
    super(opts.message ?? `${opts.step}: ${opts.syscall}${where} failed: ${code}`);
    this.name = 'DynoError';
    this.code = code;
    this.errno = opts.errno;
    this.syscall = opts.syscall;
    this.step = opts.step;
    this.path = opts.path;
  }
}

export function errnoName(errno: number): string {
  if (errno <= 0) return 'EUNKNOWN';
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `E${errno}`;
  }
}

/** A step name from the native side; the tables are checked at load, so only a garbled one falls back. */
export function nativeStep(name: unknown, fallback: DynoStep): DynoStep {
  return typeof name === 'string' && (NATIVE_STEPS as readonly string[]).includes(name) ? (name as NativeStep) : fallback;
}

/** Native errors carry errno/syscall/step as properties; lift them into a DynoError. */
export function fromNativeError(err: unknown, fallbackStep: DynoStep): Error {
  if (err instanceof DynoError) return err; // already lifted: keep its message
  if (err instanceof Error) {
    const e = err as Error & { errno?: unknown; syscall?: unknown; step?: unknown };
    if (typeof e.errno === 'number' && typeof e.syscall === 'string') {
      return new DynoError({ errno: e.errno, syscall: e.syscall, step: nativeStep(e.step, fallbackStep) });
    }
    return err;
  }
  return new Error(String(err));
}
