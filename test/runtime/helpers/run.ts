/**
 * Running real dynos from tests: a root check, a test runtime with its own cgroup subtree and run
 * directory, throw-away app directories, and dynos whose stdout/stderr are captured through pipes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type Dyno, type DynoSpec, type ExitStatus, native, Runtime } from '../../../src/runtime';

/** The slice of tap's Test these helpers need. */
export interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
  plan(n: number, comment?: string): void;
}

export const IS_ROOT = process.getuid?.() === 0;
export const ROOT_SKIP_REASON = 'needs root (real dynos: namespaces, mounts, cgroups); CI runs as root';

/** Skips the whole file when not root. Returns true when the tests can run. */
export function requireRoot(t: TestLike): boolean {
  if (!IS_ROOT) {
    t.plan(0, `skip: ${ROOT_SKIP_REASON}`);
    return false;
  }
  return true;
}

export const TEST_RUN_DIR = '/run/manifold-test';
export const REPO_ROOT = path.resolve(__dirname, '../../../..');

/**
 * A runtime of its own for one test file: a cgroup subtree named after this process (so dynos of
 * other users of the host, e.g. a developer's, never look like our leftovers) removed at the end.
 */
export function openTestRuntime(t: TestLike): Runtime {
  removeAtEndIfNew(t, TEST_RUN_DIR);
  const runtime = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName: `manifold-test-${process.pid}` });
  t.teardown(() => {
    try {
      fs.rmdirSync(runtime.cgroups.root);
    } catch {
      /* a leftover leaf keeps it: the leak assertions report that */
    }
  });
  return runtime;
}

/**
 * Removes `dir` (a run directory: the host stack skeleton and scratch directories, no mounts once
 * the dynos are gone) when the test file ends, if it did not exist when the file began; a cgroup
 * directory is removed with rmdir, which fails harmlessly while it still holds anything.
 */
export function removeAtEndIfNew(t: TestLike, dir: string, kind: 'dir' | 'cgroup' = 'dir'): void {
  if (fs.existsSync(dir)) return;
  t.teardown(() => {
    try {
      if (kind === 'cgroup') fs.rmdirSync(dir);
      else fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* still in use */
    }
  });
}

export interface AppFile {
  content: string | Buffer;
  mode?: number;
}

/** A temporary app directory readable by the dyno user, with the given files (paths relative to it). */
export function makeAppDir(t: TestLike, files: Record<string, string | AppFile> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'manifold-app-'));
  fs.chmodSync(dir, 0o755);
  for (const [rel, f] of Object.entries(files)) {
    const file = typeof f === 'string' ? { content: f } : f;
    const target = path.join(dir, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    fs.writeFileSync(target, file.content);
    fs.chmodSync(target, file.mode ?? 0o644);
  }
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Compiles a C file with the host's cc (cached by content hash) and returns the binary's path. */
export function compileC(source: string, extraFlags: string[] = []): string {
  const text = fs.readFileSync(source);
  const hash = createHash('sha256').update(text).update(extraFlags.join(' ')).digest('hex').slice(0, 16);
  const out = path.join(os.tmpdir(), `manifold-test-${path.basename(source, '.c')}-${hash}`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.${process.pid}`;
    execFileSync('cc', ['-O1', '-Wall', '-o', tmp, source, ...extraFlags], { stdio: ['ignore', 'ignore', 'inherit'] });
    fs.renameSync(tmp, out);
  }
  return out;
}

/** The probe (test/runtime/fixtures/probe.c), statically linked so it runs on any stack. */
export function probeBinary(): string {
  return compileC(path.join(REPO_ROOT, 'test/runtime/fixtures/probe.c'), ['-static']);
}

export type TestSpec = Partial<Omit<DynoSpec, 'command'>> & { command: DynoSpec['command']; appDir: string };

let counter = 0;
/** A DynoSpec with test defaults (a unique-ish name, the host stack). */
export function testSpec(spec: TestSpec): DynoSpec {
  counter++;
  return { name: `test.${counter}`, ...spec };
}

/** Shell command (run through bash -c with .profile sourcing). */
export function sh(script: string): DynoSpec['command'] {
  return { shell: script };
}

export interface Captured {
  stdout: string;
  stderr: string;
  status: ExitStatus;
}

/** Reads a pipe's read end on the libuv loop (non-blocking, no threadpool thread held). */
class PipeReader {
  text = '';
  readonly closed: Promise<void>;
  private readonly waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  private readonly socket: net.Socket;

  constructor(fd: number) {
    this.socket = new net.Socket({ fd, readable: true, writable: false });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.text += chunk;
      for (const w of [...this.waiters]) {
        const m = this.text.match(w.re);
        if (m) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
    this.closed = new Promise((resolve) => {
      this.socket.on('close', () => resolve());
      this.socket.on('error', () => resolve());
    });
  }

  waitFor(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.text.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface CapturedDyno {
  /** Resolves once the command was exec'd; rejects with the DynoError otherwise. */
  started: Promise<Dyno>;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches (rejects after timeoutMs, default 10 s). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Exit status plus the complete output (both pipes at EOF). */
  done: Promise<Captured>;
}

/**
 * Starts a dyno whose stdout and stderr are pipes read by this process (stdin is /dev/null). The
 * write ends are closed here right after the spawn, so EOF means every process of the dyno is gone.
 */
export function startCaptured(runtime: Runtime, spec: DynoSpec): CapturedDyno {
  const [outR, outW] = native().pipe();
  const [errR, errW] = native().pipe();
  let started: Promise<Dyno>;
  try {
    started = runtime.start({ ...spec, stdio: { ...spec.stdio, stdout: outW, stderr: errW } });
  } catch (err) {
    started = Promise.reject(err);
  } finally {
    fs.closeSync(outW);
    fs.closeSync(errW);
  }
  const out = new PipeReader(outR);
  const err = new PipeReader(errR);
  started.catch(() => undefined);
  const done = (async (): Promise<Captured> => {
    let status: ExitStatus;
    try {
      const dyno = await started;
      status = await dyno.exited;
    } catch (e) {
      out.destroy();
      err.destroy();
      throw e;
    }
    await Promise.all([out.closed, err.closed]);
    return { stdout: out.text, stderr: err.text, status };
  })();
  done.catch(() => undefined);
  return {
    started,
    stdout: () => out.text,
    stderr: () => err.text,
    waitFor: (re, timeoutMs = 10_000) =>
      Promise.race([
        out.waitFor(re),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`timed out waiting for ${re} in stdout: ${JSON.stringify(out.text)} stderr: ${JSON.stringify(err.text)}`)), timeoutMs).unref(),
        ),
      ]),
    done,
  };
}

/** Runs a dyno to completion and returns its output; SIGKILLs it and throws after timeoutMs. */
export async function runDyno(runtime: Runtime, spec: DynoSpec, timeoutMs = 15_000): Promise<Captured> {
  const c = startCaptured(runtime, spec);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void c.started.then((d) => d.kill(), () => undefined);
      reject(new Error(`dyno did not finish within ${timeoutMs} ms; stdout so far: ${JSON.stringify(c.stdout())}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([c.done, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Parses "key value" lines (the probe's output) into a record. */
export function kv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** /proc/PID/status fields (Cap*, NoNewPrivs, Seccomp, Uid...) from its text. */
export function statusFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_]+):\s*(.*)$/.exec(line);
    if (m && m[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}
