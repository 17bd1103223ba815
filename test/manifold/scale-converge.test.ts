/**
 * Scaling converges on a real daemon (issue 9: 5): web=3, web=1, web=3 within the stop grace of an
 * app that takes 3 s to exit after SIGTERM, then rounds of ten concurrent `ps:scale` calls. Once
 * the dust settles, ps shows exactly the formation, all up, and the daemon's cgroup subtree has
 * exactly one leaf per dyno of the formation (no stopped dyno left behind, none missing).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { leakScope, leftoverCgroups } from '../runtime/helpers/leaks';
import type { AppInfo } from '../../src/manifold/api/protocol';
import { TestDaemon, waitFor, type PsJson } from './helpers/daemon';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (real daemon and dynos)');
  process.exit(0);
}

const d = new TestDaemon(['--stop-grace', '6s', '--boot-timeout', '20s']);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-conv-'));
const APP = 'conv';

// A web app that ignores SIGTERM for 3 s (then exits by itself, within the 6 s grace).
const SERVER = `'use strict';
const server = require('node:http').createServer((req, res) => res.end(process.env.DYNO + '\\n'));
server.listen(Number(process.env.PORT));
process.on('SIGTERM', () => setTimeout(() => process.exit(0), 3000));
`;

async function ps(): Promise<PsJson['dynos']> {
  const r = await d.cli('ps', '-a', APP, '--json');
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as PsJson).dynos;
}

/** Dyno names of the cgroup leaves under the daemon's subtree (a leaf is `<dyno>-<random>`). */
function leaves(): string[] {
  const scope = leakScope({ cgroupRoot: d.cgroupRoot, runDir: d.runDir });
  return leftoverCgroups(scope).map((p) => path.basename(p).replace(/-[0-9a-f]+$/, '')).sort();
}

function names(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `web.${i + 1}`).sort();
}

/** Waits until ps lists exactly web.1..web.n, all up, and the cgroup has exactly their leaves. */
async function converged(n: number, what: string): Promise<void> {
  const want = names(n).join(' ');
  let last = '';
  try {
    await waitFor(what, async () => {
      const dynos = await ps();
      const listed = dynos.map((x) => x.name).sort().join(' ');
      const up = dynos.every((x) => x.state === 'up');
      const leafs = leaves().join(' ');
      last = `ps [${dynos.map((x) => `${x.name} ${x.state}`).join(', ')}], cgroup leaves [${leafs}]`;
      return (listed === want && up && leafs === want) || undefined;
    }, 30_000, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}: want [${want}], last seen ${last}`);
  }
}

async function scale(...args: string[]): Promise<void> {
  const r = await d.cli('ps:scale', ...args, '-a', APP);
  // concurrent relative changes may ask for less than 0: refused, which is fine here
  if (r.code !== 0 && !/below 0/.test(r.stderr)) throw new Error(`ps:scale ${args.join(' ')}: ${r.stderr}`);
}

async function formationOfWeb(): Promise<number> {
  const r = await d.cli('apps:info', '-a', APP, '--json');
  return (JSON.parse(r.stdout) as AppInfo).formation.find((f) => f.type === 'web')?.quantity ?? 0;
}

t.before(async () => {
  await d.start();
  fs.writeFileSync(path.join(dir, 'Procfile'), 'web: node server.js\n');
  fs.writeFileSync(path.join(dir, 'server.js'), SERVER);
  if ((await d.cli('apps:create', APP)).code !== 0) throw new Error('apps:create');
  const r = await d.cli('deploy', dir, '-a', APP);
  if (r.code !== 0) throw new Error(`deploy: ${r.stderr}`);
});

t.teardown(async () => {
  await d.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  d.cleanup();
});

t.test('web=3, web=1, web=3 within the grace: three dynos run, ps and the cgroup agree', async (t) => {
  await scale('web=3');
  await converged(3, 'three web dynos');
  const before = await ps();
  await scale('web=1');
  await scale('web=3');
  t.same((await ps()).map((x) => x.name), names(3), 'ps lists three at once');
  // the two scaled away still run (3 s to exit): five leaves for a while, then three
  t.ok(leaves().length >= 3, 'the stopping dynos are still there');
  await converged(3, 'three web dynos again');
  const after = await ps();
  t.equal(after.find((x) => x.name === 'web.1')?.pid, before.find((x) => x.name === 'web.1')?.pid, 'web.1 was never touched');
  t.notSame(after.find((x) => x.name === 'web.2')?.pid, before.find((x) => x.name === 'web.2')?.pid, 'web.2 is a new dyno');
  const log = (await d.cli('logs', '-a', APP, '-n', '1500', '--dyno', 'web.2')).stdout;
  t.match(log, /State changed from up to down\n(?:.*\n)*?.*State changed from down to starting\n(?:.*\n)*?.*Process exited with status 0/, 'restarted before the old one exited');
});

t.test('rounds of ten concurrent ps:scale calls converge to the formation they leave', async (t) => {
  // The order the calls land in decides the formation, read back from the store. A round whose
  // calls scale below what follows (web=0 lands at some point) and a sequential web=4 right after
  // it, within the 3 s the stopped dynos take, revives slots still stopping whatever the order;
  // ±1 rounds from 4 end at 4 or 5 (a -1 at 0 is refused).
  const mixed = ['web=0', 'web=4', 'web+1', 'web=2', 'web-1', 'web=1', 'web=3', 'web+2', 'web=0', 'web=2'];
  const plusMinus = [...Array<string>(5).fill('web+1'), ...Array<string>(5).fill('web-1')];
  const rounds: { from?: string; round: string[]; then?: string }[] = [
    { round: mixed },
    { round: mixed, then: 'web=4' },
    { from: 'web=4', round: plusMinus },
    { round: plusMinus, then: 'web=5' },
  ];
  for (const [i, { from, round, then }] of rounds.entries()) {
    if (from !== undefined) await scale(from);
    await Promise.all(round.map((arg) => scale(arg)));
    if (then !== undefined) await scale(then);
    const n = await formationOfWeb();
    await converged(n, `round ${i + 1}: web=${n}`);
    t.pass(`round ${i + 1}: exactly web=${n} runs (${[from, round.join(' '), then].filter(Boolean).join(' | ')})`);
  }
  await scale('web=0');
  await converged(0, 'nothing');
  t.same(leaves(), [], 'no dyno cgroup left');
});
