/**
 * Deploys read the source as the requesting user, off the daemon's event loop, and never open what
 * is not a regular file (issue 9, items 1, 7 and 10): buildSlug directly, the slug writer fed hostile
 * streams, and the daemon's API with a less-privileged client (SO_PEERCRED).
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ApiClient } from '../../src/cli/client';
import { buildSlug, SlugBuildError } from '../../src/manifold/deploy/build-slug';
import { checkEntryPath, SLUG_FRAME, slugFrame, SlugArchiveError } from '../../src/manifold/deploy/slug-archive';
import { runCli, TestDaemon } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root: deploys become the requesting user (setuid) and the daemon runs dynos');
  process.exit(0);
}

const NOBODY = 65534;
/** The CLI as the unprivileged user. */
const asNobody = (args: string[], socket: string) => runCli(args, { MANIFOLD_SOCKET: socket }, { uid: NOBODY });
const SECRET = 'root-only-secret-4f2c9a';
const WRITER = path.resolve(__dirname, '../../src/manifold/deploy/write-slug.js');

function tmpdir(t: { teardown(fn: () => void): void }, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755); // the unprivileged requester must be able to walk in
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A source tree; files: path → contents (or a function making the entry). */
function source(root: string, files: Record<string, string | ((p: string) => void)>): string {
  for (const [rel, what] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    if (typeof what === 'string') fs.writeFileSync(p, what, { mode: 0o644 });
    else what(p);
  }
  return root;
}

function treeOf(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    const st = fs.lstatSync(path.join(dir, r));
    const kind = e.isSymbolicLink() ? `-> ${fs.readlinkSync(path.join(dir, r))}` : e.isDirectory() ? 'dir' : 'file';
    out.push(`${r} ${kind} ${(st.mode & 0o7777).toString(8)}`);
    if (e.isDirectory()) out.push(...treeOf(dir, r));
  }
  return out;
}

t.test('entry paths: only plain relative names', async (t) => {
  const bad = ['', '/etc/passwd', '../x', 'a/../b', 'a//b', './a', 'a/.', 'a/', 'a\0b', 'x'.repeat(256), `${'a/'.repeat(2100)}b`];
  for (const p of bad) t.throws(() => checkEntryPath(p), SlugArchiveError, JSON.stringify(p.slice(0, 40)));
  t.same(checkEntryPath('a/b.c/..d/e'), ['a', 'b.c', '..d', 'e']);
  t.throws(() => checkEntryPath(42), SlugArchiveError);
});

t.test('a Procfile linked to a root-only file is refused; the secret shows nowhere', async (t) => {
  const root = tmpdir(t, 'mf-deploy-');
  const secretFile = path.join(root, 'secret');
  fs.writeFileSync(secretFile, `web: ${SECRET}\n`, { mode: 0o600 });
  const src = source(path.join(root, 'app'), { 'index.js': 'x' });
  fs.symlinkSync(secretFile, path.join(src, 'Procfile'));
  for (const requester of [{ uid: NOBODY, gid: NOBODY }, { uid: 0, gid: 0 }]) {
    const slugDir = path.join(root, `slug-${requester.uid}`);
    const err = await buildSlug({ source: src, slugDir, requester }).catch((e: unknown) => e);
    t.type(err, SlugBuildError, `uid ${requester.uid}`);
    t.match((err as Error).message, /Procfile is a symbolic link/);
    t.notMatch((err as Error).message, SECRET);
    t.notOk(fs.existsSync(slugDir), 'no partial slug left');
  }
});

t.test('files the requester cannot read fail the deploy for that user only', async (t) => {
  const root = tmpdir(t, 'mf-deploy-');
  const src = source(path.join(root, 'app'), {
    Procfile: 'web: node index.js\n',
    'config/credentials': (p) => fs.writeFileSync(p, SECRET, { mode: 0o600 }),
    // a link to a root-only file is kept as a link (resolved inside the dyno), never read
    'shadow-link': (p) => fs.symlinkSync('/etc/shadow', p),
  });
  const err = await buildSlug({ source: src, slugDir: path.join(root, 'slug-nobody'), requester: { uid: NOBODY, gid: NOBODY } }).catch((e: unknown) => e);
  t.type(err, SlugBuildError);
  t.equal((err as Error).message, 'cannot read config/credentials: permission denied');
  t.notOk(fs.existsSync(path.join(root, 'slug-nobody')));

  const slugDir = path.join(root, 'slug-root');
  const ok = await buildSlug({ source: src, slugDir, requester: { uid: 0, gid: 0 } });
  t.equal(ok.files, 2);
  t.equal(fs.readFileSync(path.join(slugDir, 'config/credentials'), 'utf8'), SECRET, 'root may deploy what root can read');
  t.equal(fs.readlinkSync(path.join(slugDir, 'shadow-link')), '/etc/shadow', 'link stored verbatim');
  t.equal(ok.procfile, 'web: node index.js\n');
});

