/**
 * From an instance to what the runtime runs: the DynoSpec (command, slug, config vars, network,
 * cgroup limits of its size and the app's memory settings), the reading of its output into the
 * app's log, and the crash reason `ps` shows when it ends.
 */
import net from 'node:net';
import type { DynoSpec, ExitStatus } from '../../runtime';
import { resourcesFor } from '../../runtime/sizes';
import { LineSplitter } from '../logs/log-buffer';
import { sizeOf } from '../sizes';
import type { AppSettings } from '../store/store';
import type { Instance } from './model';

export type DynoStdio = NonNullable<DynoSpec['stdio']>;

export interface SpecInputs {
  settings: AppSettings;
  net: 'none' | 'bridge';
  webPort: number;
  stdio: DynoStdio;
  extraEnv?: Record<string, string> | undefined;
}

export function dynoSpecFor(inst: Instance, o: SpecInputs): DynoSpec {
  const release = inst.release;
  if (release.slug === null) throw new Error(`release v${release.version} of ${inst.app} has no code`);
  return {
    name: inst.name,
    command: { shell: inst.command },
    appDir: release.slug,
    env: { ...release.config, ...(o.extraEnv ?? {}) },
    net: o.net === 'bridge' ? { mode: 'bridge' } : { mode: 'none' },
    stdio: o.stdio,
    // the app's memory settings replace the size's quota and kill factor; the runtime derives
    // memory.max (the R15 limit) from them
    resources: resourcesFor(sizeOf(inst.size).name, {
      ...(o.settings.memoryQuota !== undefined ? { quota: o.settings.memoryQuota } : {}),
      ...(o.settings.memoryKillFactor !== undefined ? { killFactor: o.settings.memoryKillFactor } : {}),
    }),
    // every dyno gets $PORT, as on Heroku (workers and one-offs too: `run bash` then `echo $PORT`);
    // only web dynos are routed to and checked for binding it
    port: o.webPort,
  };
}

/** One line for `ps` and the router's H10 page: why a formation dyno crashed. */
export function exitReason(s: ExitStatus, killedFor?: 'R10' | 'R15'): string {
  if (killedFor === 'R10') return 'R10 boot timeout';
  if (killedFor === 'R15' || s.oom) return 'R15 memory quota vastly exceeded';
  if (s.signal) return `killed by ${s.signal} (status ${s.status})`;
  return `exited with status ${s.status}`;
}

/** Reads a dyno's stdout/stderr pipe into log lines; resolves when the pipe is closed and drained. */
export function readOutput(fd: number, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve) => {
    const sock = new net.Socket({ fd, readable: true, writable: false });
    const split = new LineSplitter(onLine);
    sock.on('data', (d: Buffer) => split.write(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      split.end();
      resolve();
    });
  });
}

/** Seconds as Heroku's messages print them: `60`, `2.5`, `0.125`. */
export function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}
