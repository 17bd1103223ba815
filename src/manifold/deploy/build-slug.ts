/**
 * Builds a slug from a deploy directory off the daemon's event loop and with the requester's rights:
 * a reader process running as the requesting user streams the tree to a writer process (root) that
 * validates the stream and creates the slug (read-source.ts, write-slug.ts). The daemon only starts
 * them, relays progress and bounds the time; a large tree or a hostile one (FIFOs, links out, files
 * the user can't read) can neither stall routing nor show root's files to the user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { SlugLimits } from './slug-archive';
import type { SlugWriteResult } from './write-slug';

/** Who asked for the deploy (SO_PEERCRED of the API connection). */
export interface Requester {
  uid: number;
  gid: number;
}

export interface BuildSlugOptions {
  source: string;
  slugDir: string;
  requester: Requester;
  /** Whole build, reader and writer; default 10 minutes. */
  timeoutMs?: number;
  limits?: Partial<SlugLimits>;
  onProgress?: (p: { files: number; bytes: number }) => void;
}

export class SlugBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlugBuildError';
  }
}

export const DEFAULT_DEPLOY_TIMEOUT_MS = 10 * 60_000;
const MAX_STDERR = 4096;

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (text.length < MAX_STDERR) text += d;
  });
  return () => text.trim().split('\n')[0]?.slice(0, 500) ?? '';
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

export async function buildSlug(o: BuildSlugOptions): Promise<SlugWriteResult> {
  const node = process.execPath;
  // a clean environment: the reader runs as the user, and nothing of the daemon's should leak to it
  const env = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' };
  const reader = spawn(node, [path.join(__dirname, 'read-source.js'), JSON.stringify({ dir: o.source, uid: o.requester.uid, gid: o.requester.gid })], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const writer = spawn(node, [path.join(__dirname, 'write-slug.js'), JSON.stringify({ slugDir: o.slugDir, limits: o.limits ?? {} })], {
    stdio: [reader.stdout ?? 'ignore', 'pipe', 'pipe'],
    env,
  });
  // the writer has its own copy of the pipe's read end; ours must not consume a byte of it
  reader.stdout?.destroy();
  const readerError = collect(reader);
  const writerError = collect(writer);

  let result: SlugWriteResult | undefined;
  let lineBuf = '';
  writer.stdout?.setEncoding('utf8');
  writer.stdout?.on('data', (d: string) => {
    lineBuf += d;
    let nl: number;
    while ((nl = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      try {
        const msg = JSON.parse(line) as { progress?: { files: number; bytes: number }; done?: SlugWriteResult };
        if (msg.progress) o.onProgress?.(msg.progress);
        if (msg.done) result = msg.done;
      } catch {
        // not ours: ignored (the writer prints only JSON lines)
      }
    }
  });

  const timeoutMs = o.timeoutMs ?? DEFAULT_DEPLOY_TIMEOUT_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.kill('SIGKILL');
    writer.kill('SIGKILL');
  }, timeoutMs);
  const spawnFailed = new Promise<never>((_, reject) => {
    const fail = (err: Error): void => reject(new SlugBuildError(`cannot start the deploy: ${err.message}`));
    reader.once('error', fail);
    writer.once('error', fail);
  });
  try {
    const [r, w] = await Promise.race([Promise.all([exited(reader), exited(writer)]), spawnFailed]);
    if (timedOut) throw new SlugBuildError(`deploy took longer than ${Math.round(timeoutMs / 1000)} s; stopped`);
    // the reader's own words come first: the writer then only saw a stream that ended early
    if (r.code !== 0) throw new SlugBuildError(readerError() || `reading the source failed (${r.signal ?? `exit ${r.code}`})`);
    if (w.code !== 0 || !result) throw new SlugBuildError(writerError() || `writing the slug failed (${w.signal ?? `exit ${w.code}`})`);
    return result;
  } catch (err) {
    reader.kill('SIGKILL');
    writer.kill('SIGKILL');
    await Promise.all([exited(reader), exited(writer)]);
    await fs.promises.rm(o.slugDir, { recursive: true, force: true });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
