/**
 * Buildpacks (Heroku's buildpack API: bin/detect, bin/compile, bin/release): what a reference
 * names and where its files are. A reference is one of
 *   - the name of an installed buildpack (a directory of an installed-buildpacks root, e.g. `procfile`);
 *   - an absolute path to a buildpack directory on this host;
 *   - a git URL (`https://`, `http://`, `git://`, `ssh://`, `file://`, `user@host:path`), optionally
 *     `URL#REF`: fetched once with git, pinned to the commit REF (default HEAD) named, and kept
 *     under STATE/buildpacks/. The app's list stores it as `URL#<40-hex commit>`, so every later
 *     build uses the same code.
 * A usable buildpack has executable `bin/detect` and `bin/compile`; `bin/release` is optional.
 * defaultInstalledBuildpacks: the roots of the installed (shipped) buildpacks the daemon starts with.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ManifoldError } from '../errors';

export interface ResolvedBuildpack {
  /** The reference as stored in the app's list (git: URL#commit). */
  ref: string;
  /** What the build output and the release call it. */
  name: string;
  /** Directory holding bin/. */
  dir: string;
}

const GIT_URL = /^(?:(?:https?|git|ssh|file):\/\/\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+)$/;
const INSTALLED_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const COMMIT = /^[0-9a-f]{40}$/;
const GIT_TIMEOUT_MS = 120_000;
export const MAX_BUILDPACKS = 16;

export function isGitUrl(ref: string): boolean {
  return GIT_URL.test(ref.split('#')[0]!);
}

/**
 * The installed buildpacks, in detection order: every root in turn, its directories (or links to
 * them) sorted by name. A leading `NN-` orders them and is not part of the name (`20-procfile` is `procfile`).
 */
export function installedBuildpacks(roots: readonly string[]): ResolvedBuildpack[] {
  const out: ResolvedBuildpack[] = [];
  const seen = new Set<string>();
  for (const root of roots) {
    let names: string[];
    try {
      names = fs.readdirSync(root).sort();
    } catch {
      continue;
    }
    for (const entry of names) {
      const dir = path.join(root, entry);
      const name = entry.replace(/^[0-9]+-(?=.)/, '');
      if (!INSTALLED_NAME.test(name) || seen.has(name) || !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) continue;
      seen.add(name);
      out.push({ ref: name, name, dir });
    }
  }
  return out;
}

function executable(p: string): boolean {
  try {
    const st = fs.statSync(p);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Throws EBUILDPACK unless `dir` has executable bin/detect and bin/compile. */
export function checkBuildpackDir(dir: string, label: string): void {
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new ManifoldError('EBUILDPACK', `buildpack ${label}: ${dir} is not a directory`);
  for (const f of ['bin/detect', 'bin/compile']) {
    if (!executable(path.join(dir, f))) throw new ManifoldError('EBUILDPACK', `buildpack ${label} is malformed: no executable ${f}`);
  }
  const release = path.join(dir, 'bin/release');
  if (fs.existsSync(release) && !executable(release)) throw new ManifoldError('EBUILDPACK', `buildpack ${label} is malformed: bin/release is not executable`);
}

function git(args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, timeout: GIT_TIMEOUT_MS, env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', LANG: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error((stderr || err.message).trim().split('\n').pop() ?? 'git failed'));
      else resolve(stdout.trim());
    });
  });
}

export class Buildpacks {
  /** `installed`: roots of installed buildpacks; `cacheRoot`: where git buildpacks are kept (STATE/buildpacks). */
  constructor(private readonly installed: readonly string[], private readonly cacheRoot: string) {}

  listInstalled(): ResolvedBuildpack[] {
    return installedBuildpacks(this.installed);
  }

