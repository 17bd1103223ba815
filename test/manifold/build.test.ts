/**
 * Buildpack builds (issue 14, build half): `manifold build DIR -a APP` against a real daemon whose
 * build dynos are real dynos. Buildpacks: the shipped `procfile` one and the fixtures under
 * test/fixtures/buildpacks (compiles, fails, cache, all, malformed, sleeps, big, nodetect).
 * A second daemon with short limits covers the build timeout, EBUILDBUSY and the release phase timeout.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { leakScope, leftoverCgroups, leftoverMounts, leftoverProcesses } from '../runtime/helpers/leaks';
import { ApiClient } from '../../src/cli/client';
import type { BuildProgress, BuildResult } from '../../src/manifold/api/protocol';
import { get, ROOT, runCli, TestDaemon, waitFor } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root: the daemon runs build dynos');
  process.exit(0);
}

const FIXTURES = path.join(ROOT, 'test/fixtures/buildpacks');
const SHIPPED = path.join(ROOT, 'buildpacks');

function tmpdir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function tree(root: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    fs.writeFileSync(p, text, { mode: 0o644 });
  }
  return root;
}

/** Sets env vars for the daemon about to start (TestDaemon's child inherits process.env); returns the restore. */
function withEnv(vars: Record<string, string>): () => void {
  const old: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    old[k] = process.env[k];
    process.env[k] = v;
  }
  return () => {
    for (const [k, v] of Object.entries(old)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/** A build through the control API, as the git side calls it: its lines, and its result or error code. */
async function apiBuild(d: TestDaemon, params: Record<string, unknown>): Promise<{ lines: string[]; result?: BuildResult; code?: string; message?: string }> {
  const lines: string[] = [];
  try {
    const result = await new ApiClient(d.socket).callWithProgress<BuildResult, BuildProgress>('build', params, (p) => lines.push(p.line));
    return { lines, result };
  } catch (err) {
    const e = err as { code: string; message: string };
    return { lines, code: e.code, message: e.message };
  }
}

async function releasesOf(d: TestDaemon, app: string): Promise<{ version: number; description: string; current: boolean; by?: string; build?: { slugBytes: number; buildMs: number; buildpacks: string[] } }[]> {
  const r = await d.cli('releases', '-a', app, '--json');
  return JSON.parse(r.stdout) as never;
}

/** The installed buildpacks of daemon 1: one that never detects, then the shipped procfile one. */
const installed = tmpdir('mf-bp-installed-');
fs.symlinkSync(path.join(FIXTURES, 'nodetect'), path.join(installed, '10-nodetect'));
fs.symlinkSync(path.join(SHIPPED, 'procfile'), path.join(installed, '20-procfile'));

const restoreEnv = withEnv({ MANIFOLD_SLUG_MAX: '2m', MANIFOLD_BUILDPACKS_DIR: installed });
const d = new TestDaemon();
t.teardown(async () => {
  await d.stop();
  d.cleanup();
});

t.before(async () => {
  await d.start();
  restoreEnv();
});

const hello = path.join(ROOT, 'examples/hello');

t.test('bad input: unknown app, bad directory; nothing created', async (t) => {
  const r = await d.cli('build', hello, '-a', 'nope');
  t.equal(r.code, 1, 'non-zero exit');
  t.match(r.stderr, /no such app: nope/);
  t.equal((await d.cli('apps:create', 'hello')).code, 0);
  const r2 = await d.cli('build', '/nonexistent/dir', '-a', 'hello');
  t.equal(r2.code, 2, 'EINVAL is a usage error');
  t.match(r2.stderr, /not a directory/);
  t.same((await releasesOf(d, 'hello')).map((x) => x.version), [1], 'no release made');
});

t.test('hello with detection over the installed buildpacks: procfile wins, release made, app serves', async (t) => {
  const r = await d.cli('build', hello, '-a', 'hello');
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.equal(lines[0], '-----> Building on the Manifold stack', 'first heading');
  t.ok(lines.includes('-----> Determining which buildpack to use for this app'));
  t.ok(lines.includes('-----> Procfile app detected'), 'the first buildpack that detects (nodetect is tried first)');
  t.ok(lines.includes('-----> Discovering process types'));
  t.ok(lines.includes('       Procfile declares types -> web, worker'));
  t.ok(lines.includes('-----> Compressing...'));
  t.match(r.stdout, /^ {7}Done: [0-9.]+[BKM]$/m);
  t.ok(lines.includes('-----> Launching...'));
  t.ok(lines.includes('       Released v2'));
  t.match(r.stdout, /Slug [0-9.]+[BKM], built in [0-9.]+ s \(compile [0-9.]+ s\) with procfile/);
  const rels = await releasesOf(d, 'hello');
  t.equal(rels[0]!.version, 2);
  t.same(rels[0]!.build?.buildpacks, ['procfile'], 'buildpacks stored with the release');
  t.ok(rels[0]!.build!.slugBytes > 0 && rels[0]!.build!.buildMs > 0, 'slug size and build time stored');
  t.match((await d.cli('releases', '-a', 'hello')).stdout, /v2 +Build [0-9a-f]{8} \([0-9.]+[BKM] slug, [0-9.]+ s, procfile\)/, 'releases shows them');
  const logs = (await d.cli('logs', '-a', 'hello', '-n', '200')).stdout;
  t.match(logs, /manifold\[build\]: -----> Building on the Manifold stack/, 'the build is in the app log');
  t.match(logs, /manifold\[build\]: {8}Released v2/);
  t.equal((await d.cli('ps:scale', 'web=1', '-a', 'hello')).code, 0);
  const page = await waitFor('hello to answer', async () => {
    const g = await get(d.port, 'hello.localhost');
    return g.status === 200 ? g : undefined;
  });
  t.match(page.body, /Hello from web\.1/);
});

t.test('--json result: ReleaseInfo + slugBytes, buildMs, buildpacks', async (t) => {
  const r = await d.cli('build', hello, '-a', 'hello', '--json', '--version', 'abc1234def');
  t.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as Record<string, unknown>;
  t.match(res, { version: 3, current: true, description: 'Build abc1234def', buildpacks: ['procfile'] });
  t.ok((res.slugBytes as number) > 0 && (res.buildMs as number) > 0);
});

t.test('a compiling buildpack (local path): ENV_DIR, default_process_types, .slugignore, runs as the dyno user', async (t) => {
  t.equal((await d.cli('apps:create', 'greet')).code, 0);
  t.equal((await d.cli('config:set', 'GREETING=bonjour', '-a', 'greet')).code, 0);
  const set = await d.cli('buildpacks:set', path.join(FIXTURES, 'compiles'), '-a', 'greet');
  t.equal(set.code, 0, set.stderr);
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'greet', '--json')).stdout), [path.join(FIXTURES, 'compiles')]);
  const src = tree(tmpdir('mf-greet-'), { 'greeting.in': '@GREETING@ world\n', 'notes.md': 'x', 'docs/a.md': 'y', 'secret/key': 'z', '.slugignore': '# comment\n*.md\nsecret/\n' });
  const r = await d.cli('build', src, '-a', 'greet');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /-----> Using buildpack: compiles\n/);
  t.match(r.stdout, /-----> Greeting app detected\n-----> Compiling greeting\n {7}wrote greeting.txt as 10001\n/, 'detect name, compile output live, unprivileged user');
  t.match(r.stdout, /Default types for buildpack -> web/);
  t.match(r.stdout, /\.slugignore: removed 3 paths/);
  t.match(r.stdout, /       no ignored file in the build directory\n/, '.slugignore applied before compile (as on Heroku): compile never saw notes.md or secret/');
  const cat = await d.cli('run', '-a', 'greet', '--', 'sh', '-c', 'cat greeting.txt; ls -a');
  t.equal(cat.code, 0, cat.stderr);
  t.match(cat.stdout, /^bonjour world\n/, 'the config var reached the compile through ENV_DIR');
  t.notMatch(cat.stdout, /notes\.md|secret/, 'nothing .slugignore names is in the slug');
  t.equal((await d.cli('run', '-a', 'greet', '--', 'ls', '-A', 'docs')).stdout, '', 'docs/a.md matched *.md at any depth');
  t.match(cat.stdout, /greeting\.txt/);
  t.equal((await d.cli('ps:scale', 'web=1', '-a', 'greet')).code, 0);
  const page = await waitFor('greet to answer', async () => {
    const g = await get(d.port, 'greet.localhost');
    return g.status === 200 ? g : undefined;
  });
  t.equal(page.body, 'bonjour world\n', 'the default web type serves the compiled file');
});

