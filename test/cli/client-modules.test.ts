/**
 * A client command loads client code only: every app command, run against a stand-in for the
 * daemon's socket, must not load the daemon (src/manifold/ beyond the API's shapes), the router,
 * the runtime, node:sqlite or a native addon; its plain forms not even yargs. Loading those is
 * what made `manifold ps` take ~4× Node's own start.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startFakeApi } from './helpers/fake-api';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/manifold');
const PRELOAD = path.join(__dirname, 'helpers/record-modules.js');

/** The only modules of src/manifold/ a client command may load: the API's shapes and frames. */
const ALLOWED_DAEMON_MODULES = ['dist/src/manifold/api/protocol.js'];

/** The modules of the list that a client command must not load. */
function daemonSide(modules: string[]): string[] {
  return modules.filter((m) => {
    const file = m.startsWith('file://') ? fileURLToPath(m) : m;
    if (file === 'node:sqlite' || file === 'sqlite' || file.endsWith('.node')) return true;
    const rel = path.relative(ROOT, file);
    if (rel.startsWith('dist/src/router/') || rel.startsWith('dist/src/runtime/')) return true;
    return rel.startsWith('dist/src/manifold/') && !ALLOWED_DAEMON_MODULES.includes(rel);
  });
}

const isYargs = (m: string): boolean => m.includes('/node_modules/yargs/') || m.endsWith('/dist/src/cli/yargs-program.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  modules: string[];
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-cli-modules-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
let runs = 0;

/** Runs `node -r record-modules BIN ARGS`, as a user would (no tap hooks in NODE_OPTIONS). */
function run(args: string[], env: Record<string, string>, nodeArgs: string[] = [BIN]): Promise<Run> {
  const log = path.join(dir, `modules-${++runs}.txt`);
  const childEnv: NodeJS.ProcessEnv = { MANIFOLD_MODULE_LOG: log, ...env };
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !(k in childEnv)) childEnv[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, ['-r', PRELOAD, ...nodeArgs, ...args], { env: childEnv, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      const modules = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
      resolve({ code, stdout, stderr, modules });
    });
  });
}

t.test('the recorder sees the daemon when it is loaded', async (t) => {
  // the addon loads on first use, not with daemon.js
  const load = `require(${JSON.stringify(path.join(ROOT, 'dist/src/manifold/daemon.js'))}); require(${JSON.stringify(path.join(ROOT, 'dist/src/runtime/native.js'))}).native()`;
  const r = await run([], {}, ['-e', load]);
  t.equal(r.code, 0, r.stderr);
  const found = daemonSide(r.modules);
  t.ok(found.some((m) => m.endsWith('/dist/src/manifold/daemon.js')), 'daemon.js recorded');
  t.ok(found.includes('node:sqlite'), 'node:sqlite recorded');
  t.ok(found.some((m) => m.endsWith('.node')), 'the native addon recorded');
});

t.test('client commands load no daemon-side module', async (t) => {
  const api = await startFakeApi(path.join(dir, 'api.sock'));
  t.teardown(() => api.close());
  const env = { MANIFOLD_SOCKET: api.socketPath };
  const plain: string[][] = [
    ['--version'],
    ['apps'],
    ['apps:create', 'demo'],
    ['apps:info', '-a', 'demo'],
    ['apps:settings', '-a', 'demo', '--stop-grace', '10'],
    ['deploy', dir, '-a', 'demo'],
    ['releases', '-a', 'demo'],
    ['rollback', 'v1', '-a', 'demo'],
    ['config', '-a', 'demo'],
    ['config:get', 'GREETING', '-a', 'demo'],
    ['config:set', 'A=1', 'B=2', '-a', 'demo'],
    ['config:unset', 'A', '-a', 'demo'],
    ['ps', '-a', 'demo'],
    ['ps', '-a', 'demo', '--json'],
    ['ps:scale', 'web=2', '-a', 'demo'],
    ['restart', 'web', '-a', 'demo'],
    ['ps:stop', 'web.1', '-a', 'demo'],
    ['logs', '-a', 'demo', '-n', '10'],
    ['apps:destroy', 'demo', '--confirm', 'demo'],
  ];
  for (const args of plain) {
    const r = await run(args, env);
    const what = `manifold ${args.join(' ')}`;
    t.equal(r.code, 0, `${what}: exit 0 (${r.stderr.trim()})`);
    t.not(r.stdout, '', `${what}: printed its answer`);
    t.same(daemonSide(r.modules), [], `${what}: no daemon-side module`);
    t.same(r.modules.filter(isYargs), [], `${what}: not even yargs`);
  }

  // help, usage errors and the rarer forms go through yargs: still nothing of the daemon
  const viaYargs: { args: string[]; code: number }[] = [
    { args: ['--help'], code: 0 },
    { args: ['ps', '--help'], code: 0 },
    { args: ['ps', 'extra', '-a', 'demo'], code: 2 },
    { args: ['logs', '-a', 'demo', '-tn', '5'], code: 0 },
    { args: ['up', '--help'], code: 0 },
    { args: ['daemon', '--help'], code: 0 },
  ];
  for (const c of viaYargs) {
    const r = await run(c.args, env);
    const what = `manifold ${c.args.join(' ')}`;
    t.equal(r.code, c.code, `${what}: exit ${c.code} (${r.stderr.trim()})`);
    t.ok(r.modules.some(isYargs), `${what}: through yargs`);
    t.same(daemonSide(r.modules), [], `${what}: no daemon-side module`);
  }
});
