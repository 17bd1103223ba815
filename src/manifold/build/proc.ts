/**
 * Small process helpers the build steps share: the unprivileged user builds run as, waiting for a
 * child to exit, running a command to completion (its first stderr line as the error), and the
 * byte count of a tree's regular files. Each child gets a minimal environment (PATH, LANG) only.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** The unprivileged user builds run as (the runtime's default dyno user). */
export const BUILD_USER = { uid: 10001, gid: 10001 } as const;

export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('close', (code) => resolve(code));
  });
}

export function run(cmd: string, args: string[], o: { uid?: number; gid?: number; cwd?: string; stdin?: 'ignore' | NodeJS.ReadableStream } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }, ...(o.uid !== undefined ? { uid: o.uid, gid: o.gid } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err.length < 2000 ? (err += d) : undefined));
    child.once('error', reject);
    child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(err.trim().split('\n')[0] || `${cmd} failed (${signal ?? `exit ${code}`})`))));
  });
}

/** Bytes of the regular files under `dir` (what a slug counts), without following links. */
export function treeBytes(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('find', [dir, '-type', 'f', '-printf', '%s\\n'], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: '/usr/bin:/bin', LANG: 'C' } });
    let total = 0;
    let rest = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) total += Number(p) || 0;
    });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(total + (Number(rest) || 0)) : reject(new Error(`find exited with ${code}`))));
  });
}
