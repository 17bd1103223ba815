/**
 * `manifold cluster:import`: a single-host state (SQLite, slugs) copied into an empty cluster, once.
 * Apps, every release (versions kept), config, formation and settings go to etcd; slugs stay where
 * they are, in the state directory, and are recorded as held by `hostId`: the cluster host meant to
 * run with `--state-dir` on that directory serves them to the others. Slugs of older daemons (per
 * app, not named by content) are copied once into content-addressed slugs first, through the same
 * validating writer a deploy uses, and their releases re-pointed.
 *
 * Refused (EIMPORT), with nothing written, when the cluster already has apps or the state directory
 * is in use by a daemon.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Etcd3, IOperation } from 'etcd3';
import { buildSlug } from '../manifold/deploy/build-slug';
import { placeSlug, tempSlugDir } from '../manifold/deploy/slug-store';
import { native } from '../runtime/native';
import { Store, type Release } from '../manifold/store/store';
import { createEtcdClient, ensureLayout } from './etcd-client';
import { ClusterError } from './errors';
import { keys } from './keys';
import { MAX_TXN_OPS } from './leadership';
import type { SlugRecord } from './records';
import { slugDigest } from './slug-transfer';

export interface ImportOptions {
  from: string;
  etcd: string[];
  hostId: string;
  log: (line: string) => void;
}

export interface ImportResult {
  apps: number;
  releases: number;
  slugs: number;
}

export async function importState(o: ImportOptions): Promise<ImportResult> {
  const dbFile = path.join(o.from, 'manifold.db');
  if (!fs.existsSync(dbFile)) throw new ClusterError('EIMPORT', `no Manifold state in ${o.from} (${dbFile} missing)`);
  keys.host(o.hostId);
  // the single-host daemon must be stopped: its state would change under the copy
  try {
    native().lockExclusive(path.join(o.from, 'daemon.lock'), false);
  } catch {
    throw new ClusterError('EIMPORT', `a daemon is using ${o.from}: stop it first (manifold daemon:stop)`);
  }
  const store = new Store(dbFile);
  const client = createEtcdClient(o.etcd);
  try {
    await connect(client, o.etcd);
    const existing = await client.getAll().prefix(keys.apps()).keys();
    if (existing.length > 0) throw new ClusterError('EIMPORT', `the cluster already has apps (${existing.length} keys under ${keys.apps()}): import runs once, into an empty cluster`);
    const slugRoot = path.join(o.from, 'slugs');
    const rehomed = new Map<string, string>(); // old per-app slug path → content-addressed path
    const slugs = new Map<string, number>(); // sha → bytes
    let releases = 0;
    const apps = store.listApps();
    // everything is prepared (slugs hashed) before the first write, so a failure leaves etcd empty
    const plan: { name: string; ops: IOperation[]; last: IOperation[] }[] = [];
    for (const app of apps) {
      const rels = store.listReleases(app.name).sort((a, b) => a.version - b.version);
      const ops: IOperation[] = [];
      for (const r of rels) {
        const slug = await contentAddressed(r, slugRoot, rehomed, slugs, o.log);
        ops.push(client.put(keys.release(app.name, r.version)).value(JSON.stringify({ ...r, slug })));
        releases++;
      }
      const current = store.currentRelease(app.name);
      const last: IOperation[] = [
        client.put(keys.appMeta(app.name)).value(JSON.stringify({ createdAt: app.createdAt, settings: app.settings })),
        client.put(keys.appRelease(app.name)).value(String(current?.version ?? 1)),
        ...store.formation(app.name).map((f) => client.put(keys.formation(app.name, f.type)).value(JSON.stringify({ quantity: f.quantity, size: f.size }))),
      ];
      plan.push({ name: app.name, ops, last });
    }
    for (const [sha, bytes] of slugs) {
      const rec: SlugRecord = { bytes, holders: [o.hostId] };
      await client.put(keys.slug(sha)).value(JSON.stringify(rec));
    }
    for (const p of plan) {
      for (let i = 0; i < p.ops.length; i += MAX_TXN_OPS) await client.if(keys.layout(), 'Version', '>', 0).then(...p.ops.slice(i, i + MAX_TXN_OPS)).commit();
      // the app appears (meta) last and only if no one created it meanwhile
      const r = await client.if(keys.appMeta(p.name), 'Version', '==', 0).then(...p.last).commit();
      if (!r.succeeded) throw new ClusterError('EIMPORT', `app ${p.name} was created in the cluster during the import`);
      o.log(`imported ${p.name}`);
    }
    return { apps: apps.length, releases, slugs: slugs.size };
  } finally {
    store.close();
    client.close();
  }
}

async function connect(client: Etcd3, endpoints: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await ensureLayout(client);
      return;
    } catch (err) {
      if ((err as Error).name === 'LayoutVersionError') throw err;
      if (Date.now() > deadline) throw new ClusterError('EETCD', `etcd unreachable at ${endpoints.join(',')} within 10 s: ${(err as Error).message.split('\n')[0]}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** The release's slug as `slugRoot/<sha>`; an older per-app slug is copied there once (hashed by the writer). */
async function contentAddressed(r: Release, slugRoot: string, rehomed: Map<string, string>, slugs: Map<string, number>, log: (l: string) => void): Promise<string | null> {
  if (r.slug === null) return null;
  const sha = slugDigest(r.slug);
  if (sha) {
    const local = path.join(slugRoot, sha);
    if (!fs.existsSync(local)) throw new ClusterError('EIMPORT', `release v${r.version} of ${r.app} names slug ${sha.slice(0, 12)}, missing from ${slugRoot}`);
    slugs.set(sha, slugs.get(sha) ?? dirBytes(local));
    return local;
  }
  const done = rehomed.get(r.slug);
  if (done) return done;
  if (!fs.existsSync(r.slug)) throw new ClusterError('EIMPORT', `release v${r.version} of ${r.app} names slug ${r.slug}, which is missing`);
  log(`hashing the older slug ${r.slug}`);
  const temp = tempSlugDir(slugRoot);
  const built = await buildSlug({ source: r.slug, slugDir: temp, requester: { uid: 0, gid: 0 } });
  const dir = placeSlug(temp, slugRoot, built.sha256).dir;
  rehomed.set(r.slug, dir);
  slugs.set(built.sha256, built.bytes);
  return dir;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}
