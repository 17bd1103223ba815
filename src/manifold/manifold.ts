/**
 * The manifold: desired state (apps, releases, formation, settings) in the store, and the
 * supervisor told about every change. The API calls these methods; they validate everything
 * before writing, so a bad input leaves the state unchanged.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AppInfo, PsResult, ReleaseInfo, ScaleResult } from './api/protocol';
import { userNameOf } from './author';
import { ManifoldError } from './errors';
import type { LogHub } from './logs/hub';
import type { BuildMeta } from './build/builder';
import { buildSlug, SlugBuildError, type Requester } from './deploy/build-slug';
import { placeSlug, tempSlugDir } from './deploy/slug-store';
import type { SlugWriteResult } from './deploy/write-slug';
import { parseProcfile, ProcfileError } from './procfile';
import { applyScale, parseScaleArgs, ScaleSyntaxError, type FormationEntry } from './scale-syntax';
import { DEFAULT_SIZE, sizeOf } from './sizes';
import { SqliteStateStore } from './state/sqlite-state-store';
import type { FormationChanges, StateStore } from './state/state-store';
import { Store, type AppSettings, type Release } from './store/store';
import type { OneOff, OneOffOptions } from './supervisor/supervisor';
import type { Fleet } from './fleet';
import { isStopSignal, STOP_SIGNALS } from '../runtime/native-table';
import { checkAppName, checkConfigKey, checkConfigValue, configBytes, MAX_CONFIG_BYTES } from './validate';

export interface ManifoldOptions {
  /** The durable state; a bare SQLite `Store` is wrapped in a SqliteStateStore. */
  store: StateStore | Store;
  /** What runs the dynos: the Supervisor on one host, a ClusterFleet in cluster mode. */
  supervisor: Fleet;
  logs: LogHub;
  stateDir: string;
  domain: string;
  /** Port of the router, for URLs (80 is left out). */
  routerPort: number | null;
  /** Bound on one deploy's copy (default build-slug.ts's DEFAULT_DEPLOY_TIMEOUT_MS). */
  deployTimeoutMs?: number;
  /**
   * Cluster mode: called with a deploy's slug before its release is written, so that the release
   * names a slug other hosts can fetch (a second API host holds it when this resolves).
   */
  publishSlug?: (sha256: string, dir: string, bytes: number) => Promise<void>;
}

export class Manifold {
  private readonly store: StateStore;
  private readonly supervisor: Fleet;
  private readonly logs: LogHub;
  /**
   * Slugs a deploy in this process has placed but not yet put in a release: garbage collection
   * (apps:destroy) must not remove them although no release refers to them yet.
   */
  private readonly pinned = new Map<string, number>();

  constructor(private readonly o: ManifoldOptions) {
    this.store = o.store instanceof Store ? new SqliteStateStore(o.store) : o.store;
    this.supervisor = o.supervisor;
    this.logs = o.logs;
  }

  hostsOf(app: string): string[] {
    return [`${app}.${this.o.domain}`];
  }

  urlOf(app: string): string {
    const port = this.o.routerPort;
    return `http://${app}.${this.o.domain}${port === null || port === 80 ? '' : `:${port}`}/`;
  }

  /** Loads every app into the supervisor (daemon start). */
  async restore(): Promise<void> {
    for (const app of await this.store.listApps()) {
      this.supervisor.addApp(app.name, this.hostsOf(app.name), await this.store.currentRelease(app.name), await this.store.formation(app.name), app.settings);
    }
  }

  private async app(name: unknown): Promise<string> {
    if (typeof name !== 'string' || name === '') throw new ManifoldError('EINVAL', 'missing app name (use -a APP)');
    if (!(await this.store.getApp(name))) throw new ManifoldError('ENOAPP', `no such app: ${name}`);
    return name;
  }

  private pin(slug: string, by: number): void {
    const n = (this.pinned.get(slug) ?? 0) + by;
    if (n > 0) this.pinned.set(slug, n);
    else this.pinned.delete(slug);
  }

