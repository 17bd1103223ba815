/** The pure parts of builds: .slugignore patterns, bin/release YAML, limits from the environment, buildpack references. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ApiClient } from '../../src/cli/client';
import { ApiServer } from '../../src/manifold/api/server';
import { LogHub } from '../../src/manifold/logs/hub';
import { buildLimitsFromEnv, defaultProcessTypes, humanBytes } from '../../src/manifold/build/builder';
import { Buildpacks, installedBuildpacks, isGitUrl } from '../../src/manifold/build/buildpacks';
import { applySlugIgnore, ignored, parseSlugIgnore } from '../../src/manifold/build/slugignore';

t.test('.slugignore: gitignore syntax without negation', async (t) => {
  const { patterns, unsupported } = parseSlugIgnore('# comment\n\n*.md\n/spec\nlog/\ndocs/**/*.png\ntmp/?.txt\n!keep.md\r\n');
  t.same(unsupported, ['!keep.md'], 'negation reported, not applied');
  const cases: [string, boolean, boolean][] = [
    ['README.md', false, true],
    ['a/b/c.md', false, true],
    ['spec', true, true],
    ['a/spec', true, false],
    ['log', true, true],
    ['log', false, false],
    ['app/log', true, true],
    ['docs/x.png', false, true],
    ['docs/a/b/x.png', false, true],
    ['x.png', false, false],
    ['tmp/a.txt', false, true],
    ['tmp/ab.txt', false, false],
    ['server.js', false, false],
  ];
  for (const [p, dir, want] of cases) t.equal(ignored(patterns, p, dir), want, `${p}${dir ? '/' : ''}`);
});

t.test('.slugignore applied to a tree: links removed, never followed', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-slugignore-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-slugignore-out-'));
  t.teardown(() => {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });
  fs.writeFileSync(path.join(outside, 'keep.md'), 'x');
  fs.mkdirSync(path.join(root, 'a/spec'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a/spec/x.js'), 'x');
  fs.writeFileSync(path.join(root, 'README.md'), 'x');
  fs.writeFileSync(path.join(root, 'server.js'), 'x');
  fs.symlinkSync(outside, path.join(root, 'link'));
  const removed = applySlugIgnore(root, parseSlugIgnore('*.md\nspec/\n').patterns);
  t.same(removed, ['README.md', 'a/spec']);
  t.same(fs.readdirSync(root).sort(), ['a', 'link', 'server.js']);
  t.ok(fs.existsSync(path.join(outside, 'keep.md')), 'nothing removed through a link');
});

t.test('bin/release YAML: default_process_types', async (t) => {
  t.same(defaultProcessTypes('---\naddons: []\ndefault_process_types:\n  web: node server.js\n  worker: "ruby w.rb"\nconfig_vars:\n  A: b\n'), { web: 'node server.js', worker: 'ruby w.rb' });
  t.same(defaultProcessTypes('--- {}\n'), {});
  t.same(defaultProcessTypes(''), {});
});

t.test('limits from the environment; sizes', async (t) => {
  t.same(buildLimitsFromEnv({ MANIFOLD_SLUG_MAX: '2m', MANIFOLD_BUILD_TIMEOUT: '1.5', MANIFOLD_BUILD_WAIT: '10' }), { slugMaxBytes: 2 * 1024 * 1024, buildTimeoutMs: 1500, busyWaitMs: 10_000 });
  t.throws(() => buildLimitsFromEnv({ MANIFOLD_SLUG_MAX: 'big' }), /MANIFOLD_SLUG_MAX/);
  t.throws(() => buildLimitsFromEnv({ MANIFOLD_BUILD_TIMEOUT: '-1' }), /MANIFOLD_BUILD_TIMEOUT/);
  t.equal(humanBytes(12_600), '12.3K');
  t.equal(humanBytes(500), '500B');
  t.equal(humanBytes(5 * 1024 * 1024), '5.0M');
});

t.test('buildpack references', async (t) => {
  for (const u of ['https://github.com/heroku/heroku-buildpack-nodejs', 'file:///tmp/bp.git', 'git@github.com:a/b.git', 'https://x/y.git#v1']) t.ok(isGitUrl(u), u);
  for (const u of ['/opt/bp', 'procfile', 'ftp://x']) t.notOk(isGitUrl(u), u);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-bp-roots-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const n of ['20-b', '10-a', 'c', '.hidden']) fs.mkdirSync(path.join(root, n));
  fs.writeFileSync(path.join(root, 'file'), '');
  t.same(installedBuildpacks([root]).map((b) => b.name), ['a', 'b', 'c'], 'ordered by directory name, NN- prefix dropped');
  const bps = new Buildpacks([root], path.join(root, 'cache'));
  await t.rejects(bps.pin('a'), { code: 'EBUILDPACK', message: /malformed: no executable bin\/detect/ });
  await t.rejects(bps.pin('nope'), { code: 'EBUILDPACK', message: /unknown buildpack 'nope' \(installed: a, b, c/ });
  await t.rejects(bps.pin('/nonexistent'), { code: 'EBUILDPACK', message: /not a directory/ });
  await t.rejects(bps.pin(''), { code: 'EINVAL' });
  await t.rejects(bps.pin('a b'), { code: 'EINVAL' });
});

t.test('a daemon without a builder (cluster mode) refuses build and buildpacks:* with ECLUSTER', async (t) => {
  // only what the refusal path reaches: the handlers check for the builder before anything else
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-nobuild-'));
  const socketPath = path.join(dir, 'api.sock');
  const api = new ApiServer({
    manifold: {} as never,
    logs: new LogHub(),
    launcher: {} as never,
    socketPath,
    info: () => ({ version: 'x', pid: process.pid, stateDir: dir, listen: null, domain: 'localhost', net: 'none', warning: null }),
  });
  await api.listen();
  t.teardown(async () => {
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const client = new ApiClient(socketPath);
  for (const [method, params] of [['build', { app: 'a', dir: '/tmp' }], ['buildpacks', { app: 'a' }], ['buildpacks:set', { app: 'a', buildpacks: ['procfile'] }]] as const) {
    await t.rejects(client.call(method, params), { code: 'ECLUSTER', message: /single-host only/ }, method);
  }
  await t.rejects(client.callWithProgress('build', { app: 'a', dir: '/tmp' }, () => undefined), { code: 'ECLUSTER' }, 'build with progress');
});
