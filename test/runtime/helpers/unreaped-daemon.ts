/**
 * A real daemon (test/manifold/helpers/daemon.ts) whose parent does not reap it: `sh` starts it in
 * the background and execs `sleep`, which never calls wait(). Killed with SIGKILL, the daemon stays
 * a zombie while that parent lives, as it does for a while under a parent that reaps late: pid 1
 * of some hosts and containers reaps adopted orphans seconds later, and a daemon started by
 * `manifold up` is such an orphan. Its locks are released at once (its files are closed before it
 * becomes a zombie), so a new daemon can start while the old pid still answers kill(pid, 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, sleep, TestDaemon, waitFor } from '../../manifold/helpers/daemon';

/** Running, as opposed to gone or a zombie ('Z') or dead ('X') waiting to be reaped. */
export function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

export function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

export class UnreapedDaemon extends TestDaemon {
  /** The daemon's pid (its parent, the non-reaping sleep, is in `parents`). */
  pid = 0;
  private readonly parents: ChildProcess[] = [];

  override async start(): Promise<void> {
    const args = [BIN, 'daemon', '--state-dir', path.join(this.dir, 'state'), '--socket', this.socket, '--listen', '127.0.0.1:0', '--cgroup', this.cgroup, '--run-dir', this.runDir, '--bridge', this.bridge, '--subnet', this.subnet, ...this.extraArgs];
    this.log = '';
    const parent = spawn('sh', ['-c', '"$0" "$@" & echo "daemon-pid $!"; exec sleep 100000', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.parents.push(parent);
    parent.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    parent.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!/ready:/.test(this.log)) {
      if (parent.exitCode !== null || parent.signalCode !== null) throw new Error(`daemon's parent exited: ${this.log}`);
      if (Date.now() > deadline) throw new Error(`daemon did not start: ${this.log}`);
      await sleep(50);
    }
    this.pid = Number(/daemon-pid (\d+)/.exec(this.log)![1]);
    const m = /router listening on 127\.0\.0\.1:(\d+)/.exec(this.log);
    this.port = m ? Number(m[1]) : 0;
  }

  /** SIGKILL leaves a zombie (resolves once it is one); SIGTERM a graceful stop (resolves once it has exited). */
  override async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!running(this.pid)) return;
    process.kill(this.pid, signal);
    await waitFor(`daemon ${this.pid} ended (${signal})`, async () => !running(this.pid) || undefined, 20_000, 20);
    this.log += `\n--- daemon ended (${signal}) ---\n`;
  }

  /** Stops the parents (their zombies go to pid 1, which reaps them), then removes the daemon's directories and bridge. */
  override cleanup(): void {
    for (const p of this.parents) p.kill('SIGKILL');
    super.cleanup();
  }
}
