/**
 * The build's process types: the buildpacks' `default_process_types` (from what each bin/release
 * printed) merged under the app's own Procfile, reported as Heroku reports them, and written back
 * as a plain Procfile at the root of the build for the slug writer to read. Apart from the builder
 * because it is pure text handling over the build output, testable without a dyno.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseProcfile, ProcfileError } from '../procfile';
import { BuildFailure } from './failure';

/** `default_process_types` of a bin/release YAML (the flat `type: command` map Heroku's buildpacks print). */
export function defaultProcessTypes(yaml: string): Record<string, string> {
  const out: Record<string, string> = {};
  let inside = false;
  for (const raw of yaml.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^\S/.test(line)) {
      inside = /^default_process_types\s*:\s*$/.test(line);
      continue;
    }
    if (!inside) continue;
    const m = /^\s+([A-Za-z0-9_-]+)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith("'") && v.endsWith("'")) || (v.startsWith('"') && v.endsWith('"'))) v = v.slice(1, -1);
    if (v !== '') out[m[1]!] = v;
  }
  return out;
}

/**
 * "Discovering process types": the Procfile in `buildDir` (if any) over the buildpacks' `defaults`.
 * Throws a BuildFailure (EBUILDFAILED) for a bad Procfile or no process types at all; otherwise
 * replaces the Procfile with the merged list (`type: command` lines) and returns it.
 */
export function discoverProcessTypes(buildDir: string, defaults: Record<string, string>, say: (line: string) => void): Record<string, string> {
  say('-----> Discovering process types');
  const procfilePath = path.join(buildDir, 'Procfile');
  const pst = fs.lstatSync(procfilePath, { throwIfNoEntry: false });
  let procfile: Record<string, string>;
  try {
    if (pst) {
      if (!pst.isFile()) throw new BuildFailure('EBUILDFAILED', 'Procfile is not a regular file');
      procfile = parseProcfile(fs.readFileSync(procfilePath, 'utf8'));
      const types = Object.keys(procfile);
      say(`       Procfile declares types -> ${types.length ? types.join(', ') : '(none)'}`);
      const extra = Object.keys(defaults).filter((t) => !(t in procfile));
      if (extra.length) say(`       Default types for buildpack -> ${extra.join(', ')}`);
      procfile = { ...defaults, ...procfile };
    } else {
      procfile = defaults;
      say(`       Default types for buildpack -> ${Object.keys(defaults).join(', ') || '(none)'}`);
    }
  } catch (err) {
    if (err instanceof ProcfileError) throw new BuildFailure('EBUILDFAILED', `Procfile: ${err.message}`);
    throw err;
  }
  if (Object.keys(procfile).length === 0) throw new BuildFailure('EBUILDFAILED', 'no process types: add a Procfile (e.g. web: node server.js) or use a buildpack with default_process_types');
  // the slug writer reads the process types from a Procfile at the root
  const text = Object.entries(procfile).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
  fs.rmSync(procfilePath, { force: true });
  fs.writeFileSync(procfilePath, text, { mode: 0o644, flag: 'wx' });
  return procfile;
}
