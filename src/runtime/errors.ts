import { getSystemErrorName } from 'node:util';

/** Where in a dyno's life a runtime error happened. */
export type DynoStep =
  | 'config' | 'spec' | 'load-helper' | 'spawn' | 'exec-init' | 'init' | 'cgroup' | 'cgroup-namespace'
  | 'mount-root' | 'mount-stack' | 'mount-app' | 'mount-proc' | 'mount-sys' | 'mount-dev' | 'mask-paths'
  | 'pivot-root' | 'hostname' | 'network' | 'rlimits' | 'identity' | 'seccomp' | 'exec' | 'signal'
  | 'stack' | 'teardown' | 'status';

/**
 * A failure of the runtime, shaped like Node's SystemError: `code` is the errno name (ENOENT...),
 * `syscall` the call that failed, `step` the setup step, `path` a related path if any.
 */
export class DynoError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly step: string;
  readonly path: string | undefined;

  constructor(opts: { errno: number; syscall: string; step: string; path?: string; message?: string }) {
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

/** Native errors carry errno/syscall/step as properties; lift them into a DynoError. */
export function fromNativeError(err: unknown, fallbackStep: string): Error {
  if (err instanceof Error) {
    const e = err as Error & { errno?: unknown; syscall?: unknown; step?: unknown };
    if (typeof e.errno === 'number' && typeof e.syscall === 'string') {
      return new DynoError({ errno: e.errno, syscall: e.syscall, step: typeof e.step === 'string' ? e.step : fallbackStep });
    }
    return err;
  }
  return new Error(String(err));
}
