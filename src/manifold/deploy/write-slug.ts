/**
 * A deploy's slug writer: a process of its own (root) that turns the source reader's stream
 * (stdin, slug-archive.ts frames) into the slug directory. The stream comes from a process the
 * requesting user controls, so nothing in it is trusted:
 *   - every path is checked (checkEntryPath) and its parent must be a directory this writer made;
 *   - files are created O_EXCL | O_NOFOLLOW, and links are made only after every file and directory,
 *     so no write can pass through a link;
 *   - sizes must add up, and the slug's bytes, entries and frame sizes are bounded;
 *   - modes are normalised (readable by all, executable if the source was, never setuid or writable):
 *     a slug is an immutable copy.
 * The root Procfile must be a regular file of the stream; its text is the result.
 *
 * While writing it hashes what it creates (SlugHasher), so the daemon can name the slug by its content.
 *
 * argv[2]: JSON {slugDir, limits}. stdout: NDJSON {progress:{files,bytes}}… then {done:{…, sha256}}.
 * Any failure: one line on stderr, exit 1 (the daemon removes the partial slug).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SLUG_LIMITS, entryFromFrame, MAX_FRAME_BYTES, SLUG_FRAME, SlugArchiveError, SlugHasher, type SlugLimits } from './slug-archive';

interface WriterArgs {
  slugDir: string;
  limits?: Partial<SlugLimits>;
}

export interface SlugWriteResult {
  files: number;
  bytes: number;
  /** The first few entries left out (FIFOs, sockets, devices), and how many there were. */
  skipped: string[];
  skippedCount: number;
  procfile: string;
  /** The slug's content address (SlugHasher in slug-archive.ts), computed as it was written. */
  sha256: string;
}

const MAX_PROCFILE_BYTES = 64 * 1024;
const MAX_SKIPPED_LISTED = 20;
const PROGRESS_EVERY_MS = 500;

class SlugWriter {
  private readonly dirs = new Set<string>(['']);
  private readonly created = new Set<string>();
  private readonly links: { path: string; target: string }[] = [];
  private readonly skipped: string[] = [];
  private skippedCount = 0;
  private file: { fd: number; path: string; left: number } | undefined;
  private files = 0;
  private bytes = 0;
  private entries = 0;
  private ended = false;
  private lastProgress = Date.now();
  private readonly hash = new SlugHasher();

  constructor(private readonly root: string, private readonly limits: SlugLimits) {}

  private abs(rel: string): string {
    return path.join(this.root, rel);
  }

  private claim(rel: string): void {
    if (this.ended) throw new SlugArchiveError('entry after the end of the stream');
    if (this.file) throw new SlugArchiveError(`${this.file.path}: entry before the file's last byte`);
    if (++this.entries > this.limits.maxEntries) throw new SlugArchiveError(`more than ${this.limits.maxEntries} files and directories`);
    if (this.created.has(rel)) throw new SlugArchiveError(`duplicate entry: ${rel}`);
    const parent = path.posix.dirname(rel);
    if (!this.dirs.has(parent === '.' ? '' : parent)) throw new SlugArchiveError(`${rel}: its directory is not in the slug`);
    this.created.add(rel);
  }

  onFrame(kind: number, payload: Buffer): void {
    if (kind === SLUG_FRAME.DATA) return this.onData(payload);
    const entry = entryFromFrame(kind, payload, this.limits);
    switch (entry.kind) {
      case 'dir':
        this.claim(entry.path);
        fs.mkdirSync(this.abs(entry.path), { mode: 0o700 });
        this.hash.dir(entry.path);
        this.dirs.add(entry.path);
        break;
      case 'file': {
        this.claim(entry.path);
        const mode = entry.executable ? 0o555 : 0o444;
        const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
        this.file = { fd: fs.openSync(this.abs(entry.path), flags, mode), path: entry.path, left: entry.size };
        this.files++;
        this.hash.file(entry.path, entry.executable, entry.size);
        if (entry.size === 0) this.closeFile();
        break;
      }
      case 'symlink':
        this.claim(entry.path);
        this.links.push({ path: entry.path, target: entry.target });
        this.hash.symlink(entry.path, entry.target);
        break;
      case 'skipped':
        if (this.file) throw new SlugArchiveError(`${this.file.path}: entry before the file's last byte`);
        if (++this.entries > this.limits.maxEntries) throw new SlugArchiveError(`more than ${this.limits.maxEntries} files and directories`);
        this.skippedCount++;
        if (this.skipped.length < MAX_SKIPPED_LISTED) this.skipped.push(`${entry.path} (${entry.what})`);
        break;
      case 'end':
        if (this.file) throw new SlugArchiveError(`${this.file.path}: stream ended inside the file`);
        if (entry.files !== this.files || entry.bytes !== this.bytes) throw new SlugArchiveError('stream totals do not match its entries');
        this.ended = true;
        break;
    }
  }

