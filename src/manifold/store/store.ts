/**
 * The manifold's durable state in SQLite (WAL): apps, releases (immutable), formation, and the
 * runtime ids of live dynos (so a restarted daemon can find what a killed one left). The
 * manifold is the only writer.
 *
 * Node's built-in SQLite (node:sqlite, Node >= 22.13): no native module to compile from source on every
 * install and none tied to one Node ABI (better-sqlite3 was both).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { MIGRATIONS, type Migration } from './migrations';

export interface AppSettings {
  stopGraceMs?: number;
  stopSignal?: NodeJS.Signals;
  bootTimeoutMs?: number;
  /** Per-app memory quota in bytes (R14), replacing the size's; the kill limit follows it. */
  memoryQuota?: number;
  /** R15 kill limit as a multiple of the quota (default 3). */
  memoryKillFactor?: number;
  /** The app's buildpacks in order (build/buildpacks.ts references); none: detection over the installed ones. */
  buildpacks?: string[];
  /** Heroku's log-runtime-metrics lines (labs feature `runtime-metrics`); on unless false. */
  runtimeMetrics?: boolean;
  /** How often those lines are written per dyno, ms (default 20 s, Heroku's cadence). */
  runtimeMetricsIntervalMs?: number;
}

export interface AppRow {
  name: string;
  createdAt: number;
  settings: AppSettings;
}

export interface Release {
  app: string;
  version: number;
  /** Slug directory (immutable copy of the deployed app), null for the initial empty release. */
  slug: string | null;
  procfile: Record<string, string>;
  config: Record<string, string>;
  description: string;
  createdAt: number;
  /** Releases made by a build: slug size, build time and the buildpacks used. */
  build?: { slugBytes: number; buildMs: number; buildpacks: string[] };
  /**
   * Who made it: the API caller's unix user name (`uid N` without a passwd entry), or `key NAME` for
   * an ssh push. (The daemon makes no release on its own.) Absent on releases stored before authors were kept.
   */
  by?: string;
}

export interface FormationRow {
  type: string;
  quantity: number;
  size: string;
}

export interface DynoRow {
  id: string;
  app: string;
  name: string;
  release: number;
  pid: number;
  startedAt: number;
}

interface RawRelease {
  app: string;
  version: number;
  slug: string | null;
  procfile: string;
  config: string;
  description: string;
  created_at: number;
  build?: string | null;
  made_by?: string | null;
}

export class Store {
  readonly db: DatabaseSync;
  private txDepth = 0;

