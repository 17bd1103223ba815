/**
 * "Nothing of the dyno remains": reusable leftover checks for every suite that starts dynos.
 *
 *   const leaks = leakWatch(runtime);          // baseline of the host, taken before the tests
 *   t.test('x', checked(leaks, async (t) => { ... }));   // asserts no leftovers at the end of the test
 *
 * A leftover is any of: a mount on the host whose line mentions manifold (or the runtime's run
 * directory) or a new nsfs mount (a pinned netns/mntns) that was not there at baseline; a cgroup
 * leaf under the runtime's subtree; a process living in that subtree; a dyno-init process that is
 * our child or sits in our subtree; a dyno the runtime still counts as running; something left in
 * the host side of the scratch mount point; a dyno veth (mfv*) on the host that was not there at
 * baseline.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import type { Runtime } from '../../../src/runtime';

/** What these helpers need of tap's Test. */
export type Asserter = Pick<Test, 'same'>;

export interface LeakScope {
  /** The runtime's cgroup subtree (absolute path under the cgroup2 mount). */
  cgroupRoot: string;
  /** Host run directory (stacks, scratch mount point). */
  runDir: string;
  /** Only leaves / processes whose leaf name starts with this count (for shared subtrees, e.g. the CLI's). */
  leafPrefix?: string;
  runtime?: Runtime;
  /** mountinfo lines of interest that existed before (not leftovers of ours). */
  baselineMounts: Set<string>;
  /** Dyno veths (mfv*) that existed before. */
  baselineVeths: Set<string>;
}

export function leakWatch(runtime: Runtime, leafPrefix?: string): LeakScope {
  return leakScope({ cgroupRoot: runtime.cgroups.root, runDir: runtime.runDir, runtime, leafPrefix });
}

export function leakScope(opts: { cgroupRoot: string; runDir: string; runtime?: Runtime; leafPrefix?: string }): LeakScope {
  const scope: LeakScope = { ...opts, baselineMounts: new Set(), baselineVeths: new Set(dynoVeths()) };
  scope.baselineMounts = new Set(suspiciousMounts(scope));
  return scope;
}

function readOr(file: string, fallback = ''): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function suspiciousMounts(scope: Pick<LeakScope, 'runDir'>): string[] {
  return readOr('/proc/self/mountinfo')
    .split('\n')
    .filter((l) => {
      if (!l) return false;
      const sep = l.indexOf(' - ');
      const fstype = sep >= 0 ? l.slice(sep + 3).split(' ')[0] : '';
      return /manifold/i.test(l) || l.includes(scope.runDir) || fstype === 'nsfs' || l.includes('dyno-init');
    })
    .map((l) => l.split(' ').slice(2).join(' ')); // drop the mount ids, keep what identifies the mount
}

/** Leftover mounts: suspicious mountinfo lines of the host that were not there at baseline. */
export function leftoverMounts(scope: LeakScope): string[] {
  return suspiciousMounts(scope).filter((l) => !scope.baselineMounts.has(l));
}

/** Host ends of dyno veth pairs (named mfv* by the runtime). */
function dynoVeths(): string[] {
  return fs.readdirSync('/sys/class/net').filter((n) => n.startsWith('mfv'));
}

function vethMaster(name: string): string | null {
  try {
    return path.basename(fs.readlinkSync(`/sys/class/net/${name}/master`));
  } catch {
    return null;
  }
}

/**
 * Dyno veths on the host that were not there at baseline. With a runtime, only those on its bridge
 * (or on none: a half-made pair) count, so dynos of another process on this host (a daemon) do not.
 */
export function leftoverVeths(scope: LeakScope): string[] {
  const bridge = scope.runtime?.bridgeName;
  return dynoVeths().filter((n) => {
    if (scope.baselineVeths.has(n)) return false;
    if (bridge === undefined) return true;
    const master = vethMaster(n);
    return master === null || master === bridge;
  });
}

/** Cgroup leaves (directories) under the runtime's subtree, filtered by the leaf prefix. */
export function leftoverCgroups(scope: LeakScope): string[] {
  try {
    return fs
      .readdirSync(scope.cgroupRoot, { withFileTypes: true })
      .filter((d) => d.isDirectory() && (scope.leafPrefix === undefined || d.name.startsWith(scope.leafPrefix)))
      .map((d) => path.join(scope.cgroupRoot, d.name));
  } catch {
    return [];
  }
}

