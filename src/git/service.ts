/**
 * The daemon's side of `git push` (docs/git.md): the bare repositories (STATE/git/repos/APP.git,
 * root only), their pre-receive hook, the ssh keys and the git socket.
 *
 * sshd runs `manifold git-shell --key NAME` as the git user for every ssh session (a forced
 * command in authorized_keys). That user can read nothing of the state directory and cannot open the
 * control socket; it can open the git socket, whose only request is "run git-receive-pack (or
 * git-upload-pack) on APP's repository for key NAME". The daemon checks the peer's uid, the key and
 * the app, runs git itself as root on the repository and relays its stdin, stdout, stderr and exit
 * status as frames (protocol.ts FRAME). The hook then runs as root too and talks to the control
 * socket like any root CLI; the git user never reaches a daemon method.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ManifoldError } from '../manifold/errors';
import { FRAME, frame, FrameReader } from '../manifold/api/protocol';
import { native } from '../runtime/native';
import { socketAlive } from '../shared/defaults';
import { KeyStore, writeAtomic, type KeyEntry } from './keys';
import { gitDirs, isAppName, manifoldBin, repoPath, type GitService as Service, type SessionHeader } from './names';

export interface GitServiceOptions {
  stateDir: string;
  /** The git socket (the git user's only way to the daemon). */
  socket: string;
  /** The control socket, for the hook (it runs as root). */
  controlSocket: string;
  /** System user of ssh pushes; created by the first keys:add if missing. */
  user: string;
  /** Its home when this daemon creates it (authorized_keys in HOME/.ssh). */
  home: string;
  appExists: (app: string) => Promise<boolean>;
  log: (line: string) => void;
}

interface Account {
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

type Params = Record<string, unknown>;

/** Paths written into a shell script or a forced command between single or double quotes. */
const SAFE_PATH = /^\/[A-Za-z0-9._/+-]+$/;
const MAX_HEADER = 4096;

function lookupUser(name: string): Account | undefined {
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
  const f = line.split(':');
  if (f.length < 7) return undefined;
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
}

export class GitTransport {
  readonly keys: KeyStore;
  private readonly dirs: ReturnType<typeof gitDirs>;
  private readonly server: net.Server;
  private readonly sessions = new Set<{ socket: net.Socket; child?: ChildProcess }>();
  private account: Account | undefined;
  private listening = false;

