/**
 * `build` (issue 14): a source tree → buildpacks in a build dyno → slug → (release phase) → release.
 *
 *   1. One build per app at a time: a second waits (and says so) up to `busyWaitMs`, then EBUILDBUSY.
 *   2. The buildpacks: the app's list (each must detect), or the installed ones (first that detects).
 *   3. A private stage STATE/builds/<app>-<id>/root: the source (read as the requester, as a deploy
 *      reads it; no device, FIFO or socket kept), the app's build cache, one file per config var and
 *      copies of the buildpacks, all owned by the dyno user. It is the build dyno's /app (copy-on-write).
 *      What the source's `.slugignore` names is removed from it here, before any buildpack runs (Heroku).
 *   4. The build dyno: the runtime's ordinary dyno (namespaces, overlay root, unprivileged user,
 *      seccomp, cgroup leaf; bridge network where the daemon has one, so outbound only with NAT)
 *      running driver.ts. Its stderr lines go live to the caller and the app's log (manifold[build]);
 *      its stdout is a tar of the result, extracted by an unprivileged tar (bounded in bytes).
 *   5. The Procfile (or the buildpacks' default_process_types), then the slug is
 *      written by the deploy's slug writer (validated, content-addressed, size-limited).
 *   6. A `release:` process type runs once in a one-off dyno of the new slug; only when it exits 0
 *      is the release created (and made current). Any failure leaves the running release alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { DynoSpec, ExitStatus } from '../../runtime';
import { resourcesFor } from '../../runtime/sizes';
import type { BuildResult } from '../api/protocol';
import { buildSlug, SlugBuildError } from '../deploy/build-slug';
import { tempSlugDir } from '../deploy/slug-store';
import { ManifoldError } from '../errors';
import type { LogHub } from '../logs/hub';
import { LineSplitter } from '../logs/log-buffer';
import { parseProcfile, ProcfileError } from '../procfile';
import type { Release } from '../store/store';
import type { LaunchedDyno, Launcher } from '../supervisor/types';
import { Buildpacks, checkBuildpackDir, type ResolvedBuildpack } from './buildpacks';
import { DRIVER_SCRIPT } from './driver';
import { applySlugIgnore, parseSlugIgnore } from './slugignore';

/** The unprivileged user builds run as (the runtime's default dyno user). */
const BUILD_USER = { uid: 10001, gid: 10001 } as const;
const MB = 1024 * 1024;

export interface BuildLimits {
  /** Largest slug (Heroku: 500 MB). */
  slugMaxBytes: number;
  /** Largest build cache kept between builds. */
  cacheMaxBytes: number;
  /** Detect + compile + slug (Heroku: 15 minutes). */
  buildTimeoutMs: number;
  /** The release phase command (Heroku: 1 hour). */
  releaseTimeoutMs: number;
  /** How long a build waits for another build of the same app. */
  busyWaitMs: number;
}

export const DEFAULT_BUILD_LIMITS: BuildLimits = {
  slugMaxBytes: 500 * MB,
  cacheMaxBytes: 1024 * MB,
  buildTimeoutMs: 15 * 60_000,
  releaseTimeoutMs: 60 * 60_000,
  busyWaitMs: 5 * 60_000,
};

export interface BuildMeta {
  slugBytes: number;
  buildMs: number;
  buildpacks: string[];
}

/** What the builder needs from the manifold (implemented by Manifold). */
export interface BuildHost {
  checkApp(name: unknown): Promise<string>;
  currentRelease(name: string): Promise<Release | undefined>;
  appBuildpacks(name: string): Promise<string[]>;
  setAppBuildpacks(name: string, refs: string[]): Promise<string[]>;
  urlOf(app: string): string;
  /**
   * Places the slug written at `tempDir`, runs `beforeRelease` (the release phase) with its final
   * directory and the config it will run with, then creates the release and hands it to the fleet.
   * A throw anywhere creates nothing and drops the slug unless another release shares it.
   */
  releaseBuiltSlug(
    name: string,
    o: { tempDir: string; sha256: string; bytes: number; procfile: Record<string, string>; description: string; build: BuildMeta; beforeRelease?: (slugDir: string, config: Record<string, string>) => Promise<void> },
  ): Promise<Release>;
}

export interface BuilderOptions {
  stateDir: string;
  host: BuildHost;
  launcher: Launcher;
  logs: LogHub;
  /** The daemon's dyno network: with 'bridge', builds reach out only where the runtime has NAT. */
  net: 'none' | 'bridge';
  /** Roots of the installed buildpacks, in detection order. */
  installed: string[];
  limits?: Partial<BuildLimits>;
}

