/**
 * Bundles the CLI's client path (dist/src/cli/main.js and what it loads eagerly) into one file,
 * dist/src/cli/bundle.js, which bin/manifold loads. Node resolves, reads and compiles each module
 * file on its own; for the ~17 small files of a client command that was ~8 ms of a ~110 ms run, and
 * the goal is within 1.3× of Node's own start (issue 8).
 *
 * What the client must never load stays outside the bundle, as separate modules loaded only on
 * their paths: the daemon, the router, the runtime (src/manifold except the API's shapes,
 * src/router, src/runtime), yargs and its program (help and errors only), the compile cache. So an
 * eager import of the daemon still shows up as its own module (test/cli/client-modules.test.ts).
 *
 * Run after tsc: `npm run compile`. bin/manifold falls back to dist/src/cli/main.js when the bundle
 * is missing or older than main.js (a plain `tsc` since the last bundle).
 */
import { build, type Plugin } from 'esbuild';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const CLI_DIR = path.join(ROOT, 'dist/src/cli');
const ENTRY = path.join(CLI_DIR, 'main.js');
const OUT = path.join(CLI_DIR, 'bundle.js');

/** Compiled modules (without extension) that stay separate files, relative to dist/src. */
function staysOutside(absNoExt: string): boolean {
  const rel = path.relative(path.join(ROOT, 'dist/src'), absNoExt).split(path.sep).join('/');
  if (rel === 'manifold/api/protocol') return false;
  return /^(manifold|router|runtime)\//.test(rel) || rel === 'cli/yargs-program' || rel === 'cli/compile-cache';
}

const keepOutside: Plugin = {
  name: 'keep-outside',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const abs = path.resolve(args.resolveDir, args.path).replace(/\.js$/, '');
      if (!staysOutside(abs)) return undefined;
      // the bundle sits beside main.js, so a path from it reaches the same file
      const fromBundle = path.relative(CLI_DIR, abs).split(path.sep).join('/');
      return { path: fromBundle.startsWith('.') ? fromBundle : `./${fromBundle}`, external: true };
    });
    // packages (yargs) stay outside too: loaded only where a handler needs them
    b.onResolve({ filter: /^[^./]/ }, (args) => ({ path: args.path, external: true }));
  },
};

build({
  entryPoints: [ENTRY],
  outfile: OUT,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  plugins: [keepOutside],
  logLevel: 'warning',
}).catch((err: unknown) => {
  process.stderr.write(`bundle-cli: ${(err as Error).message}\n`);
  process.exit(1);
});