t.test('a git buildpack (file:// repo): fetched once, pinned to its commit; the build cache is kept between builds', async (t) => {
  const repo = tmpdir('mf-bp-git-');
  fs.cpSync(path.join(FIXTURES, 'cache'), repo, { recursive: true });
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', ...args], { cwd: repo, encoding: 'utf8' }).trim();
  git('init', '-q');
  git('add', '.');
  git('commit', '-q', '-m', 'one');
  const commit = git('rev-parse', 'HEAD');
  t.equal((await d.cli('apps:create', 'cached')).code, 0);
  const url = `file://${repo}`;
  const set = await d.cli('buildpacks:set', url, '-a', 'cached');
  t.equal(set.code, 0, set.stderr);
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'cached', '--json')).stdout), [`${url}#${commit}`], 'stored pinned to the commit');
  // a later commit does not change what the app builds with
  fs.writeFileSync(path.join(repo, 'bin/compile'), '#!/bin/sh\necho "       NEW CODE"\nexit 1\n');
  git('commit', '-q', '-am', 'two');
  const src = tree(tmpdir('mf-cached-'), { Procfile: 'worker: sleep 1000\n' });
  const b1 = await d.cli('build', src, '-a', 'cached');
  t.equal(b1.code, 0, b1.stderr);
  t.match(b1.stdout, /build number 1 \(from the cache\)/);
  t.notMatch(b1.stdout, /NEW CODE/, 'the pinned commit is used');
  const b2 = await d.cli('build', src, '-a', 'cached');
  t.equal(b2.code, 0, b2.stderr);
  t.match(b2.stdout, /build number 2 \(from the cache\)/, 'CACHE_DIR kept between builds');
  t.match(b2.stdout, new RegExp(`with file://${repo}#${commit.slice(0, 7)}`), 'the buildpack used is reported with its commit');
  const cat = await d.cli('run', '-a', 'cached', '--', 'cat', 'build-count');
  t.equal(cat.stdout, '2\n');
  // add / remove / clear
  const add = await d.cli('buildpacks:add', path.join(FIXTURES, 'all'), '-a', 'cached', '--index', '1');
  t.equal(add.code, 0, add.stderr);
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'cached', '--json')).stdout), [path.join(FIXTURES, 'all'), `${url}#${commit}`]);
  // several buildpacks: each detects, each compiles, in order
  const b3 = await d.cli('build', src, '-a', 'cached');
  t.equal(b3.code, 0, b3.stderr);
  t.match(b3.stdout, new RegExp(`-----> Using buildpacks:\n {7}1\. all\n {7}2\. file://${repo}#${commit.slice(0, 7)}\n`), 'the list, in order');
  t.match(b3.stdout, /-----> App detected by buildpack all\n {7}compiled by all\n[^]*-----> Cached app detected\n {7}build number 3 \(from the cache\)/, 'compiled in order');
  t.match(b3.stdout, new RegExp(`with all, file://${repo}#${commit.slice(0, 7)}$`, 'm'), 'both reported');
  t.equal((await d.cli('buildpacks:remove', url, '-a', 'cached')).code, 0, 'removed by URL without its commit');
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'cached', '--json')).stdout), [path.join(FIXTURES, 'all')]);
  const outOfRange = await d.cli('buildpacks:remove', '--index', '5', '-a', 'cached');
  t.equal(outOfRange.code, 2);
  t.match(outOfRange.stderr, /--index must be between 1 and 1/);
  t.equal((await d.cli('buildpacks:remove', '--index', '1', '-a', 'cached')).code, 0, 'removed by position');
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'cached', '--json')).stdout), []);
  t.equal((await d.cli('buildpacks:set', path.join(FIXTURES, 'all'), '-a', 'cached')).code, 0);
  t.equal((await d.cli('buildpacks:clear', '-a', 'cached')).code, 0);
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'cached', '--json')).stdout), []);
  const bad = await d.cli('buildpacks:set', `file://${repo}/nope`, '-a', 'cached');
  t.equal(bad.code, 1);
  t.match(bad.stderr, /cannot fetch buildpack/);
});

