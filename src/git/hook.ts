/**
 * The pre-receive hook of every app repository (written by service.ts as hooks/pre-receive, which
 * execs `node hook.js APP CONTROL_SOCKET STATE_DIR`). It runs as root: under the git-receive-pack
 * the daemon runs for an ssh push, or under root's own for a push to the local path.
 *
 * It accepts one update of the app's deploy branch (main, or master when that was pushed first),
 * waits for any other push to the app to finish (a lock held until that push's receive-pack has
 * updated its ref and exited), exports the pushed tree into a temporary directory, calls the
 * daemon's `build` and prints its lines as they come (git shows them as `remote: ...`). A non-zero
 * exit rejects the push: git then updates no ref. The temporary directory is removed whatever happens.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ApiClient } from '../cli/client';
import type { AppInfo, BuildProgress, BuildResult } from '../manifold/api/protocol';
import { native } from '../runtime/native';
import { gitDirs } from './names';

const ZERO = /^0{40}$|^0{64}$/;

class Refusal extends Error {}

function say(line = ''): void {
  let data = Buffer.from(`${line}\n`);
  while (data.length) {
    try {
      data = data.subarray(fs.writeSync(1, data));
    } catch (err) {
      // a non-blocking pipe that is full: wait a little (the pusher reads slowly)
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      return; // the pusher is gone (EPIPE): the build goes on, its result is in the app's log
    }
  }
}

const indent = (l: string): string => `       ${l}`;

function git(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn('git', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => resolve({ code: 127, out, err: e.message }));
    c.on('close', (code) => resolve({ code: code ?? 128, out: out.trim(), err: err.trim() }));
  });
}

async function refValue(ref: string): Promise<string | undefined> {
  const r = await git(['rev-parse', '--verify', '-q', `${ref}^{commit}`]);
  return r.code === 0 && r.out ? r.out : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `pid starttime` of a process (starttime tells a pid reused since apart), or undefined if gone. */
