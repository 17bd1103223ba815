/**
 * The names TypeScript shares with the native side, as in native/common/dyno_table.h: the steps a
 * native failure names and the stop signals dyno-init forwards. They are repeated here only for
 * the types; native() compares them with the addon's own copy (`tables`) when it loads it and
 * refuses a mismatch, so an edit on one side alone fails at once instead of drifting.
 */

/** Steps dyno-init (setup order) and the addon report, in the header's order. */
export const NATIVE_STEPS = [
  'init', 'config', 'cgroup-namespace', 'mount-root', 'mount-stack', 'mount-app', 'mount-proc', 'mount-sys',
  'mount-dev', 'mask-paths', 'pivot-root', 'hostname', 'network', 'rlimits', 'identity', 'seccomp', 'exec',
  'load-helper', 'spawn', 'exec-init', 'status', 'signal', 'pipe', 'pty', 'watch', 'peer-credentials', 'lock',
] as const;

export type NativeStep = (typeof NATIVE_STEPS)[number];

/**
 * What a stop may send: dyno-init relays exactly these to every process of the dyno. Any other
 * signal would stop at dyno-init (PID 1 ignores what it does not handle) and the app never see it.
 */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

export type StopSignal = (typeof STOP_SIGNALS)[number];

export function isStopSignal(name: string): name is StopSignal {
  return (STOP_SIGNALS as readonly string[]).includes(name);
}

export interface NativeTables {
  steps: readonly string[];
  stopSignals: readonly string[];
}

/** Throws unless the addon's tables are exactly ours (same names, same order). */
export function checkNativeTables(native: NativeTables): void {
  const differs = (a: readonly string[], b: readonly string[]): boolean => a.length !== b.length || a.some((x, i) => x !== b[i]);
  if (differs(native.steps, NATIVE_STEPS) || differs(native.stopSignals, STOP_SIGNALS)) {
    throw new Error(
      'native/common/dyno_table.h and src/runtime/native-table.ts disagree (rebuild the addon, or edit both): ' +
        `addon steps [${native.steps.join(', ')}], stop signals [${native.stopSignals.join(', ')}]`,
    );
  }
}
