/**
 * StateStore on etcd (cluster mode, docs/cluster.md). Layout of spec §3: `apps/<app>/meta`,
 * `apps/<app>/release` (the current version: the CAS point of releases), `apps/<app>/releases/<10-digit>`,
 * `apps/<app>/formation/<type>`; this host's live dyno records under `dynos/<host>/<id>`.
 *
 * Every write is ONE Txn whose compare covers every key its value was computed from; when the compare
 * fails (another API host wrote first) the method reads again and re-runs the caller's pure function
 * (casLoop). Only types come from etcd3: importing this module loads no gRPC.
 *
 * The client is the caller's (the daemon shares it with Leadership), so close() leaves it open. It may
 * be a Namespace: tests give each store a prefix of its own.
 */
import type { IKeyValue, Namespace } from 'etcd3';
import { ManifoldError } from '../manifold/errors';
import type { AppRow, AppSettings, DynoRow, FormationChanges, FormationRow, Release, ReleaseDraft, StateStore } from '../manifold/state/state-store';
import { casLoop, CONFLICT, lastSegment, parse, snapshot } from './cas';
import { keys, releaseSegment } from './keys';

/** `apps/<app>/meta`. Fields this build doesn't write (spec: hosts[], maintenance) are kept on rewrite. */
interface Meta {
  createdAt: number;
  settings: AppSettings;
  [other: string]: unknown;
}

function noApp(app: string): ManifoldError {
  return new ManifoldError('ENOAPP', `no such app: ${app}`);
}

/** Only the draft's own fields: callers often spread the current release (`{...cur, slug}`) into it. */
function release(app: string, version: number, d: ReleaseDraft): Release {
  return { app, version, slug: d.slug, procfile: d.procfile, config: d.config, description: d.description, createdAt: Date.now(), by: d.by };
}

function toFormation(kv: IKeyValue): FormationRow {
  const v = parse<{ quantity: number; size: string }>(kv);
  return { type: lastSegment(kv), quantity: v.quantity, size: v.size };
}

const byType = (a: FormationRow, b: FormationRow): number => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0);

