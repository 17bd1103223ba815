import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Store } from '../../src/manifold/store/store';
import { MIGRATIONS } from '../../src/manifold/store/migrations';

t.test('store: migrations, WAL, apps/releases/formation survive reopening', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.db');
  let s = new Store(file);
  t.equal(s.schemaVersion(), MIGRATIONS.at(-1)!.version);
  t.equal(String(s.pragma('journal_mode')), 'wal');
  t.equal(Number(s.pragma('foreign_keys')), 1);
  s.insertApp('hello', 1000);
  const r1 = s.insertRelease({ app: 'hello', slug: null, procfile: {}, config: {}, description: 'Initial release' }, 1000);
  const r2 = s.insertRelease({ app: 'hello', slug: '/x', procfile: { web: 'node s.js' }, config: { A: '1' }, description: 'Deploy' }, 2000);
  t.equal(r1.version, 1);
  t.equal(r2.version, 2);
  s.setFormation('hello', 'web', 2, 'standard-1x');
  s.setFormation('hello', 'web', 3, 'standard-2x');
  s.recordDyno({ id: 'web.1-abcd', app: 'hello', name: 'web.1', release: 2, pid: 42, startedAt: 5 });
  s.updateSettings('hello', { stopGraceMs: 5000 });
  s.close();
  s = new Store(file);
  t.same(s.listApps(), [{ name: 'hello', createdAt: 1000, settings: { stopGraceMs: 5000 } }]);
  t.same(s.currentRelease('hello'), { app: 'hello', version: 2, slug: '/x', procfile: { web: 'node s.js' }, config: { A: '1' }, description: 'Deploy', createdAt: 2000 });
  t.same(s.listReleases('hello').map((r) => r.version), [2, 1]);
  t.same(s.formation('hello'), [{ type: 'web', quantity: 3, size: 'standard-2x' }]);
  t.same(s.liveDynos().map((d) => d.id), ['web.1-abcd']);
  t.ok(s.slugInUse('/x'));
  t.throws(() => s.insertApp('hello'), /UNIQUE/);
  t.throws(() => s.setFormation('hello', 'web', -1, 'x'), /CHECK/);
  s.deleteApp('hello');
  t.same(s.listReleases('hello'), [], 'releases cascade');
  t.same(s.formation('hello'), []);
  t.same(s.liveDynos(), []);
  s.close();
});

t.test('store: a later migration applies once, on top of existing data', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.db');
  new Store(file).close();
  const extra = [...MIGRATIONS, { version: 99, name: 'test', sql: 'CREATE TABLE t99 (x INTEGER);' }];
  let s = new Store(file, extra);
  t.equal(s.schemaVersion(), 99);
  s.close();
  s = new Store(file, extra);
  t.equal(s.schemaVersion(), 99, 'not applied twice');
  s.close();
});

t.test('store: a database from before authors (migration 3) keeps its releases, which read with no author', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.db');
  // the schema as the daemon left it before `made_by` existed, with a release written then
  let s = new Store(file, MIGRATIONS.filter((m) => m.version < 3));
  t.equal(s.schemaVersion(), 2);
  s.insertApp('old', 1000);
  s.db.prepare("INSERT INTO releases (app, version, slug, procfile, config, description, created_at) VALUES ('old', 1, NULL, '{}', '{}', 'Initial release', 1000)").run();
  s.close();
  s = new Store(file);
  t.equal(s.schemaVersion(), 3, 'migrated');
  t.same(s.getRelease('old', 1), { app: 'old', version: 1, slug: null, procfile: {}, config: {}, description: 'Initial release', createdAt: 1000 }, 'no `by` key at all');
  const r2 = s.insertRelease({ app: 'old', slug: '/x', procfile: { web: 'x' }, config: {}, description: 'Deploy', by: 'root' }, 2000);
  t.equal(r2.by, 'root');
  s.close();
  s = new Store(file);
  t.same(s.listReleases('old').map((r) => r.by), ['root', undefined], 'the new release has its author, the old one none');
  s.close();
});
