// Child-process and temp-dir bookkeeping for benchmarks: everything started here is killed
// (by its own process group) on normal exit, on error and on SIGINT/SIGTERM.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const children = new Set<ChildProcess>();
const extraPids = new Set<number>();
const tempDirs = new Set<string>();
let handlersInstalled = false;

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `manifold-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Track a pid started elsewhere (e.g. wrk) so cleanup() can kill it. */
export function trackPid(pid: number): void {
  extraPids.add(pid);
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export interface StartOptions {
  cpus?: string | undefined; // taskset -c LIST
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile?: string; // stdout+stderr go here (else ignored)
}

export class Proc {
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined = undefined;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string | undefined,
  ) {
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        children.delete(child);
        resolve(this.exitCode);
      });
    });
  }
  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name}: no pid`);
    return this.child.pid;
  }
  get alive(): boolean {
    return this.exitCode === undefined;
  }
  async stop(graceMs = 2000): Promise<void> {
    if (!this.alive) return;
    killGroup(this.pid, 'SIGTERM');
    const t = setTimeout(() => killGroup(this.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
    // nginx workers etc. share the group: make sure nothing of it survives
    killGroup(this.pid, 'SIGKILL');
  }
}

export function start(name: string, cmd: string, args: readonly string[], opts: StartOptions = {}): Proc {
  installCleanupHandlers();
  let fd: number | undefined;
  let stdio: StdioOptions = 'ignore';
  if (opts.logFile) {
    fd = openSync(opts.logFile, 'a');
    stdio = ['ignore', fd, fd];
  }
  const argv = opts.cpus ? ['-c', opts.cpus, cmd, ...args] : [...args];
  const child = spawn(opts.cpus ? 'taskset' : cmd, argv, {
    stdio,
    detached: true, // own process group, killed as a group
    cwd: opts.cwd,
    env: opts.env ?? process.env,
  });
  if (fd !== undefined) closeSync(fd);
  children.add(child);
  const proc = new Proc(name, child, opts.logFile);
  child.on('error', () => undefined);
  return proc;
}

export function cleanup(): void {
  for (const c of children) if (c.pid !== undefined) killGroup(c.pid, 'SIGKILL');
  children.clear();
  for (const pid of extraPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  extraPids.clear();
  if (process.env.BENCH_KEEP_TMP !== '1') {
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    tempDirs.clear();
  }
}

export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping peers\n`);
      cleanup();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (e) => {
    process.stderr.write(`bench: uncaught ${e.stack ?? String(e)}\n`);
    cleanup();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    process.stderr.write(`bench: unhandled rejection ${e instanceof Error ? e.stack : String(e)}\n`);
    cleanup();
    process.exit(1);
  });
}

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Wait until 127.0.0.1:port accepts connections, or fail after timeoutMs. */
export async function waitForPort(port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && !proc.alive) throw new Error(`${proc.name} exited before listening on ${port}${proc.logFile ? ` (log: ${proc.logFile})` : ''}`);
    if (await tryConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms${proc ? ` (${proc.name})` : ''}`);
}
