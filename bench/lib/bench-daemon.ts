/**
 * A real daemon for a benchmark (root): its own state dir, socket, cgroup subtree, run dir and
 * bridge, all removed by stop(). Benchmarks drive it with the CLI, as a user would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CgroupTree } from '../../src/runtime/cgroup';
import { BridgeNetwork } from '../../src/runtime/network';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const BIN = path.join(REPO_ROOT, 'bin/manifold');

export interface BenchDaemonOptions {
  /** Name prefix of its directories, cgroup and bridge. */
  tag: string;
  /** Router address (host:port, port 0 for any) or 'none'. */
  listen?: string;
  net?: 'none' | 'bridge';
  extraArgs?: string[];
}

export class BenchDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly cgroup: string;
  readonly runDir: string;
  readonly bridge: string;
  /** The router's port once started (0 without a router). */
  routerPort = 0;
  private child: ChildProcess | undefined;
  private log = '';

  constructor(private readonly o: BenchDaemonOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `mf-bench-${o.tag}-`));
    this.socket = path.join(this.dir, 'api.sock');
    this.cgroup = `manifold-bench-${o.tag}-${randomBytes(3).toString('hex')}`;
    this.runDir = `/run/${this.cgroup}`;
    this.bridge = `mfb${o.tag.slice(0, 4)}${randomBytes(2).toString('hex')}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const args = [
      BIN, 'daemon', '--state-dir', path.join(this.dir, 'state'), '--socket', this.socket,
      '--listen', this.o.listen ?? 'none', '--net', this.o.net ?? 'none', '--cgroup', this.cgroup,
      '--run-dir', this.runDir, '--bridge', this.bridge, '--subnet', `10.216.${randomBytes(1)[0]}.0/24`,
      '--stop-grace', '2s', ...(this.o.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!/ready:/.test(this.log)) {
      if (child.exitCode !== null) throw new Error(`the daemon exited: ${this.log.trim()}`);
      if (Date.now() > deadline) throw new Error(`the daemon did not start within 20 s: ${this.log.trim()}`);
      await sleep(50);
    }
    this.routerPort = Number(/router listening on [^:\s]+:(\d+)/.exec(this.log)?.[1] ?? 0);
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
    }
    try {
      BridgeNetwork.cleanup(this.runDir, this.bridge);
    } catch {
      /* never created (--net none) */
    }
    fs.rmSync(this.runDir, { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
    try {
      fs.rmdirSync(CgroupTree.open(this.cgroup).root);
    } catch {
      /* already gone */
    }
  }

  /** One CLI call; rejects with its stderr when it fails. */
  cli(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [BIN, '--socket', this.socket, ...args], { env: cleanEnv(), timeout: 10 * 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`manifold ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
    });
  }
}

/** The environment without test or profiler hooks (NODE_OPTIONS) that would change what is measured. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS') env[k] = v;
  return env;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
