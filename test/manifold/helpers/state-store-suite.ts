/**
 * The StateStore contract, run against any implementation: a factory makes a fresh, empty store
 * (SqliteStateStore here; an EtcdStateStore later runs the same suite).
 */
import type { Test } from 'tap';
import type { Release, StateStore } from '../../../src/manifold/state/state-store';

export type StateStoreFactory = (t: Test) => Promise<StateStore>;

const initial = { slug: null, procfile: {}, config: {}, description: 'Initial release', by: 'root' };

export function stateStoreSuite(t: Test, make: StateStoreFactory): void {
  t.test('apps: create with v1, list, get, settings merge, delete returns the slugs', async (t) => {
    const s = await make(t);
    const r1 = await s.createApp('hello', initial);
    t.equal(r1?.version, 1);
    t.equal(await s.createApp('hello', initial), undefined, 'a taken name is refused, nothing written');
    await s.createApp('abc', initial);
    t.same((await s.listApps()).map((a) => a.name), ['abc', 'hello']);
    t.same(await s.updateSettings('hello', { stopGraceMs: 5000 }), { stopGraceMs: 5000 });
    t.same(await s.updateSettings('hello', { bootTimeoutMs: 1000 }), { stopGraceMs: 5000, bootTimeoutMs: 1000 }, 'a patch keeps the other settings');
    t.same((await s.getApp('hello'))?.settings, { stopGraceMs: 5000, bootTimeoutMs: 1000 });
    t.equal(await s.updateSettings('nope', {}), undefined);
    await s.createRelease('hello', (cur) => ({ ...cur, slug: '/s/a', procfile: { web: 'x' }, description: 'Deploy', by: 'root' }));
    await s.createRelease('hello', (cur) => ({ ...cur, slug: '/s/b', description: 'Deploy', by: 'root' }));
    await s.createRelease('hello', (cur) => ({ ...cur, slug: '/s/a', description: 'Rollback', by: 'root' }));
    t.same((await s.deleteApp('hello')).sort(), ['/s/a', '/s/b']);
    t.equal(await s.getApp('hello'), undefined);
    t.same(await s.listReleases('hello'), []);
    t.same(await s.formation('hello'), []);
  });

  t.test('releases: next version from the current one; null and throws write nothing', async (t) => {
    const s = await make(t);
    await s.createApp('hello', initial);
    const r2 = await s.createRelease('hello', (cur) => ({ slug: '/s/1', procfile: { web: 'node s.js' }, config: { ...cur.config, A: '1' }, description: 'Deploy', by: 'alice' }));
    t.match(r2, { app: 'hello', version: 2, slug: '/s/1', config: { A: '1' }, by: 'alice' });
    t.equal(await s.createRelease('hello', () => null), null);
    await t.rejects(s.createRelease('hello', () => { throw new Error('invalid'); }), /invalid/);
    t.same((await s.listReleases('hello')).map((r) => r.version), [2, 1], 'newest first, nothing added');
    t.same((await s.currentRelease('hello'))?.config, { A: '1' });
    t.equal((await s.getRelease('hello', 1))?.description, 'Initial release');
    t.equal(await s.getRelease('hello', 9), undefined);
    await t.rejects(s.createRelease('nope', () => initial), { code: 'ENOAPP' });
  });

  t.test('releases: each keeps its own author, read back by every read', async (t) => {
    const s = await make(t);
    await s.createApp('hello', initial);
    // a draft spreading the current release still names its own author: nothing is inherited
    await s.createRelease('hello', (cur) => ({ ...cur, config: { A: '1' }, description: 'Set A config vars', by: 'alice' }));
    await s.createRelease('hello', (cur) => ({ ...cur, slug: '/s/1', description: 'Build abc', by: 'key bob' }));
    t.same((await s.listReleases('hello')).map((r) => r.by), ['key bob', 'alice', 'root'], 'newest first');
    t.equal((await s.currentRelease('hello'))?.by, 'key bob');
    t.equal((await s.getRelease('hello', 2))?.by, 'alice');
  });

  t.test('slugs in use: shared between apps until the last release goes', async (t) => {
    const s = await make(t);
    await s.createApp('a', initial);
    await s.createApp('b', initial);
    const deploy = (cur: Release) => ({ ...cur, slug: '/slugs/shared', procfile: { web: 'x' }, description: 'Deploy', by: 'root' });
    await s.createRelease('a', deploy);
    await s.createRelease('b', deploy);
    t.ok(await s.slugInUse('/slugs/shared'));
    await s.deleteApp('a');
    t.ok(await s.slugInUse('/slugs/shared'), 'b still uses it');
    await s.deleteApp('b');
    t.notOk(await s.slugInUse('/slugs/shared'));
  });

  t.test('formation: changes by type from the current formation', async (t) => {
    const s = await make(t);
    await s.createApp('hello', initial);
    t.same(await s.updateFormation('hello', () => ({ web: { quantity: 2, size: 'standard-1x' } })), [{ type: 'web', quantity: 2, size: 'standard-1x' }]);
    const after = await s.updateFormation('hello', (cur) => ({ worker: { quantity: cur.length, size: 'standard-2x' } }));
    t.same(after, [{ type: 'web', quantity: 2, size: 'standard-1x' }, { type: 'worker', quantity: 1, size: 'standard-2x' }]);
    await t.rejects(s.updateFormation('hello', () => { throw new Error('bad scale'); }), /bad scale/);
    t.same(await s.formation('hello'), after);
    await t.rejects(s.updateFormation('nope', () => ({})), { code: 'ENOAPP' });
  });

  t.test('live dynos: record, forget in call order, list', async (t) => {
    const s = await make(t);
    const d = { id: 'web.1-abcd', app: 'hello', name: 'web.1', release: 2, pid: 42, startedAt: 5 };
    const a = s.recordDyno(d);
    const b = s.recordDyno({ ...d, id: 'web.2-ef01', name: 'web.2' });
    const c = s.forgetDyno('web.1-abcd'); // not awaited in between: the daemon does the same
    await Promise.all([a, b, c]);
    t.same((await s.liveDynos()).map((x) => x.id), ['web.2-ef01']);
  });

  t.test('concurrency: 20 config changes and 10 deploys at once lose nothing', async (t) => {
    const s = await make(t);
    await s.createApp('hello', initial);
    const writes: Promise<Release | null>[] = [];
    for (let i = 0; i < 30; i++) {
      writes.push(
        i % 3 === 2
          ? s.createRelease('hello', (cur) => ({ slug: `/slugs/${i}`, procfile: { web: 'x' }, config: cur.config, description: `Deploy ${i}`, by: 'root' }))
          : s.createRelease('hello', (cur) => ({ ...cur, config: { ...cur.config, [`K${i}`]: String(i) }, description: `Set K${i}`, by: 'root' })),
      );
    }
    const made = await Promise.all(writes);
    const versions = made.map((r) => r!.version).sort((x, y) => x - y);
    t.same(versions, Array.from({ length: 30 }, (_, i) => i + 2), 'versions 2..31, none twice, none skipped');
    const all = await s.listReleases('hello');
    t.equal(new Set(all.map((r) => r.version)).size, all.length, 'no two releases with one number');
    const config = (await s.currentRelease('hello'))!.config;
    t.equal(Object.keys(config).length, 20, 'every config change is in the current release');
    for (let i = 0; i < 30; i++) if (i % 3 !== 2) t.equal(config[`K${i}`], String(i));
  });
}