t.test('FIFOs and sockets are never opened: a FIFO Procfile fails at once, others are left out', async (t) => {
  const root = tmpdir(t, 'mf-deploy-');
  const fifoApp = source(path.join(root, 'fifo-procfile'), { 'index.js': 'x' });
  execFileSync('mkfifo', [path.join(fifoApp, 'Procfile')]);
  const err = await buildSlug({ source: fifoApp, slugDir: path.join(root, 's1'), requester: { uid: NOBODY, gid: NOBODY }, timeoutMs: 20_000 }).catch((e: unknown) => e);
  t.type(err, SlugBuildError);
  t.match((err as Error).message, /Procfile is a FIFO, not a regular file/);

  const app = source(path.join(root, 'app'), { Procfile: 'web: x\n', 'lib/a.js': 'a' });
  execFileSync('mkfifo', [path.join(app, 'lib/pipe')]);
  const ok = await buildSlug({ source: app, slugDir: path.join(root, 's2'), requester: { uid: NOBODY, gid: NOBODY }, timeoutMs: 20_000 });
  t.equal(ok.skippedCount, 1);
  t.same(ok.skipped, ['lib/pipe (FIFO)']);
  t.notOk(fs.existsSync(path.join(root, 's2/lib/pipe')));
});

t.test('a deploy of a link to a directory copies the tree; the source is never modified', async (t) => {
  const root = tmpdir(t, 'mf-deploy-');
  const real = source(path.join(root, 'real'), { Procfile: 'web: run\n', 'bin/run': (p) => fs.writeFileSync(p, '#!/bin/sh\n', { mode: 0o755 }), 'data.txt': 'v1' });
  const link = path.join(root, 'link');
  fs.symlinkSync(real, link);
  const before = treeOf(real);
  const slugDir = path.join(root, 'slug');
  await buildSlug({ source: link, slugDir, requester: { uid: NOBODY, gid: NOBODY } });
  t.ok(fs.lstatSync(slugDir).isDirectory(), 'the slug is a directory, not a link');
  t.same(treeOf(real), before, 'source modes unchanged (no write bit stripped)');
  fs.chmodSync(path.join(real, 'data.txt'), 0o644);
  fs.writeFileSync(path.join(real, 'data.txt'), 'v2');
  t.equal(fs.readFileSync(path.join(slugDir, 'data.txt'), 'utf8'), 'v1', 'later edits to the source do not reach the slug');
  t.same(treeOf(slugDir).sort(), ['Procfile file 444', 'bin dir 555', 'bin/run file 555', 'data.txt file 444'].sort(), 'read-only, executables kept, nothing writable');
});

t.test('the event loop keeps running while a large tree is copied', async (t) => {
  const root = tmpdir(t, 'mf-deploy-');
  const files: Record<string, string | ((p: string) => void)> = { Procfile: 'web: x\n' };
  const block = Buffer.alloc(8 * 1024 * 1024, 7);
  for (let i = 0; i < 40; i++) files[`blob/${i}.bin`] = (p) => fs.writeFileSync(p, block);
  const src = source(path.join(root, 'app'), files);
  let ticks = 0;
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const started = performance.now();
  const r = await buildSlug({ source: src, slugDir: path.join(root, 'slug'), requester: { uid: NOBODY, gid: NOBODY } });
  const took = performance.now() - started;
  clearInterval(timer);
  t.equal(r.bytes, 40 * block.length + 'web: x\n'.length, '320 MiB copied');
  // a copy on the loop (the old fs.cpSync) gives one gap as long as the whole copy
  t.ok(maxGap < Math.max(250, took / 2), `longest timer gap ${maxGap.toFixed(0)} ms in a ${took.toFixed(0)} ms deploy`);
  t.ok(ticks > 3, `${ticks} timer ticks during the deploy`);
});

/** Runs the slug writer on a hand-made stream; resolves with its exit code and stderr. */
function writeStream(slugDir: string, frames: Buffer[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WRITER, JSON.stringify({ slugDir, limits: { maxBytes: 1000, maxEntries: 20 } })], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => undefined); // the writer may stop reading early
    child.stdin.end(Buffer.concat(frames));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