  /** Removes those of `slugs` that no release refers to (a slug may be shared by identical deploys of several apps). */
  private async collect(slugs: Iterable<string>): Promise<void> {
    const root = path.join(this.o.stateDir, 'slugs');
    for (const s of slugs) {
      // only directories this manifold made: a release row is not a licence to remove any path
      if (path.dirname(s) !== root && path.dirname(path.dirname(s)) !== root) continue;
      const used = await this.store.slugInUse(s);
      // checked after the await, in the same turn as the removal: a deploy pins synchronously
      if (!used && !this.pinned.has(s)) fs.rmSync(s, { recursive: true, force: true });
    }
  }

  private api(app: string, message: string): void {
    this.logs.push(app, 'manifold', 'api', message);
  }

  async listApps(): Promise<string[]> {
    return (await this.store.listApps()).map((a) => a.name);
  }

  /** `by`: who is asking (Release.by of the initial release). */
  async createApp(nameIn: unknown, by: string): Promise<AppInfo> {
    const name = checkAppName(nameIn);
    const rel = await this.store.createApp(name, { slug: null, procfile: {}, config: {}, description: 'Initial release', by });
    if (!rel) throw new ManifoldError('EEXIST', `app ${name} already exists`);
    this.api(name, `Release v${rel.version} created (Initial release)`);
    this.supervisor.addApp(name, this.hostsOf(name), rel, [], {});
    return this.info(name);
  }

  async destroyApp(nameIn: unknown, confirm: unknown): Promise<void> {
    const name = await this.app(nameIn);
    if (confirm !== name) throw new ManifoldError('ECONFIRM', `destroying ${name} is permanent: confirm with --confirm ${name}`);
    const slugs = await this.store.deleteApp(name);
    await this.supervisor.removeApp(name);
    this.logs.drop(name);
    await this.collect(slugs);
    // the per-app directory of older daemons' slugs (all of them were this app's)
    fs.rmSync(path.join(this.o.stateDir, 'slugs', name), { recursive: true, force: true });
    // its build cache (build/builder.ts)
    fs.rmSync(path.join(this.o.stateDir, 'cache', name), { recursive: true, force: true });
  }

  async info(nameIn: unknown): Promise<AppInfo> {
    const name = await this.app(nameIn);
    const row = await this.store.getApp(name);
    if (!row) throw new ManifoldError('ENOAPP', `no such app: ${name}`);
    const rel = await this.store.currentRelease(name);
    const formation = await this.store.formation(name);
    const types = new Set([...Object.keys(rel?.procfile ?? {}), ...formation.map((f) => f.type)]);
    return {
      name,
      url: this.urlOf(name),
      createdAt: row.createdAt,
      release: rel?.version ?? 0,
      slug: rel?.slug ?? null,
      // `release` is the release phase's command, never a formation entry
      formation: [...types].filter((t) => t !== 'release').sort().map((type) => {
        const f = formation.find((x) => x.type === type);
        return { type, quantity: f?.quantity ?? 0, size: sizeOf(f?.size ?? DEFAULT_SIZE).label, command: rel?.procfile[type] ?? null };
      }),
      settings: row.settings,
      dynos: (await this.supervisor.status(name)).length,
    };
  }

