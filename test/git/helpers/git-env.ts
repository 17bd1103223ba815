/**
 * Test helpers for git push: a private sshd on a loopback port (its own host key and config, the
 * git user's authorized_keys as the daemon writes them), a client key, and git run with that ssh.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sleep } from '../../manifold/helpers/daemon';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const c = execFile(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...(opts.env ?? {}) }, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    c.stdin!.on('error', () => undefined); // a child that exits first (EPIPE) is reported by its status
    c.stdin!.end(opts.input ?? '');
  });
}

/** A free loopback port (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export class Sshd {
  child: ChildProcess | undefined;
  port = 0;
  log = '';
  readonly config: string;
  readonly clientKey: string;
  /** This sshd made /run/sshd (its privilege separation directory) and removes it on stop. */
  madeRunSshd = false;

  constructor(readonly dir: string, readonly user: string) {
    this.config = path.join(dir, 'sshd_config');
    this.clientKey = path.join(dir, 'client_key');
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const hostKey = path.join(this.dir, 'host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    fs.writeFileSync(
      this.config,
      [
        `ListenAddress 127.0.0.1:${this.port}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(this.dir, 'sshd.pid')}`,
        'AuthorizedKeysFile .ssh/authorized_keys',
        `AllowUsers ${this.user}`,
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin no',
        'StrictModes yes',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    // privilege separation directory (the ssh service's unit makes it; that service is off)
    if (!fs.existsSync('/run/sshd')) {
      fs.mkdirSync('/run/sshd', { mode: 0o755 });
      this.madeRunSshd = true;
    }
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`sshd exited: ${this.log}`);
      const up = await new Promise<boolean>((r) => {
        const s = net.connect(this.port, '127.0.0.1', () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`sshd did not listen: ${this.log}`);
      await sleep(50);
    }
  }

  makeClientKey(file = this.clientKey, comment = 'tester@test'): string {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
    return `${file}.pub`;
  }

  sshCommand(key = this.clientKey): string {
    return `ssh -p ${this.port} -i ${key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes`;
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await gone;
    }
    if (this.madeRunSshd) fs.rmSync('/run/sshd', { recursive: true, force: true });
  }

  /** sshd processes (listener or session children) still running with this config. */
  leftovers(): number[] {
    const pids: number[] = [];
    for (const p of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.includes(this.config) || (cmd.startsWith('sshd:') && cmd.includes(this.user))) pids.push(Number(p));
      } catch {
        /* gone */
      }
    }
    return pids;
  }
}

/** git with an identity, in a work tree. */
export function gitIn(dir: string, sshCommand?: string): (...args: string[]) => Promise<Run> {
  return (...args) =>
    run('git', ['-c', 'user.email=tester@example.com', '-c', 'user.name=tester', ...args], {
      cwd: dir,
      env: { ...(sshCommand ? { GIT_SSH_COMMAND: sshCommand } : {}), GIT_TERMINAL_PROMPT: '0' },
    });
}
