/**
 * The pre-receive hook on its own (src/git/hook.ts): a bare repository with the hook the daemon
 * writes, root pushing to its path, and a fake control socket answering `build` as the test says.
 * Checks what the build is given, the lines relayed in order, each refusal's message, that a
 * rejected push updates no ref, and that the exported tree is always removed. No daemon, no dynos.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../manifold/helpers/daemon';
import { gitIn } from './helpers/git-env';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-githook-'));
const state = path.join(work, 'state');
const socket = path.join(work, 'api.sock');
const tmpRoot = path.join(state, 'git/tmp');
const HOOK = path.join(ROOT, 'dist/src/git/hook.js');

function bareRepo(app: string): string {
  const repo = path.join(state, 'git/repos', `${app}.git`);
  execFileSync('git', ['init', '--bare', '-q', '--initial-branch=main', repo]);
  fs.writeFileSync(path.join(repo, 'hooks/pre-receive'), `#!/bin/sh\nexec '${process.execPath}' '${HOOK}' '${app}' '${socket}' '${state}'\n`, { mode: 0o755 });
  return repo;
}

interface Call {
  method: string;
  params: Record<string, unknown>;
  files: string[];
}
type Answer = (params: Record<string, unknown>, res: http.ServerResponse) => void;
const calls: Call[] = [];
let answer: Answer = () => undefined;

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const params = JSON.parse(body || '{}') as Record<string, unknown>;
    const dir = typeof params.dir === 'string' ? params.dir : '';
    calls.push({ method: req.url ?? '', params, files: dir && fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [] });
    if (req.url === '/v1/apps:info') {
      res.end(JSON.stringify({ result: { url: 'http://hello.test/' } }));
      return;
    }
    answer(params, res);
  });
});

const ndjson = (res: http.ServerResponse, ...lines: unknown[]): void => {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const l of lines) res.write(`${JSON.stringify(l)}\n`);
  res.end();
};
const released = { version: 7, description: 'Build abc', createdAt: 0, current: true, slugBytes: 1, buildMs: 5, buildpacks: ['procfile'] };

const src = path.join(work, 'src');
const git = gitIn(src);
const head = async (): Promise<string> => (await git('rev-parse', 'HEAD')).stdout.trim();
const ref = (repo: string, branch: string): string | undefined => {
  try {
    return execFileSync('git', ['--git-dir', repo, 'rev-parse', '--verify', '-q', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
};

t.before(async () => {
  await new Promise<void>((r) => server.listen(socket, r));
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'Procfile'), 'web: node server.js\n');
  fs.writeFileSync(path.join(src, 'server.js'), '// v1\n');
  await git('init', '-q', '-b', 'main');
  await git('add', '.');
  await git('commit', '-qm', 'v1');
});

t.teardown(() => {
  server.close();
  fs.rmSync(work, { recursive: true, force: true });
});

t.test('a push builds the exported tree of the pushed commit, relays the lines in order, then updates the ref', async (t) => {
  const repo = bareRepo('hello');
  calls.length = 0;
  answer = (_p, res) => ndjson(res, { progress: { line: '-----> Building on the Manifold stack' } }, { progress: { line: '       step two' } }, { progress: { line: '       Released v7' } }, { result: released });
  const r = await git('push', repo, 'main');
  t.equal(r.code, 0, r.stderr);
  const build = calls.find((c) => c.method === '/v1/build')!;
  t.same(build.files, ['Procfile', 'server.js'], 'the tree was there during the build');
  t.match(build.params, { app: 'hello', version: await head(), user: 'root (local push)', progress: true });
  t.equal(build.params.by, undefined, 'a local push claims no author: the daemon takes the socket\'s user');
  t.ok(String(build.params.dir).startsWith(`${tmpRoot}/hello-`), 'exported under STATE/git/tmp');
  t.notOk(fs.existsSync(String(build.params.dir)), 'and removed after');
  t.match(r.stderr, /remote: -----> Building on the Manifold stack\s*\nremote: {8}step two\s*\nremote: {8}Released v7/);
  t.notMatch(r.stderr, /Launching/, 'the build printed Released: the hook adds nothing');
  t.equal(ref(repo, 'main'), await head());
});

t.test('EBUILDBUSY, a failed build and no daemon: push rejected with a clear line, ref and tmp unchanged', async (t) => {
  const repo = path.join(state, 'git/repos/hello.git');
  const before = ref(repo, 'main');
  fs.writeFileSync(path.join(src, 'server.js'), '// v2\n');
  await git('commit', '-qam', 'v2');
  answer = (_p, res) => ndjson(res, { error: { code: 'EBUILDBUSY', message: 'a build of hello is already running' } });
  let r = await git('push', repo, 'main');
  t.not(r.code, 0);
  t.match(r.stderr, /remote: {2}! {5}Push rejected to hello\.\s*\nremote: {2}! {5}another build of hello is running \(not started by a push, or from before this one waited\); push again once it has finished/);
  t.equal(ref(repo, 'main'), before, 'ref unchanged');

  answer = (_p, res) => ndjson(res, { progress: { line: '-----> About to fail' } }, { error: { code: 'EBUILDFAILED', message: 'compile failed (exit 3)' } });
  r = await git('push', repo, 'main');
  t.not(r.code, 0);
  t.match(r.stderr, /About to fail[\s\S]*Push rejected to hello\.[\s\S]*compile failed \(exit 3\)/);
  t.match(r.stderr, /\[remote rejected\] main -> main \(pre-receive hook declined\)/);
  t.equal(ref(repo, 'main'), before, 'ref unchanged');

  server.close();
  r = await git('push', repo, 'main');
  t.not(r.code, 0);
  t.match(r.stderr, /Push rejected to hello\.\s*\nremote:  ! {5}the manifold daemon is not running/);
  t.equal(ref(repo, 'main'), before, 'ref unchanged');
  t.same(fs.readdirSync(tmpRoot), [], 'no exported tree left');
  await new Promise<void>((res) => server.listen(socket, res));
});

t.test('master pushed first becomes the deploy branch; main is then refused', async (t) => {
  const repo = bareRepo('legacy');
  answer = (_p, res) => ndjson(res, { result: released });
  const r = await git('push', repo, 'main:master');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /remote: -----> Launching\.\.\.\s*\nremote: {8}Released v7\s*\nremote: {8}http:\/\/hello\.test\/ deployed to Manifold/, 'the hook says it when the build did not');
  t.equal(execFileSync('git', ['--git-dir', repo, 'symbolic-ref', 'HEAD'], { encoding: 'utf8' }).trim(), 'refs/heads/master');
  const main = await git('push', repo, 'main');
  t.not(main.code, 0);
  t.match(main.stderr, /legacy deploys only its master branch; refs\/heads\/main was not updated/);
  t.equal(ref(repo, 'main'), undefined);
  const both = await git('push', bareRepo('both'), 'main', 'main:master');
  t.match(both.stderr, /push main or master, not both/);
});
