/**
 * git push end to end, as root: a real daemon (child process, real dynos, its router), a private
 * sshd on a loopback port letting the test's git user in with the forced command the daemon writes,
 * real git clients pushing over ssh and to the local path. See docs/git.md.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { get, load, ROOT, TestDaemon, waitFor } from '../manifold/helpers/daemon';
import { gitIn, run, Sshd } from './helpers/git-env';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
  process.exit(0);
}

const USER = `mfgit-${randomBytes(3).toString('hex')}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-git-'));
// the git user must reach the git socket and its home in here (the state dir inside stays 0700)
fs.chmodSync(work, 0o755);
const home = path.join(work, 'home');
const d = new TestDaemon(['--boot-timeout', '5s', '--stop-grace', '3s', '--drain', '5s', '--git-user', USER, '--git-home', home]);
const sshd = new Sshd(work, USER);
const state = path.join(d.dir, 'state');
const repoOf = (app: string): string => path.join(state, 'git/repos', `${app}.git`);
const gitTmp = path.join(state, 'git/tmp');

/** The hello app: Procfile, package.json and a server that says which version it runs. */
function writeApp(dir: string, version: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'examples/hello/package.json'), path.join(dir, 'package.json'));
  fs.writeFileSync(path.join(dir, 'Procfile'), 'web: node server.js\n');
  const server = fs.readFileSync(path.join(ROOT, 'examples/hello/server.js'), 'utf8').replace('const body = `Hello from ${dyno}\\n`;', `const body = \`Hello ${version} from \${dyno}\\n\`;`);
  if (!server.includes(`Hello ${version}`)) throw new Error('examples/hello/server.js changed: update the test');
  fs.writeFileSync(path.join(dir, 'server.js'), server);
}

