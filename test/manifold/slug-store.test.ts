/**
 * Content-addressed slugs: the digest's format is fixed (known vectors), identical trees share one
 * `slugs/<sha256>` directory across deploys and apps, and a shared slug outlives one app's destroy.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { buildSlug } from '../../src/manifold/deploy/build-slug';
import { SlugHasher } from '../../src/manifold/deploy/slug-archive';
import { collectSlugs } from '../../src/manifold/deploy/slug-store';
import { LogHub } from '../../src/manifold/logs/hub';
import { Manifold } from '../../src/manifold/manifold';
import { SqliteStateStore } from '../../src/manifold/state/sqlite-state-store';
import { Store } from '../../src/manifold/store/store';
import { Supervisor } from '../../src/manifold/supervisor/supervisor';
import { FakeClock } from './helpers/fake-clock';
import { FakeLauncher } from './helpers/fake-launcher';

/** The tiny tree of the vectors: Procfile, bin/run (executable), link -> Procfile. */
const TINY_SHA = '037679eb34ccb10d780b5d2de745e89853a40170c7a9297715174b7315cb54c9';

t.test('the digest format: a known vector, and each field counts', async (t) => {
  const tiny = (): SlugHasher => {
    const h = new SlugHasher();
    h.file('Procfile', false, 7);
    h.data(Buffer.from('web: x\n'));
    h.dir('bin');
    h.file('bin/run', true, 10);
    h.data(Buffer.from('#!/bin/sh\n'));
    h.symlink('link', 'Procfile');
    return h;
  };
  t.equal(tiny().digest(), TINY_SHA, 'stable across runs and versions');
  const other = new SlugHasher();
  other.file('Procfile', true, 7); // only the executable bit differs
  other.data(Buffer.from('web: x\n'));
  t.not(other.digest(), new SlugHasher().digest());
  // a name and its contents cannot be shifted into one another: lengths are part of the stream
  const a = new SlugHasher();
  a.dir('ab');
  const b = new SlugHasher();
  b.dir('a');
  b.data(Buffer.from('b'));
  t.not(a.digest(), b.digest());
});

if (process.getuid?.() !== 0) {
  t.plan(1, 'the rest needs root: the source reader becomes the requester');
  process.exit(0);
}

function tmpdir(t: { teardown(fn: () => void): void }, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function tinyTree(root: string, procfile = 'web: x\n'): string {
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(root, 'Procfile'), procfile, { mode: 0o644 });
  fs.writeFileSync(path.join(root, 'bin/run'), '#!/bin/sh\n', { mode: 0o755 });
  fs.symlinkSync('Procfile', path.join(root, 'link'));
  return root;
}

t.test('the writer hashes what it writes: the tiny tree gives the known vector', async (t) => {
  const root = tmpdir(t, 'mf-slughash-');
  const r = await buildSlug({ source: tinyTree(path.join(root, 'src')), slugDir: path.join(root, 'slug'), requester: { uid: 0, gid: 0 } });
  t.equal(r.sha256, TINY_SHA);
});

t.test('through the manifold: identical deploys share a slug, a changed byte does not, destroy keeps shared slugs', async (t) => {
  const dir = tmpdir(t, 'mf-slugs-');
  const state = new SqliteStateStore(new Store(path.join(dir, 'm.db')));
  t.teardown(() => state.close());
  const logs = new LogHub();
  const supervisor = new Supervisor({ launcher: new FakeLauncher(new FakeClock()), logs, clock: new FakeClock(), policy: { cycleMs: 0 } });
  const m = new Manifold({ store: state, supervisor, logs, stateDir: dir, domain: 'test', routerPort: null });
  const slugRoot = path.join(dir, 'slugs');
  const src = tinyTree(path.join(dir, 'src'));
  await m.createApp('one', 'root');
  await m.createApp('two', 'root');
  await m.deploy('one', src);
  await m.deploy('one', src);
  await m.deploy('two', src);
  const shared = path.join(slugRoot, TINY_SHA);
  t.same(fs.readdirSync(slugRoot), [TINY_SHA], 'one slug directory for three identical deploys, no temporary left');
  t.equal((await state.currentRelease('one'))?.slug, shared);
  t.equal((await state.currentRelease('two'))?.slug, shared);
  t.equal((await m.releases('one'))[0]?.description, `Deploy ${TINY_SHA.slice(0, 8)}`);

  const changed = tinyTree(path.join(dir, 'src2'), 'web: y\n');
  await m.deploy('two', changed);
  const slugs = fs.readdirSync(slugRoot).sort();
  t.equal(slugs.length, 2, 'a changed byte is another slug');
  const other = path.join(slugRoot, slugs.find((s) => s !== TINY_SHA)!);

  await m.destroyApp('one', 'one');
  t.ok(fs.existsSync(shared), 'destroying one app keeps the slug the other still refers to');
  t.equal(await collectSlugs(slugRoot, (p) => state.slugInUse(p)).then((r) => r.length), 0, 'startup cleanup keeps both too');
  await m.destroyApp('two', 'two');
  t.notOk(fs.existsSync(shared), 'gone with the last release that used it');
  t.notOk(fs.existsSync(other));
});

t.test('startup cleanup: unfinished builds and unused slugs go, old per-app slugs in use stay', async (t) => {
  const dir = tmpdir(t, 'mf-slugs-gc-');
  const keep = new Set([path.join(dir, 'a'.repeat(64)), path.join(dir, 'app/old1')]);
  for (const p of ['a'.repeat(64), 'b'.repeat(64), '.tmp-123', 'app/old1', 'app/old2', 'gone/x']) fs.mkdirSync(path.join(dir, p), { recursive: true });
  const removed = await collectSlugs(dir, async (p) => keep.has(p));
  t.same(removed.map((p) => path.relative(dir, p)).sort(), ['.tmp-123', 'app/old2', 'b'.repeat(64), 'gone/x'].sort());
  t.same(fs.readdirSync(dir).sort(), ['a'.repeat(64), 'app'].sort(), 'an emptied per-app directory goes too');
});
