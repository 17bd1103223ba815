/**
 * How the CLI reports failures: one line on stderr, a meaningful exit code, nothing else.
 * The runtime's errors are recognised by name, not instanceof: importing their classes would load
 * the runtime into every client command.
 */

/** Exit codes follow the container convention (docker/podman): 125 runtime, 126 not executable, 127 not found. */
export const EXIT_USAGE = 2;
export const EXIT_RUNTIME = 125;
export const EXIT_NOT_EXECUTABLE = 126;
export const EXIT_NOT_FOUND = 127;

export class UsageError extends Error {
  readonly code = 'EUSAGE';
}

/** sysexits-style codes for the daemon client: 1 failed request, 69 no daemon, 77 not permitted. */
export const EXIT_FAILURE = 1;
export const EXIT_UNAVAILABLE = 69;
export const EXIT_NOPERM = 77;

/** No daemon answers on the control socket. */
export class DaemonUnavailableError extends Error {
  readonly code = 'ENODAEMON';
}

/** The control socket exists but this user may not open it. */
export class NotPermittedError extends Error {
  readonly code = 'EPERM';
}

/** The daemon refused a request: code from the API (ENOAPP, EINVAL, ESCALE, ...). */
export class ApiError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

const USAGE_CODES = new Set(['EINVAL', 'ESCALE', 'EPROCFILE', 'ECONFIRM']);

/** The shape of the runtime's DynoError (src/runtime/errors.ts) that matters here. */
interface DynoErrorLike extends Error {
  name: 'DynoError';
  code: string;
  step: string;
  path: string | undefined;
}

const isDynoError = (err: unknown): err is DynoErrorLike => err instanceof Error && err.name === 'DynoError';
/** The runtime's DynoSpecError: an invalid dyno spec is a usage error. */
const isDynoSpecError = (err: unknown): boolean => err instanceof Error && err.name === 'DynoSpecError';

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || isDynoSpecError(err)) return EXIT_USAGE;
  if (err instanceof DaemonUnavailableError) return EXIT_UNAVAILABLE;
  if (err instanceof NotPermittedError) return EXIT_NOPERM;
  if (err instanceof ApiError) return USAGE_CODES.has(err.code) ? EXIT_USAGE : EXIT_FAILURE;
  if (isDynoError(err) && err.step === 'exec') {
    if (err.code === 'ENOENT') return EXIT_NOT_FOUND;
    if (err.code === 'EACCES') return EXIT_NOT_EXECUTABLE;
  }
  return EXIT_RUNTIME;
}

export function describe(err: unknown): string {
  if (isDynoError(err) && err.step === 'exec' && err.code === 'ENOENT') {
    return `command not found in the dyno: ${err.path ?? ''} (ENOENT from execve)`;
  }
  if (isDynoError(err) && err.step === 'exec' && err.code === 'EACCES') {
    return `command is not executable in the dyno: ${err.path ?? ''} (EACCES from execve)`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Prints the error as one line and sets the exit code. */
export function report(err: unknown): void {
  process.stderr.write(`manifold: ${describe(err).split('\n')[0]}\n`);
  process.exitCode = exitCodeFor(err);
}
