/**
 * The manifold: desired state (apps, releases, formation, settings) in the store, and the
 * supervisor told about every change. The API calls these methods; they validate everything
 * before writing, so a bad input leaves the state unchanged.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AppInfo, PsResult, ReleaseInfo, ScaleResult } from './api/protocol';
import { ManifoldError } from './errors';
import type { LogHub } from './logs/hub';
import { buildSlug, SlugBuildError, type Requester } from './deploy/build-slug';
import type { SlugWriteResult } from './deploy/write-slug';
import { parseProcfile, ProcfileError } from './procfile';
import { applyScale, parseScaleArgs, ScaleSyntaxError, type FormationEntry } from './scale-syntax';
import { DEFAULT_SIZE, sizeOf } from './sizes';
import type { AppSettings, Release, Store } from './store/store';
import type { OneOff, OneOffOptions, Supervisor } from './supervisor/supervisor';
import { isStopSignal, STOP_SIGNALS } from '../runtime/native-table';
import { checkAppName, checkConfigKey, checkConfigValue, configBytes, MAX_CONFIG_BYTES } from './validate';

export interface ManifoldOptions {
  store: Store;
  supervisor: Supervisor;
  logs: LogHub;
  stateDir: string;
  domain: string;
  /** Port of the router, for URLs (80 is left out). */
  routerPort: number | null;
  /** Bound on one deploy's copy (default build-slug.ts's DEFAULT_DEPLOY_TIMEOUT_MS). */
  deployTimeoutMs?: number;
}

export class Manifold {
  private readonly store: Store;
  private readonly supervisor: Supervisor;
  private readonly logs: LogHub;

