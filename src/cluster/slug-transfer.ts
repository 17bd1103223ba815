/**
 * Slugs between hosts (spec §2 seam 5): never through etcd. An API host serves a slug it holds as
 * the deploy stream (read-source.ts over the slug directory, slug-archive.ts frames); a host that
 * needs it pipes that stream into the same validating writer a deploy uses (write-slug.ts), which
 * hashes what it writes. The slug is kept only if the hash is the one asked for, so neither a
 * corrupted transfer nor a lying peer can put other code under a release's name.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { SLUG_NAME } from '../manifold/deploy/slug-archive';
import { placeSlug, tempSlugDir } from '../manifold/deploy/slug-store';
import type { SlugWriteResult } from '../manifold/deploy/write-slug';
import { ClusterError } from './errors';

const DEPLOY_DIR = path.join(__dirname, '..', 'manifold', 'deploy');
const FETCH_TIMEOUT_MS = 10 * 60_000;

/** Streams the slug directory `dir` as slug-archive frames into `res` (root reads its own slug). */
export function serveSlug(dir: string, res: http.ServerResponse): void {
  const reader = spawn(process.execPath, [path.join(DEPLOY_DIR, 'read-source.js'), JSON.stringify({ dir, uid: 0, gid: 0 })], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: '/usr/bin:/bin' } });
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  reader.stdout.pipe(res);
  res.on('close', () => reader.kill('SIGKILL'));
  reader.on('exit', (code) => {
    if (code !== 0) res.destroy(new Error('slug read failed'));
  });
}

/**
 * Fetches slug `sha` from `source` (`host:port` of a cluster server) into `slugRoot/<sha>`.
 * Resolves with its path; rejects with ESLUG (nothing left behind) on any failure or hash mismatch.
 */
export async function fetchSlug(sha: string, source: string, token: string, slugRoot: string): Promise<string> {
  if (!SLUG_NAME.test(sha)) throw new ClusterError('ESLUG', `not a slug digest: ${sha}`);
  fs.mkdirSync(slugRoot, { recursive: true, mode: 0o755 });
  const temp = tempSlugDir(slugRoot);
  const writer = spawn(process.execPath, [path.join(DEPLOY_DIR, 'write-slug.js'), JSON.stringify({ slugDir: temp, limits: {} })], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
  let out = '';
  let err = '';
  writer.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  writer.stderr.setEncoding('utf8').on('data', (d: string) => (err += d.slice(0, 1000)));
  const exited = new Promise<number | null>((r) => writer.on('close', (code) => r(code)));
  const [hostname, port] = splitHostPort(source);
  const req = http.get({ hostname, port, path: `/v1/slugs/${sha}`, headers: { authorization: `Bearer ${token}` }, timeout: FETCH_TIMEOUT_MS });
  const failed = (msg: string): ClusterError => {
    writer.kill('SIGKILL');
    fs.rmSync(temp, { recursive: true, force: true });
    return new ClusterError('ESLUG', `slug ${sha.slice(0, 12)} from ${source}: ${msg}`);
  };
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.once('timeout', () => req.destroy(new Error('timed out')));
    });
    if (res.statusCode !== 200) {
      res.resume();
      throw new Error(`HTTP ${res.statusCode}`);
    }
    res.pipe(writer.stdin);
    res.on('error', () => writer.kill('SIGKILL'));
    const code = await exited;
    if (code !== 0) throw new Error(err.trim().split('\n')[0] || `writer exit ${code}`);
  } catch (e) {
    req.destroy();
    await exited.catch(() => undefined);
    throw failed((e as Error).message);
  }
  const done = out
    .split('\n')
    .map((l) => {
      try {
        return (JSON.parse(l) as { done?: SlugWriteResult }).done;
      } catch {
        return undefined;
      }
    })
    .find((d) => d !== undefined);
  if (!done) throw failed('no result from the writer');
  if (done.sha256 !== sha) throw failed(`content hashes to ${done.sha256.slice(0, 12)}, not the digest asked for`);
  return placeSlug(temp, slugRoot, sha).dir;
}

export function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}

/**
 * The slugs of this host: `slugRoot/<sha>`, fetched once from a holder and shared by every release
 * that names it; concurrent asks for one slug share one fetch.
 */
export class SlugCache {
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(
    readonly slugRoot: string,
    private readonly token: () => string,
  ) {}

  pathOf(sha: string): string {
    return path.join(this.slugRoot, sha);
  }

  has(sha: string): boolean {
    return SLUG_NAME.test(sha) && fs.existsSync(this.pathOf(sha));
  }

  /** The local path of slug `sha`, fetched from the first of `sources` that has it. */
  ensure(sha: string, sources: () => Promise<string[]>): Promise<string> {
    if (this.has(sha)) return Promise.resolve(this.pathOf(sha));
    let p = this.fetching.get(sha);
    if (!p) {
      p = (async () => {
        const errors: string[] = [];
        for (const s of await sources()) {
          try {
            return await fetchSlug(sha, s, this.token(), this.slugRoot);
          } catch (e) {
            errors.push((e as Error).message);
          }
        }
        throw new ClusterError('ESLUG', `slug ${sha.slice(0, 12)} could not be fetched: ${errors.join('; ') || 'no host holds it'}`);
      })().finally(() => this.fetching.delete(sha));
      this.fetching.set(sha, p);
    }
    return p;
  }
}

/** The digest of a release's slug path (`…/slugs/<sha>`), or undefined for a per-app slug of an older daemon. */
export function slugDigest(slug: string | null): string | undefined {
  if (!slug) return undefined;
  const base = path.basename(slug);
  return SLUG_NAME.test(base) ? base : undefined;
}
