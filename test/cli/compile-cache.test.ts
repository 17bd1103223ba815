/**
 * The compile cache lives in a directory of the user's own (0700), never in one others can write.
 * Each case runs in a child process: enabling the cache is for the life of a process.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

const MODULE = path.join(__dirname, '../../src/cli/compile-cache.js');

/** The compile cache directory in use after useCompileCache() with this XDG_CACHE_HOME, or '' for none. */
function cacheDirWith(xdg: string): string {
  const script = `require(${JSON.stringify(MODULE)}).useCompileCache(); process.stdout.write(require('node:module').getCompileCacheDir() ?? '')`;
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: xdg };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_OPTIONS;
  return execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-compile-cache-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

t.test('a new directory is made 0700 and used', async (t) => {
  const xdg = path.join(root, 'fresh');
  const dir = cacheDirWith(xdg);
  t.match(dir, new RegExp(`^${path.join(xdg, 'manifold')}/`), 'the cache is under $XDG_CACHE_HOME/manifold');
  t.equal(fs.statSync(path.join(xdg, 'manifold')).mode & 0o777, 0o700, 'mode 0700');
});

t.test('a directory others can write is not used', async (t) => {
  const xdg = path.join(root, 'shared');
  fs.mkdirSync(path.join(xdg, 'manifold'), { recursive: true });
  fs.chmodSync(path.join(xdg, 'manifold'), 0o777);
  t.equal(cacheDirWith(xdg), '', 'no cache');
});

t.test('a symlink is not followed', async (t) => {
  const xdg = path.join(root, 'linked');
  fs.mkdirSync(path.join(root, 'elsewhere'), { mode: 0o700 });
  fs.mkdirSync(xdg);
  fs.symlinkSync(path.join(root, 'elsewhere'), path.join(xdg, 'manifold'));
  t.equal(cacheDirWith(xdg), '', 'no cache');
});
