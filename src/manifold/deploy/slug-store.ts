/**
 * Content-addressed slugs on disk: `STATE/slugs/<sha256>` (the SlugHasher digest of the tree). A
 * deploy is built into a temporary `slugs/.tmp-<id>` and then moved to its name; when that name is
 * taken, an identical deploy (of this or another app) made it first, so the new copy is dropped and
 * the existing one shared. Releases refer to the slug's path, and a slug is removed only once no
 * release of any app refers to it. Slugs of older daemons (`slugs/<app>/<id>`) stay where they are.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SLUG_NAME } from './slug-archive';

const TEMP_PREFIX = '.tmp-';

/** A fresh path for a slug being built (not created here: the writer makes it, and must make it new). */
export function tempSlugDir(slugRoot: string): string {
  return path.join(slugRoot, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
}

/**
 * Moves a built slug to its content address, or drops it for the identical one already there.
 * Synchronous on purpose: the caller pins the result in the same turn of the event loop, so a
 * concurrent garbage collection cannot remove a slug between "it exists" and "a deploy uses it".
 */
export function placeSlug(tempDir: string, slugRoot: string, sha256: string): { dir: string; reused: boolean } {
  if (!SLUG_NAME.test(sha256)) throw new Error(`not a slug digest: ${sha256}`);
  const dir = path.join(slugRoot, sha256);
  if (!fs.existsSync(dir)) {
    try {
      fs.renameSync(tempDir, dir);
      return { dir, reused: false };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
        fs.rmSync(tempDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  fs.rmSync(tempDir, { recursive: true, force: true });
  return { dir, reused: true };
}

/**
 * Every slug directory under `slugRoot` that is not in use, and every leftover temporary build:
 * `<sha>` slugs, the per-app `<app>/<id>` slugs of older daemons (their app directory too once
 * empty) and `.tmp-*` (a build the daemon did not finish). Removes them; returns what it removed.
 */
export async function collectSlugs(slugRoot: string, inUse: (dir: string) => Promise<boolean>): Promise<string[]> {
  const removed: string[] = [];
  const remove = (p: string): void => {
    fs.rmSync(p, { recursive: true, force: true });
    removed.push(p);
  };
  for (const name of readdir(slugRoot)) {
    const p = path.join(slugRoot, name);
    if (name.startsWith(TEMP_PREFIX)) remove(p);
    else if (SLUG_NAME.test(name)) {
      if (!(await inUse(p))) remove(p);
    } else if (fs.lstatSync(p).isDirectory()) {
      for (const old of readdir(p)) {
        const q = path.join(p, old);
        if (!(await inUse(q))) remove(q);
      }
      if (readdir(p).length === 0) fs.rmdirSync(p);
    }
  }
  return removed;
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
