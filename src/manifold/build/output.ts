/**
 * What the build dyno hands back, up to the slug: its exit judged (timeout, shutdown, output too
 * large, a failed detect/compile with the buildpack's own reason, an unreadable tar), the meta it
 * wrote read (buildpacks used, compile times, default process types), and the compiled tree
 * written as a slug by the deploy's slug writer, its errors mapped to build failures. Apart from
 * the builder so that Builder.buildLocked reads as the order of the steps.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildSlug, SlugBuildError } from '../deploy/build-slug';
import { tempSlugDir } from '../deploy/slug-store';
import type { SlugWriteResult } from '../deploy/write-slug';
import type { DynoRun } from './build-dyno';
import { BuildFailure } from './failure';
import { humanBytes, type BuildLimits } from './limits';
import { treeBytes } from './proc';
import { defaultProcessTypes } from './process-types';

/** Throws the BuildFailure a finished build dyno stands for, if any (checked in this order). */
export function checkBuildDyno(r: DynoRun, o: { limits: BuildLimits; closing: boolean; timedOut: () => BuildFailure }): void {
  if (r.timedOut) throw o.timedOut();
  if (o.closing) throw new BuildFailure('EBUILDFAILED', 'the daemon stopped during the build');
  if (r.tooBig) throw new BuildFailure('ESLUGTOOBIG', `build output exceeds the limits (slug ${humanBytes(o.limits.slugMaxBytes)}, cache ${humanBytes(o.limits.cacheMaxBytes)})`);
  if (r.status.status !== 0) {
    const why = r.status.status === 10 ? (r.lastError ?? 'no buildpack detected this app') : r.status.status === 11 ? (r.lastError ?? 'compile failed') : r.lastError ?? `the build dyno exited with status ${r.status.status}`;
    const f = new BuildFailure('EBUILDFAILED', why.replace(/^ !\s+/, ''));
    f.told = r.lastError !== undefined;
    throw f;
  }
  if (r.extractError) throw new BuildFailure('EBUILDFAILED', `reading the build output failed: ${r.extractError}`);
}

export interface BuildOutput {
  /** The compiled tree (`out/build`). */
  buildDir: string;
  /** The names of the buildpacks that ran (meta/names). */
  used: string[];
  /** Their compile times added up (meta/compile-ms). */
  compileMs: number;
  /** Their default_process_types merged in order (meta/release-N.yml). */
  defaults: Record<string, string>;
}

/** The build dyno's result unpacked at `out`: build/ (required) and meta/ (each file optional, under 1 MiB). */
export function readBuildOutput(out: string): BuildOutput {
  const buildDir = path.join(out, 'build');
  const meta = path.join(out, 'meta');
  if (!fs.lstatSync(buildDir, { throwIfNoEntry: false })?.isDirectory()) throw new BuildFailure('EBUILDFAILED', 'the build produced no build directory');
  const readMeta = (name: string): string => {
    const p = path.join(meta, name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    return st?.isFile() && st.size < 1024 * 1024 ? fs.readFileSync(p, 'utf8') : '';
  };
  const used = readMeta('names').split('\n').filter(Boolean);
  const compileMs = readMeta('compile-ms').split('\n').filter(Boolean).reduce((a, b) => a + (Number(b) || 0), 0);
  let defaults: Record<string, string> = {};
  for (let j = 0; j < used.length; j++) defaults = { ...defaults, ...defaultProcessTypes(readMeta(`release-${j}.yml`)) };
  return { buildDir, used, compileMs, defaults };
}

/**
 * "Compressing...": the compiled tree at `buildDir` written as a slug in a temporary directory of
 * STATE/slugs (bounded in bytes and by the build's time left); returns that directory and the slug.
 */
export async function writeBuildSlug(
  buildDir: string,
  o: { stateDir: string; limits: BuildLimits; timeLeft: () => number; timedOut: () => BuildFailure; say: (line: string) => void },
): Promise<{ tempDir: string; written: SlugWriteResult }> {
  const { limits, timeLeft, timedOut, say } = o;
  say('-----> Compressing...');
  if (timeLeft() <= 0) throw timedOut();
  const size = await treeBytes(buildDir);
  if (size > limits.slugMaxBytes) throw new BuildFailure('ESLUGTOOBIG', `slug size (${humanBytes(size)}) exceeds the limit of ${humanBytes(limits.slugMaxBytes)}`);
  const slugRoot = path.join(o.stateDir, 'slugs');
  fs.mkdirSync(slugRoot, { recursive: true, mode: 0o755 });
  const tempDir = tempSlugDir(slugRoot);
  let written;
  try {
    // read as root, never following a link: the tree is what the build's own user wrote
    written = await buildSlug({ source: buildDir, slugDir: tempDir, requester: { uid: 0, gid: 0 }, timeoutMs: Math.max(1000, timeLeft()), limits: { maxBytes: limits.slugMaxBytes } });
  } catch (err) {
    if (err instanceof SlugBuildError) {
      if (/larger than/.test(err.message)) throw new BuildFailure('ESLUGTOOBIG', `slug size exceeds the limit of ${humanBytes(limits.slugMaxBytes)}`);
      if (/took longer/.test(err.message)) throw timedOut();
      throw new BuildFailure('EBUILDFAILED', `writing the slug failed: ${err.message}`);
    }
    throw err;
  }
  say(`       Done: ${humanBytes(written.bytes)}`);
  return { tempDir, written };
}