  /**
   * Copies DIR into an immutable slug, reads its Procfile and creates a release. The copy is made by
   * child processes (build-slug.ts): the source is read as `requester` (the API client's uid/gid),
   * never by root on its behalf, and the daemon's event loop only waits. The release is by that user.
   */
  async deploy(
    nameIn: unknown,
    dirIn: unknown,
    requester: Requester = { uid: 0, gid: 0 },
    onProgress?: (p: { files: number; bytes: number }) => void,
  ): Promise<ReleaseInfo> {
    const name = await this.app(nameIn);
    if (typeof dirIn !== 'string' || !path.isAbsolute(dirIn)) throw new ManifoldError('EINVAL', 'deploy needs an absolute directory path');
    const slugRoot = path.join(this.o.stateDir, 'slugs');
    const tempDir = tempSlugDir(slugRoot);
    // the slug's final name is slugRoot/<64 hex>: the root is what must suit overlay options
    if (/[,:\n]/.test(slugRoot)) throw new ManifoldError('EINVAL', `state directory path unusable for overlays: ${slugRoot}`);
    fs.mkdirSync(slugRoot, { recursive: true, mode: 0o755 });
    let built: SlugWriteResult;
    try {
      built = await buildSlug({ source: dirIn, slugDir: tempDir, requester, timeoutMs: this.o.deployTimeoutMs, ...(onProgress ? { onProgress } : {}) });
    } catch (err) {
      if (err instanceof SlugBuildError) throw new ManifoldError('EDEPLOY', err.message);
      throw err;
    }
    let procfile: Record<string, string>;
    try {
      procfile = parseProcfile(built.procfile);
      if (Object.keys(procfile).length === 0) throw new ManifoldError('EPROCFILE', 'Procfile defines no process types');
    } catch (err) {
      void fs.promises.rm(tempDir, { recursive: true, force: true });
      if (err instanceof ProcfileError) throw new ManifoldError('EPROCFILE', err.message);
      throw err;
    }
    const id = built.sha256.slice(0, 8);
    const rel = await this.placeAndRelease(name, { tempDir, sha256: built.sha256, bytes: built.bytes, procfile, description: `Deploy ${id}`, by: userNameOf(requester.uid) });
    this.api(name, `Deploy ${id}: ${built.files} files, ${(built.bytes / 1e6).toFixed(1)} MB`);
    if (built.skippedCount > 0) {
      this.api(name, `Deploy ${id}: left out ${built.skippedCount} entries that are not files, directories or links: ${built.skipped.join(', ')}`);
    }
    this.api(name, `Release v${rel.version} created`);
    this.supervisor.setRelease(name, rel);
    return { version: rel.version, description: rel.description, createdAt: rel.createdAt, current: true };
  }

  async releases(nameIn: unknown): Promise<ReleaseInfo[]> {
    const name = await this.app(nameIn);
    return (await this.store.listReleases(name)).map((r, i) => ({ version: r.version, description: r.description, createdAt: r.createdAt, current: i === 0, ...(r.build ? { build: r.build } : {}), ...(r.by !== undefined ? { by: r.by } : {}) }));
  }

  async rollback(nameIn: unknown, versionIn: unknown, by: string): Promise<ReleaseInfo> {
    const name = await this.app(nameIn);
    const m = typeof versionIn === 'string' ? /^v?([0-9]+)$/.exec(versionIn) : null;
    if (!m) throw new ManifoldError('EINVAL', `invalid release '${String(versionIn)}' (expected vN)`);
    const target = await this.store.getRelease(name, Number(m[1]));
    if (!target) throw new ManifoldError('ENORELEASE', `no release v${m[1]} in app ${name}`);
    if (target.slug === null) throw new ManifoldError('ENORELEASE', `release v${target.version} has no code to roll back to`);
    // releases are immutable: the target read above is still what it was when the new version is taken
    const slug = target.slug;
    const rel = (await this.store.createRelease(name, () => ({ slug, procfile: target.procfile, config: target.config, description: `Rollback to v${target.version}`, by })))!;
    this.api(name, `Release v${rel.version} created (Rollback to v${target.version})`);
    this.supervisor.setRelease(name, rel);
    return { version: rel.version, description: rel.description, createdAt: rel.createdAt, current: true };
  }

  async config(nameIn: unknown): Promise<Record<string, string>> {
    const name = await this.app(nameIn);
    return (await this.store.currentRelease(name))?.config ?? {};
  }

