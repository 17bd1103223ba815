/**
 * The manifold's durable state behind an async seam, so the same `Manifold` runs on SQLite (one host,
 * SqliteStateStore) or on etcd (a cluster, a later EtcdStateStore).
 *
 * Every write is ONE method, never a read by the caller followed by a write after an await: on etcd
 * each method is a single Txn compare-and-swap (or an STM that re-runs it), so two API hosts writing
 * at once cannot lose each other's change. Where a write depends on what is stored (the next release
 * from the current one, a formation change from the current formation, a settings patch), the caller
 * passes a pure function of the stored value; a store may call it more than once (on a conflict) and
 * writes only what its last call returned.
 */
import type { AppRow, AppSettings, DynoRow, FormationRow, Release } from '../store/store';

export type { AppRow, AppSettings, DynoRow, FormationRow, Release };

/**
 * A release as its author describes it; the store gives it the next version and the time. `by` is
 * required here (only optional on Release, for old records) so no path can make a release without it.
 */
export type ReleaseDraft = Pick<Release, 'slug' | 'procfile' | 'config' | 'description'> & Partial<Pick<Release, 'build'>> & { by: string };

/** Formation changes by process type (types not named are left as they are). */
export type FormationChanges = Record<string, { quantity: number; size: string }>;

export interface StateStore {
  // apps
  listApps(): Promise<AppRow[]>;
  getApp(name: string): Promise<AppRow | undefined>;
  /** Creates the app with its first release (v1) atomically; `undefined` if the name is taken. */
  createApp(name: string, initial: ReleaseDraft): Promise<Release | undefined>;
  /** Removes the app, its releases, formation and dyno records; returns the slugs its releases used. */
  deleteApp(name: string): Promise<string[]>;
  /** Merges `patch` into the app's settings (a key set to undefined is removed); returns the result. */
  updateSettings(name: string, patch: AppSettings): Promise<AppSettings | undefined>;

  // releases (immutable, versions 1, 2, 3… per app with no gaps or duplicates)
  currentRelease(app: string): Promise<Release | undefined>;
  getRelease(app: string, version: number): Promise<Release | undefined>;
  /** Newest first. */
  listReleases(app: string): Promise<Release[]>;
  /**
   * Appends the release `next(current)` returns, as version current+1, atomically with reading
   * `current`; `next` may throw (nothing is written) or return null (no change, resolves null).
   * Rejects with ManifoldError ENOAPP if the app does not exist (or has no release).
   */
  createRelease(app: string, next: (current: Release) => ReleaseDraft | null): Promise<Release | null>;
  /** True while any release of any app refers to `slug` (slugs are shared between identical deploys). */
  slugInUse(slug: string): Promise<boolean>;

  // formation
  formation(app: string): Promise<FormationRow[]>;
  /**
   * Applies `change(current)` to the formation atomically; returns the formation after it.
   * `change` may throw (nothing is written). Rejects with ManifoldError ENOAPP for an unknown app.
   */
  updateFormation(app: string, change: (current: FormationRow[]) => FormationChanges): Promise<FormationRow[]>;

  // the runtime ids of live dynos, so a restarted daemon can clean up what a killed one left.
  // Calls take effect in the order they are made (a record, then its forget).
  recordDyno(d: DynoRow): Promise<void>;
  forgetDyno(id: string): Promise<void>;
  liveDynos(): Promise<DynoRow[]>;

  close(): Promise<void>;
}
