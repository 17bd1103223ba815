/**
 * Dyno sizes as the manifold shows and accepts them: the runtime's table (src/runtime/sizes.ts)
 * plus the CLI's short aliases (1X, 2X, PM, PL) and case-insensitive lookup.
 */
import { DEFAULT_SIZE as RUNTIME_DEFAULT, DYNO_SIZES, type DynoSize as RuntimeSize } from '../runtime/sizes';

export interface DynoSize {
  /** Canonical lower-case key stored in the formation. */
  key: string;
  /** Display name, as `ps` prints it. */
  name: string;
  quotaBytes: number;
  runtime: RuntimeSize;
}

const ALIASES: Record<string, string> = {
  '1x': 'standard-1x',
  '2x': 'standard-2x',
  pm: 'performance-m',
  pl: 'performance-l',
  standard1x: 'standard-1x',
  standard2x: 'standard-2x',
};

export const DEFAULT_SIZE = RUNTIME_DEFAULT;

function wrap(s: RuntimeSize): DynoSize {
  return { key: s.name, name: s.label, quotaBytes: s.quota, runtime: s };
}

export function findSize(name: string): DynoSize | undefined {
  const k = name.trim().toLowerCase();
  const key = ALIASES[k] ?? k;
  const s = DYNO_SIZES.find((d) => d.name === key);
  return s ? wrap(s) : undefined;
}

export function sizeOf(key: string): DynoSize {
  return findSize(key) ?? (findSize(DEFAULT_SIZE) as DynoSize);
}

export function sizeNames(): string {
  return DYNO_SIZES.map((s) => s.label).join(', ');
}