  /** Sets and/or unsets config vars as one new release (and a restart), unless nothing changes. */
  async updateConfig(nameIn: unknown, setIn: unknown, unsetIn: unknown, by: string): Promise<{ release: number | null; config: Record<string, string> }> {
    const name = await this.app(nameIn);
    const set = (setIn ?? {}) as Record<string, unknown>;
    const unset = (unsetIn ?? []) as unknown[];
    if (typeof set !== 'object' || Array.isArray(set) || !Array.isArray(unset)) throw new ManifoldError('EINVAL', 'bad config request');
    const keys = Object.keys(set);
    if (keys.length === 0 && unset.length === 0) throw new ManifoldError('EINVAL', 'no config vars given');
    for (const k of keys) checkConfigKey(k);
    for (const k of unset) {
      if (typeof k !== 'string') throw new ManifoldError('EINVAL', 'config var names must be strings');
      checkConfigKey(k);
    }
    const parts: string[] = [];
    if (keys.length) parts.push(`Set ${keys.join(', ')} config vars`);
    if (unset.length) parts.push(`Remove ${(unset as string[]).join(', ')} config vars`);
    // the change is applied to the config current when the version is taken (a store may re-run
    // this on a conflict), so concurrent config:set calls never lose one another's vars
    let next: Record<string, string> = {};
    const rel = await this.store.createRelease(name, (cur) => {
      next = { ...cur.config };
      for (const k of keys) next[k] = checkConfigValue(k, set[k]);
      for (const k of unset as string[]) delete next[k];
      if (configBytes(next) > MAX_CONFIG_BYTES) throw new ManifoldError('EINVAL', `config vars would exceed ${MAX_CONFIG_BYTES} bytes`);
      if (JSON.stringify(next) === JSON.stringify(cur.config)) return null;
      return { slug: cur.slug, procfile: cur.procfile, config: next, description: parts.join('; '), by };
    });
    if (!rel) return { release: null, config: next };
    this.api(name, `Release v${rel.version} created (${rel.description})`);
    this.supervisor.setRelease(name, rel);
    return { release: rel.version, config: next };
  }

  async scale(nameIn: unknown, argsIn: unknown): Promise<ScaleResult> {
    const name = await this.app(nameIn);
    if (!Array.isArray(argsIn) || argsIn.some((a) => typeof a !== 'string')) throw new ManifoldError('EINVAL', 'scale arguments must be strings');
    const rel = await this.store.currentRelease(name);
    // `release` is the release phase's command (run once per build), never scaled
    const types = rel?.slug ? Object.keys(rel.procfile).filter((t) => t !== 'release') : [];
    if (types.length === 0) throw new ManifoldError('ENORELEASE', `app ${name} has nothing deployed (run: manifold deploy DIR -a ${name})`);
    if ((argsIn as string[]).some((a) => /^release(?:[=+:-]|$)/.test(a))) throw new ManifoldError('ESCALE', 'release is the release phase command (run once before each release goes live); it cannot be scaled');
    const args = parseArgs(argsIn as string[]);
    let changed: FormationChanges = {};
    // applied to the formation as stored at the moment of writing: a concurrent scale of another type is kept
    const formation = await this.store.updateFormation(name, (rows) => {
      const current: Record<string, FormationEntry> = {};
      for (const f of rows) current[f.type] = { quantity: f.quantity, size: f.size };
      try {
        changed = applyScale(current, args, types);
      } catch (err) {
        if (err instanceof ScaleSyntaxError) throw new ManifoldError('ESCALE', err.message);
        throw err;
      }
      return changed;
    });
    this.api(name, `Scaled to ${formation.filter((f) => types.includes(f.type)).map((f) => `${f.type}@${f.quantity}:${sizeOf(f.size).label}`).join(' ')}`);
    this.supervisor.setFormation(name, formation);
    return { formation: Object.entries(changed).map(([type, f]) => ({ type, quantity: f.quantity, size: sizeOf(f.size).label })) };
  }