function identity(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/**
 * One push per app at a time, both ssh and local: an flock for this hook's life, and an owner file
 * naming the receive-pack of the push that held it, which the next holder waits for, since git
 * updates the ref after the hook exits. Returns the fd (closed by exit).
 */
async function lockApp(app: string, locks: string): Promise<number> {
  const file = path.join(locks, `${app}.lock`);
  let fd: number | undefined;
  let told = false;
  const deadline = Date.now() + 30 * 60_000;
  while (fd === undefined) {
    try {
      fd = native().lockExclusive(file, false);
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { errno?: number };
      if (!(e.errno === 11 || e.code === 'EWOULDBLOCK' || e.code === 'EAGAIN')) throw err;
      if (!told) say(`-----> Waiting for another push to ${app} to finish`);
      told = true;
      if (Date.now() > deadline) throw new Refusal(`another push to ${app} is still running after 30 minutes; try again later`);
      await sleep(200);
    }
  }
  const ownerFile = path.join(locks, `${app}.owner`);
  const previous = fs.existsSync(ownerFile) ? fs.readFileSync(ownerFile, 'utf8').trim() : '';
  const prevPid = Number(previous.split(' ')[0]);
  if (previous && prevPid > 0) {
    const until = Date.now() + 60_000;
    while (identity(prevPid) === previous && Date.now() < until) {
      // the lock was free, but the last holder's receive-pack is still updating its ref: that is waiting too
      if (!told) say(`-----> Waiting for another push to ${app} to finish`);
      told = true;
      await sleep(20);
    }
  }
  fs.writeFileSync(ownerFile, `${identity(process.ppid) ?? ''}\n`, { mode: 0o600 });
  return fd;
}

/** The pushed commit's tree (git archive, which sees the quarantined new objects) into dir. */
function exportTree(sha: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const archive = spawn('git', ['archive', '--format=tar', sha], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tar = spawn('tar', ['-x', '--no-same-owner', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
    archive.stdout.pipe(tar.stdin);
    let err = '';
    archive.stderr.on('data', (d: Buffer) => (err += d.toString()));
    tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
    let left = 2;
    let failed = false;
    const done = (code: number | null): void => {
      if (code !== 0) failed = true;
      if (--left === 0) {
        if (failed) reject(new Error(`exporting ${sha.slice(0, 7)} failed: ${err.trim().split('\n')[0] ?? ''}`));
        else resolve();
      }
    };
    archive.on('close', done);
    tar.on('close', done);
  });
}

function explain(code: string, message: string, app: string): string {
  if (code === 'EBUILDBUSY') return `another build of ${app} is running (not started by a push, or from before this one waited); push again once it has finished`;
  if (code === 'ENODAEMON') return 'the manifold daemon is not running';
  return message;
}

/** Set once the build has printed its own `Released vN` (then the hook adds nothing). */
let released = false;

async function build(app: string, socket: string, dir: string, sha: string): Promise<BuildResult> {
  const client = new ApiClient(socket);
  const via = process.env.MANIFOLD_GIT_VIA === 'ssh' ? process.env.MANIFOLD_GIT_KEY : undefined;
  // the release's author: the key, as the daemon's log names it; a local push is by the hook's own
  // user (root), which the daemon reads from the socket
  const params = { app, dir, version: sha, user: via ?? 'root (local push)', ...(via ? { by: `key ${via}` } : {}) };
  return client.callWithProgress<BuildResult, BuildProgress>('build', params, (p) => {
    if (/^\s*Released v[0-9]+/.test(p.line)) released = true;
    say(p.line);
  });
}

async function main(argv: string[]): Promise<number> {
  const [app, socket, stateDir] = argv;
  if (!app || !socket || !stateDir) {
    say('manifold hook: usage: hook.js APP CONTROL_SOCKET STATE_DIR');
    return 2;
  }
  const dirs = gitDirs(stateDir);
  let tmp: string | undefined;
  const cleanup = (): void => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    tmp = undefined;
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      cleanup();
      process.exit(1);
    });
  }
  try {
    const input = fs.readFileSync(0, 'utf8');
    const updates = input.split('\n').filter((l) => l.trim() !== '').map((l) => {
      const [oldSha = '', newSha = '', ref = ''] = l.trim().split(' ');
      return { oldSha, newSha, ref };
    });
    // HEAD of a bare repository is `ref: refs/heads/BRANCH` (read, not a git process: pushes wait for this)
    const headFile = /^ref: (refs\/heads\/\S+)\s*$/.exec(fs.existsSync('HEAD') ? fs.readFileSync('HEAD', 'utf8') : '');
    const head = headFile?.[1] ?? ((await git(['symbolic-ref', '-q', 'HEAD'])).out || 'refs/heads/main');
    const headExists = (await refValue(head)) !== undefined;
    const deployBranch = headExists ? head : undefined;
    const name = (ref: string): string => ref.replace(/^refs\/heads\//, '');
    for (const u of updates) {
      const allowed = deployBranch ? [deployBranch] : ['refs/heads/main', 'refs/heads/master'];
      if (!allowed.includes(u.ref)) {
        const b = name(deployBranch ?? 'refs/heads/main');
        throw new Refusal(`${app} deploys only its ${b} branch; ${u.ref} was not updated (push a branch to it with: git push manifold BRANCH:${b})`);
      }
    }
    if (updates.length !== 1) throw new Refusal(updates.length === 0 ? 'nothing to deploy' : 'push main or master, not both');
    const u = updates[0]!;
    if (ZERO.test(u.newSha)) throw new Refusal(`deleting ${name(u.ref)} is not allowed (the app's releases stay; use manifold apps:destroy ${app})`);

    fs.mkdirSync(dirs.locks, { recursive: true, mode: 0o700 });
    await lockApp(app, dirs.locks);
    const now = await refValue(u.ref);
    if ((ZERO.test(u.oldSha) ? undefined : u.oldSha) !== now) {
      throw new Refusal(`${name(u.ref)} of ${app} changed while this push waited (another push deployed ${now?.slice(0, 7) ?? 'nothing'}); fetch and push again`);
    }
    fs.mkdirSync(dirs.tmp, { recursive: true, mode: 0o700 });
    tmp = fs.mkdtempSync(path.join(dirs.tmp, `${app}-`));
    await exportTree(u.newSha, tmp);
    const r = await build(app, socket, tmp, u.newSha);
    cleanup();
    if (!headExists && u.ref !== head) await git(['symbolic-ref', 'HEAD', u.ref]);
    if (!released) {
      let url = '';
      try {
        url = (await new ApiClient(socket).call<AppInfo>('apps:info', { app })).url;
      } catch {
        /* printed without it */
      }
      say('-----> Launching...');
      say(indent(`Released v${r.version}`));
      if (url) say(indent(`${url} deployed to Manifold`));
    }
    return 0;
  } catch (err) {
    cleanup();
    const e = err as Error & { code?: string };
    const message = err instanceof Refusal ? e.message : explain(e.code ?? '', e.message, app);
    say();
    say(` !     Push rejected to ${app}.`);
    for (const l of message.split('\n')) say(` !     ${l}`);
    say();
    return 1;
  } finally {
    cleanup();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      say(` !     ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
