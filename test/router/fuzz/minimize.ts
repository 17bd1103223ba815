/**
 * Shrinks a failing input while `stillFails` holds: drop whole lines first, then ever smaller byte
 * ranges (a bounded ddmin). Every probe runs both parsers, so the budget bounds its cost.
 */
export async function minimize(input: Buffer, stillFails: (b: Buffer) => Promise<boolean>, budget = 400): Promise<Buffer> {
  let best = input;
  let probes = 0;
  const attempt = async (candidate: Buffer): Promise<boolean> => {
    if (probes >= budget || candidate.length === 0) return false;
    probes++;
    if (await stillFails(candidate)) {
      best = candidate;
      return true;
    }
    return false;
  };
  // 1. whole lines (each segment keeps its LF)
  for (let changed = true; changed && probes < budget; ) {
    changed = false;
    const segs: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < best.length; i++) {
      if (best[i] === 0x0a) {
        segs.push(best.subarray(start, i + 1));
        start = i + 1;
      }
    }
    if (start < best.length) segs.push(best.subarray(start));
    for (let k = segs.length - 1; k >= 0 && probes < budget; k--) {
      if (await attempt(Buffer.concat([...segs.slice(0, k), ...segs.slice(k + 1)]))) {
        changed = true;
        break;
      }
    }
  }
  // 2. byte ranges, halving the window
  for (let size = best.length >> 1; size >= 1 && probes < budget; size = size >> 1) {
    for (let at = 0; at + size <= best.length && probes < budget; ) {
      if (!(await attempt(Buffer.concat([best.subarray(0, at), best.subarray(at + size)])))) at += size;
    }
  }
  return best;
}