  async ps(nameIn: unknown): Promise<PsResult> {
    const name = await this.app(nameIn);
    const rel = await this.store.currentRelease(name);
    const types: PsResult['types'] = {};
    for (const f of await this.store.formation(name)) {
      const cmd = rel?.procfile[f.type];
      if (cmd !== undefined) types[f.type] = { command: cmd, size: sizeOf(f.size).label };
    }
    const dynos = (await this.supervisor.status(name)).map((d) => ({ ...d, size: sizeOf(d.size).label }));
    return { app: name, now: Date.now(), dynos, types };
  }

  async restart(nameIn: unknown, target: unknown): Promise<string[]> {
    const name = await this.app(nameIn);
    if (target !== undefined && target !== null && typeof target !== 'string') throw new ManifoldError('EINVAL', 'bad restart target');
    // an unknown dyno or type is the supervisor's SupervisorError, mapped for the client in api/errors.ts
    return this.supervisor.restart(name, (target as string | undefined) ?? undefined);
  }

  async stop(nameIn: unknown, target: unknown): Promise<string[]> {
    const name = await this.app(nameIn);
    if (typeof target !== 'string' || target === '') throw new ManifoldError('EINVAL', 'ps:stop needs a dyno or process type (e.g. web.1, run.2, worker)');
    return this.supervisor.stop(name, target);
  }