  constructor(private readonly o: GitServiceOptions) {
    this.dirs = gitDirs(o.stateDir);
    for (const [what, p] of [['git socket', o.socket], ['program', manifoldBin()], ['state directory', o.stateDir], ['control socket', o.controlSocket], ['node', process.execPath]] as const) {
      if (!SAFE_PATH.test(p)) throw new Error(`the ${what} path ${p} is not usable in a forced command or hook (letters, digits, . _ / + - only)`);
    }
    fs.mkdirSync(this.dirs.root, { recursive: true, mode: 0o700 });
    for (const d of [this.dirs.repos, this.dirs.tmp, this.dirs.locks]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    this.keys = new KeyStore({ file: this.dirs.keys, forcedCommand: (name) => `${manifoldBin()} git-shell --key ${name} --git-socket ${o.socket}` });
    this.server = net.createServer((s) => this.session(s));
  }

  /** Cleans what a killed push left, refreshes hooks and authorized_keys (paths may have changed), listens. */
  async start(): Promise<void> {
    for (const t of fs.readdirSync(this.dirs.tmp)) fs.rmSync(path.join(this.dirs.tmp, t), { recursive: true, force: true });
    for (const r of fs.readdirSync(this.dirs.repos)) {
      if (r.endsWith('.git') && isAppName(r.slice(0, -4))) this.writeHook(r.slice(0, -4));
    }
    this.account = lookupUser(this.o.user);
    if (this.account && this.keys.list().length) this.writeAuthorizedKeys(this.keys.list());
    if (this.account && this.account.shell !== manifoldBin()) {
      this.o.log(`git: user ${this.o.user}'s shell is ${this.account.shell}, not ${manifoldBin()}: ssh pushes need it (usermod -s ${manifoldBin()} ${this.o.user})`);
    }
    fs.mkdirSync(path.dirname(this.o.socket), { recursive: true, mode: 0o755 });
    const existing = fs.lstatSync(this.o.socket, { throwIfNoEntry: false });
    if (existing && !existing.isSocket()) throw new Error(`${this.o.socket} exists and is not a socket`);
    // another daemon's (e.g. one more daemon with its control socket in the same directory): not ours to take
    if (existing && (await socketAlive(this.o.socket))) throw new Error(`another daemon answers on ${this.o.socket} (give this one --git-socket PATH)`);
    if (existing) fs.rmSync(this.o.socket);
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(this.o.socket, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    this.listening = true;
    this.openSocketToUser();
  }

  /** The socket is root's and the git user's group's (0660); SO_PEERCRED is checked on every session too. */
  private openSocketToUser(): void {
    if (!this.listening) return;
    if (this.account) {
      fs.chownSync(this.o.socket, 0, this.account.gid);
      fs.chmodSync(this.o.socket, 0o660);
    } else {
      fs.chmodSync(this.o.socket, 0o600);
    }
  }

  async close(): Promise<void> {
    for (const s of this.sessions) {
      s.child?.kill('SIGTERM');
      s.socket.destroy();
    }
    await new Promise<void>((r) => this.server.close(() => r()));
    if (this.listening) fs.rmSync(this.o.socket, { force: true });
    this.listening = false;
  }

  // ---- repositories ------------------------------------------------------------------------

  /** APP's bare repository, made on first use (its default branch is main until master is pushed first). */
  ensureRepo(app: string): string {
    const repo = repoPath(this.o.stateDir, app);
    if (!fs.existsSync(repo)) {
      const tmp = fs.mkdtempSync(path.join(this.dirs.repos, `.new-${app}-`));
      try {
        execFileSync('git', ['init', '--bare', '--quiet', '--initial-branch=main', tmp], { stdio: ['ignore', 'ignore', 'pipe'], env: gitEnv() });
        // no sample hooks: only ours
        for (const h of fs.readdirSync(path.join(tmp, 'hooks'))) fs.rmSync(path.join(tmp, 'hooks', h), { force: true });
        fs.renameSync(tmp, repo);
      } catch (err) {
        fs.rmSync(tmp, { recursive: true, force: true });
        // made by a concurrent session meanwhile
        if (!fs.existsSync(repo)) throw err;
      }
    }
    this.writeHook(app);
    return repo;
  }

  private writeHook(app: string): void {
    const hook = path.join(repoPath(this.o.stateDir, app), 'hooks', 'pre-receive');
    const script =
      '#!/bin/sh\n# Written by the manifold daemon (src/git/service.ts) at every start: edits are lost. See docs/git.md.\n' +
      `exec '${process.execPath}' '${path.join(__dirname, 'hook.js')}' '${app}' '${this.o.controlSocket}' '${this.o.stateDir}'\n`;
    fs.mkdirSync(path.dirname(hook), { recursive: true, mode: 0o755 });
    const now = fs.existsSync(hook) ? fs.readFileSync(hook, 'utf8') : '';
    if (now !== script) writeAtomic(hook, script, 0o755);
  }

  removeRepo(app: string): void {
    if (!isAppName(app)) return;
    fs.rmSync(repoPath(this.o.stateDir, app), { recursive: true, force: true });
    for (const f of [`${app}.lock`, `${app}.owner`]) fs.rmSync(path.join(this.dirs.locks, f), { force: true });
  }

  // ---- keys --------------------------------------------------------------------------------

  private ensureUser(): Account {
    if (this.account) return this.account;
    let found = lookupUser(this.o.user);
    if (!found) {
      try {
        execFileSync('useradd', ['--system', '--user-group', '--password', '*', '--home-dir', this.o.home, '--no-create-home', '--shell', manifoldBin(), '--comment', 'manifold git push', this.o.user], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        throw new ManifoldError('EINTERNAL', `cannot create the git user ${this.o.user}: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`);
      }
      found = lookupUser(this.o.user);
      if (!found) throw new ManifoldError('EINTERNAL', `created the git user ${this.o.user} but cannot find it`);
      this.o.log(`git: created the system user ${this.o.user} (home ${found.home}, shell ${found.shell})`);
    }
    this.account = found;
    this.openSocketToUser();
    return found;
  }

  private authorizedKeysFile(): string {
    return path.join(this.ensureUser().home, '.ssh', 'authorized_keys');
  }

  /** HOME and HOME/.ssh root-owned 0755 when made here, the file root-owned 0644: sshd's StrictModes accepts it, the user cannot change it. */
  private writeAuthorizedKeys(keys: KeyEntry[]): void {
    const file = this.authorizedKeysFile();
    for (const d of [path.dirname(path.dirname(file)), path.dirname(file)]) {
      if (!fs.existsSync(d)) fs.mkdirSync(d, { mode: 0o755 });
    }
    writeAtomic(file, this.keys.render(keys), 0o644);
  }

  // ---- the control API methods (root only: they are on the control socket) ----------------

  handlers(): Record<string, (p: Params) => unknown> {
    const app = async (v: unknown): Promise<string> => {
      if (typeof v !== 'string' || v === '') throw new ManifoldError('EINVAL', 'missing app name (use -a APP)');
      if (!isAppName(v) || !(await this.o.appExists(v))) throw new ManifoldError('ENOAPP', `no such app: ${v}`);
      return v;
    };
    return {
      'git:remote': async (p) => {
        const name = await app(p.app);
        return { app: name, user: this.o.user, path: this.ensureRepo(name) };
      },
      keys: () => this.keys.list(),
      'keys:add': async (p) => {
        this.ensureUser();
        return this.keys.add(p.name, p.key, p.apps, this.o.appExists, (k) => this.writeAuthorizedKeys(k));
      },
      'keys:remove': (p) => this.keys.remove(p.name, (k) => this.writeAuthorizedKeys(k)),
    };
  }

  // ---- git sessions ------------------------------------------------------------------------

  private session(socket: net.Socket): void {
    const entry: { socket: net.Socket; child?: ChildProcess } = { socket };
    this.sessions.add(entry);
    socket.on('close', () => {
      this.sessions.delete(entry);
      entry.child?.kill('SIGTERM');
    });
    socket.on('error', () => undefined);
    const refuse = (message: string): void => {
      socket.end(frame(FRAME.ERROR, message));
    };
    let peer: { uid: number };
    try {
      const fd = (socket as net.Socket & { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
      peer = native().peerCredentials(fd);
    } catch {
      return refuse('cannot tell which user is connected');
    }
    if (peer.uid !== 0 && peer.uid !== this.account?.uid) return refuse(`uid ${peer.uid} may not use the git socket (only ${this.o.user} and root)`);
    let buf = Buffer.alloc(0);
    const onHeader = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > MAX_HEADER) {
          socket.off('data', onHeader);
          refuse('bad session header');
        }
        return;
      }
      socket.off('data', onHeader);
      socket.pause();
      let h: SessionHeader;
      try {
        h = JSON.parse(buf.subarray(0, nl).toString('utf8')) as SessionHeader;
      } catch {
        return refuse('bad session header');
      }
      this.run(entry, h, buf.subarray(nl + 1)).catch((err: unknown) => refuse(err instanceof Error ? err.message : String(err)));
    };
    socket.on('data', onHeader);
  }

  private async run(entry: { socket: net.Socket; child?: ChildProcess }, h: SessionHeader, rest: Buffer): Promise<void> {
    const { socket } = entry;
    const services: Service[] = ['git-receive-pack', 'git-upload-pack'];
    if (!services.includes(h.service)) throw new Error(`service not allowed: ${String(h.service)}`);
    if (typeof h.app !== 'string' || !isAppName(h.app)) throw new Error(`invalid app name '${String(h.app)}'`);
    const why = typeof h.key === 'string' ? this.keys.refusal(h.key, h.app) : 'no key';
    if (why) throw new Error(why);
    if (!(await this.o.appExists(h.app))) throw new Error(`no such app: ${h.app} (create it first: manifold apps:create ${h.app})`);
    if (socket.destroyed) return;
    const repo = this.ensureRepo(h.app);
    // a push's objects are checked before they are stored (git fsck's rules, e.g. .gitmodules names):
    // this git runs as root on the pusher's data
    const checks = h.service === 'git-receive-pack' ? ['-c', 'receive.fsckObjects=true'] : [];
    const child = spawn('git', [...checks, h.service.slice(4), repo], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...gitEnv(), MANIFOLD_GIT_KEY: h.key, MANIFOLD_GIT_VIA: 'ssh' },
    });
    entry.child = child;
    if (h.service === 'git-receive-pack') this.o.log(`git: push to ${h.app} by key ${h.key}`);
    child.stdin.on('error', () => undefined);
    // flow control both ways: a full socket pauses git's output, a full stdin pauses the socket
    socket.on('drain', () => {
      child.stdout.resume();
      child.stderr.resume();
    });
    for (const [stream, type] of [[child.stdout, FRAME.STDOUT], [child.stderr, FRAME.STDERR]] as const) {
      stream.on('data', (d: Buffer) => {
        if (!socket.write(frame(type, d))) stream.pause();
      });
    }
    child.stdin.on('drain', () => socket.resume());
    const reader = new FrameReader((type, payload) => {
      if (type === FRAME.STDIN) {
        if (!child.stdin.write(payload)) socket.pause();
      } else if (type === FRAME.STDIN_EOF) child.stdin.end();
    });
    child.on('error', (err) => socket.end(frame(FRAME.ERROR, `cannot run git: ${err.message}`)));
    child.on('close', (code, signal) => {
      socket.end(frame(FRAME.EXIT, JSON.stringify({ status: code ?? 128, signal })));
    });
    if (rest.length) reader.push(rest);
    socket.on('data', (d: Buffer) => reader.push(d));
    socket.resume();
  }
}

/** git run by the daemon reads no system or root's global config. */
function gitEnv(): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
}
