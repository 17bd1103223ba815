/**
 * Writes a dyno's limits into its cgroup leaf before the dyno enters it. A limit whose controller
 * the host's cgroup v2 lacks is skipped and named in the result (the runtime warned once already).
 */
import type { CgroupTree, Controller } from './cgroup';
import type { ResourceSpec } from './spec';

interface LimitFile {
  controller: Controller;
  file: string;
  value: (r: ResourceSpec) => string | undefined;
}

const LIMIT_FILES: readonly LimitFile[] = [
  { controller: 'memory', file: 'memory.max', value: (r) => r.memoryMax?.toString() },
  { controller: 'memory', file: 'memory.high', value: (r) => r.memoryHigh?.toString() },
  { controller: 'memory', file: 'memory.swap.max', value: (r) => r.memorySwapMax?.toString() },
  // one OOM kill takes the whole dyno down, as an R15 does
  { controller: 'memory', file: 'memory.oom.group', value: (r) => (r.memoryMax !== undefined ? '1' : undefined) },
  { controller: 'pids', file: 'pids.max', value: (r) => r.pidsMax?.toString() },
  { controller: 'cpu', file: 'cpu.weight', value: (r) => r.cpuWeight?.toString() },
  { controller: 'cpu', file: 'cpu.max', value: (r) => r.cpuMax },
];

/** Returns the cgroup files that were requested but could not be applied on this host. */
export function applyResources(tree: CgroupTree, id: string, r: ResourceSpec): string[] {
  const skipped: string[] = [];
  for (const limit of LIMIT_FILES) {
    const value = limit.value(r);
    if (value === undefined) continue;
    if (!tree.controllers.includes(limit.controller)) {
      skipped.push(limit.file);
      continue;
    }
    // memory.swap.max is absent on kernels without swap accounting: not an error for the dyno
    if (limit.file === 'memory.swap.max' && !tree.hasFile(id, limit.file)) {
      skipped.push(limit.file);
      continue;
    }
    tree.write(id, limit.file, value);
  }
  return skipped;
}
