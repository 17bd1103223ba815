/** How the CLI reports failures: one line on stderr, a meaningful exit code, nothing else. */
import { DynoError } from '../runtime/errors';
import { DynoSpecError } from '../runtime/spec';

/** Exit codes follow the container convention (docker/podman): 125 runtime, 126 not executable, 127 not found. */
export const EXIT_USAGE = 2;
export const EXIT_RUNTIME = 125;
export const EXIT_NOT_EXECUTABLE = 126;
export const EXIT_NOT_FOUND = 127;

export class UsageError extends Error {
  readonly code = 'EUSAGE';
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof DynoSpecError) return EXIT_USAGE;
  if (err instanceof DynoError && err.step === 'exec') {
    if (err.code === 'ENOENT') return EXIT_NOT_FOUND;
    if (err.code === 'EACCES') return EXIT_NOT_EXECUTABLE;
  }
  return EXIT_RUNTIME;
}

export function describe(err: unknown): string {
  if (err instanceof DynoError && err.step === 'exec' && err.code === 'ENOENT') {
    return `command not found in the dyno: ${err.path ?? ''} (ENOENT from execve)`;
  }
  if (err instanceof DynoError && err.step === 'exec' && err.code === 'EACCES') {
    return `command is not executable in the dyno: ${err.path ?? ''} (EACCES from execve)`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Prints the error as one line and sets the exit code. */
export function report(err: unknown): void {
  process.stderr.write(`manifold: ${describe(err).split('\n')[0]}\n`);
  process.exitCode = exitCodeFor(err);
}