t.test('failures: no release, the running release untouched, clear errors and codes', async (t) => {
  const before = (await releasesOf(d, 'hello')).map((x) => x.version);
  const unchanged = async (what: string): Promise<void> => {
    t.same((await releasesOf(d, 'hello')).map((x) => x.version), before, `${what}: no release`);
  };
  t.equal((await d.cli('buildpacks:set', path.join(FIXTURES, 'fails'), '-a', 'hello')).code, 0);
  const fail = await d.cli('build', hello, '-a', 'hello');
  t.equal(fail.code, 1, 'compile failure: exit 1');
  t.match(fail.stdout, /-----> About to fail\nerror: this buildpack always fails\n/, 'the compile output streamed');
  t.match(fail.stderr, /failed to compile Failing app \(buildpack fails, exit status 3\)/);
  t.match(fail.stdout, / ! {5}Push rejected to hello\.$/m);
  await unchanged('compile failure');
  const failApi = await apiBuild(d, { app: 'hello', dir: hello });
  t.equal(failApi.code, 'EBUILDFAILED');
  t.ok(failApi.lines.includes('-----> About to fail'), 'progress events are lines');
  t.notOk(failApi.lines.some((l) => l.endsWith('\n')), 'without their newline');

  t.equal((await d.cli('buildpacks:set', path.join(FIXTURES, 'nodetect'), '-a', 'hello')).code, 0);
  const nd = await apiBuild(d, { app: 'hello', dir: hello });
  t.equal(nd.code, 'EBUILDFAILED');
  t.match(nd.message, /App not compatible with buildpack: nodetect/);
  await unchanged('not compatible');

  const mal = await d.cli('buildpacks:set', path.join(FIXTURES, 'malformed'), '-a', 'hello');
  t.equal(mal.code, 1);
  t.match(mal.stderr, /buildpack .*malformed is malformed: no executable bin\/compile/);
  t.same(JSON.parse((await d.cli('buildpacks', '-a', 'hello', '--json')).stdout), [path.join(FIXTURES, 'nodetect')], 'list unchanged');
  const malApi = await apiBuild(d, { app: 'hello', dir: hello });
  t.equal(malApi.code, 'EBUILDFAILED', 'the list still names nodetect');

  t.equal((await d.cli('buildpacks:set', path.join(FIXTURES, 'big'), '-a', 'hello')).code, 0);
  const big = await apiBuild(d, { app: 'hello', dir: hello });
  t.equal(big.code, 'ESLUGTOOBIG');
  t.match(big.message, /slug size \(3\.0M\) exceeds the limit of 2\.0M/);
  await unchanged('slug too big');

  const noApp = await apiBuild(d, { app: 'nope', dir: hello });
  t.equal(noApp.code, 'ENOAPP');

  // a detect that matches everything and prints nothing: fine, and the buildpack is named
  t.equal((await d.cli('buildpacks:set', path.join(FIXTURES, 'all'), '-a', 'hello')).code, 0);
  const all = await apiBuild(d, { app: 'hello', dir: hello, version: 'v-all', user: 'alice', by: 'key alice' });
  t.equal(all.code, undefined, all.message ?? 'built');
  t.equal((await releasesOf(d, 'hello'))[0]?.by, 'key alice', "root's claimed author (the push hook's) is the release's");
  t.ok(all.lines.includes('-----> App detected by buildpack all'));
  t.ok(all.lines.includes('       compiled by all'));
  const ifaces = (all.lines.find((l) => l.startsWith('       interfaces: ')) ?? '').slice(19).trim().split(' ');
  t.ok(ifaces.includes('lo') && ifaces.some((i) => i !== 'lo'), `the build dyno is on the daemon's network (--net bridge): ${ifaces.join(' ')}`);
  t.same(all.result?.buildpacks, ['all']);
  t.equal((await d.cli('buildpacks:clear', '-a', 'hello')).code, 0);

  const page = await get(d.port, 'hello.localhost');
  t.equal(page.status, 200, 'the app served throughout');
});

