/**
 * The build dyno's /app, prepared on the host before the dyno starts, and the per-app build cache
 * kept between builds. Kept apart from the builder because this is where the requester's source
 * and the kept cache cross into files the unprivileged build user owns: the source is read as the
 * requester (never as root), devices, FIFOs and sockets are dropped, and the cache is hard-linked
 * so that the dyno's copy-on-write /app never writes through to the kept copy. The source's
 * `.slugignore` is applied here too, before any buildpack sees the source.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ManifoldError } from '../errors';
import type { ResolvedBuildpack } from './buildpacks';
import { DRIVER_SCRIPT } from './driver';
import { BUILD_USER, exited, run } from './proc';
import { applySlugIgnore, parseSlugIgnore } from './slugignore';
import type { BuildHost } from './types';

/**
 * The build dyno's /app at `root`: source, cache, env, buildpacks, driver; owned by the build user.
 * The config vars are those of the app's current release.
 */
export async function stageBuild(
  o: { stateDir: string; host: Pick<BuildHost, 'currentRelease'> },
  app: string,
  source: string,
  root: string,
  packs: ResolvedBuildpack[],
  requester: { uid: number; gid: number },
): Promise<void> {
  fs.mkdirSync(root, { mode: 0o755 });
  const build = path.join(root, 'build');
  fs.mkdirSync(build, { mode: 0o755 });
  // the source as the requester reads it (a tar as that user), unpacked here by root without owners
  await new Promise<void>((resolve, reject) => {
    const reader = spawn('tar', ['-cf', '-', '--exclude=./.git', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }, uid: requester.uid, gid: requester.gid });
    const writer = spawn('tar', ['-xf', '-', '--no-same-owner', '--no-same-permissions', '-C', build], { stdio: [reader.stdout!, 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } });
    reader.stdout!.destroy();
    let err = '';
    for (const c of [reader, writer]) {
      c.stderr!.setEncoding('utf8').on('data', (d: string) => (err.length < 2000 ? (err += d) : undefined));
      c.once('error', reject);
    }
    void Promise.all([exited(reader), exited(writer)]).then(([a, b]) => {
      if (a === 0 && b === 0) resolve();
      else reject(new ManifoldError('EINVAL', `cannot read ${source}: ${err.trim().split('\n')[0] ?? 'tar failed'}`));
    });
  });
  // no device, FIFO or socket in a build; everything the build user's to change
  await run('find', [build, '(', '-type', 'b', '-o', '-type', 'c', '-o', '-type', 'p', '-o', '-type', 's', ')', '-delete']);
  await run('chmod', ['-R', 'u+rwX,go+rX', build]);
  const cache = path.join(root, 'cache');
  const kept = path.join(o.stateDir, 'cache', app);
  // hard links: the dyno sees the stage through its copy-on-write /app, so a write to a cached
  // file copies it up and never reaches the kept cache (a plain copy where links can't be made)
  if (fs.existsSync(kept)) await run('cp', ['-al', '--', kept, cache]).catch(() => run('cp', ['-a', '--', kept, cache]));
  else fs.mkdirSync(cache, { mode: 0o700 });
  const envDir = path.join(root, 'env');
  fs.mkdirSync(envDir, { mode: 0o700 });
  const config = (await o.host.currentRelease(app))?.config ?? {};
  for (const [k, v] of Object.entries(config)) fs.writeFileSync(path.join(envDir, k), v, { mode: 0o400 });
  await run('chown', ['-R', '-h', `${BUILD_USER.uid}:${BUILD_USER.gid}`, build, cache, envDir]);
  const bpRoot = path.join(root, 'buildpacks');
  fs.mkdirSync(bpRoot, { mode: 0o755 });
  for (let i = 0; i < packs.length; i++) {
    const d = path.join(bpRoot, String(i));
    // the buildpack's own directory (an installed one may be a link to it), its links inside kept
    await run('cp', ['-a', '--no-preserve=ownership', '--', fs.realpathSync(packs[i]!.dir), d]);
    fs.rmSync(path.join(d, '.git'), { recursive: true, force: true });
    await run('chmod', ['-R', 'a+rX,go-w', d]);
  }
  fs.writeFileSync(path.join(bpRoot, 'names'), packs.map((p) => p.name).join('\n') + '\n', { mode: 0o644 });
  fs.writeFileSync(path.join(root, 'driver.sh'), DRIVER_SCRIPT, { mode: 0o755 });
}

/** Removes from the staged source at `build` what its `.slugignore` names (saying what it did). */
export function removeSlugIgnored(build: string, say: (line: string) => void): void {
  const ignoreFile = path.join(build, '.slugignore');
  if (fs.lstatSync(ignoreFile, { throwIfNoEntry: false })?.isFile()) {
    const { patterns, unsupported } = parseSlugIgnore(fs.readFileSync(ignoreFile, 'utf8'));
    for (const u of unsupported) say(` !     .slugignore: negated patterns are not supported, ignored: ${u}`);
    const removed = applySlugIgnore(build, patterns);
    if (removed.length) say(`       .slugignore: removed ${removed.length} path${removed.length === 1 ? '' : 's'}`);
  }
}

/** Makes the build's `cache` directory the app's kept cache (STATE/cache/<app>), replacing the old one. */
export function keepCache(stateDir: string, app: string, cache: string): void {
  const st = fs.lstatSync(cache, { throwIfNoEntry: false });
  if (!st?.isDirectory()) return;
  const cacheRoot = path.join(stateDir, 'cache');
  fs.mkdirSync(cacheRoot, { recursive: true, mode: 0o700 });
  const kept = path.join(cacheRoot, app);
  const old = `${kept}.old-${process.pid}-${Date.now()}`;
  if (fs.existsSync(kept)) fs.renameSync(kept, old);
  fs.renameSync(cache, kept);
  fs.rmSync(old, { recursive: true, force: true });
}

/** Removes the app's build cache (apps:destroy). */
export function dropCache(stateDir: string, app: string): void {
  fs.rmSync(path.join(stateDir, 'cache', app), { recursive: true, force: true });
}
