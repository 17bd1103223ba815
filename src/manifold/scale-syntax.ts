/**
 * `ps:scale` arguments (docs/dyno-lifecycle.md#scaling): `web=2`, `web+1`, `worker-1`, `web=2:standard-2x`,
 * `web:standard-2x` (size only). A bare count keeps the previous size. Pure.
 */
import { findSize, sizeNames } from './sizes';

export class ScaleSyntaxError extends Error {
  readonly code = 'ESCALE';
  constructor(message: string) {
    super(message);
    this.name = 'ScaleSyntaxError';
  }
}

export interface ScaleChange {
  type: string;
  /** '=' absolute, '+'/'-' relative, null: size only. */
  op: '=' | '+' | '-' | null;
  quantity: number | null;
  size: string | null;
}

export interface FormationEntry {
  quantity: number;
  size: string;
}

export const MAX_DYNOS_PER_TYPE = 100;
const ARG = /^([A-Za-z0-9_-]+?)(?:([=+-])([0-9]+))?(?::([A-Za-z0-9-]+))?$/;

export function parseScaleArgs(args: string[]): ScaleChange[] {
  if (args.length === 0) throw new ScaleSyntaxError('no scale arguments (usage: ps:scale web=2 worker+1 web=2:standard-2x)');
  const seen = new Set<string>();
  return args.map((arg) => {
    const m = ARG.exec(arg);
    if (!m) throw new ScaleSyntaxError(`invalid scale argument '${arg}' (expected TYPE=N, TYPE+N, TYPE-N or TYPE=N:SIZE)`);
    const [, type, op, qty, sizeArg] = m as unknown as [string, string, string | undefined, string | undefined, string | undefined];
    if (op === undefined && sizeArg === undefined) throw new ScaleSyntaxError(`invalid scale argument '${arg}' (expected TYPE=N, TYPE+N, TYPE-N or TYPE=N:SIZE)`);
    let size: string | null = null;
    if (sizeArg !== undefined) {
      const s = findSize(sizeArg);
      if (!s) throw new ScaleSyntaxError(`unknown dyno size '${sizeArg}' (sizes: ${sizeNames()})`);
      size = s.name;
    }
    const quantity = qty === undefined ? null : Number(qty);
    if (quantity !== null && (!Number.isSafeInteger(quantity) || quantity > 10_000)) throw new ScaleSyntaxError(`invalid quantity in '${arg}'`);
    if (seen.has(type)) throw new ScaleSyntaxError(`process type '${type}' given twice`);
    seen.add(type);
    return { type, op: (op as ScaleChange['op']) ?? null, quantity, size };
  });
}

/** Applies changes to a formation; unknown types and out-of-range results are errors. Returns the new entries for the changed types. */
export function applyScale(
  current: Record<string, FormationEntry>,
  changes: ScaleChange[],
  knownTypes: readonly string[],
  maxPerType = MAX_DYNOS_PER_TYPE,
): Record<string, FormationEntry> {
  const out: Record<string, FormationEntry> = {};
  for (const c of changes) {
    if (!knownTypes.includes(c.type)) {
      throw new ScaleSyntaxError(`no process type '${c.type}' in the current release (types: ${knownTypes.join(', ') || 'none'})`);
    }
    const cur = current[c.type] ?? { quantity: 0, size: 'standard-1x' };
    let quantity = cur.quantity;
    if (c.op === '=') quantity = c.quantity ?? 0;
    else if (c.op === '+') quantity = cur.quantity + (c.quantity ?? 0);
    else if (c.op === '-') quantity = cur.quantity - (c.quantity ?? 0);
    if (quantity < 0) throw new ScaleSyntaxError(`cannot scale ${c.type} below 0 (now ${cur.quantity})`);
    if (quantity > maxPerType) throw new ScaleSyntaxError(`cannot scale ${c.type} to ${quantity}: at most ${maxPerType} dynos per process type`);
    out[c.type] = { quantity, size: c.size ?? cur.size };
  }
  return out;
}