t.test('release phase: runs before the release goes live; failure keeps the running release; never scaled', async (t) => {
  t.equal((await d.cli('apps:create', 'rel')).code, 0);
  const src = tmpdir('mf-rel-');
  tree(src, { Procfile: 'web: node server.js\nrelease: echo migrating as $(id -u) on $DYNO; exit 1\n', 'server.js': "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);\n" });
  const bad = await d.cli('build', src, '-a', 'rel');
  t.equal(bad.code, 1);
  t.match(bad.stdout, /Procfile declares types -> web, release|Procfile declares types -> release, web/);
  t.match(bad.stdout, /-----> Running release command: echo migrating/);
  t.match(bad.stdout, /^migrating as 10001 on release\.1$/m, 'its output streams to the caller');
  t.match(bad.stderr, /release command failed \(exit status 1\); the release was not made current/);
  t.same((await releasesOf(d, 'rel')).map((x) => x.version), [1], 'no release');
  t.match((await d.cli('logs', '-a', 'rel', '-n', '200')).stdout, /app\[release\.1\]: migrating/, 'and to the app log');
  fs.writeFileSync(path.join(src, 'Procfile'), 'web: node server.js\nrelease: echo migrated\n');
  const ok = await d.cli('build', src, '-a', 'rel');
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^migrated$/m);
  t.match(ok.stdout, /Release command succeeded\n-----> Launching|-----> Launching\.\.\.\n/);
  t.match(ok.stdout, /Released v2/);
  const scale = await d.cli('ps:scale', 'release=1', '-a', 'rel');
  t.equal(scale.code, 2);
  t.match(scale.stderr, /cannot be scaled/);
  const info = JSON.parse((await d.cli('apps:info', '-a', 'rel', '--json')).stdout) as { formation: { type: string }[] };
  t.same(info.formation.map((f) => f.type), ['web'], 'release is not a formation type');
});