  constructor(file: string, migrations: readonly Migration[] = MIGRATIONS) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(file, { timeout: 5000 });
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON');
    this.migrate(migrations);
  }

  /** A pragma's single value (e.g. `journal_mode`). */
  pragma(name: string): unknown {
    const row = this.db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined;
    return row ? Object.values(row)[0] : undefined;
  }

  private migrate(migrations: readonly Migration[]): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set((this.db.prepare('SELECT version FROM migrations').all() as { version: number }[]).map((r) => r.version));
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      this.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      });
    }
  }

  schemaVersion(): number {
    const r = this.db.prepare('SELECT MAX(version) AS v FROM migrations').get() as { v: number | null };
    return r.v ?? 0;
  }

  close(): void {
    this.db.close();
  }

  /** Runs fn in a transaction (a savepoint when nested); rolled back if fn throws. */
  transaction<T>(fn: () => T): T {
    const savepoint = `sp${this.txDepth}`;
    this.db.exec(this.txDepth === 0 ? 'BEGIN IMMEDIATE' : `SAVEPOINT ${savepoint}`);
    this.txDepth++;
    try {
      const result = fn();
      this.txDepth--;
      this.db.exec(this.txDepth === 0 ? 'COMMIT' : `RELEASE ${savepoint}`);
      return result;
    } catch (err) {
      this.txDepth--;
      this.db.exec(this.txDepth === 0 ? 'ROLLBACK' : `ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
      throw err;
    }
  }

  // apps
  listApps(): AppRow[] {
    return (this.db.prepare('SELECT name, created_at, settings FROM apps ORDER BY name').all() as { name: string; created_at: number; settings: string }[]).map(
      (r) => ({ name: r.name, createdAt: r.created_at, settings: JSON.parse(r.settings) as AppSettings }),
    );
  }

  getApp(name: string): AppRow | undefined {
    const r = this.db.prepare('SELECT name, created_at, settings FROM apps WHERE name = ?').get(name) as
      | { name: string; created_at: number; settings: string }
      | undefined;
    return r ? { name: r.name, createdAt: r.created_at, settings: JSON.parse(r.settings) as AppSettings } : undefined;
  }

  insertApp(name: string, now = Date.now()): void {
    this.db.prepare('INSERT INTO apps (name, created_at) VALUES (?, ?)').run(name, now);
  }

  updateSettings(name: string, settings: AppSettings): void {
    this.db.prepare('UPDATE apps SET settings = ? WHERE name = ?').run(JSON.stringify(settings), name);
  }

  deleteApp(name: string): void {
    this.db.prepare('DELETE FROM apps WHERE name = ?').run(name);
    this.db.prepare('DELETE FROM dynos WHERE app = ?').run(name);
  }

  // releases
  private toRelease(r: RawRelease): Release {
    return {
      app: r.app,
      version: r.version,
      slug: r.slug,
      procfile: JSON.parse(r.procfile) as Record<string, string>,
      config: JSON.parse(r.config) as Record<string, string>,
      description: r.description,
      createdAt: r.created_at,
      ...(typeof r.build === 'string' ? { build: JSON.parse(r.build) as NonNullable<Release['build']> } : {}),
      ...(typeof r.made_by === 'string' ? { by: r.made_by } : {}),
    };
  }

  currentRelease(app: string): Release | undefined {
    const r = this.db.prepare('SELECT * FROM releases WHERE app = ? ORDER BY version DESC LIMIT 1').get(app) as RawRelease | undefined;
    return r ? this.toRelease(r) : undefined;
  }

  getRelease(app: string, version: number): Release | undefined {
    const r = this.db.prepare('SELECT * FROM releases WHERE app = ? AND version = ?').get(app, version) as RawRelease | undefined;
    return r ? this.toRelease(r) : undefined;
  }

  listReleases(app: string): Release[] {
    return (this.db.prepare('SELECT * FROM releases WHERE app = ? ORDER BY version DESC').all(app) as unknown as RawRelease[]).map((r) => this.toRelease(r));
  }

  /** Appends the next version; returns it. */
  insertRelease(rel: Omit<Release, 'version' | 'createdAt'>, now = Date.now()): Release {
    const r = this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS v FROM releases WHERE app = ?').get(rel.app) as { v: number };
    this.db
      .prepare('INSERT INTO releases (app, version, slug, procfile, config, description, created_at, build, made_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(rel.app, r.v, rel.slug, JSON.stringify(rel.procfile), JSON.stringify(rel.config), rel.description, now, rel.build ? JSON.stringify(rel.build) : null, rel.by ?? null);
    return { ...rel, version: r.v, createdAt: now };
  }

  slugInUse(slug: string): boolean {
    return this.db.prepare('SELECT 1 FROM releases WHERE slug = ? LIMIT 1').get(slug) !== undefined;
  }

  // formation
  formation(app: string): FormationRow[] {
    return this.db.prepare('SELECT type, quantity, size FROM formation WHERE app = ? ORDER BY type').all(app) as unknown as FormationRow[];
  }

  setFormation(app: string, type: string, quantity: number, size: string): void {
    this.db
      .prepare('INSERT INTO formation (app, type, quantity, size) VALUES (?, ?, ?, ?) ON CONFLICT (app, type) DO UPDATE SET quantity = excluded.quantity, size = excluded.size')
      .run(app, type, quantity, size);
  }

  // live dynos (runtime ids), for cleanup after a crash of the daemon
  recordDyno(d: DynoRow): void {
    this.db.prepare('INSERT OR REPLACE INTO dynos (id, app, name, release, pid, started_at) VALUES (?, ?, ?, ?, ?, ?)').run(d.id, d.app, d.name, d.release, d.pid, d.startedAt);
  }

  forgetDyno(id: string): void {
    this.db.prepare('DELETE FROM dynos WHERE id = ?').run(id);
  }

  liveDynos(): DynoRow[] {
    return (this.db.prepare('SELECT id, app, name, release, pid, started_at FROM dynos').all() as (Omit<DynoRow, 'startedAt'> & { started_at: number })[]).map((r) => ({
      id: r.id,
      app: r.app,
      name: r.name,
      release: r.release,
      pid: r.pid,
      startedAt: r.started_at,
    }));
  }
}
