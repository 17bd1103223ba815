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
 *
 * This file: the Builder (buildpacks:* commands, per-app lock, the order of the steps, release
 * phase). Beside it: limits.ts, stage.ts (step 3, kept cache), build-dyno.ts (the dynos of 4 and 6),
 * output.ts (4's result, 5's slug), process-types.ts, proc.ts, types.ts, failure.ts. What other
 * modules imported from here is re-exported.
 */
import fs from 'node:fs';
import path from 'node:path';
import { resourcesFor } from '../../runtime/sizes';
import type { BuildResult } from '../api/protocol';
import { userNameOf } from '../author';
import { ManifoldError } from '../errors';
import { BuildDynos } from './build-dyno';
import { Buildpacks, checkBuildpackDir, type ResolvedBuildpack } from './buildpacks';
import { BuildFailure } from './failure';
import { DEFAULT_BUILD_LIMITS, humanBytes, MB, type BuildLimits } from './limits';
import { checkBuildDyno, readBuildOutput, writeBuildSlug } from './output';
import { BUILD_USER } from './proc';
import { discoverProcessTypes } from './process-types';
import { dropCache, keepCache, removeSlugIgnored, stageBuild } from './stage';
import type { BuilderOptions, BuildMeta, BuildRequest } from './types';

export { defaultInstalledBuildpacks } from './buildpacks';
export { buildLimitsFromEnv, DEFAULT_BUILD_LIMITS, humanBytes, type BuildLimits } from './limits';
export { defaultProcessTypes } from './process-types';
export type { BuildHost, BuilderOptions, BuildMeta, BuildRequest } from './types';

function optionalText(v: unknown, what: string, max = 200): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max || /[\0-\x1f\x7f]/.test(v)) throw new ManifoldError('EINVAL', `${what} must be a line of text of at most ${max} characters`);
  return v === '' ? undefined : v;
}

export class Builder {
  readonly buildpacks: Buildpacks;
  readonly limits: BuildLimits;
  private readonly running = new Map<string, Promise<void>>();
  /** Build and release-phase dynos running now (close() kills them). */
  private readonly dynos: BuildDynos;

  constructor(private readonly o: BuilderOptions) {
    this.buildpacks = new Buildpacks(o.installed, path.join(o.stateDir, 'buildpacks'));
    this.limits = { ...DEFAULT_BUILD_LIMITS, ...(o.limits ?? {}) };
    this.dynos = new BuildDynos(o.launcher);
  }

  /**
   * Daemon shutdown: running build and release-phase dynos are killed (their builds fail and clean
   * up their stage); resolves when every build has ended, or after 15 s.
   */
  async close(): Promise<void> {
    await this.dynos.killAll();
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
    const requester = req.requester ?? { uid: 0, gid: 0 };
    // a claimed author only from root (the push hook); anyone else is who SO_PEERCRED says
    const claimed = optionalText(req.by, 'by');
    const by = requester.uid === 0 && claimed !== undefined ? claimed : userNameOf(requester.uid);
    const say = (line: string): void => {
      onLine(line);
      this.o.logs.push(app, 'manifold', 'build', line);
    };
    const unlock = await this.acquire(app, say);
    try {
      return await this.buildLocked(app, dir, { version, description, user, by, requester }, say, onLine);
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
    o: { version: string | undefined; description: string | undefined; user: string | undefined; by: string; requester: { uid: number; gid: number } },
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
      await stageBuild(this.o, app, source, root, packs, o.requester);
      // .slugignore before the buildpacks run, as Heroku does: what it names never reaches compile or the slug
      removeSlugIgnored(path.join(root, 'build'), say);
      fs.mkdirSync(out, { mode: 0o700 });
      fs.chownSync(out, BUILD_USER.uid, BUILD_USER.gid);
      if (timeLeft() <= 0) throw timedOut();

      // the build dyno
      const env: Record<string, string> = { STACK: 'manifold', MANIFOLD_BUILD_MODE: explicit ? 'explicit' : 'detect' };
      if (o.version) env.SOURCE_VERSION = o.version;
      const scratchMb = Math.ceil((this.limits.slugMaxBytes + this.limits.cacheMaxBytes) / MB) + 256;
      const r = await this.dynos.run({
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
      checkBuildDyno(r, { limits: this.limits, closing: this.dynos.closing, timedOut });
      const { buildDir, used, compileMs, defaults } = readBuildOutput(out);

      // the cache is kept once compile succeeded (as on Heroku), whatever happens to the release;
      // not for an app destroyed meanwhile (checkApp throws ENOAPP)
      await this.o.host.checkApp(app);
      keepCache(this.o.stateDir, app, path.join(out, 'cache'));

      // process types
      const procfile = discoverProcessTypes(buildDir, defaults, say);

      // the slug
      const { tempDir, written } = await writeBuildSlug(buildDir, { stateDir: this.o.stateDir, limits: this.limits, timeLeft, timedOut, say });
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
        by: o.by,
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

  /** Removes the app's build cache (apps:destroy). */
  dropCache(app: string): void {
    dropCache(this.o.stateDir, app);
  }

  /** The release phase: `command` once in a one-off dyno of the new slug; throws ERELEASEPHASE unless it exits 0. */
  private async releasePhase(app: string, slugDir: string, command: string, config: Record<string, string>, say: (line: string) => void, onLine: (line: string) => void): Promise<void> {
    say(`-----> Running release command: ${command}`);
    const r = await this.dynos.run({
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