  async setSettings(nameIn: unknown, patch: unknown): Promise<AppSettings> {
    const name = await this.app(nameIn);
    if (!patch || typeof patch !== 'object') throw new ManifoldError('EINVAL', 'bad settings');
    const p = patch as Record<string, unknown>;
    // only the validated patch is written; the store merges it into what is stored at that moment
    const cur: AppSettings = {};
    for (const [k, v] of Object.entries(p)) {
      if (k === 'stopGraceMs' || k === 'bootTimeoutMs') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 3600_000) throw new ManifoldError('EINVAL', `${k} must be a whole number of ms between 0 and 3600000`);
        cur[k] = v;
      } else if (k === 'stopSignal') {
        if (typeof v !== 'string' || !isStopSignal(v)) throw new ManifoldError('EINVAL', `stop signal must be one of ${STOP_SIGNALS.join(', ')}`);
        cur.stopSignal = v as NodeJS.Signals;
      } else if (k === 'memoryQuota') {
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 4 * 1024 * 1024) throw new ManifoldError('EINVAL', 'memoryQuota must be a whole number of bytes, at least 4 MB');
        cur.memoryQuota = v;
      } else if (k === 'memoryKillFactor') {
        if (typeof v !== 'number' || !(v >= 1 && v <= 10)) throw new ManifoldError('EINVAL', 'memoryKillFactor must be between 1 and 10');
        cur.memoryKillFactor = v;
      } else if (k === 'runtimeMetrics') {
        if (typeof v !== 'boolean') throw new ManifoldError('EINVAL', 'runtimeMetrics must be true or false');
        cur.runtimeMetrics = v;
      } else if (k === 'runtimeMetricsIntervalMs') {
        // under a second the lines would drown the app's own in a 1500-line log
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1000 || v > 3600_000) throw new ManifoldError('EINVAL', 'runtimeMetricsIntervalMs must be a whole number of ms between 1000 and 3600000');
        cur.runtimeMetricsIntervalMs = v;
      } else {
        throw new ManifoldError('EINVAL', `unknown setting '${k}' (stopGraceMs, stopSignal, bootTimeoutMs, memoryQuota, memoryKillFactor, runtimeMetrics, runtimeMetricsIntervalMs)`);
      }
    }
    const merged = await this.store.updateSettings(name, cur);
    if (!merged) throw new ManifoldError('ENOAPP', `no such app: ${name}`);
    this.supervisor.setSettings(name, merged);
    return merged;
  }

  async runOneOff(nameIn: unknown, command: unknown, o: OneOffOptions): Promise<OneOff> {
    const name = await this.app(nameIn);
    if (typeof command !== 'string' || command.trim() === '') throw new ManifoldError('EINVAL', 'no command given (usage: manifold run -a APP -- CMD ...)');
    if (command.includes('\0')) throw new ManifoldError('EINVAL', 'command contains a NUL byte');
    const rel = await this.store.currentRelease(name);
    if (!rel?.slug) throw new ManifoldError('ENORELEASE', `app ${name} has nothing deployed (run: manifold deploy DIR -a ${name})`);
    return this.supervisor.runOneOff(name, command, o);
  }

  /**
   * A written slug (at tempDir) placed under its digest and pinned while its release is made:
   * published (cluster), `beforeRelease` run (a build's release phase) with the current config, then
   * the release created. On any failure (the app destroyed meanwhile, a failed release phase) the
   * slug is collected unless another release shares it.
   */
  private async placeAndRelease(
    name: string,
    o: { tempDir: string; sha256: string; bytes: number; procfile: Record<string, string>; description: string; by: string; build?: BuildMeta; beforeRelease?: (slugDir: string, config: Record<string, string>) => Promise<void> },
  ): Promise<Release> {
    const slugRoot = path.join(this.o.stateDir, 'slugs');
    // placed and pinned in one synchronous step (see collect)
    const slug = placeSlug(o.tempDir, slugRoot, o.sha256).dir;
    this.pin(slug, 1);
    try {
      await this.o.publishSlug?.(o.sha256, slug, o.bytes);
      if (o.beforeRelease) await o.beforeRelease(slug, (await this.store.currentRelease(name))?.config ?? {});
      // one atomic step: the config is the current release's at the moment the version is taken
      const created = await this.store.createRelease(name, (cur) => ({ slug, procfile: o.procfile, config: cur.config, description: o.description, by: o.by, ...(o.build ? { build: o.build } : {}) }));
      this.pin(slug, -1);
      return created!;
    } catch (err) {
      // unpinned first: collect leaves pinned slugs alone
      this.pin(slug, -1);
      await this.collect([slug]);
      throw err;
    }
  }

  // ---- builds (build/builder.ts: the BuildHost side) ----

  async appBuildpacks(name: string): Promise<string[]> {
    return (await this.store.getApp(name))?.settings.buildpacks ?? [];
  }

  async setAppBuildpacks(name: string, refs: string[]): Promise<string[]> {
    const merged = await this.store.updateSettings(name, { buildpacks: refs.length ? [...refs] : undefined });
    if (!merged) throw new ManifoldError('ENOAPP', `no such app: ${name}`);
    this.api(name, refs.length ? `Buildpacks set: ${refs.join(', ')}` : 'Buildpacks cleared');
    return merged.buildpacks ?? [];
  }

  /** A build's slug (written at tempDir) placed, its release phase run, then released (see BuildHost). */
  async releaseBuiltSlug(
    name: string,
    o: { tempDir: string; sha256: string; bytes: number; procfile: Record<string, string>; description: string; by: string; build: BuildMeta; beforeRelease?: (slugDir: string, config: Record<string, string>) => Promise<void> },
  ): Promise<Release> {
    const rel = await this.placeAndRelease(name, o);
    this.api(name, `Build ${o.sha256.slice(0, 8)}: ${o.build.buildpacks.join(', ')}, slug ${(o.bytes / 1e6).toFixed(1)} MB, ${(o.build.buildMs / 1000).toFixed(1)} s`);
    this.api(name, `Release v${rel.version} created (${rel.description})`);
    this.supervisor.setRelease(name, rel);
    return rel;
  }

  currentRelease(name: string): Promise<Release | undefined> {
    return this.store.currentRelease(name);
  }

  checkApp(name: unknown): Promise<string> {
    return this.app(name);
  }
}

function parseArgs(args: string[]): ReturnType<typeof parseScaleArgs> {
  try {
    return parseScaleArgs(args);
  } catch (err) {
    if (err instanceof ScaleSyntaxError) throw new ManifoldError('ESCALE', err.message);
    throw err;
  }
}
