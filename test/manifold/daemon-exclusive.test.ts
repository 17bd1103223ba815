/**
 * One daemon per state directory and per cgroup subtree; `--socket` never replaces a file that is
 * not a socket (issue 9, item 6). The second daemon exits with one line and changes nothing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { BIN, TestDaemon, waitFor } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root: runs the daemon');
  process.exit(0);
}

interface Exit {
  code: number | null;
  stderr: string;
  /** The second daemon made a cgroup of its own and left it (removed here, after noting it). */
  leftCgroup: boolean;
}

/** A second daemon: must exit by itself (within 20 s) with an error. */
function secondDaemon(args: Record<string, string>): Promise<Exit> {
  const tag = randomBytes(3).toString('hex');
  const all: Record<string, string> = {
    '--state-dir': path.join(os.tmpdir(), `mf-second-${tag}`),
    '--socket': path.join(os.tmpdir(), `mf-second-${tag}.sock`),
    '--cgroup': `manifold-second-${tag}`,
    '--run-dir': `/run/manifold-second-${tag}`,
    '--bridge': `mfbrx${tag}`,
    '--subnet': `10.216.${randomBytes(1)[0]}.0/24`,
    '--listen': '127.0.0.1:0',
    ...args,
  };
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'daemon', ...Object.entries(all).flat()], { timeout: 20_000 }, (err, _stdout, stderr) => {
      // what a refused daemon was pointed at and is ours (never the first daemon's): removed either way
      const own = (flag: string): string | undefined => (args[flag] === undefined ? all[flag] : undefined);
      for (const p of [own('--state-dir'), own('--socket'), own('--run-dir')]) if (p) fs.rmSync(p, { recursive: true, force: true });
      const cgroupName = own('--cgroup');
      // beside the first daemon's subtree (d.cgroupRoot only opens what exists already)
      const cgroupDir = cgroupName ? path.join(path.dirname(d.cgroupRoot), cgroupName) : undefined;
      const leftCgroup = cgroupDir !== undefined && fs.existsSync(cgroupDir);
      if (leftCgroup) fs.rmdirSync(cgroupDir!);
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr, leftCgroup });
    });
  });
}

const d = new TestDaemon();
t.before(async () => {
  await d.start();
  await d.cli('apps:create', 'only');
});
t.teardown(async () => {
  await d.stop('SIGKILL').catch(() => undefined);
  d.cleanup();
});

t.test('a second daemon on the same state directory exits with one line', async (t) => {
  const r = await secondDaemon({ '--state-dir': path.join(d.dir, 'state') });
  t.not(r.code, 0);
  t.match(r.stderr, /another manifold daemon is using the state directory/);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.equal((await d.cli('apps')).code, 0, 'the first daemon still answers');
});

t.test('a second daemon on the same cgroup subtree exits with one line', async (t) => {
  const r = await secondDaemon({ '--cgroup': d.cgroup });
  t.not(r.code, 0);
  t.match(r.stderr, /another manifold daemon is using the cgroup/);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.equal((await d.cli('apps')).code, 0);
});

t.test('--socket naming a file that is not a socket is refused, the file kept', async (t) => {
  const file = path.join(d.dir, 'precious.txt');
  fs.writeFileSync(file, 'keep me');
  const r = await secondDaemon({ '--socket': file });
  t.not(r.code, 0);
  t.match(r.stderr, /exists and is not a socket; refusing to replace it/);
  t.equal(fs.readFileSync(file, 'utf8'), 'keep me');
  t.notOk(r.leftCgroup, 'the refused daemon made no cgroup');
});

t.test('after kill -9 the locks are gone: a new daemon takes over the same state and cgroup', async (t) => {
  await d.stop('SIGKILL');
  await d.start();
  await waitFor('apps answer', async () => (await d.cli('apps')).code === 0);
  t.match((await d.cli('apps')).stdout, /only/);
});