  constructor(private readonly o: ManifoldOptions) {
    this.store = o.store;
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
  restore(): void {
    for (const app of this.store.listApps()) {
      this.supervisor.addApp(app.name, this.hostsOf(app.name), this.store.currentRelease(app.name), this.store.formation(app.name), app.settings);
    }
  }

  private app(name: unknown): string {
    if (typeof name !== 'string' || name === '') throw new ManifoldError('EINVAL', 'missing app name (use -a APP)');
    if (!this.store.getApp(name)) throw new ManifoldError('ENOAPP', `no such app: ${name}`);
    return name;
  }

  private api(app: string, message: string): void {
    this.logs.push(app, 'manifold', 'api', message);
  }

  listApps(): string[] {
    return this.store.listApps().map((a) => a.name);
  }

  createApp(nameIn: unknown): AppInfo {
    const name = checkAppName(nameIn);
    if (this.store.getApp(name)) throw new ManifoldError('EEXIST', `app ${name} already exists`);
    const rel = this.store.transaction(() => {
      this.store.insertApp(name);
      return this.store.insertRelease({ app: name, slug: null, procfile: {}, config: {}, description: 'Initial release' });
    });
    this.api(name, `Release v${rel.version} created (Initial release)`);
    this.supervisor.addApp(name, this.hostsOf(name), rel, [], {});
    return this.info(name);
  }

  async destroyApp(nameIn: unknown, confirm: unknown): Promise<void> {
    const name = this.app(nameIn);
    if (confirm !== name) throw new ManifoldError('ECONFIRM', `destroying ${name} is permanent: confirm with --confirm ${name}`);
    const slugs = this.store.listReleases(name).map((r) => r.slug).filter((s): s is string => s !== null);
    this.store.deleteApp(name);
    await this.supervisor.removeApp(name);
    this.logs.drop(name);
    for (const s of new Set(slugs)) fs.rmSync(s, { recursive: true, force: true });
    fs.rmSync(path.join(this.o.stateDir, 'slugs', name), { recursive: true, force: true });
  }

  info(nameIn: unknown): AppInfo {
    const name = this.app(nameIn);
    const row = this.store.getApp(name)!;
    const rel = this.store.currentRelease(name);
    const formation = this.store.formation(name);
    const types = new Set([...Object.keys(rel?.procfile ?? {}), ...formation.map((f) => f.type)]);
    return {
      name,
      url: this.urlOf(name),
      createdAt: row.createdAt,
      release: rel?.version ?? 0,
      slug: rel?.slug ?? null,
      formation: [...types].sort().map((type) => {
        const f = formation.find((x) => x.type === type);
        return { type, quantity: f?.quantity ?? 0, size: sizeOf(f?.size ?? DEFAULT_SIZE).label, command: rel?.procfile[type] ?? null };
      }),
      settings: row.settings,
      dynos: this.supervisor.status(name).length,
    };
  }

  /**
   * Copies DIR into an immutable slug, reads its Procfile and creates a release. The copy is made by
   * child processes (build-slug.ts): the source is read as `requester` (the API client's uid/gid),
   * never by root on its behalf, and the daemon's event loop only waits.
   */
  async deploy(
    nameIn: unknown,
    dirIn: unknown,
    requester: Requester = { uid: 0, gid: 0 },
    onProgress?: (p: { files: number; bytes: number }) => void,
  ): Promise<ReleaseInfo> {
    const name = this.app(nameIn);
    if (typeof dirIn !== 'string' || !path.isAbsolute(dirIn)) throw new ManifoldError('EINVAL', 'deploy needs an absolute directory path');
    const id = randomBytes(4).toString('hex');
    const slugDir = path.join(this.o.stateDir, 'slugs', name, id);
    if (/[,:\n]/.test(slugDir)) throw new ManifoldError('EINVAL', `state directory path unusable for overlays: ${slugDir}`);
    fs.mkdirSync(path.dirname(slugDir), { recursive: true, mode: 0o755 });
    let built: SlugWriteResult;
    try {
      built = await buildSlug({ source: dirIn, slugDir, requester, timeoutMs: this.o.deployTimeoutMs, ...(onProgress ? { onProgress } : {}) });
    } catch (err) {
      if (err instanceof SlugBuildError) throw new ManifoldError('EDEPLOY', err.message);
      throw err;
    }
    const discard = (): void => void fs.promises.rm(slugDir, { recursive: true, force: true });
    let procfile: Record<string, string>;
    try {
      procfile = parseProcfile(built.procfile);
      if (Object.keys(procfile).length === 0) throw new ManifoldError('EPROCFILE', 'Procfile defines no process types');
      this.app(name); // destroyed while the slug was built?
    } catch (err) {
      discard();
      if (err instanceof ProcfileError) throw new ManifoldError('EPROCFILE', err.message);
      throw err;
    }
    const prev = this.store.currentRelease(name);
    const rel = this.store.insertRelease({ app: name, slug: slugDir, procfile, config: prev?.config ?? {}, description: `Deploy ${id}` });
    this.api(name, `Deploy ${id}: ${built.files} files, ${(built.bytes / 1e6).toFixed(1)} MB`);
    if (built.skippedCount > 0) {
      this.api(name, `Deploy ${id}: left out ${built.skippedCount} entries that are not files, directories or links: ${built.skipped.join(', ')}`);
    }
    this.api(name, `Release v${rel.version} created`);
    this.supervisor.setRelease(name, rel);
    return { version: rel.version, description: rel.description, createdAt: rel.createdAt, current: true };
  }

  releases(nameIn: unknown): ReleaseInfo[] {
    const name = this.app(nameIn);
    return this.store.listReleases(name).map((r, i) => ({ version: r.version, description: r.description, createdAt: r.createdAt, current: i === 0 }));
  }

  rollback(nameIn: unknown, versionIn: unknown): ReleaseInfo {
    const name = this.app(nameIn);
    const m = typeof versionIn === 'string' ? /^v?([0-9]+)$/.exec(versionIn) : null;
    if (!m) throw new ManifoldError('EINVAL', `invalid release '${String(versionIn)}' (expected vN)`);
    const target = this.store.getRelease(name, Number(m[1]));
    if (!target) throw new ManifoldError('ENORELEASE', `no release v${m[1]} in app ${name}`);
    if (target.slug === null) throw new ManifoldError('ENORELEASE', `release v${target.version} has no code to roll back to`);
    const rel = this.store.insertRelease({ app: name, slug: target.slug, procfile: target.procfile, config: target.config, description: `Rollback to v${target.version}` });
    this.api(name, `Release v${rel.version} created (Rollback to v${target.version})`);
    this.supervisor.setRelease(name, rel);
    return { version: rel.version, description: rel.description, createdAt: rel.createdAt, current: true };
  }

  config(nameIn: unknown): Record<string, string> {
    const name = this.app(nameIn);
    return this.store.currentRelease(name)?.config ?? {};
  }

  /** Sets and/or unsets config vars as one new release (and a restart), unless nothing changes. */
  updateConfig(nameIn: unknown, setIn: unknown, unsetIn: unknown): { release: number | null; config: Record<string, string> } {
    const name = this.app(nameIn);
    const set = (setIn ?? {}) as Record<string, unknown>;
    const unset = (unsetIn ?? []) as unknown[];
    if (typeof set !== 'object' || Array.isArray(set) || !Array.isArray(unset)) throw new ManifoldError('EINVAL', 'bad config request');
    const keys = Object.keys(set);
    if (keys.length === 0 && unset.length === 0) throw new ManifoldError('EINVAL', 'no config vars given');
    const cur = this.store.currentRelease(name)!;
    const next = { ...cur.config };
    for (const k of keys) {
      checkConfigKey(k);
      next[k] = checkConfigValue(k, set[k]);
    }
    for (const k of unset) {
      if (typeof k !== 'string') throw new ManifoldError('EINVAL', 'config var names must be strings');
      checkConfigKey(k);
      delete next[k];
    }
    if (configBytes(next) > MAX_CONFIG_BYTES) throw new ManifoldError('EINVAL', `config vars would exceed ${MAX_CONFIG_BYTES} bytes`);
    if (JSON.stringify(next) === JSON.stringify(cur.config)) return { release: null, config: next };
    const parts: string[] = [];
    if (keys.length) parts.push(`Set ${keys.join(', ')} config vars`);
    if (unset.length) parts.push(`Remove ${(unset as string[]).join(', ')} config vars`);
    const rel = this.store.insertRelease({ app: name, slug: cur.slug, procfile: cur.procfile, config: next, description: parts.join('; ') });
    this.api(name, `Release v${rel.version} created (${rel.description})`);
    this.supervisor.setRelease(name, rel);
    return { release: rel.version, config: next };
  }

  scale(nameIn: unknown, argsIn: unknown): ScaleResult {
    const name = this.app(nameIn);
    if (!Array.isArray(argsIn) || argsIn.some((a) => typeof a !== 'string')) throw new ManifoldError('EINVAL', 'scale arguments must be strings');
    const rel = this.store.currentRelease(name);
    const types = rel?.slug ? Object.keys(rel.procfile) : [];
    if (types.length === 0) throw new ManifoldError('ENORELEASE', `app ${name} has nothing deployed (run: manifold deploy DIR -a ${name})`);
    const current: Record<string, FormationEntry> = {};
    for (const f of this.store.formation(name)) current[f.type] = { quantity: f.quantity, size: f.size };
    let changed: Record<string, FormationEntry>;
    try {
      changed = applyScale(current, parseScaleArgs(argsIn as string[]), types);
    } catch (err) {
      if (err instanceof ScaleSyntaxError) throw new ManifoldError('ESCALE', err.message);
      throw err;
    }
    this.store.transaction(() => {
      for (const [type, f] of Object.entries(changed)) this.store.setFormation(name, type, f.quantity, f.size);
    });
    const formation = this.store.formation(name);
    this.api(name, `Scaled to ${formation.filter((f) => types.includes(f.type)).map((f) => `${f.type}@${f.quantity}:${sizeOf(f.size).label}`).join(' ')}`);
    this.supervisor.setFormation(name, formation);
    return { formation: Object.entries(changed).map(([type, f]) => ({ type, quantity: f.quantity, size: sizeOf(f.size).label })) };
  }

  ps(nameIn: unknown): PsResult {
    const name = this.app(nameIn);
    const rel = this.store.currentRelease(name);
    const types: PsResult['types'] = {};
    for (const f of this.store.formation(name)) {
      const cmd = rel?.procfile[f.type];
      if (cmd !== undefined) types[f.type] = { command: cmd, size: sizeOf(f.size).label };
    }
    const dynos = this.supervisor.status(name).map((d) => ({ ...d, size: sizeOf(d.size).label }));
    return { app: name, now: Date.now(), dynos, types };
  }

  restart(nameIn: unknown, target: unknown): string[] {
    const name = this.app(nameIn);
    if (target !== undefined && target !== null && typeof target !== 'string') throw new ManifoldError('EINVAL', 'bad restart target');
    // an unknown dyno or type is the supervisor's SupervisorError, mapped for the client in api/errors.ts
    return this.supervisor.restart(name, (target as string | undefined) ?? undefined);
  }

  stop(nameIn: unknown, target: unknown): string[] {
    const name = this.app(nameIn);
    if (typeof target !== 'string' || target === '') throw new ManifoldError('EINVAL', 'ps:stop needs a dyno or process type (e.g. web.1, run.2, worker)');
    return this.supervisor.stop(name, target);
  }

  setSettings(nameIn: unknown, patch: unknown): AppSettings {
    const name = this.app(nameIn);
    if (!patch || typeof patch !== 'object') throw new ManifoldError('EINVAL', 'bad settings');
    const p = patch as Record<string, unknown>;
    const cur = { ...this.store.getApp(name)!.settings };
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
      } else {
        throw new ManifoldError('EINVAL', `unknown setting '${k}' (stopGraceMs, stopSignal, bootTimeoutMs, memoryQuota, memoryKillFactor)`);
      }
    }
    this.store.updateSettings(name, cur);
    this.supervisor.setSettings(name, cur);
    return cur;
  }

  runOneOff(nameIn: unknown, command: unknown, o: OneOffOptions): OneOff {
    const name = this.app(nameIn);
    if (typeof command !== 'string' || command.trim() === '') throw new ManifoldError('EINVAL', 'no command given (usage: manifold run -a APP -- CMD ...)');
    if (command.includes('\0')) throw new ManifoldError('EINVAL', 'command contains a NUL byte');
    const rel = this.store.currentRelease(name);
    if (!rel?.slug) throw new ManifoldError('ENORELEASE', `app ${name} has nothing deployed (run: manifold deploy DIR -a ${name})`);
    return this.supervisor.runOneOff(name, command, o);
  }

  currentRelease(name: string): Release | undefined {
    return this.store.currentRelease(name);
  }

  checkApp(name: unknown): string {
    return this.app(name);
  }
}