export interface HostProcess {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  cgroup: string;
}

/** Every process of the host (as seen from here) with its comm, state, parent and v2 cgroup path. */
export function hostProcesses(): HostProcess[] {
  const out: HostProcess[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const stat = readOr(`/proc/${name}/stat`);
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const rest = stat.slice(close + 2).split(' ');
    const cgroupLine = readOr(`/proc/${name}/cgroup`).split('\n').find((l) => l.startsWith('0::')) ?? '';
    out.push({ pid: Number(name), ppid: Number(rest[1]), comm, state: rest[0] ?? '?', cgroup: cgroupLine.slice(3) });
  }
  return out;
}

/** Path of the subtree relative to the cgroup2 mount, as /proc/PID/cgroup shows it. */
function relativeCgroup(root: string): string {
  const mount = readOr('/proc/self/mountinfo')
    .split('\n')
    .filter((l) => l.includes(' - cgroup2 '))
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp && root.startsWith(mp + '/'))
    .sort((a, b) => b.length - a.length)[0];
  return mount ? root.slice(mount.length) : root;
}

/** Processes of the dyno: dyno-init children of ours, or anything in the runtime's cgroup subtree. */
export function leftoverProcesses(scope: LeakScope): HostProcess[] {
  const rel = relativeCgroup(scope.cgroupRoot);
  const prefix = `${rel}/${scope.leafPrefix ?? ''}`;
  return hostProcesses().filter(
    (p) =>
      p.pid !== process.pid &&
      // a dead process the host's init has adopted is init's to reap, on its own schedule: some inits
      // (this CI's process_api) reap orphans only every ~1.5 s; it holds no mount, cgroup or memory
      !(p.state === 'Z' && p.ppid === 1) &&
      ((p.comm === 'dyno-init' && p.ppid === process.pid) || p.cgroup.startsWith(prefix)),
  );
}

/** Everything of a dyno still on the host, as human-readable lines (empty = clean). */
export function dynoLeftovers(scope: LeakScope): string[] {
  const found: string[] = [];
  for (const m of leftoverMounts(scope)) found.push(`mount: ${m}`);
  for (const c of leftoverCgroups(scope)) found.push(`cgroup: ${c}`);
  for (const v of leftoverVeths(scope)) found.push(`veth: ${v}`);
  for (const p of leftoverProcesses(scope)) found.push(`process: ${p.pid} (${p.comm}) state ${p.state} in ${p.cgroup}`);
  if (scope.runtime && scope.runtime.running.size > 0) found.push(`runtime: ${scope.runtime.running.size} dyno(s) still counted as running`);
  const scratch = path.join(scope.runDir, 'scratch');
  try {
    for (const e of fs.readdirSync(scratch)) found.push(`scratch: ${path.join(scratch, e)}`);
  } catch {
    /* no scratch directory: nothing left in it */
  }
  return found;
}

/** Asserts that nothing of any dyno of this scope is left on the host. */
export function assertNoDynoLeftovers(t: Asserter, scope: LeakScope, what = 'no dyno leftovers on the host'): void {
  t.same(dynoLeftovers(scope), [], what);
}

/** Waits (briefly) until the scope is clean, for callers that did not await `exited` (e.g. a CLI child). */
export async function waitNoDynoLeftovers(scope: LeakScope, timeoutMs = 3000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = dynoLeftovers(scope);
    if (found.length === 0 || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Number of open file descriptors of this Node process. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/**
 * Wraps a test body so that, after it (pass or fail), the test asserts that nothing of any dyno of
 * the scope remains. tap's afterEach runs once the subtest has ended, too late to assert in it.
 */
export function checked(scope: LeakScope, fn: (t: Test) => Promise<void>): (t: Test) => Promise<void> {
  return async (t: Test) => {
    try {
      await fn(t);
    } finally {
      await scope.runtime?.settled(); // ended dynos' veths and leases are released in the background
      assertNoDynoLeftovers(t, scope);
      // a failed test must not leave a running dyno to the next one (or hang the file)
      if (scope.runtime) await Promise.all([...scope.runtime.running].map((d) => d.kill()));
    }
  };
}