  private onData(chunk: Buffer): void {
    const f = this.file;
    if (!f) throw new SlugArchiveError('file data outside a file');
    if (chunk.length > f.left) throw new SlugArchiveError(`${f.path}: more data than its size`);
    this.bytes += chunk.length;
    if (this.bytes > this.limits.maxBytes) throw new SlugArchiveError(`slug larger than ${this.limits.maxBytes} bytes`);
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(f.fd, chunk, off, chunk.length - off);
    this.hash.data(chunk);
    f.left -= chunk.length;
    if (f.left === 0) this.closeFile();
    this.progress();
  }

  private closeFile(): void {
    if (this.file) fs.closeSync(this.file.fd);
    this.file = undefined;
  }

  private progress(): void {
    const now = Date.now();
    if (now - this.lastProgress < PROGRESS_EVERY_MS) return;
    this.lastProgress = now;
    process.stdout.write(`${JSON.stringify({ progress: { files: this.files, bytes: this.bytes } })}\n`);
  }

  /** After END: links, then directories made read-only deepest first, then the Procfile's text. */
  finish(): SlugWriteResult {
    if (!this.ended) throw new SlugArchiveError('the source stream ended early');
    for (const l of this.links) fs.symlinkSync(l.target, this.abs(l.path));
    const dirs = [...this.dirs].sort((a, b) => b.split('/').length - a.split('/').length);
    for (const d of dirs) fs.chmodSync(this.abs(d), 0o555);
    const procfilePath = this.abs('Procfile');
    const st = fs.lstatSync(procfilePath, { throwIfNoEntry: false });
    if (!st) throw new SlugArchiveError('no Procfile in the source');
    if (!st.isFile()) throw new SlugArchiveError('Procfile is not a regular file');
    if (st.size > MAX_PROCFILE_BYTES) throw new SlugArchiveError(`Procfile larger than ${MAX_PROCFILE_BYTES} bytes`);
    const procfile = fs.readFileSync(procfilePath, 'utf8');
    return { files: this.files, bytes: this.bytes, skipped: this.skipped, skippedCount: this.skippedCount, procfile, sha256: this.hash.digest() };
  }

  abort(): void {
    this.closeFile();
  }
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as WriterArgs;
  const limits: SlugLimits = { ...DEFAULT_SLUG_LIMITS, ...args.limits };
  // the slug's parent belongs to the daemon; the slug itself must be new
  fs.mkdirSync(args.slugDir, { mode: 0o700 });
  const writer = new SlugWriter(args.slugDir, limits);
  // chunks are kept in a list until a whole frame is there: concatenating each 64 KiB pipe read onto
  // the rest would copy every megabyte-sized frame a dozen times
  const chunks: Buffer[] = [];
  let have = 0;
  const take = (n: number): Buffer => {
    const first = chunks[0]!;
    if (first.length >= n) {
      chunks[0] = first.subarray(n);
      if (chunks[0].length === 0) chunks.shift();
      have -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    have -= n;
    return out;
  };
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      have += chunk.length;
      while (have >= 5) {
        const head = take(5);
        const kind = head.readUInt8(0);
        const len = head.readUInt32BE(1);
        if (len > MAX_FRAME_BYTES) throw new SlugArchiveError(`frame of ${len} bytes`);
        if (have < len) {
          chunks.unshift(Buffer.from(head)); // not all there yet: put the header back
          have += 5;
          break;
        }
        writer.onFrame(kind, take(len));
      }
    }
    if (have) throw new SlugArchiveError('the source stream ended inside a frame');
    const done = writer.finish();
    // a last progress line with the totals: a quick deploy shows one too
    process.stdout.write(`${JSON.stringify({ progress: { files: done.files, bytes: done.bytes } })}\n${JSON.stringify({ done })}\n`);
  } catch (err) {
    writer.abort();
    throw err;
  }
}

main().catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`${err instanceof SlugArchiveError ? err.message : `writing the slug failed: ${e.code ?? e.message}`}\n`);
  process.exit(1);
});
