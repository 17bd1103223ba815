/**
 * git push → serving, for the hello app: a real daemon, a private sshd, N pushes of a one-line change
 * over ssh. Per push: git push's own wall time, push start → the new release answering through the
 * router, and the build's own time (its `built in X s (compile Y s)` line) and, when
 * the build prints one, its compile step. Prints median and spread. Not a tap test (BENCHMARKS.md).
 *
 *   npx tsc -p tsconfig.json && node dist/test/git/bench-push.js [RUNS]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { get, ROOT, TestDaemon, waitFor } from '../manifold/helpers/daemon';
import { gitIn, Sshd } from './helpers/git-env';

const RUNS = Number(process.argv[2] ?? 7);

function writeApp(dir: string, version: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'examples/hello/package.json'), path.join(dir, 'package.json'));
  fs.writeFileSync(path.join(dir, 'Procfile'), 'web: node server.js\n');
  fs.writeFileSync(path.join(dir, 'server.js'), fs.readFileSync(path.join(ROOT, 'examples/hello/server.js'), 'utf8').replace('const body = `Hello from ${dyno}\\n`;', `const body = \`Hello ${version} from \${dyno}\\n\`;`));
}

const stats = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return `median ${(med / 1000).toFixed(2)} s, min ${(s[0]! / 1000).toFixed(2)}, max ${(s[s.length - 1]! / 1000).toFixed(2)}`;
};

async function main(): Promise<void> {
  const user = `mfgit-${randomBytes(3).toString('hex')}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-gitbench-'));
  fs.chmodSync(work, 0o755);
  const d = new TestDaemon(['--boot-timeout', '10s', '--stop-grace', '3s', '--drain', '5s', '--git-user', user, '--git-home', path.join(work, 'home')]);
  const sshd = new Sshd(work, user);
  try {
    await d.start();
    fs.chmodSync(d.dir, 0o711);
    await sshd.start();
    sshd.makeClientKey();
    await d.cli('apps:create', 'hello');
    await d.cli('keys:add', `${sshd.clientKey}.pub`, '--name', 'bench');
    const src = path.join(work, 'src');
    const git = gitIn(src, sshd.sshCommand());
    writeApp(src, 'v0');
    await git('init', '-q', '-b', 'main');
    await git('add', '.');
    await git('commit', '-qm', 'v0');
    await git('remote', 'add', 'manifold', `ssh://${user}@127.0.0.1:${sshd.port}/hello.git`);
    const first = await git('push', 'manifold', 'main');
    if (first.code !== 0) throw new Error(first.stderr);
    await d.cli('ps:scale', 'web=1', '-a', 'hello');
    await waitFor('v0 served', async () => /Hello v0/.test((await get(d.port, 'hello.localhost')).body), 60_000);
    // the transport alone: ssh, git-shell, the git socket, git-upload-pack
    const lsRemote: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = Date.now();
      await git('ls-remote', 'manifold');
      lsRemote.push(Date.now() - t0);
    }
    const push: number[] = [];
    const serve: number[] = [];
    const build: number[] = [];
    const compile: number[] = [];
    const hung = new Set<number>();
    for (let i = 1; i <= RUNS; i++) {
      writeApp(src, `v${i}`);
      await git('commit', '-qam', `v${i}`);
      const t0 = Date.now();
      const pushing = git('push', 'manifold', 'main').then((r) => ({ ...r, ms: Date.now() - t0 }));
      await waitFor(
        `v${i} served`,
        async () => {
          const q0 = Date.now();
          const a = await get(d.port, 'hello.localhost');
          if (Date.now() - q0 > 1000) hung.add(i);
          if (Date.now() - q0 > 1000) process.stdout.write(`  a request took ${Date.now() - q0} ms (status ${a.status}, ${a.body.trim().slice(0, 60)}), sent ${q0 - t0} ms after the push started\n`);
          return new RegExp(`Hello v${i} `).test(a.body);
        },
        120_000,
        20,
      );
      serve.push(Date.now() - t0);
      const r = await pushing;
      if (r.code !== 0) throw new Error(r.stderr);
      push.push(r.ms);
      // the build's summary line: `Slug 1.0K, built in 1.0 s (compile 0.1 s) with procfile`
      const b = /built in ([0-9.]+) s/i.exec(r.stderr);
      if (b) build.push(Number(b[1]) * 1000);
      const c = /\(compile ([0-9.]+) s\)/.exec(r.stderr);
      if (c) compile.push(Number(c[1]) * 1000);
      if (serve[serve.length - 1]! - r.ms > 3000) {
        const logs = await d.cli('logs', '-a', 'hello', '-n', '300');
        const lines = logs.stdout.split('\n').filter((l) => !/ app\[/.test(l)); if (logs.code) process.stdout.write(logs.stderr);
        const slowRouter = lines.filter((l) => l.includes('[router]') && (/service=([0-9]{4,})ms/.test(l) || / status=(5..|0)/.test(l) || /code=H/.test(l)));
        process.stdout.write(`  (slow to serve after the push ended; the app's manifold lines:)\n${lines.filter((l) => !l.includes('[router]')).slice(-15).join('\n')}\n  slow or failed router lines:\n${slowRouter.slice(-10).join('\n')}\n  last router lines:\n${lines.filter((l) => l.includes('[router]')).slice(-4).join('\n')}\n`);
      }
      process.stdout.write(`run ${i}: git push ${r.ms} ms, push→serving ${serve[serve.length - 1]} ms${b ? `, build ${b[1]} s` : ''}${c ? `, compile ${c[1]} s` : ''}\n`);
      if (i === 1) process.stdout.write(`${r.stderr.split('\n').filter((l) => l.startsWith('remote:')).join('\n')}\n`);
    }
    // the same change to the local path (root on the host): no ssh, no git-shell, no git socket
    const local: number[] = [];
    await git('remote', 'add', 'local', path.join(d.dir, 'state/git/repos/hello.git'));
    for (let i = RUNS + 1; i <= RUNS + Math.min(RUNS, 3); i++) {
      writeApp(src, `v${i}`);
      await git('commit', '-qam', `v${i}`);
      const t0 = Date.now();
      const r = await git('push', 'local', 'main');
      if (r.code !== 0) throw new Error(r.stderr);
      local.push(Date.now() - t0);
      await waitFor(`v${i} served`, async () => new RegExp(`Hello v${i} `).test((await get(d.port, 'hello.localhost')).body), 120_000, 20);
    }
    const overhead = build.length === serve.length ? serve.map((s, i) => s - build[i]!) : [];
    const aboveCompile = compile.length === serve.length ? serve.map((s, i) => s - compile[i]!) : [];
    const clean = (xs: number[]): number[] => xs.filter((_, i) => !hung.has(i + 1));
    process.stdout.write(
      [
        `git push → serving (${RUNS} runs, ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}, ${new Date().toISOString()})`,
        `  git ls-remote over ssh (transport alone): ${stats(lsRemote)}`,
        `  git push wall time, ssh:                  ${stats(push)}`,
        `  git push wall time, local path:           ${stats(local)}`,
        `  push start → new release answering:       ${stats(serve)}`,
        build.length ? `  build (as the build prints it):           ${stats(build)}` : '  build time: not reported',
        compile.length ? `  compile step (as the build prints it):    ${stats(compile)}` : '',
        overhead.length ? `  push→serving minus build:                 ${stats(overhead)}` : '',
        aboveCompile.length ? `  push→serving minus compile:               ${stats(aboveCompile)}` : '',
        `  runs where a request hung through the switch (router, not git): ${hung.size} of ${RUNS}${hung.size ? ` (${[...hung].join(', ')})` : ''}`,
        hung.size && clean(serve).length ? `  without those runs: push→serving ${stats(clean(serve))}; minus build ${overhead.length ? stats(clean(overhead)) : '-'}; minus compile ${aboveCompile.length ? stats(clean(aboveCompile)) : '-'}` : '',
      ].filter(Boolean).join('\n') + '\n',
    );
  } finally {
    await sshd.stop();
    await d.stop();
    try {
      execFileSync('userdel', [user], { stdio: 'ignore' });
    } catch {
      /* never made */
    }
    fs.rmSync(work, { recursive: true, force: true });
    d.cleanup();
  }
}

// an exception anywhere still runs main's finally (daemon, sshd and user removed)
process.on('uncaughtException', (err) => {
  process.stderr.write(`${err.stack ?? String(err)}\n`);
  process.exitCode = 1;
});

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