export interface BuildRequest {
  app?: unknown;
  dir?: unknown;
  version?: unknown;
  description?: unknown;
  user?: unknown;
  /** Who is on the API connection: the source is read as this user. */
  requester?: { uid: number; gid: number };
}

function optionalText(v: unknown, what: string, max = 200): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max || /[\0-\x1f\x7f]/.test(v)) throw new ManifoldError('EINVAL', `${what} must be a line of text of at most ${max} characters`);
  return v === '' ? undefined : v;
}

/** Heroku's slug sizes: 12.3K, 4.5M. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}K`;
  if (n < 1024 ** 3) return `${(n / MB).toFixed(1)}M`;
  return `${(n / 1024 ** 3).toFixed(1)}G`;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('close', (code) => resolve(code));
  });
}

function run(cmd: string, args: string[], o: { uid?: number; gid?: number; cwd?: string; stdin?: 'ignore' | NodeJS.ReadableStream } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }, ...(o.uid !== undefined ? { uid: o.uid, gid: o.gid } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err.length < 2000 ? (err += d) : undefined));
    child.once('error', reject);
    child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(err.trim().split('\n')[0] || `${cmd} failed (${signal ?? `exit ${code}`})`))));
  });
}

/** Bytes of the regular files under `dir` (what a slug counts), without following links. */
function treeBytes(dir: string): Promise<number> {
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

/** `default_process_types` of a bin/release YAML (the flat `type: command` map Heroku's buildpacks print). */
export function defaultProcessTypes(yaml: string): Record<string, string> {
  const out: Record<string, string> = {};
  let inside = false;
  for (const raw of yaml.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^\S/.test(line)) {
      inside = /^default_process_types\s*:\s*$/.test(line);
      continue;
    }
    if (!inside) continue;
    const m = /^\s+([A-Za-z0-9_-]+)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith("'") && v.endsWith("'")) || (v.startsWith('"') && v.endsWith('"'))) v = v.slice(1, -1);
    if (v !== '') out[m[1]!] = v;
  }
  return out;
}

/** A build that failed; `told`: its reason is already in the output (a buildpack's own ` !` line). */
class BuildFailure extends ManifoldError {
  told = false;
}

export class Builder {
  readonly buildpacks: Buildpacks;
  readonly limits: BuildLimits;
  private readonly running = new Map<string, Promise<void>>();
  /** Build and release-phase dynos running now (close() kills them). */
  private readonly active = new Set<LaunchedDyno>();
  private closing = false;

  constructor(private readonly o: BuilderOptions) {
    this.buildpacks = new Buildpacks(o.installed, path.join(o.stateDir, 'buildpacks'));
    this.limits = { ...DEFAULT_BUILD_LIMITS, ...(o.limits ?? {}) };
  }