t.test('daemon 1 stops clean: no dyno cgroup, process, mount or build stage left', async (t) => {
  const state = path.join(d.dir, 'state');
  t.same(fs.readdirSync(path.join(state, 'builds')), [], 'no build stage left while running');
  t.same(fs.readdirSync(path.join(state, 'cache')).sort(), ['cached', 'greet', 'hello', 'rel'], 'one build cache per app built');
  const fetched = fs.readdirSync(path.join(state, 'buildpacks')).flatMap((h) => fs.readdirSync(path.join(state, 'buildpacks', h)));
  t.equal(fetched.length, 1, 'one pinned git buildpack kept');
  t.notOk(fetched.some((f) => f.startsWith('.fetch-')), 'no half-fetched buildpack left');
  t.equal((await d.cli('apps:destroy', 'cached', '--confirm', 'cached')).code, 0);
  t.notOk(fs.existsSync(path.join(state, 'cache', 'cached')), 'apps:destroy removes the build cache');
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  await d.stop();
  t.same(leftoverCgroups(scope), [], 'no dyno cgroups left');
  t.same(leftoverProcesses(scope), [], 'no dyno processes left');
  t.same(leftoverMounts(scope), [], 'no mounts left');
  // build and release dynos ran on the daemon's bridge (--net bridge, no NAT): their veths and leases are gone
  t.same(fs.readdirSync(`/sys/class/net/${d.bridge}/brif`), [], 'no dyno veth left on the bridge');
  t.same(fs.readdirSync(`${d.runDir}/net/${d.bridge}`), [], 'no address lease left');
});