export class EtcdStateStore implements StateStore {
  /** Dyno writes in call order: etcd3 spreads calls over members and HTTP/2 streams, so two unawaited puts may land in any order. */
  private dynoQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly client: Namespace,
    /** This host's id: live dyno records are per host (each agent cleans up after its own daemon). */
    private readonly host: string,
  ) {
    keys.dynos(host); // refuses an id with '/' now rather than at the first dyno
  }

  /** Names of all apps, from a keys-only read (values of every release would be far larger). */
  private async appNames(): Promise<string[]> {
    const root = keys.apps();
    const names: string[] = [];
    for (const key of await this.client.getAll().prefix(root).keys()) {
      const parts = key.slice(key.indexOf(root) + root.length).split('/');
      if (parts.length === 2 && parts[1] === 'meta' && parts[0]) names.push(parts[0]);
    }
    return names; // key order is name order
  }

  async listApps(): Promise<AppRow[]> {
    const rows = await Promise.all((await this.appNames()).map((n) => this.getApp(n)));
    return rows.filter((r): r is AppRow => r !== undefined); // deleted since the names were read
  }

  async getApp(name: string): Promise<AppRow | undefined> {
    const kv = (await this.client.get(keys.appMeta(name)).exec()).kvs[0];
    if (!kv) return undefined;
    const m = parse<Meta>(kv);
    return { name, createdAt: m.createdAt, settings: m.settings };
  }

  async createApp(name: string, initial: ReleaseDraft): Promise<Release | undefined> {
    const r1 = release(name, 1, initial);
    const meta: Meta = { createdAt: r1.createdAt, settings: {} };
    const c = this.client;
    const res = await c
      .if(keys.appMeta(name), 'Version', '==', 0)
      .then(c.put(keys.appMeta(name)).value(JSON.stringify(meta)), c.put(keys.appRelease(name)).value('1'), c.put(keys.release(name, 1)).value(JSON.stringify(r1)))
      .commit();
    return res.succeeded ? r1 : undefined;
  }

  async deleteApp(name: string): Promise<string[]> {
    const c = this.client;
    const metaKey = keys.appMeta(name);
    const pointerKey = keys.appRelease(name);
    return casLoop(`delete app ${name}`, async () => {
      const snap = await snapshot(c, metaKey, [c.get(metaKey), c.get(pointerKey), c.getAll().prefix(keys.releases(name)), c.getAll().prefix(keys.dynos(this.host))]);
      const meta = snap?.[0]?.[0];
      if (!snap || !meta) return [];
      const pointer = snap[1]?.[0];
      const releases = (snap[2] ?? []).map((kv) => parse<Release>(kv));
      const dynos = (snap[3] ?? []).map((kv) => parse<DynoRow>(kv)).filter((d) => d.app === name);
      // A release created after the read would leave its slug out of the answer: compare the pointer too.
      const txn = c.if(metaKey, 'Mod', '==', meta.mod_revision);
      if (pointer) txn.and(pointerKey, 'Mod', '==', pointer.mod_revision);
      else txn.and(pointerKey, 'Version', '==', 0);
      // Other hosts' dyno records are theirs: each agent forgets its own as it stops them.
      const res = await txn.then(c.delete().prefix(keys.app(name)), ...dynos.map((d) => c.delete().key(keys.dyno(this.host, d.id)))).commit();
      if (!res.succeeded) return CONFLICT;
      return [...new Set(releases.map((r) => r.slug).filter((s): s is string => s !== null))];
    });
  }

  async updateSettings(name: string, patch: AppSettings): Promise<AppSettings | undefined> {
    const metaKey = keys.appMeta(name);
    return casLoop(`settings of ${name}`, async () => {
      const kv = (await this.client.get(metaKey).exec()).kvs[0];
      if (!kv) return undefined;
      const meta = parse<Meta>(kv);
      const settings: AppSettings = { ...meta.settings, ...patch }; // JSON drops the keys set to undefined
      const res = await this.client.if(metaKey, 'Mod', '==', kv.mod_revision).then(this.client.put(metaKey).value(JSON.stringify({ ...meta, settings }))).commit();
      return res.succeeded ? settings : CONFLICT;
    });
  }

  async currentRelease(app: string): Promise<Release | undefined> {
    const v = await this.client.get(keys.appRelease(app)).string();
    return v === null ? undefined : this.getRelease(app, Number(v));
  }

  async getRelease(app: string, version: number): Promise<Release | undefined> {
    try {
      releaseSegment(version);
    } catch {
      return undefined; // no such version can be stored
    }
    const kv = (await this.client.get(keys.release(app, version)).exec()).kvs[0];
    return kv ? parse<Release>(kv) : undefined;
  }

  async listReleases(app: string): Promise<Release[]> {
    const res = await this.client.getAll().prefix(keys.releases(app)).sort('Key', 'Descend').exec();
    return res.kvs.map((kv) => parse<Release>(kv));
  }

  async createRelease(app: string, next: (current: Release) => ReleaseDraft | null): Promise<Release | null> {
    const pointerKey = keys.appRelease(app);
    return casLoop(`release of ${app}`, async () => {
      const pointer = (await this.client.get(pointerKey).exec()).kvs[0];
      if (!pointer) throw noApp(app);
      const version = Number(pointer.value.toString());
      const current = await this.getRelease(app, version);
      if (!current) return CONFLICT; // the app was deleted between the two reads; the next read tells
      const draft = next(current);
      if (draft === null) return null;
      const made = release(app, version + 1, draft);
      // Releases are immutable, so the pointer's Mod alone proves `current` is still the newest.
      const res = await this.client
        .if(pointerKey, 'Mod', '==', pointer.mod_revision)
        .then(this.client.put(pointerKey).value(String(made.version)), this.client.put(keys.release(app, made.version)).value(JSON.stringify(made)))
        .commit();
      return res.succeeded ? made : CONFLICT;
    });
  }

  /**
   * One range read per app, so no answer holds every release of the cluster. Racy against a concurrent
   * deploy as on SQLite; a refcount under `slugs/` (spec §3) comes with the shared slug store.
   */
  async slugInUse(slug: string): Promise<boolean> {
    const perApp = await Promise.all((await this.appNames()).map((a) => this.client.getAll().prefix(keys.releases(a)).exec()));
    return perApp.some((res) => res.kvs.some((kv) => parse<Release>(kv).slug === slug));
  }

  async formation(app: string): Promise<FormationRow[]> {
    return (await this.client.getAll().prefix(keys.formations(app)).exec()).kvs.map(toFormation);
  }

  async updateFormation(app: string, change: (current: FormationRow[]) => FormationChanges): Promise<FormationRow[]> {
    const c = this.client;
    const metaKey = keys.appMeta(app);
    return casLoop(`formation of ${app}`, async () => {
      const snap = await snapshot(c, metaKey, [c.get(metaKey), c.getAll().prefix(keys.formations(app))]);
      const meta = snap?.[0]?.[0];
      if (!snap || !meta) throw noApp(app);
      const current = (snap[1] ?? []).map(toFormation);
      const changes = Object.entries(change(current));
      if (changes.length === 0) return current;
      const after = new Map(current.map((r) => [r.type, r]));
      for (const [type, f] of changes) after.set(type, { type, quantity: f.quantity, size: f.size });
      // The compare must cover the whole formation `change` saw, a type added meanwhile included, and a
      // Txn compares single keys only (etcd3 exposes no range compare). So meta is the formation's CAS
      // point too: every formation write rewrites it unchanged, which bumps its mod revision.
      const res = await c
        .if(metaKey, 'Mod', '==', meta.mod_revision)
        .then(c.put(metaKey).value(meta.value), ...changes.map(([type, f]) => c.put(keys.formation(app, type)).value(JSON.stringify({ quantity: f.quantity, size: f.size }))))
        .commit();
      return res.succeeded ? [...after.values()].sort(byType) : CONFLICT;
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const p = this.dynoQueue.then(op);
    this.dynoQueue = p.catch(() => undefined); // one failed write must not block the ones after it
    return p;
  }

  async recordDyno(d: DynoRow): Promise<void> {
    const key = keys.dyno(this.host, d.id);
    const value = JSON.stringify({ id: d.id, app: d.app, name: d.name, release: d.release, pid: d.pid, startedAt: d.startedAt });
    await this.serial(() => this.client.put(key).value(value).exec());
  }

  async forgetDyno(id: string): Promise<void> {
    const key = keys.dyno(this.host, id);
    await this.serial(() => this.client.delete().key(key).exec());
  }

  /** Queued behind the writes already made, so it sees them. */
  async liveDynos(): Promise<DynoRow[]> {
    const res = await this.serial(() => this.client.getAll().prefix(keys.dynos(this.host)).exec());
    return res.kvs.map((kv) => parse<DynoRow>(kv));
  }

  /** Waits for queued dyno writes; the client is the caller's to close. */
  async close(): Promise<void> {
    await this.dynoQueue;
  }
}