  /**
   * Daemon shutdown: running build and release-phase dynos are killed (their builds fail and clean
   * up their stage); resolves when every build has ended, or after 15 s.
   */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.active].map((d) => d.kill().catch(() => undefined)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.running.values()]), new Promise((r) => (timer = setTimeout(r, 15_000)))]);
    clearTimeout(timer);
  }

  // ---- buildpacks:* ----

  async list(appIn: unknown): Promise<string[]> {
    const app = await this.o.host.checkApp(appIn);
    return this.o.host.appBuildpacks(app);
  }

  async set(appIn: unknown, refs: unknown): Promise<string[]> {
    const app = await this.o.host.checkApp(appIn);
    const list = Array.isArray(refs) ? refs : [refs];
    if (list.length === 0) throw new ManifoldError('EINVAL', 'missing buildpack');
    if (list.length > 16) throw new ManifoldError('EINVAL', 'at most 16 buildpacks');
    const pinned: string[] = [];
    for (const r of list) pinned.push((await this.buildpacks.pin(r)).ref);
    if (new Set(pinned).size !== pinned.length) throw new ManifoldError('EINVAL', 'a buildpack is listed twice');
    return this.o.host.setAppBuildpacks(app, pinned);
  }

  async add(appIn: unknown, ref: unknown, indexIn: unknown): Promise<string[]> {
    const app = await this.o.host.checkApp(appIn);
    const bp = await this.buildpacks.pin(ref);
    const cur = await this.o.host.appBuildpacks(app);
    if (cur.includes(bp.ref)) throw new ManifoldError('EINVAL', `buildpack ${bp.ref} is already set for ${app}`);
    if (cur.length >= 16) throw new ManifoldError('EINVAL', 'at most 16 buildpacks');
    const index = indexIn === undefined || indexIn === null ? cur.length + 1 : Number(indexIn);
    if (!Number.isInteger(index) || index < 1 || index > cur.length + 1) throw new ManifoldError('EINVAL', `--index must be between 1 and ${cur.length + 1}`);
    const next = [...cur];
    next.splice(index - 1, 0, bp.ref);
    return this.o.host.setAppBuildpacks(app, next);
  }

  async remove(appIn: unknown, ref: unknown, indexIn: unknown): Promise<string[]> {
    const app = await this.o.host.checkApp(appIn);
    const cur = await this.o.host.appBuildpacks(app);
    let i: number;
    if (indexIn !== undefined && indexIn !== null) {
      i = Number(indexIn) - 1;
      if (!Number.isInteger(i) || i < 0 || i >= cur.length) throw new ManifoldError('EINVAL', cur.length ? `--index must be between 1 and ${cur.length}` : `${app} has no buildpacks set`);
    } else {
      if (typeof ref !== 'string' || ref === '') throw new ManifoldError('EINVAL', 'name a buildpack or give --index N');
      // a git URL may be given without the commit it was pinned to
      i = cur.findIndex((c) => c === ref || c.replace(/#[0-9a-f]{40}$/, '') === ref || (path.isAbsolute(ref) && c === path.normalize(ref)));
      if (i < 0) throw new ManifoldError('EINVAL', `buildpack ${ref} is not set for ${app}`);
    }
    const next = cur.filter((_, k) => k !== i);
    return this.o.host.setAppBuildpacks(app, next);
  }

  async clear(appIn: unknown): Promise<string[]> {
    const app = await this.o.host.checkApp(appIn);
    return this.o.host.setAppBuildpacks(app, []);
  }

  // ---- build ----

  private async acquire(app: string, say: (line: string) => void): Promise<() => void> {
    const deadline = Date.now() + this.limits.busyWaitMs;
    let told = false;
    for (;;) {
      const cur = this.running.get(app);
      if (!cur) break;
      if (!told) {
        say(`-----> Waiting for another build of ${app} to finish (at most ${Math.round(this.limits.busyWaitMs / 1000)} s)`);
        told = true;
      }
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([cur.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, left))))]);
      clearTimeout(timer);
      if (!done) throw new ManifoldError('EBUILDBUSY', `another build of ${app} is still running after ${Math.round(this.limits.busyWaitMs / 1000)} s; try again later`);
    }
    let release!: () => void;
    this.running.set(app, new Promise<void>((r) => (release = r)));
    return () => {
      this.running.delete(app);
      release();
    };
  }

  async build(req: BuildRequest, onLine: (line: string) => void = () => undefined): Promise<BuildResult> {
    const app = await this.o.host.checkApp(req.app);
    const dir = req.dir;
    if (typeof dir !== 'string' || !path.isAbsolute(dir)) throw new ManifoldError('EINVAL', 'build needs an absolute directory path');
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new ManifoldError('EINVAL', `not a directory: ${dir}`);
    const version = optionalText(req.version, 'version');
    const description = optionalText(req.description, 'description');
    const user = optionalText(req.user, 'user');
    const say = (line: string): void => {
      onLine(line);
      this.o.logs.push(app, 'manifold', 'build', line);
    };
    const unlock = await this.acquire(app, say);
    try {
      return await this.buildLocked(app, dir, { version, description, user, requester: req.requester ?? { uid: 0, gid: 0 } }, say, onLine);
    } catch (err) {
      if (err instanceof ManifoldError && err.code !== 'EBUILDBUSY') {
        if (!(err instanceof BuildFailure && err.told)) say(` !     ${err.message}`);
        say(` !     Push rejected to ${app}.`);
      }
      throw err;
    } finally {
      unlock();
    }
  }

  private async buildLocked(
    app: string,
    source: string,
    o: { version: string | undefined; description: string | undefined; user: string | undefined; requester: { uid: number; gid: number } },
    say: (line: string) => void,
    onLine: (line: string) => void,
  ): Promise<BuildResult> {
    const t0 = Date.now();
    const deadline = t0 + this.limits.buildTimeoutMs;
    const timeLeft = (): number => deadline - Date.now();
    const timedOut = (): BuildFailure => new BuildFailure('EBUILDTIMEOUT', `build exceeded the time limit of ${Math.round(this.limits.buildTimeoutMs / 1000)} s`);

    // which buildpacks
    const refs = await this.o.host.appBuildpacks(app);
    let packs: ResolvedBuildpack[];
    const explicit = refs.length > 0;
    if (explicit) {
      packs = [];
      for (const r of refs) packs.push(await this.buildpacks.resolve(r));
    } else {
      packs = this.buildpacks.listInstalled();
      if (packs.length === 0) throw new ManifoldError('EBUILDPACK', 'no buildpack set for this app and none installed');
      for (const p of packs) checkBuildpackDir(p.dir, p.name);
    }
    say('-----> Building on the Manifold stack');
    if (o.user || o.version) say(`       Source ${o.version ?? source}${o.user ? ` pushed by ${o.user}` : ''}`);
    if (explicit && packs.length === 1) say(`-----> Using buildpack: ${packs[0]!.name}`);
    else if (explicit) {
      say('-----> Using buildpacks:');
      packs.forEach((p, i) => say(`       ${i + 1}. ${p.name}`));
    }
    else say('-----> Determining which buildpack to use for this app');

    const buildsRoot = path.join(this.o.stateDir, 'builds');
    fs.mkdirSync(buildsRoot, { recursive: true, mode: 0o700 });
    const stage = fs.mkdtempSync(path.join(buildsRoot, `${app}-`));
    try {
      const root = path.join(stage, 'root');
      const out = path.join(stage, 'out');
      await this.stage(app, source, root, packs, o.requester);
      // .slugignore before the buildpacks run, as Heroku does: what it names never reaches compile or the slug
      const ignoreFile = path.join(root, 'build', '.slugignore');
      if (fs.lstatSync(ignoreFile, { throwIfNoEntry: false })?.isFile()) {
        const { patterns, unsupported } = parseSlugIgnore(fs.readFileSync(ignoreFile, 'utf8'));
        for (const u of unsupported) say(` !     .slugignore: negated patterns are not supported, ignored: ${u}`);
        const removed = applySlugIgnore(path.join(root, 'build'), patterns);
        if (removed.length) say(`       .slugignore: removed ${removed.length} path${removed.length === 1 ? '' : 's'}`);
      }
      fs.mkdirSync(out, { mode: 0o700 });
      fs.chownSync(out, BUILD_USER.uid, BUILD_USER.gid);
      if (timeLeft() <= 0) throw timedOut();

      // the build dyno
      const env: Record<string, string> = { STACK: 'manifold', MANIFOLD_BUILD_MODE: explicit ? 'explicit' : 'detect' };
      if (o.version) env.SOURCE_VERSION = o.version;
      const scratchMb = Math.ceil((this.limits.slugMaxBytes + this.limits.cacheMaxBytes) / MB) + 256;
      const r = await this.runDyno({
        name: 'build.1',
        command: { argv: ['/bin/bash', '/app/driver.sh'] },
        appDir: root,
        env,
        net: this.o.net === 'bridge' ? { mode: 'bridge' } : { mode: 'none' },
        resources: resourcesFor('standard-2x'),
        scratchSize: `${scratchMb}m`,
      }, {
        timeoutMs: timeLeft(),
        onLine: say,
        extractTo: out,
        maxStreamBytes: this.limits.slugMaxBytes + this.limits.cacheMaxBytes + 16 * MB,
      });
      if (r.timedOut) throw timedOut();
      if (this.closing) throw new BuildFailure('EBUILDFAILED', 'the daemon stopped during the build');
      if (r.tooBig) throw new BuildFailure('ESLUGTOOBIG', `build output exceeds the limits (slug ${humanBytes(this.limits.slugMaxBytes)}, cache ${humanBytes(this.limits.cacheMaxBytes)})`);
      if (r.status.status !== 0) {
        const why = r.status.status === 10 ? (r.lastError ?? 'no buildpack detected this app') : r.status.status === 11 ? (r.lastError ?? 'compile failed') : r.lastError ?? `the build dyno exited with status ${r.status.status}`;
        const f = new BuildFailure('EBUILDFAILED', why.replace(/^ !\s+/, ''));
        f.told = r.lastError !== undefined;
        throw f;
      }
      if (r.extractError) throw new BuildFailure('EBUILDFAILED', `reading the build output failed: ${r.extractError}`);

      const buildDir = path.join(out, 'build');
      const meta = path.join(out, 'meta');
      if (!fs.lstatSync(buildDir, { throwIfNoEntry: false })?.isDirectory()) throw new BuildFailure('EBUILDFAILED', 'the build produced no build directory');
      const readMeta = (name: string): string => {
        const p = path.join(meta, name);
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        return st?.isFile() && st.size < 1024 * 1024 ? fs.readFileSync(p, 'utf8') : '';
      };
      const used = readMeta('names').split('\n').filter(Boolean);
      const compileMs = readMeta('compile-ms').split('\n').filter(Boolean).reduce((a, b) => a + (Number(b) || 0), 0);
      let defaults: Record<string, string> = {};
      for (let j = 0; j < used.length; j++) defaults = { ...defaults, ...defaultProcessTypes(readMeta(`release-${j}.yml`)) };

      // the cache is kept once compile succeeded (as on Heroku), whatever happens to the release;
      // not for an app destroyed meanwhile (checkApp throws ENOAPP)
      await this.o.host.checkApp(app);
      this.keepCache(app, path.join(out, 'cache'));

      // process types
      say('-----> Discovering process types');
      const procfilePath = path.join(buildDir, 'Procfile');
      const pst = fs.lstatSync(procfilePath, { throwIfNoEntry: false });
      let procfile: Record<string, string>;
      try {
        if (pst) {
          if (!pst.isFile()) throw new BuildFailure('EBUILDFAILED', 'Procfile is not a regular file');
          procfile = parseProcfile(fs.readFileSync(procfilePath, 'utf8'));
          const types = Object.keys(procfile);
          say(`       Procfile declares types -> ${types.length ? types.join(', ') : '(none)'}`);
          const extra = Object.keys(defaults).filter((t) => !(t in procfile));
          if (extra.length) say(`       Default types for buildpack -> ${extra.join(', ')}`);
          procfile = { ...defaults, ...procfile };
        } else {
          procfile = defaults;
          say(`       Default types for buildpack -> ${Object.keys(defaults).join(', ') || '(none)'}`);
        }
      } catch (err) {
        if (err instanceof ProcfileError) throw new BuildFailure('EBUILDFAILED', `Procfile: ${err.message}`);
        throw err;
      }
      if (Object.keys(procfile).length === 0) throw new BuildFailure('EBUILDFAILED', 'no process types: add a Procfile (e.g. web: node server.js) or use a buildpack with default_process_types');
      // the slug writer reads the process types from a Procfile at the root
      const text = Object.entries(procfile).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
      fs.rmSync(procfilePath, { force: true });
      fs.writeFileSync(procfilePath, text, { mode: 0o644, flag: 'wx' });

      // the slug
      say('-----> Compressing...');
      if (timeLeft() <= 0) throw timedOut();
      const size = await treeBytes(buildDir);
      if (size > this.limits.slugMaxBytes) throw new BuildFailure('ESLUGTOOBIG', `slug size (${humanBytes(size)}) exceeds the limit of ${humanBytes(this.limits.slugMaxBytes)}`);
      const slugRoot = path.join(this.o.stateDir, 'slugs');
      fs.mkdirSync(slugRoot, { recursive: true, mode: 0o755 });
      const tempDir = tempSlugDir(slugRoot);
      let written;
      try {
        // read as root, never following a link: the tree is what the build's own user wrote
        written = await buildSlug({ source: buildDir, slugDir: tempDir, requester: { uid: 0, gid: 0 }, timeoutMs: Math.max(1000, timeLeft()), limits: { maxBytes: this.limits.slugMaxBytes } });
      } catch (err) {
        if (err instanceof SlugBuildError) {
          if (/larger than/.test(err.message)) throw new BuildFailure('ESLUGTOOBIG', `slug size exceeds the limit of ${humanBytes(this.limits.slugMaxBytes)}`);
          if (/took longer/.test(err.message)) throw timedOut();
          throw new BuildFailure('EBUILDFAILED', `writing the slug failed: ${err.message}`);
        }
        throw err;
      }
      say(`       Done: ${humanBytes(written.bytes)}`);
      const buildpacks = used.length ? used : packs.map((p) => p.name);
      const id = written.sha256.slice(0, 8);
      // a git commit is shown as Heroku shows it (8 hex digits); the slug's id without a version
      const desc = o.description ?? `Build ${o.version ? (/^[0-9a-f]{40}$/.test(o.version) ? o.version.slice(0, 8) : o.version.slice(0, 40)) : id}`;

      say('-----> Launching...');
      const releaseCmd = procfile.release;
      const meta0: BuildMeta = { slugBytes: written.bytes, buildMs: Date.now() - t0, buildpacks };
      const rel = await this.o.host.releaseBuiltSlug(app, {
        tempDir,
        sha256: written.sha256,
        bytes: written.bytes,
        procfile,
        description: desc,
        build: meta0,
        ...(releaseCmd ? { beforeRelease: (slugDir: string, config: Record<string, string>) => this.releasePhase(app, slugDir, releaseCmd, config, say, onLine) } : {}),
      });
      const buildMs = Date.now() - t0;
      say(`       Released v${rel.version}`);
      say(`       ${this.o.host.urlOf(app)} deployed to Manifold`);
      say(`       Slug ${humanBytes(written.bytes)}, built in ${(buildMs / 1000).toFixed(1)} s (compile ${(compileMs / 1000).toFixed(1)} s) with ${buildpacks.join(', ')}`);
      return { version: rel.version, description: rel.description, createdAt: rel.createdAt, current: true, slugBytes: written.bytes, buildMs, buildpacks, compileMs };
    } finally {
      await fs.promises.rm(stage, { recursive: true, force: true });
    }
  }

  /** The build dyno's /app: source, cache, env, buildpacks, driver; owned by the build user. */
  private async stage(app: string, source: string, root: string, packs: ResolvedBuildpack[], requester: { uid: number; gid: number }): Promise<void> {
    fs.mkdirSync(root, { mode: 0o755 });
    const build = path.join(root, 'build');
    fs.mkdirSync(build, { mode: 0o755 });
    // the source as the requester reads it (a tar as that user), unpacked here by root without owners
    await new Promise<void>((resolve, reject) => {
      const reader = spawn('tar', ['-cf', '-', '--exclude=./.git', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }, uid: requester.uid, gid: requester.gid });
      const writer = spawn('tar', ['-xf', '-', '--no-same-owner', '--no-same-permissions', '-C', build], { stdio: [reader.stdout!, 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } });
      reader.stdout!.destroy();
      let err = '';
      for (const c of [reader, writer]) {
        c.stderr!.setEncoding('utf8').on('data', (d: string) => (err.length < 2000 ? (err += d) : undefined));
        c.once('error', reject);
      }
      void Promise.all([exited(reader), exited(writer)]).then(([a, b]) => {
        if (a === 0 && b === 0) resolve();
        else reject(new ManifoldError('EINVAL', `cannot read ${source}: ${err.trim().split('\n')[0] ?? 'tar failed'}`));
      });
    });
    // no device, FIFO or socket in a build; everything the build user's to change
    await run('find', [build, '(', '-type', 'b', '-o', '-type', 'c', '-o', '-type', 'p', '-o', '-type', 's', ')', '-delete']);
    await run('chmod', ['-R', 'u+rwX,go+rX', build]);
    const cache = path.join(root, 'cache');
    const kept = path.join(this.o.stateDir, 'cache', app);
    // hard links: the dyno sees the stage through its copy-on-write /app, so a write to a cached
    // file copies it up and never reaches the kept cache (a plain copy where links can't be made)
    if (fs.existsSync(kept)) await run('cp', ['-al', '--', kept, cache]).catch(() => run('cp', ['-a', '--', kept, cache]));
    else fs.mkdirSync(cache, { mode: 0o700 });
    const envDir = path.join(root, 'env');
    fs.mkdirSync(envDir, { mode: 0o700 });
    const config = (await this.o.host.currentRelease(app))?.config ?? {};
    for (const [k, v] of Object.entries(config)) fs.writeFileSync(path.join(envDir, k), v, { mode: 0o400 });
    await run('chown', ['-R', '-h', `${BUILD_USER.uid}:${BUILD_USER.gid}`, build, cache, envDir]);
    const bpRoot = path.join(root, 'buildpacks');
    fs.mkdirSync(bpRoot, { mode: 0o755 });
    for (let i = 0; i < packs.length; i++) {
      const d = path.join(bpRoot, String(i));
      // the buildpack's own directory (an installed one may be a link to it), its links inside kept
      await run('cp', ['-a', '--no-preserve=ownership', '--', fs.realpathSync(packs[i]!.dir), d]);
      fs.rmSync(path.join(d, '.git'), { recursive: true, force: true });
      await run('chmod', ['-R', 'a+rX,go-w', d]);
    }
    fs.writeFileSync(path.join(bpRoot, 'names'), packs.map((p) => p.name).join('\n') + '\n', { mode: 0o644 });
    fs.writeFileSync(path.join(root, 'driver.sh'), DRIVER_SCRIPT, { mode: 0o755 });
  }

  private keepCache(app: string, cache: string): void {
    const st = fs.lstatSync(cache, { throwIfNoEntry: false });
    if (!st?.isDirectory()) return;
    const cacheRoot = path.join(this.o.stateDir, 'cache');
    fs.mkdirSync(cacheRoot, { recursive: true, mode: 0o700 });
    const kept = path.join(cacheRoot, app);
    const old = `${kept}.old-${process.pid}-${Date.now()}`;
    if (fs.existsSync(kept)) fs.renameSync(kept, old);
    fs.renameSync(cache, kept);
    fs.rmSync(old, { recursive: true, force: true });
  }

  /** Removes the app's build cache (apps:destroy). */
  dropCache(app: string): void {
    fs.rmSync(path.join(this.o.stateDir, 'cache', app), { recursive: true, force: true });
  }

  /**
   * Starts a dyno, relays its stderr (and stdout, without `extractTo`) line by line, and with
   * `extractTo` unpacks its stdout (a tar) there as the build user. Kills it at `timeoutMs`.
   */
  private async runDyno(
    spec: Omit<DynoSpec, 'stdio'>,
    o: { timeoutMs: number; onLine: (line: string) => void; extractTo?: string; maxStreamBytes?: number },
  ): Promise<{ status: ExitStatus; timedOut: boolean; tooBig: boolean; lastError: string | undefined; extractError: string | undefined }> {
    const launcher = this.o.launcher;
    const [errR, errW] = launcher.pipe();
    let outR = -1;
    let outW = -1;
    if (o.extractTo) [outR, outW] = launcher.pipe();
    let dyno: LaunchedDyno | undefined;
    let startError: unknown;
    try {
      if (this.closing) throw new Error('the daemon is stopping');
      dyno = await launcher.start({ ...spec, stdio: { stdout: o.extractTo ? outW : errW, stderr: errW } });
      this.active.add(dyno);
      const d = dyno;
      void d.exited.then(() => this.active.delete(d), () => this.active.delete(d));
      // stopped while it was starting
      if (this.closing) void d.kill();
    } catch (err) {
      startError = err;
    } finally {
      fs.closeSync(errW);
      if (outW >= 0) fs.closeSync(outW);
    }
    let lastError: string | undefined;
    const errSock = new net.Socket({ fd: errR, readable: true, writable: false });
    // the reason of a failure: the first ` !` line of the last run of them
    let inErrors = false;
    const split = new LineSplitter((line) => {
      const isError = /^ ! /.test(line);
      if (isError && !inErrors) lastError = line;
      inErrors = isError;
      o.onLine(line);
    });
    const errDone = new Promise<void>((resolve) => {
      errSock.on('data', (d: Buffer) => split.write(d));
      errSock.on('error', () => undefined);
      errSock.on('close', () => {
        split.end();
        resolve();
      });
    });
    let tooBig = false;
    let extractError: string | undefined;
    let extractDone: Promise<unknown> = Promise.resolve();
    let extractor: ChildProcess | undefined;
    let outSock: net.Socket | undefined;
    if (o.extractTo) {
      outSock = new net.Socket({ fd: outR, readable: true, writable: false });
      // cwd first, then the user: the tar writes only below a directory it could not reach by name
      extractor = spawn('tar', ['-xf', '-', '--no-same-owner', '--delay-directory-restore'], { cwd: o.extractTo, uid: BUILD_USER.uid, gid: BUILD_USER.gid, stdio: ['pipe', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } });
      let err = '';
      extractor.stderr!.setEncoding('utf8').on('data', (d: string) => (err.length < 2000 ? (err += d) : undefined));
      extractor.stdin!.on('error', () => undefined);
      extractor.once('error', (e) => (extractError = e.message));
      let bytes = 0;
      outSock.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes > (o.maxStreamBytes ?? Infinity)) {
          if (!tooBig) {
            tooBig = true;
            void dyno?.kill();
            extractor?.kill('SIGKILL');
            outSock?.destroy();
          }
          return;
        }
        if (!extractor!.stdin!.write(d)) {
          outSock!.pause();
          extractor!.stdin!.once('drain', () => outSock!.resume());
        }
      });
      outSock.on('error', () => undefined);
      outSock.on('close', () => extractor?.stdin?.end());
      const ex = extractor;
      extractDone = exited(ex).then((code) => {
        if (code !== 0 && !tooBig && extractError === undefined) extractError = err.trim().split('\n')[0] || `tar exited with ${code ?? 'a signal'}`;
      });
    }
    if (!dyno) {
      errSock.destroy();
      outSock?.destroy();
      extractor?.kill('SIGKILL');
      await extractDone;
      throw new ManifoldError('EINTERNAL', `cannot start the ${spec.name.split('.')[0]} dyno: ${startError instanceof Error ? startError.message : String(startError)}`);
    }
    let timedOut = false;
    const started = dyno;
    const timer = setTimeout(() => {
      timedOut = true;
      void started.kill();
      extractor?.kill('SIGKILL');
    }, Math.max(0, o.timeoutMs));
    try {
      const status = await started.exited;
      // output still in the pipes is read; a grandchild that kept them open is gone with the dyno
      await Promise.race([Promise.all([errDone, extractDone]), new Promise((r) => setTimeout(r, 5000))]);
      errSock.destroy();
      outSock?.destroy();
      if (extractor && extractor.exitCode === null && extractor.signalCode === null) {
        extractor.kill('SIGKILL');
        await extractDone;
      }
      return { status, timedOut, tooBig, lastError, extractError };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The release phase: `command` once in a one-off dyno of the new slug; throws ERELEASEPHASE unless it exits 0. */
  private async releasePhase(app: string, slugDir: string, command: string, config: Record<string, string>, say: (line: string) => void, onLine: (line: string) => void): Promise<void> {
    say(`-----> Running release command: ${command}`);
    const r = await this.runDyno({
      name: 'release.1',
      command: { shell: command },
      appDir: slugDir,
      env: config,
      net: this.o.net === 'bridge' ? { mode: 'bridge' } : { mode: 'none' },
      resources: resourcesFor('standard-1x'),
      port: 5000,
    }, {
      timeoutMs: this.limits.releaseTimeoutMs,
      onLine: (line) => {
        onLine(line);
        this.o.logs.push(app, 'app', 'release.1', line);
      },
    });
    if (r.timedOut) throw new BuildFailure('ERELEASEPHASE', `release command timed out after ${Math.round(this.limits.releaseTimeoutMs / 1000)} s; the release was not made current`);
    if (r.status.status !== 0) throw new BuildFailure('ERELEASEPHASE', `release command failed (exit status ${r.status.status}); the release was not made current`);
    say('       Release command succeeded');
  }
}