const host = (app: string): string => `${app}.localhost`;
const body = async (app: string): Promise<string> => (await get(d.port, host(app))).body;
const remoteRef = (app: string, branch = 'main'): string | undefined => {
  try {
    return execFileSync('git', ['--git-dir', repoOf(app), 'rev-parse', '--verify', '-q', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
};

const src = path.join(work, 'src');
let git: ReturnType<typeof gitIn>;
let sshUrl: string;

t.before(async () => {
  await d.start();
  fs.chmodSync(d.dir, 0o711);
  await sshd.start();
  sshd.makeClientKey();
  git = gitIn(src, sshd.sshCommand());
  for (const app of ['hello', 'other']) t.equal((await d.cli('apps:create', app)).code, 0, `apps:create ${app}`);
});

t.teardown(async () => {
  await sshd.stop();
  await d.stop();
  try {
    execFileSync('userdel', [USER], { stdio: 'ignore' });
  } catch {
    /* never made */
  }
  fs.rmSync(work, { recursive: true, force: true });
  d.cleanup();
});

t.test('keys:add refuses a malformed key, a bad name and a duplicate; the state is unchanged', async (t) => {
  const bad = path.join(work, 'bad.pub');
  const keysFile = path.join(state, 'git/keys.json');
  const before = fs.existsSync(keysFile) ? fs.readFileSync(keysFile, 'utf8') : null;
  for (const [text, why] of [
    ['not a key at all\n', /not an OpenSSH public key/],
    ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBroken tester@x\n', /not a valid public key \(ssh-keygen/],
    ['command="sh" ssh-ed25519 AAAA x\n', /options before the key are not accepted/],
    ['-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n', /one public key|private key/],
  ] as const) {
    fs.writeFileSync(bad, text);
    const r = await d.cli('keys:add', bad, '--name', 'bad');
    t.not(r.code, 0, `refused: ${text.slice(0, 30).trim()}`);
    t.match(r.stderr, why);
  }
  const r = await d.cli('keys:add', `${sshd.clientKey}.pub`, '--name', 'no"quote');
  t.not(r.code, 0, 'a name with a quote is refused');
  t.match(r.stderr, /invalid key name/);
  t.equal(fs.existsSync(keysFile) ? fs.readFileSync(keysFile, 'utf8') : null, before, 'keys.json unchanged');
  t.same(JSON.parse((await d.cli('keys', '--json')).stdout), [], 'no key listed');

  const ok = await d.cli('keys:add', `${sshd.clientKey}.pub`, '--name', 'alice');
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /Adding key alice \(SHA256:/);
  const listed = fs.readFileSync(path.join(home, '.ssh/authorized_keys'), 'utf8');
  const dup = await d.cli('keys:add', `${sshd.clientKey}.pub`, '--name', 'alice2');
  t.not(dup.code, 0, 'the same key twice is refused');
  t.match(dup.stderr, /already added, as alice/);
  const dupName = await d.cli('keys:add', sshd.makeClientKey(path.join(work, 'k2'), 'x@y'), '--name', 'alice');
  t.match(dupName.stderr, /a key named alice already exists/);
  t.equal(fs.readFileSync(path.join(home, '.ssh/authorized_keys'), 'utf8'), listed, 'authorized_keys unchanged by the refusals');
  t.match(listed, /^command="\S+\/bin\/manifold git-shell --key alice --git-socket \S+",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,restrict ssh-ed25519 \S+ alice$/m);
  const st = fs.statSync(path.join(home, '.ssh/authorized_keys'));
  t.equal(st.uid, 0, 'authorized_keys is root-owned: the git user cannot add keys');
  t.equal(st.mode & 0o777, 0o644);
  const keys = JSON.parse((await d.cli('keys', '--json')).stdout) as { name: string; apps: string[] | null }[];
  t.same(keys.map((k) => [k.name, k.apps]), [['alice', null]]);
});

t.test('git:remote prints the ssh and local forms and adds a remote', async (t) => {
  const ssh = await d.cli('git:remote', '-a', 'hello', '--host', 'deploy.example.com');
  t.equal(ssh.stdout.trim(), `${USER}@deploy.example.com:hello.git`);
  const withPort = await d.cli('git:remote', '-a', 'hello', '--host', `127.0.0.1:${sshd.port}`);
  t.equal(withPort.stdout.trim(), `ssh://${USER}@127.0.0.1:${sshd.port}/hello.git`);
  const local = await d.cli('git:remote', '-a', 'hello', '--local');
  t.equal(local.stdout.trim(), repoOf('hello'));
  t.not((await d.cli('git:remote', '-a', 'nope')).code, 0, 'unknown app refused');

  writeApp(src, 'v1');
  t.equal((await git('init', '-q', '-b', 'main')).code, 0);
  const add = await run(process.execPath, [path.join(ROOT, 'bin/manifold'), 'git:remote', '-a', 'hello', '--add', '--host', `127.0.0.1:${sshd.port}`], { cwd: src, env: { MANIFOLD_SOCKET: d.socket } });
  t.equal(add.code, 0, add.stderr);
  t.match(add.stdout, /set git remote manifold to ssh:\/\//);
  const addLocal = await run(process.execPath, [path.join(ROOT, 'bin/manifold'), 'git:remote', '-a', 'hello', '--local', '--add', '--remote', 'local'], { cwd: src, env: { MANIFOLD_SOCKET: d.socket } });
  t.equal(addLocal.code, 0, addLocal.stderr);
  t.equal((await git('remote', 'get-url', 'local')).stdout.trim(), repoOf('hello'));
  sshUrl = (await git('remote', 'get-url', 'manifold')).stdout.trim();
});

t.test('first push over ssh: built, released, served through the router', async (t) => {
  await git('add', '.');
  await git('commit', '-qm', 'v1');
  const started = Date.now();
  const r = await git('push', 'manifold', 'main');
  t.equal(r.code, 0, `git push: ${r.stderr}`);
  t.match(r.stderr, /remote: -----> /, 'build lines relayed to the pusher');
  t.match(r.stderr, /remote: {8}Released v2/);
  t.match(r.stderr, /\* \[new branch\] {6}main -> main/);
  t.equal(remoteRef('hello'), (await git('rev-parse', 'HEAD')).stdout.trim(), 'the ref is the pushed commit');
  await d.cli('ps:scale', 'web=1', '-a', 'hello');
  await waitFor('v1 served', async () => /Hello v1 from web\.1/.test(await body('hello')), 20_000);
  t.comment(`first push to serving: ${Date.now() - started} ms`);
  t.same(fs.readdirSync(gitTmp), [], 'the exported tree is gone');
  // the pusher as the git service knows it: the key's name (the hook runs as root and names it)
  const rels = JSON.parse((await d.cli('releases', '-a', 'hello', '--json')).stdout) as { version: number; by?: string }[];
  t.same(rels.map((x) => [x.version, x.by]), [[2, 'key alice'], [1, 'root']], 'v2 by the key, v1 (apps:create) by root');
  t.match((await d.cli('releases', '-a', 'hello')).stdout, /^v2 +Build [0-9a-f]{8} \(.* slug, .*\) +key alice +\d{4}\//m, 'the author column');
});

t.test('a change goes live with no failed request through the router', async (t) => {
  writeApp(src, 'v2');
  await git('commit', '-qam', 'v2');
  const l = load(d.port, host('hello'));
  t.teardown(() => l.stop());
  const r = await git('push', 'manifold', 'main');
  t.equal(r.code, 0, r.stderr);
  await waitFor('v2 served', async () => /Hello v2/.test(await body('hello')), 20_000);
  // a little more load on the new release, then the verdict
  await new Promise((res) => setTimeout(res, 300));
  const res = await l.stop();
  t.ok(res.ok > 10, `${res.ok} requests served during the switch`);
  t.same(res.failures, [], 'no failed request');
});

t.test('a failing build rejects the push: the ref stays, the old release serves', async (t) => {
  const before = remoteRef('hello');
  // the build side's test buildpack that always fails (bin/compile exits 3)
  t.equal((await d.cli('buildpacks:set', path.join(ROOT, 'test/fixtures/buildpacks/fails'), '-a', 'hello')).code, 0);
  fs.writeFileSync(path.join(src, 'server.js'), `${fs.readFileSync(path.join(src, 'server.js'), 'utf8')}// fails\n`);
  await git('commit', '-qam', 'built by a failing buildpack');
  let r = await git('push', 'manifold', 'main');
  t.not(r.code, 0, 'git push fails');
  t.match(r.stderr, /remote: -----> About to fail/, "the buildpack's own lines reach the pusher");
  t.match(r.stderr, /remote: {2}! {5}Push rejected to hello\./);
  t.match(r.stderr, /\[remote rejected\] main -> main \(pre-receive hook declined\)/);
  t.equal(remoteRef('hello'), before, 'the ref is not updated');
  t.match(await body('hello'), /Hello v2/, 'v2 still serving');
  t.equal((await d.cli('buildpacks:clear', '-a', 'hello')).code, 0);

  // no Procfile and a broken server: the procfile buildpack's build fails too
  fs.rmSync(path.join(src, 'Procfile'));
  fs.writeFileSync(path.join(src, 'server.js'), 'this is not javascript (\n');
  await git('commit', '-qam', 'broken');
  r = await git('push', 'manifold', 'main');
  t.not(r.code, 0, 'git push fails');
  t.match(r.stderr, /Push rejected to hello\./);
  t.equal(remoteRef('hello'), before, 'the ref is not updated');
  t.match(await body('hello'), /Hello v2/, 'v2 still serving');
  t.same(fs.readdirSync(gitTmp), [], 'the exported tree is gone');
  await git('reset', '-q', '--hard', 'HEAD~2');
});

t.test('a push to another branch is refused and creates no ref', async (t) => {
  const r = await git('push', 'manifold', 'HEAD:refs/heads/feature');
  t.not(r.code, 0);
  t.match(r.stderr, /hello deploys only its main branch; refs\/heads\/feature was not updated/);
  t.equal(remoteRef('hello', 'feature'), undefined, 'no feature branch');
  const tag = await git('push', 'manifold', 'HEAD:refs/tags/v1');
  t.not(tag.code, 0, 'a tag is refused too');
  const del = await git('push', 'manifold', ':main');
  t.not(del.code, 0, 'deleting main is refused');
  t.ok(remoteRef('hello'), 'main is still there');
});

t.test('git push -f to the local path (root on the host) rewrites and deploys', async (t) => {
  writeApp(src, 'v3');
  await git('commit', '-q', '--amend', '-am', 'v3 instead of v2');
  const plain = await git('push', 'local', 'main');
  t.not(plain.code, 0, 'a non-fast-forward push without -f is refused by git');
  const r = await git('push', '-f', 'local', 'main');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /\+ \w+\.\.\.\w+ main -> main \(forced update\)/);
  t.equal(remoteRef('hello'), (await git('rev-parse', 'HEAD')).stdout.trim());
  await waitFor('v3 served', async () => /Hello v3/.test(await body('hello')), 20_000);
  t.pass('v3 serving');
  // no key on a local push: by the hook's own user, root, as the daemon reads it from the socket
  const rels = JSON.parse((await d.cli('releases', '-a', 'hello', '--json')).stdout) as { description: string; by?: string }[];
  t.equal(rels[0]!.by, 'root', `${rels[0]!.description} by root`);
});

t.test('a key limited to one app cannot push to another', async (t) => {
  const bobKey = path.join(work, 'bob');
  const add = await d.cli('keys:add', sshd.makeClientKey(bobKey, 'bob@laptop'), '--app', 'other');
  t.equal(add.code, 0, add.stderr);
  t.match(add.stdout, /Adding key bob@laptop .* for other/);
  const bob = gitIn(src, sshd.sshCommand(bobKey));
  const r = await bob('push', sshUrl, 'main');
  t.not(r.code, 0);
  t.match(r.stderr, /manifold: key bob@laptop may not push to hello \(it is limited to other\)/);
  const ok = await bob('ls-remote', sshUrl.replace('/hello.git', '/other.git'));
  t.equal(ok.code, 0, `bob may fetch from other: ${ok.stderr}`);
  const clone = path.join(work, 'clone-other');
  const cl = await bob('clone', '-q', sshUrl.replace('/hello.git', '/other.git'), clone);
  t.equal(cl.code, 0, `bob may clone other (git-upload-pack): ${cl.stderr}`);
  const gone = await bob('ls-remote', sshUrl.replace('/hello.git', '/nope.git'));
  t.match(gone.stderr, /key bob@laptop may not push to nope|no such app/);
  const alice = await git('ls-remote', sshUrl.replace('/hello.git', '/nope.git'));
  t.match(alice.stderr, /manifold: no such app: nope/, 'an unknown app is named');
  t.equal((await d.cli('keys:remove', 'bob@laptop')).code, 0);
  const removed = await bob('ls-remote', sshUrl.replace('/hello.git', '/other.git'));
  t.not(removed.code, 0, 'a removed key is refused by sshd');
});

t.test('hostile commands over ssh and to git-shell are refused', async (t) => {
  const ssh = (cmd: string): Promise<{ code: number; stderr: string }> =>
    run('ssh', [...sshd.sshCommand().split(' ').slice(1), `${USER}@127.0.0.1`, cmd]);
  for (const cmd of ['ls', "git-receive-pack '../x.git'", "git-receive-pack 'hello.git'; rm -rf /", 'git-upload-archive hello.git', "git-receive-pack 'hello.git' && id"]) {
    const r = await ssh(cmd);
    t.not(r.code, 0, `refused over ssh: ${cmd}`);
    t.match(r.stderr, /manifold: refused '.*': only git push and git fetch of APP\.git are allowed here/);
  }
  const shell = await ssh('');
  t.match(shell.stderr, /gives no shell/, 'no interactive shell');
  const gitSocket = path.join(d.dir, 'git.sock');
  for (const cmd of ['ls', "git-receive-pack '../x.git'", "git-receive-pack 'hello.git'; rm -rf /", "git-receive-pack '/etc/passwd'", "git-receive-pack 'hello.git'\nid"]) {
    const r = await run(process.execPath, [path.join(ROOT, 'bin/manifold'), 'git-shell', '--key', 'alice', '--git-socket', gitSocket], { env: { SSH_ORIGINAL_COMMAND: cmd } });
    t.equal(r.code, 1, `git-shell refuses ${JSON.stringify(cmd)}`);
    t.match(r.stderr, /refused/);
  }
  const login = await run(process.execPath, [path.join(ROOT, 'bin/manifold'), '-c', 'bash -i']);
  t.equal(login.code, 1, 'the login shell runs nothing but git-shell');
  t.ok(fs.existsSync('/etc/passwd'), 'still here');
});

t.test('the git user reaches no daemon method: only git sessions, checked by the daemon', async (t) => {
  const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
  const asUser = (args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, args, { uid, gid, env: { PATH: process.env.PATH ?? '', ...env }, cwd: '/' }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
      });
    });
  const api = await asUser([path.join(ROOT, 'bin/manifold'), 'apps'], { MANIFOLD_SOCKET: d.socket });
  t.equal(api.code, 77, 'the control socket is not the git user\'s');
  const gitSocket = path.join(d.dir, 'git.sock');
  // raw requests on the git socket: anything but a git session header is refused with one error frame
  const probe = `const net=require('net');const [sock,msg]=process.argv.slice(1);const s=net.connect(sock,()=>s.write(msg));let b=Buffer.alloc(0);s.on('data',d=>b=Buffer.concat([b,d]));s.on('close',()=>{console.log(JSON.stringify({type:b[0],text:b.subarray(5).toString()}))})`;
  for (const [msg, why] of [
    ['POST /v1/apps HTTP/1.1\r\nHost: x\r\n\r\n', /bad session header/],
    [`${JSON.stringify({ service: 'info', app: 'hello', key: 'alice' })}\n`, /service not allowed/],
    [`${JSON.stringify({ service: 'git-receive-pack', app: '../x', key: 'alice' })}\n`, /invalid app name/],
    [`${JSON.stringify({ service: 'git-receive-pack', app: 'hello', key: 'mallory' })}\n`, /key mallory is not \(or no longer\) allowed/],
  ] as const) {
    const r = await asUser(['-e', probe, gitSocket, msg]);
    const got = JSON.parse(r.stdout || '{}') as { type?: number; text?: string };
    t.equal(got.type, 15, `one ERROR frame for ${msg.slice(0, 40).trim()}`);
    t.match(got.text ?? '', why);
  }
});

t.test('concurrent pushes to one app never interleave: the second waits, then is refused cleanly', async (t) => {
  const other = path.join(work, 'src2');
  execFileSync('git', ['clone', '-q', repoOf('hello'), other]);
  const git2 = gitIn(other, sshd.sshCommand());
  writeApp(src, 'v4');
  await git('commit', '-qam', 'v4');
  writeApp(other, 'v5');
  await git2('commit', '-qam', 'v5');
  const [a, b] = await Promise.all([git('push', 'manifold', 'main'), (async () => {
    await new Promise((r) => setTimeout(r, 150));
    return git2('push', sshUrl, 'main');
  })()]);
  const results = [a, b];
  const won = results.filter((r) => r.code === 0);
  const lost = results.filter((r) => r.code !== 0);
  t.equal(won.length, 1, `one push deployed: ${a.code} ${b.code}\n${a.stderr}\n${b.stderr}`);
  t.equal(lost.length, 1, 'the other was refused');
  t.match(lost[0]?.stderr ?? '', /Waiting for another push to hello to finish/);
  t.match(lost[0]?.stderr ?? '', /main of hello changed while this push waited/);
  t.notMatch(lost[0]?.stderr ?? '', /Released v/, 'the refused push built nothing');
  const winner = won[0] === a ? 'v4' : 'v5';
  await waitFor(`${winner} served`, async () => new RegExp(`Hello ${winner}`).test(await body('hello')), 20_000);
  t.pass(`${winner} serving`);
  t.same(fs.readdirSync(gitTmp), [], 'no exported tree left');
});

t.test('apps:destroy removes the app\'s repository', async (t) => {
  t.ok(fs.existsSync(repoOf('other')), 'other has a repository (made by its first session)');
  const r = await d.cli('apps:destroy', 'other', '--confirm', 'other');
  t.equal(r.code, 0, r.stderr);
  t.notOk(fs.existsSync(repoOf('other')), 'gone with the app');
});

t.test('nothing leaks', async (t) => {
  await sshd.stop();
  t.same(sshd.leftovers(), [], 'no sshd process left');
  t.equal(fs.readdirSync(gitTmp).length, 0, 'no temporary tree');
  await d.stop();
  t.notOk(fs.existsSync(path.join(d.dir, 'git.sock')), 'git socket removed');
  execFileSync('userdel', [USER]);
  t.throws(() => execFileSync('getent', ['passwd', USER], { stdio: 'ignore' }), 'the test\'s git user is gone');
  t.throws(() => execFileSync('getent', ['group', USER], { stdio: 'ignore' }), 'and its group');
  // d.cgroupRoot opens (mkdir -p) the subtree: its path is taken once
  const root = d.cgroupRoot;
  const leftovers = fs.readdirSync(root).filter((n) => !n.startsWith('cgroup.') && fs.statSync(path.join(root, n)).isDirectory());
  t.same(leftovers, [], 'no dyno cgroup left (build dynos included)');
  d.cleanup();
  t.notOk(fs.existsSync(root), `the daemon's cgroup subtree is gone (${root})`);
  t.notOk(fs.existsSync(d.runDir), 'its run directory is gone');
  t.notOk(fs.existsSync(d.dir), 'its state directory (repositories, keys, locks) is gone');
  t.same(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('manifold-key-')), [], 'no key checked by ssh-keygen left in the temp dir');
  if (sshd.madeRunSshd) t.notOk(fs.existsSync('/run/sshd'), 'the /run/sshd this test made is gone');
});
