/**
 * The stream a deploy's source reader sends to the slug writer: frames of [kind u8][length u32 BE]
 * [payload] (the control API's frame layout). The reader runs as the requesting user, so the writer
 * (root) treats every frame as hostile: `checkEntryPath` and `entryFromFrame` are pure and decide
 * what may be created, and the writer keeps the rest (parents exist, sizes add up, limits hold).
 */

import { createHash } from 'node:crypto';

export const SLUG_FRAME = {
  /** JSON {path}: a directory. */
  DIR: 1,
  /** JSON {path, executable, size}: a regular file; DATA frames carry exactly `size` bytes. */
  FILE: 2,
  DATA: 3,
  /** JSON {path, target}: a symbolic link, stored verbatim (resolved inside the dyno, never here). */
  SYMLINK: 4,
  /** JSON {path, kind}: something that is not a file, directory or link (FIFO, socket, device): left out. */
  SKIPPED: 5,
  /** JSON {files, bytes}: the reader is done. */
  END: 6,
} as const;

export type SlugEntry =
  | { kind: 'dir'; path: string }
  | { kind: 'file'; path: string; executable: boolean; size: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'skipped'; path: string; what: string }
  | { kind: 'end'; files: number; bytes: number };

/** Bounds of one slug: Heroku's is 500 MB compressed; an uncompressed tree gets more room. */
export interface SlugLimits {
  maxBytes: number;
  maxEntries: number;
  maxPathBytes: number;
}

export const DEFAULT_SLUG_LIMITS: SlugLimits = {
  maxBytes: 4 * 1024 ** 3,
  maxEntries: 500_000,
  maxPathBytes: 4096,
};

export class SlugArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlugArchiveError';
  }
}

/**
 * A path relative to the slug root: no empty, `.` or `..` component, no leading `/`, no NUL, each
 * component a valid file name. Returns its components.
 */
export function checkEntryPath(p: unknown, limits: SlugLimits = DEFAULT_SLUG_LIMITS): string[] {
  if (typeof p !== 'string' || p === '') throw new SlugArchiveError('entry without a path');
  if (Buffer.byteLength(p) > limits.maxPathBytes) throw new SlugArchiveError(`path longer than ${limits.maxPathBytes} bytes`);
  if (p.includes('\0')) throw new SlugArchiveError(`path with a NUL byte: ${JSON.stringify(p)}`);
  const parts = p.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') throw new SlugArchiveError(`unsafe path: ${JSON.stringify(p)}`);
    if (Buffer.byteLength(part) > 255) throw new SlugArchiveError(`file name longer than 255 bytes in ${JSON.stringify(p)}`);
  }
  return parts;
}

function json(payload: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new SlugArchiveError('malformed entry (not JSON)');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SlugArchiveError('malformed entry (not an object)');
  return v as Record<string, unknown>;
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new SlugArchiveError(`malformed ${what}`);
  return v;
}

/** Decodes one non-DATA frame into an entry; throws SlugArchiveError on anything unexpected. */
export function entryFromFrame(kind: number, payload: Buffer, limits: SlugLimits = DEFAULT_SLUG_LIMITS): SlugEntry {
  const o = json(payload);
  switch (kind) {
    case SLUG_FRAME.DIR:
      checkEntryPath(o.path, limits);
      return { kind: 'dir', path: o.path as string };
    case SLUG_FRAME.FILE: {
      checkEntryPath(o.path, limits);
      if (typeof o.executable !== 'boolean') throw new SlugArchiveError('malformed file entry');
      const size = count(o.size, 'file size');
      if (size > limits.maxBytes) throw new SlugArchiveError(`${o.path as string}: larger than the slug limit`);
      return { kind: 'file', path: o.path as string, executable: o.executable, size };
    }
    case SLUG_FRAME.SYMLINK:
      checkEntryPath(o.path, limits);
      if (typeof o.target !== 'string' || o.target === '' || o.target.includes('\0') || Buffer.byteLength(o.target) > limits.maxPathBytes) {
        throw new SlugArchiveError(`malformed link target for ${o.path as string}`);
      }
      return { kind: 'symlink', path: o.path as string, target: o.target };
    case SLUG_FRAME.SKIPPED:
      checkEntryPath(o.path, limits);
      return { kind: 'skipped', path: o.path as string, what: typeof o.kind === 'string' ? o.kind.slice(0, 32) : 'special file' };
    case SLUG_FRAME.END:
      return { kind: 'end', files: count(o.files, 'file count'), bytes: count(o.bytes, 'byte count') };
    default:
      throw new SlugArchiveError(`unknown frame kind ${kind}`);
  }
}

/** A frame of the stream (the writer's input). */
export function slugFrame(kind: number, payload: Buffer | object): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
  const head = Buffer.alloc(5);
  head.writeUInt8(kind, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Largest frame a writer accepts: a DATA chunk of the reader's size, or one entry's JSON. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * A slug's identity: sha256 over a canonical serialization of what the writer creates, entry by
 * entry in the order received (the reader sends each directory's names sorted, so one tree always
 * gives one order). Entries left out (SKIPPED) are not part of the slug and not hashed. Numbers are
 * big-endian; `str` is a u32 byte length then the UTF-8 bytes:
 *   directory:  'D' str(path)
 *   file:       'F' str(path) u8(executable 1/0) u64(size), then the file's `size` bytes
 *   link:       'L' str(path) str(target)
 * Modes beyond the executable bit, owners and times are normalised by the writer, so they are not
 * part of a slug and not hashed. Identical trees get one slug directory (`slugs/<sha256>`); any
 * changed byte, name, link or executable bit gives another. Changing this format changes every
 * slug's name: old slugs stay valid under their old names, new deploys just stop sharing with them.
 */
export class SlugHasher {
  private readonly h = createHash('sha256');

  private str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b.length, 0);
    this.h.update(n);
    this.h.update(b);
  }

  dir(p: string): void {
    this.h.update('D');
    this.str(p);
  }

  file(p: string, executable: boolean, size: number): void {
    this.h.update('F');
    this.str(p);
    const tail = Buffer.alloc(9);
    tail.writeUInt8(executable ? 1 : 0, 0);
    tail.writeBigUInt64BE(BigInt(size), 1);
    this.h.update(tail);
  }

  data(chunk: Buffer): void {
    this.h.update(chunk);
  }

  symlink(p: string, target: string): void {
    this.h.update('L');
    this.str(p);
    this.str(target);
  }

  /** Hex digest; call once, after the last entry. */
  digest(): string {
    return this.h.digest('hex');
  }
}

/** A slug directory's name: the 64 hex digits of its SlugHasher digest. */
export const SLUG_NAME = /^[0-9a-f]{64}$/;
