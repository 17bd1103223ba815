/**
 * Node's compile cache (V8 code cache on disk) for this user: kept in $XDG_CACHE_HOME/manifold or
 * ~/.cache/manifold, a directory of the user's own (0700, checked, never a shared or another user's
 * one: root would otherwise load code cache someone else wrote). Worth it where many modules load
 * (yargs and its ~50 files); the fast path's few small files compile faster than their cache reads.
 */
import fs from 'node:fs';
import { enableCompileCache } from 'node:module';
import os from 'node:os';
import path from 'node:path';

function cacheDir(): string | undefined {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'manifold');
  const home = os.homedir();
  return home ? path.join(home, '.cache', 'manifold') : undefined;
}

/** Enables the cache if its directory is (or can be made) this user's alone; otherwise runs without. */
export function useCompileCache(): void {
  try {
    const dir = cacheDir();
    if (!dir) return;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) return;
    enableCompileCache(dir);
  } catch {
    /* no cache: slower, not wrong */
  }
}