/** The shipped buildpacks (`buildpacks/` at the repository root), or MANIFOLD_BUILDPACKS_DIR (colon-separated roots). */
export function defaultInstalledBuildpacks(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.MANIFOLD_BUILDPACKS_DIR;
  if (fromEnv) return fromEnv.split(':').filter((d) => path.isAbsolute(d));
  // dist/src/manifold/build → the repository root
  return [path.resolve(__dirname, '../../../../buildpacks')];
}

/**
 * Limits from the daemon's environment (tests and small hosts): MANIFOLD_SLUG_MAX and
 * MANIFOLD_BUILD_CACHE_MAX (bytes, k/m/g suffixes), MANIFOLD_BUILD_TIMEOUT, MANIFOLD_RELEASE_TIMEOUT
 * and MANIFOLD_BUILD_WAIT (seconds). A malformed value is an error, not a silent default.
 */
export function buildLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<BuildLimits> {
  const out: Partial<BuildLimits> = {};
  const bytes = (k: string): number | undefined => {
    const v = env[k];
    if (v === undefined || v === '') return undefined;
    const m = /^([0-9]+)([kmg]?)$/i.exec(v.trim());
    if (!m) throw new Error(`${k}: expected a size such as 500m, got '${v}'`);
    return Number(m[1]) * { '': 1, k: 1024, m: MB, g: 1024 * MB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  };
  const ms = (k: string): number | undefined => {
    const v = env[k];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${k}: expected seconds, got '${v}'`);
    return Math.round(n * 1000);
  };
  const set = <K extends keyof BuildLimits>(key: K, v: number | undefined): void => {
    if (v !== undefined) out[key] = v;
  };
  set('slugMaxBytes', bytes('MANIFOLD_SLUG_MAX'));
  set('cacheMaxBytes', bytes('MANIFOLD_BUILD_CACHE_MAX'));
  set('buildTimeoutMs', ms('MANIFOLD_BUILD_TIMEOUT'));
  set('releaseTimeoutMs', ms('MANIFOLD_RELEASE_TIMEOUT'));
  set('busyWaitMs', ms('MANIFOLD_BUILD_WAIT'));
  return out;
}
