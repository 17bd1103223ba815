/**
 * Dyno sizes as the manifold uses them: the runtime's table and lookup (src/runtime/sizes.ts, short
 * forms included), with the default for a formation entry whose size is unknown.
 */
import { DEFAULT_SIZE, DYNO_SIZES, type DynoSize, findSize } from '../runtime/sizes';

export { DEFAULT_SIZE, type DynoSize, findSize };

export function sizeOf(name: string): DynoSize {
  return findSize(name) ?? (findSize(DEFAULT_SIZE) as DynoSize);
}

export function sizeNames(): string {
  return DYNO_SIZES.map((s) => s.label).join(', ');
}
