/**
 * StateStore on the single-host SQLite `Store`. Each method runs synchronously inside one SQLite
 * transaction before its promise is returned, so a method is atomic and calls take effect in the
 * order they are made (the daemon's record-then-forget of a dyno relies on it).
 */
import { ManifoldError } from '../errors';
import type { Store } from '../store/store';
import type { AppRow, AppSettings, DynoRow, FormationChanges, FormationRow, Release, ReleaseDraft, StateStore } from './state-store';

export class SqliteStateStore implements StateStore {
  constructor(readonly store: Store) {}

  private existing(app: string): void {
    if (!this.store.getApp(app)) throw new ManifoldError('ENOAPP', `no such app: ${app}`);
  }

  async listApps(): Promise<AppRow[]> {
    return this.store.listApps();
  }

  async getApp(name: string): Promise<AppRow | undefined> {
    return this.store.getApp(name);
  }

  async createApp(name: string, initial: ReleaseDraft): Promise<Release | undefined> {
    return this.store.transaction(() => {
      if (this.store.getApp(name)) return undefined;
      this.store.insertApp(name);
      return this.store.insertRelease({ app: name, ...initial });
    });
  }

  async deleteApp(name: string): Promise<string[]> {
    return this.store.transaction(() => {
      const slugs = new Set(this.store.listReleases(name).map((r) => r.slug).filter((s): s is string => s !== null));
      this.store.deleteApp(name);
      return [...slugs];
    });
  }

  async updateSettings(name: string, patch: AppSettings): Promise<AppSettings | undefined> {
    return this.store.transaction(() => {
      const row = this.store.getApp(name);
      if (!row) return undefined;
      const next: AppSettings = { ...row.settings, ...patch };
      this.store.updateSettings(name, next);
      return next;
    });
  }

  async currentRelease(app: string): Promise<Release | undefined> {
    return this.store.currentRelease(app);
  }

  async getRelease(app: string, version: number): Promise<Release | undefined> {
    return this.store.getRelease(app, version);
  }

  async listReleases(app: string): Promise<Release[]> {
    return this.store.listReleases(app);
  }

  async createRelease(app: string, next: (current: Release) => ReleaseDraft | null): Promise<Release | null> {
    return this.store.transaction(() => {
      this.existing(app);
      const cur = this.store.currentRelease(app);
      if (!cur) throw new ManifoldError('ENOAPP', `no such app: ${app}`);
      const draft = next(cur);
      return draft === null ? null : this.store.insertRelease({ app, ...draft });
    });
  }

  async slugInUse(slug: string): Promise<boolean> {
    return this.store.slugInUse(slug);
  }

  async formation(app: string): Promise<FormationRow[]> {
    return this.store.formation(app);
  }

  async updateFormation(app: string, change: (current: FormationRow[]) => FormationChanges): Promise<FormationRow[]> {
    return this.store.transaction(() => {
      this.existing(app);
      for (const [type, f] of Object.entries(change(this.store.formation(app)))) this.store.setFormation(app, type, f.quantity, f.size);
      return this.store.formation(app);
    });
  }

  async recordDyno(d: DynoRow): Promise<void> {
    this.store.recordDyno(d);
  }

  async forgetDyno(id: string): Promise<void> {
    this.store.forgetDyno(id);
  }

  async liveDynos(): Promise<DynoRow[]> {
    return this.store.liveDynos();
  }

  async close(): Promise<void> {
    this.store.close();
  }
}
