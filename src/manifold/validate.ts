/** Input rules for names and config vars (docs/architecture.md#config-vars), pure. */
import { ManifoldError } from './errors';

export const APP_NAME = /^[a-z][a-z0-9-]{0,29}$/;
export const CONFIG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_CONFIG_BYTES = 32 * 1024;
/** Set by the manifold itself in every dyno; a config var cannot override them. */
export const RESERVED_KEYS = new Set(['PORT', 'DYNO', 'HOME']);

export function checkAppName(name: unknown): string {
  if (typeof name !== 'string' || !APP_NAME.test(name) || name.endsWith('-')) {
    throw new ManifoldError('EINVAL', `invalid app name '${String(name)}' (lower-case letters, digits and dashes, starting with a letter, at most 30 characters)`);
  }
  return name;
}

/** Derives an app name from a directory name: lower-case, invalid characters to dashes. */
export function appNameFromDir(base: string): string {
  const n = base.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '').slice(0, 30).replace(/-+$/, '');
  return checkAppName(n);
}

export function checkConfigKey(key: string): void {
  if (!CONFIG_KEY.test(key)) throw new ManifoldError('EINVAL', `invalid config var name '${key}' (letters, digits and '_', not starting with a digit)`);
  if (key.startsWith('__')) throw new ManifoldError('EINVAL', `invalid config var name '${key}' (may not start with '__')`);
  if (key.startsWith('HEROKU_') || key.startsWith('MANIFOLD_')) throw new ManifoldError('EINVAL', `invalid config var name '${key}' (HEROKU_ and MANIFOLD_ are reserved)`);
  if (RESERVED_KEYS.has(key)) throw new ManifoldError('EINVAL', `config var ${key} is set by the manifold and cannot be changed`);
}

export function checkConfigValue(key: string, value: unknown): string {
  if (typeof value !== 'string') throw new ManifoldError('EINVAL', `config var ${key}: value must be a string`);
  if (value.includes('\0')) throw new ManifoldError('EINVAL', `config var ${key}: value contains a NUL byte`);
  return value;
}

export function configBytes(config: Record<string, string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(config)) n += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  return n;
}

/** Parses KEY=VALUE pairs from the command line (the value may contain '='). */
export function parseConfigPairs(pairs: string[]): Record<string, string> {
  if (pairs.length === 0) throw new ManifoldError('EINVAL', 'no config vars given (usage: config:set KEY=VALUE ...)');
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new ManifoldError('EINVAL', `invalid config pair '${p}' (expected KEY=VALUE)`);
    const key = p.slice(0, eq);
    checkConfigKey(key);
    out[key] = checkConfigValue(key, p.slice(eq + 1));
  }
  return out;
}
