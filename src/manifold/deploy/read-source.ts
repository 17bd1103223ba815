/**
 * A deploy's source reader: a process of its own, started by the daemon (root), that becomes the
 * requesting user before it touches the deploy directory, then walks it without following any link
 * and streams it to the slug writer (slug-archive.ts frames on stdout).
 *
 * As the user, it can read only what the user can: a `Procfile` symlinked to /etc/shadow fails with
 * EACCES instead of showing root's secrets. It never opens anything but regular files (FIFOs,
 * sockets and devices are reported and left out; opens use O_NOFOLLOW | O_NONBLOCK, and an fstat
 * confirms the kind, so a file swapped for a FIFO after the lstat can't block it either).
 *
 * argv[2]: JSON {dir, uid, gid}. Exit 0 when the whole tree was sent; else one line on stderr, exit 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SLUG_FRAME, slugFrame, MAX_FRAME_BYTES } from './slug-archive';

interface ReaderArgs {
  dir: string;
  uid: number;
  gid: number;
}

class ReadError extends Error {}

/** Becomes uid/gid with the user's supplementary groups; refuses to go on as root for a non-root user. */
function becomeUser(uid: number, gid: number): void {
  if (process.getuid?.() !== 0) {
    if (process.getuid?.() !== uid) throw new ReadError(`reader runs as uid ${process.getuid?.()}, not as the requester (${uid})`);
    return;
  }
  if (uid === 0) return;
  try {
    process.initgroups?.(uid, gid); // the user's groups from the group database, as login would
  } catch {
    process.setgroups?.([gid]); // a uid with no passwd entry: its primary group only
  }
  process.setgid?.(gid);
  process.setuid?.(uid);
  if (process.getuid?.() !== uid || process.geteuid?.() !== uid || process.getegid?.() !== gid) {
    throw new ReadError(`could not become uid ${uid} gid ${gid}`);
  }
}

let out: (buf: Buffer) => Promise<void>;

function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}

function describe(err: unknown, p: string): ReadError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return new ReadError(`cannot read ${p}: permission denied`);
  if (e.code === 'ELOOP') return new ReadError(`${p} changed to a symbolic link while it was read`);
  return new ReadError(`cannot read ${p}: ${e.code ?? e.message}`);
}

/** Data frames of 256 KiB: a few pipe buffers each, well under the writer's frame limit. */
const DATA_CHUNK = Math.min(MAX_FRAME_BYTES, 256 * 1024);

async function sendFile(abs: string, rel: string, expectedMode: number): Promise<number> {
  let fd: number;
  try {
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    throw describe(err, rel);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      await out(slugFrame(SLUG_FRAME.SKIPPED, { path: rel, kind: kindOf(st) }));
      return 0;
    }
    const size = st.size;
    await out(slugFrame(SLUG_FRAME.FILE, { path: rel, executable: (expectedMode & 0o100) !== 0, size }));
    const buf = Buffer.allocUnsafe(DATA_CHUNK);
    let sent = 0;
    while (sent < size) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, Math.min(DATA_CHUNK, size - sent), null);
      } catch (err) {
        throw describe(err, rel);
      }
      if (n === 0) throw new ReadError(`${rel} shrank while it was read`);
      await out(slugFrame(SLUG_FRAME.DATA, buf.subarray(0, n))); // slugFrame copies
      sent += n;
    }
    return size;
  } finally {
    fs.closeSync(fd);
  }
}

async function walk(root: string, rel: string, totals: { files: number; bytes: number }): Promise<void> {
  let names: string[];
  const absDir = rel ? path.join(root, rel) : root;
  try {
    names = fs.readdirSync(absDir).sort();
  } catch (err) {
    throw describe(err, rel || '.');
  }
  for (const name of names) {
    if (name === '.git') continue; // history is not part of a slug
    const relPath = rel ? `${rel}/${name}` : name;
    const abs = path.join(absDir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch (err) {
      throw describe(err, relPath);
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = fs.readlinkSync(abs);
      } catch (err) {
        throw describe(err, relPath);
      }
      await out(slugFrame(SLUG_FRAME.SYMLINK, { path: relPath, target }));
    } else if (st.isDirectory()) {
      await out(slugFrame(SLUG_FRAME.DIR, { path: relPath }));
      await walk(root, relPath, totals);
    } else if (st.isFile()) {
      totals.bytes += await sendFile(abs, relPath, st.mode);
      totals.files++;
    } else {
      await out(slugFrame(SLUG_FRAME.SKIPPED, { path: relPath, kind: kindOf(st) }));
    }
  }
}

/** The deploy directory as the user sees it; a link to a directory is followed here, once, as the user. */
function sourceRoot(dir: string): string {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ReadError(e.code === 'ENOENT' ? `no such directory: ${dir}` : `cannot open ${dir}: ${e.code === 'EACCES' ? 'permission denied' : e.code}`);
  }
  if (!fs.statSync(real).isDirectory()) throw new ReadError(`not a directory: ${dir}`);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path.join(real, 'Procfile'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw e.code === 'ENOENT' ? new ReadError(`no Procfile in ${dir}`) : describe(err, 'Procfile');
  }
  if (st.isSymbolicLink()) throw new ReadError('Procfile is a symbolic link: a deploy needs it as a regular file');
  if (!st.isFile()) throw new ReadError(`Procfile is a ${kindOf(st)}, not a regular file`);
  return real;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ReaderArgs;
  becomeUser(args.uid, args.gid);
  const stdout = process.stdout;
  out = (buf) =>
    new Promise<void>((resolve, reject) => {
      if (stdout.write(buf)) resolve();
      else {
        const onError = (e: Error): void => reject(e);
        stdout.once('error', onError);
        stdout.once('drain', () => {
          stdout.off('error', onError);
          resolve();
        });
      }
    });
  const root = sourceRoot(args.dir);
  const totals = { files: 0, bytes: 0 };
  await walk(root, '', totals);
  await out(slugFrame(SLUG_FRAME.END, totals));
}

main().then(
  () => process.stdout.end(),
  (err: unknown) => {
    process.stderr.write(`${err instanceof ReadError ? err.message : `reading the source failed: ${(err as Error).message}`}\n`);
    process.exit(1);
  },
);