  /**
   * Turns what a user typed into a stored reference and checks the buildpack is usable: a git URL
   * is fetched now and pinned. Throws EBUILDPACK (or EINVAL) with nothing stored.
   */
  async pin(input: unknown): Promise<ResolvedBuildpack> {
    if (typeof input !== 'string' || input.trim() === '') throw new ManifoldError('EINVAL', 'missing buildpack (a name, an absolute path or a git URL)');
    const ref = input.trim();
    if (/[\s\0]/.test(ref) || ref.length > 1024) throw new ManifoldError('EINVAL', `invalid buildpack reference: ${JSON.stringify(ref)}`);
    if (isGitUrl(ref)) {
      const hash = ref.lastIndexOf('#');
      const url = hash >= 0 ? ref.slice(0, hash) : ref;
      const want = hash >= 0 ? ref.slice(hash + 1) : '';
      return this.fetchGit(url, want);
    }
    return this.resolve(ref);
  }

  /** A stored reference to its directory (a pinned git buildpack is fetched again if its copy is gone). */
  async resolve(ref: string): Promise<ResolvedBuildpack> {
    if (isGitUrl(ref)) {
      const hash = ref.lastIndexOf('#');
      const commit = hash >= 0 ? ref.slice(hash + 1) : '';
      if (!COMMIT.test(commit)) return this.pin(ref);
      return this.fetchGit(ref.slice(0, hash), commit);
    }
    if (path.isAbsolute(ref)) {
      const dir = path.normalize(ref);
      checkBuildpackDir(dir, ref);
      return { ref: dir, name: path.basename(dir), dir };
    }
    const found = this.listInstalled().find((b) => b.name === ref);
    if (!found) {
      const names = this.listInstalled().map((b) => b.name);
      throw new ManifoldError('EBUILDPACK', `unknown buildpack '${ref}' (installed: ${names.join(', ') || 'none'}; or give an absolute path or a git URL)`);
    }
    checkBuildpackDir(found.dir, ref);
    return found;
  }

  private async fetchGit(url: string, want: string): Promise<ResolvedBuildpack> {
    const base = path.join(this.cacheRoot, createHash('sha256').update(url).digest('hex').slice(0, 16));
    if (COMMIT.test(want)) {
      const dir = path.join(base, want);
      if (fs.existsSync(dir)) {
        checkBuildpackDir(dir, `${url}#${want}`);
        return { ref: `${url}#${want}`, name: `${url}#${want.slice(0, 7)}`, dir };
      }
    }
    fs.mkdirSync(base, { recursive: true, mode: 0o755 });
    const tmp = path.join(base, `.fetch-${randomBytes(6).toString('hex')}`);
    try {
      try {
        await git(['clone', '--quiet', '--no-checkout', '--', url, tmp]);
        await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', want === '' ? 'HEAD' : want, '--'], tmp);
      } catch (err) {
        throw new ManifoldError('EBUILDPACK', `cannot fetch buildpack ${url}${want ? `#${want}` : ''}: ${(err as Error).message}`);
      }
      const commit = await git(['rev-parse', 'HEAD'], tmp);
      if (!COMMIT.test(commit)) throw new ManifoldError('EBUILDPACK', `cannot fetch buildpack ${url}: no commit`);
      fs.rmSync(path.join(tmp, '.git'), { recursive: true, force: true });
      const label = `${url}#${commit}`;
      checkBuildpackDir(tmp, label);
      const dir = path.join(base, commit);
      try {
        fs.renameSync(tmp, dir);
      } catch {
        // fetched at the same time by another call: the copy there is the same commit
      }
      return { ref: label, name: `${url}#${commit.slice(0, 7)}`, dir };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
}

/** The shipped buildpacks (`buildpacks/` at the repository root), or MANIFOLD_BUILDPACKS_DIR (colon-separated roots). */
export function defaultInstalledBuildpacks(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.MANIFOLD_BUILDPACKS_DIR;
  if (fromEnv) return fromEnv.split(':').filter((d) => path.isAbsolute(d));
  // dist/src/manifold/build → the repository root
  return [path.resolve(__dirname, '../../../../buildpacks')];
}
