/**
 * Preload (`node -r`) for the client-modules test: records every module the process resolves
 * (CommonJS and ESM, builtins as node:*, addons as their .node file) and, at exit, writes them
 * one per line to $MANIFOLD_MODULE_LOG.
 */
import fs from 'node:fs';
import { registerHooks } from 'node:module';

const logFile = process.env.MANIFOLD_MODULE_LOG;
const seen = new Set<string>();

if (logFile) {
  registerHooks({
    resolve(specifier, context, next) {
      const r = next(specifier, context);
      seen.add(r.url);
      return r;
    },
  });
  process.on('exit', () => {
    for (const k of Object.keys(require.cache)) seen.add(k);
    fs.writeFileSync(logFile, [...seen].join('\n') + '\n');
  });
}