t.test('limits (second daemon): build timeout, EBUILDBUSY after the wait bound, release phase timeout', async (t) => {
  // a malformed buildpack among the installed ones
  const broken = tmpdir('mf-bp-broken-');
  fs.symlinkSync(path.join(FIXTURES, 'malformed'), path.join(broken, 'malformed'));
  const restore = withEnv({ MANIFOLD_BUILD_TIMEOUT: '6', MANIFOLD_BUILD_WAIT: '1', MANIFOLD_RELEASE_TIMEOUT: '2', MANIFOLD_BUILDPACKS_DIR: `${SHIPPED}:${broken}` });
  // nobody may use its socket: a build reads the source as the client's user, as a deploy does
  const d2 = new TestDaemon(['--socket-group', '65534']);
  fs.chmodSync(d2.dir, 0o755);
  t.teardown(async () => {
    await d2.stop();
    d2.cleanup();
  });
  try {
    await d2.start();
  } finally {
    restore();
  }
  t.equal((await d2.cli('apps:create', 'peer')).code, 0);
  t.equal((await d2.cli('buildpacks:set', 'procfile', '-a', 'peer')).code, 0, 'an installed buildpack by name');
  const psrc = tree(tmpdir('mf-peer-'), { Procfile: 'worker: sleep 100\n' });
  fs.writeFileSync(path.join(psrc, 'private.key'), 'root-only', { mode: 0o600 });
  const asNobody = (...args: string[]) => runCli(args, { MANIFOLD_SOCKET: d2.socket }, { uid: 65534 });
  const refused = await asNobody('build', psrc, '-a', 'peer');
  t.equal(refused.code, 2, 'a source the client cannot read: EINVAL');
  t.match(refused.stderr, /cannot read .*private\.key: Cannot open: Permission denied/);
  t.same((await releasesOf(d2, 'peer')).map((x) => x.version), [1], 'no release');
  fs.rmSync(path.join(psrc, 'private.key'));
  const byNobody = await asNobody('build', psrc, '-a', 'peer');
  t.equal(byNobody.code, 0, byNobody.stderr);
  t.match(byNobody.stdout, /Released v2/);
  // a claimed author counts only from root (the push hook): nobody's build is by nobody whatever it says
  const claim = `const { ApiClient } = require(${JSON.stringify(path.join(ROOT, 'dist/src/cli/client.js'))});
    new ApiClient(process.argv[1]).callWithProgress('build', { app: 'peer', dir: process.argv[2], by: 'key alice' }, () => undefined)
      .then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });`;
  const claimed = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(process.execPath, ['-e', claim, d2.socket, psrc], { uid: 65534, gid: 65534, timeout: 60_000 }, (err, _out, stderr) => resolve({ code: err ? 1 : 0, stderr })),
  );
  t.equal(claimed.code, 0, claimed.stderr);
  t.same((await releasesOf(d2, 'peer')).map((x) => [x.version, x.by]), [[3, 'nobody'], [2, 'nobody'], [1, 'root']], 'builds by nobody (uid 65534 in /etc/passwd), the claim ignored');
  t.equal((await d2.cli('apps:create', 'slow')).code, 0);
  t.equal((await d2.cli('buildpacks:set', path.join(FIXTURES, 'sleeps'), '-a', 'slow')).code, 0);
  const first = d2.cli('build', hello, '-a', 'slow');
  await waitFor('the first build to compile', async () => /sleeping/.test((await d2.cli('logs', '-a', 'slow')).stdout), 20_000);
  const second = await d2.cli('build', hello, '-a', 'slow');
  t.equal(second.code, 1);
  t.match(second.stdout, /-----> Waiting for another build of slow to finish \(at most 1 s\)/, 'the waiting line');
  t.match(second.stderr, /another build of slow is still running after 1 s/, 'EBUILDBUSY');
  const r = await first;
  t.equal(r.code, 1);
  t.match(r.stderr, /build exceeded the time limit of 6 s/, 'EBUILDTIMEOUT');
  t.same((await releasesOf(d2, 'slow')).map((x) => x.version), [1], 'no release');

  t.equal((await d2.cli('apps:create', 'relslow')).code, 0);
  const detect = await apiBuild(d2, { app: 'relslow', dir: hello });
  t.equal(detect.code, 'EBUILDPACK', 'detection over installed buildpacks one of which is malformed');
  t.match(detect.message, /buildpack malformed is malformed: no executable bin\/compile/);
  t.equal((await d2.cli('buildpacks:set', 'procfile', '-a', 'relslow')).code, 0);
  const src = tree(tmpdir('mf-relslow-'), { Procfile: 'worker: sleep 100\nrelease: echo start; sleep 60\n' });
  const rr = await d2.cli('build', src, '-a', 'relslow');
  t.equal(rr.code, 1);
  t.match(rr.stdout, /^start$/m);
  t.match(rr.stderr, /release command timed out after 2 s; the release was not made current/);
  t.same((await releasesOf(d2, 'relslow')).map((x) => x.version), [1]);

  const scope = leakScope({ cgroupRoot: d2.cgroupRoot, runDir: d2.runDir });
  t.same(leftoverCgroups(scope), [], 'the killed build and release dynos are gone');
  t.same(fs.readdirSync(path.join(d2.dir, 'state/builds')), [], 'no build stage left');

  // the daemon stops during a build: the build dyno is killed, the caller told, nothing left
  const during = apiBuild(d2, { app: 'slow', dir: hello });
  await waitFor('a build to compile', async () => ((await d2.cli('logs', '-a', 'slow', '-n', '100')).stdout.match(/sleeping/g) ?? []).length >= 2, 20_000);
  await d2.stop();
  const stopped = await during;
  t.equal(stopped.code, 'EBUILDFAILED');
  t.match(stopped.message, /the daemon stopped during the build/);
  t.same(fs.readdirSync(path.join(d2.dir, 'state/builds')), [], 'its stage removed');
  t.same(leftoverProcesses(scope), [], 'no dyno processes left');
  t.same(leftoverMounts(scope), [], 'no mounts left');
});
