/** Test helpers: a real daemon in a child process with its own state dir, socket and cgroup subtree, and a CLI runner. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { CgroupTree } from '../../../src/runtime/cgroup';
import { BridgeNetwork } from '../../../src/runtime/network';

export const ROOT = path.resolve(__dirname, '../../../..');
export const BIN = path.join(ROOT, 'bin/manifold');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly cgroup: string;
  child: ChildProcess | undefined;
  log = '';
  port = 0;

  constructor(readonly extraArgs: string[] = []) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-e2e-'));
    this.socket = path.join(this.dir, 'api.sock');
    this.cgroup = `manifold-e2e-${randomBytes(3).toString('hex')}`;
    // a runtime directory of its own (stack skeleton, scratch, leases), removed in cleanup
    this.runDir = `/run/${this.cgroup}`;
    // a bridge of its own (removed in cleanup), so tests neither leave nor disturb manifold0
    this.bridge = `mfbre${randomBytes(3).toString('hex')}`;
    // fixed for the life of this daemon: a restarted daemon must find the bridge it made
    this.subnet = `10.215.${randomBytes(1)[0]}.0/24`;
  }

  readonly bridge: string;
  readonly subnet: string;
  readonly runDir: string;

  get cgroupRoot(): string {
    return CgroupTree.open(this.cgroup).root;
  }

  async start(): Promise<void> {
    const args = [BIN, 'daemon', '--state-dir', path.join(this.dir, 'state'), '--socket', this.socket, '--listen', '127.0.0.1:0', '--cgroup', this.cgroup, '--run-dir', this.runDir, '--bridge', this.bridge, '--subnet', this.subnet, ...this.extraArgs];
    this.log = '';
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!/ready:/.test(this.log)) {
      if (child.exitCode !== null) throw new Error(`daemon exited: ${this.log}`);
      if (Date.now() > deadline) throw new Error(`daemon did not start: ${this.log}`);
      await sleep(50);
    }
    const m = /router listening on 127\.0\.0\.1:(\d+)/.exec(this.log.split('ready:')[0]!.split('\n').filter((l) => l.includes('router listening')).pop() ?? '');
    this.port = m ? Number(m[1]) : 0;
  }

  /** Graceful stop (SIGTERM), resolves when the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await gone;
    this.log += `\n--- daemon ended (${signal}) ---\n`;
  }

  cli(...args: string[]): Promise<CliResult> {
    return runCli(args, { MANIFOLD_SOCKET: this.socket });
  }

  cleanup(): void {
    BridgeNetwork.cleanup(this.runDir, this.bridge);
    fs.rmSync(this.runDir, { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
    try {
      fs.rmdirSync(this.cgroupRoot);
    } catch {
      /* leaves left: the leak assertions report them */
    }
  }
}

export function runCli(args: string[], env: Record<string, string> = {}, opts: { uid?: number; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000, ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}) }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** GET through the router with a Host header; resolves status and body, or status 0 on a transport error. */
export function get(port: number, host: string, p = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body: '' }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
  });
}

/** Sends requests back to back until stop() is called; returns every non-200 result. */
export function load(port: number, host: string): { stop(): Promise<{ ok: number; failures: { status: number; body: string }[] }> } {
  let running = true;
  let ok = 0;
  const failures: { status: number; body: string }[] = [];
  const loops = [0, 1].map(async () => {
    while (running) {
      const r = await get(port, host);
      if (r.status === 200) ok++;
      else failures.push(r);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { ok, failures };
    },
  };
}

export interface PsJson {
  dynos: { name: string; type: string; state: string; pid: number | null; reason: string | null; restartAt: number | null; crashes: number }[];
}
