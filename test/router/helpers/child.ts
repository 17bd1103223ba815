/** Starts helpers/router-child.js and talks to it over IPC. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { AppInput, RouterConfigInput } from '../../../src/router/index';

export interface ChildRouter {
  port: number;
  /** The router process (for /proc/PID/status). */
  pid: number;
  logs: string[];
  rss(): Promise<number>;
  close(): Promise<void>;
}

export async function startChildRouter(apps: Record<string, AppInput>, config: RouterConfigInput = {}): Promise<ChildRouter> {
  const child: ChildProcess = fork(path.join(__dirname, 'router-child.js'), [JSON.stringify({ apps, config })], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const logs: string[] = [];
  const waiters: Array<(m: { rss?: number }) => void> = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { port?: number; log?: string; rss?: number }) => {
      if (m.port !== undefined) resolve(m.port);
      if (m.log !== undefined) logs.push(m.log);
      if (m.rss !== undefined) waiters.shift()?.(m);
    });
    child.once('exit', (code) => reject(new Error(`router child exited with ${code}`)));
  });
  return {
    port,
    pid: child.pid!,
    logs,
    rss: () =>
      new Promise<number>((resolve) => {
        waiters.push((m) => resolve(m.rss!));
        child.send('rss');
      }),
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send('exit');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