t.test('the slug writer refuses hostile streams and writes nothing outside the slug', async (t) => {
  const root = tmpdir(t, 'mf-writer-');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(outside);
  const F = SLUG_FRAME;
  const procfile = [slugFrame(F.FILE, { path: 'Procfile', executable: false, size: 5 }), slugFrame(F.DATA, Buffer.from('web: '))];
  const cases: [string, Buffer[], RegExp][] = [
    ['parent traversal', [slugFrame(F.FILE, { path: '../outside/x', executable: false, size: 0 })], /unsafe path/],
    ['absolute path', [slugFrame(F.DIR, { path: `${outside}/d` })], /unsafe path/],
    ['write through a link', [slugFrame(F.SYMLINK, { path: 'l', target: outside }), slugFrame(F.FILE, { path: 'l/x', executable: false, size: 0 })], /its directory is not in the slug/],
    ['file in a directory never sent', [slugFrame(F.FILE, { path: 'nodir/x', executable: false, size: 0 })], /its directory is not in the slug/],
    ['duplicate', [...procfile, slugFrame(F.FILE, { path: 'Procfile', executable: false, size: 0 })], /duplicate entry/],
    ['more data than the size', [slugFrame(F.FILE, { path: 'a', executable: false, size: 1 }), slugFrame(F.DATA, Buffer.from('xy'))], /more data than its size/],
    ['entry inside a file', [slugFrame(F.FILE, { path: 'a', executable: false, size: 3 }), slugFrame(F.DIR, { path: 'd' })], /before the file's last byte/],
    ['over the byte limit', [slugFrame(F.FILE, { path: 'a', executable: false, size: 2000 })], /larger than the slug limit/],
    ['totals that lie', [...procfile, slugFrame(F.END, { files: 2, bytes: 5 })], /totals do not match/],
    ['no end', procfile, /ended early/],
    ['Procfile as a link', [slugFrame(F.SYMLINK, { path: 'Procfile', target: '/etc/shadow' }), slugFrame(F.END, { files: 0, bytes: 0 })], /Procfile is not a regular file/],
    ['unknown frame', [slugFrame(99, {})], /unknown frame kind/],
    ['giant frame header', [Buffer.from([F.DATA, 0xff, 0xff, 0xff, 0xff])], /frame of \d+ bytes/],
    ['truncated frame', [slugFrame(F.DIR, { path: 'd' }).subarray(0, 8)], /inside a frame/],
  ];
  for (const [what, frames, re] of cases) {
    const r = await writeStream(path.join(root, `slug-${what.replace(/\W/g, '-')}`), frames);
    t.equal(r.code, 1, what);
    t.match(r.stderr, re, what);
  }
  t.same(fs.readdirSync(outside), [], 'nothing written outside any slug');
  const good = await writeStream(path.join(root, 'good'), [...procfile, slugFrame(F.END, { files: 1, bytes: 5 })]);
  t.equal(good.code, 0, good.stderr);
});

t.test('through the daemon: the client is the requester (SO_PEERCRED)', async (t) => {
  const d = new TestDaemon(['--socket-group', String(NOBODY)]);
  fs.chmodSync(d.dir, 0o755);
  await d.start();
  t.teardown(async () => {
    await d.stop();
    d.cleanup();
  });
  t.equal((await d.cli('apps:create', 'peer')).code, 0);
  const root = tmpdir(t, 'mf-deploy-');
  const src = source(path.join(root, 'app'), { Procfile: 'web: node index.js\n', 'private.key': (p) => fs.writeFileSync(p, SECRET, { mode: 0o600 }) });
  const refused = await asNobody(['deploy', src, '-a', 'peer'], d.socket);
  t.equal(refused.code, 1, refused.stderr);
  // first line: tap's process-info hook in the child adds its own complaint about the root-owned .tap/
  t.equal(refused.stderr.split('\n')[0], 'manifold: cannot read private.key: permission denied');
  const info = await d.cli('apps:info', '-a', 'peer', '--json');
  t.equal((JSON.parse(info.stdout) as { release: number }).release, 1, 'no release created');
  const linked = source(path.join(root, 'linked'), { 'index.js': 'x' });
  fs.symlinkSync('/etc/shadow', path.join(linked, 'Procfile'));
  const shadow = await asNobody(['deploy', linked, '-a', 'peer'], d.socket);
  t.equal(shadow.code, 1);
  t.match(shadow.stderr, /Procfile is a symbolic link/);
  fs.rmSync(path.join(src, 'private.key'));
  const ok = await asNobody(['deploy', src, '-a', 'peer'], d.socket);
  t.equal(ok.code, 0, ok.stderr);
  const logs = await d.cli('logs', '-a', 'peer', '--source', 'manifold');
  t.match(logs.stdout, /Deploy [0-9a-f]{8}: 1 files, 0\.0 MB/);
  // the release is by the socket's user (uid 65534, named in /etc/passwd); config:set too
  t.equal((await asNobody(['config:set', 'A=1', '-a', 'peer'], d.socket)).code, 0);
  const rels = JSON.parse((await d.cli('releases', '-a', 'peer', '--json')).stdout) as { version: number; by?: string }[];
  t.same(rels.map((x) => [x.version, x.by]), [[3, 'nobody'], [2, 'nobody'], [1, 'root']], 'config:set and deploy by nobody, apps:create by root');

  // progress as the copy goes, for the CLI: NDJSON lines, then the result
  const progress: { files: number; bytes: number }[] = [];
  const rel = await new ApiClient(d.socket).callWithProgress<{ version: number }, { files: number; bytes: number }>('deploy', { app: 'peer', dir: src }, (p) => progress.push(p));
  t.equal(rel.version, 4);
  t.same(progress.at(-1), { files: 1, bytes: 'web: node index.js\n'.length }, 'the last progress line has the totals');
  const failed = await new ApiClient(d.socket).callWithProgress('deploy', { app: 'peer', dir: '/nonexistent' }, () => undefined).catch((e: unknown) => e);
  t.match(failed, { code: 'EDEPLOY', message: 'no such directory: /nonexistent' }, 'an error ends the stream');
});
