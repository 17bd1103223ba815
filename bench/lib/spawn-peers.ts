// Container peers for the spawn benchmark (crun, runc, bwrap, unshare) and the private mount
// namespace they run in. This host is hybrid: cgroup v2 at /sys/fs/cgroup/unified, memory/cpu/pids
// on v1 hierarchies that belong to the machine's supervisor. The peers must never see (or write)
// v1, so they run in a mount namespace where /sys/fs/cgroup is a v2-only directory made from
// /sys/fs/cgroup/unified/peers (recipe: /work/shared/baselines.md). The rootfs is bound read-only
// in that namespace too, so every peer gets the same read-only root.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HyperfineCommand } from './hyperfine';

export const CGROUP2_PARENT = '/sys/fs/cgroup/unified';
export const PEERS_CGROUP = join(CGROUP2_PARENT, 'peers');
export const RUNC_CGROUPS_PATH = '/manifold-spawn-bench-runc';

export const CONTAINER_ID = 'manifold-spawn-bench';

export interface PeerLayout {
  scratch: string;
  rootfs: string;
  cgMount: string;
  crunBundle: string;
  crunState: string;
  runcBundle: string;
  runcState: string;
}

export function peerLayout(scratch: string, rootfs: string): PeerLayout {
  return {
    scratch,
    rootfs,
    cgMount: join(scratch, 'cgmnt'),
    crunBundle: join(scratch, 'crun-bundle'),
    crunState: join(scratch, 'crun-state'),
    runcBundle: join(scratch, 'runc-bundle'),
    runcState: join(scratch, 'runc-state'),
  };
}

/** Only ever a directory under the cgroup v2 mount: refuses to run if that is not cgroup2. */
export function ensurePeersCgroup(): boolean {
  const fstype = spawnSync('stat', ['-f', '-c', '%T', CGROUP2_PARENT], { encoding: 'utf8' }).stdout.trim();
  if (fstype !== 'cgroup2fs') throw new Error(`${CGROUP2_PARENT} is not a cgroup2 mount (${fstype || 'missing'}); refusing to go on`);
  const existed = existsSync(PEERS_CGROUP);
  mkdirSync(PEERS_CGROUP, { recursive: true });
  return !existed;
}

/** Removes empty leaves left in the peers cgroup (runc's) and the peers cgroup itself. */
export function removePeersCgroup(): string[] {
  const problems: string[] = [];
  if (!existsSync(PEERS_CGROUP)) return problems;
  const rmTree = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch (err) {
      problems.push(`rmdir ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  rmTree(PEERS_CGROUP);
  return problems;
}

const NS_SCRIPT = [
  'set -e',
  'mount --bind "$PEERS_CG" "$CG_MNT"',
  'umount -l /sys/fs/cgroup',
  'mount --move "$CG_MNT" /sys/fs/cgroup',
  // safety: the namespace must now see cgroup2 at /sys/fs/cgroup and no v1 hierarchy at all
  '[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "peer namespace: /sys/fs/cgroup is not cgroup2" >&2; exit 97; }',
  'if grep -q " cgroup " /proc/self/mounts; then echo "peer namespace: a cgroup v1 mount is still visible" >&2; exit 98; fi',
  'mount --bind "$ROOTFS" "$ROOTFS"',
  'mount -o remount,bind,ro "$ROOTFS"',
  'exec "$@"',
].join('\n');

/** argv prefix that runs the rest in the peers' private mount namespace. */
export function peerNamespaceWrapper(): string[] {
  return ['unshare', '-m', '--propagation', 'private', '--', 'sh', '-c', NS_SCRIPT, 'sh'];
}

/** Environment for peerNamespaceWrapper(). */
export function peerNamespaceEnv(l: PeerLayout): NodeJS.ProcessEnv {
  return { ...process.env, PEERS_CG: PEERS_CGROUP, CG_MNT: l.cgMount, ROOTFS: l.rootfs };
}

interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}
interface OciConfig {
  root: { path: string; readonly?: boolean };
  process: { terminal?: boolean; args: string[] };
  mounts?: OciMount[];
  linux: { resources?: unknown; cgroupsPath?: string };
}

function isOciConfig(x: unknown): x is OciConfig {
  if (typeof x !== 'object' || x === null) return false;
  const c = x as { root?: unknown; process?: unknown; linux?: unknown };
  return typeof c.root === 'object' && c.root !== null && typeof c.process === 'object' && c.process !== null && typeof c.linux === 'object' && c.linux !== null;
}

/** `<tool> spec` in an empty bundle dir, then the edits from baselines.md. */
function writeBundle(tool: 'crun' | 'runc', bundle: string, rootfs: string, edit: (c: OciConfig) => void): void {
  mkdirSync(bundle, { recursive: true });
  const r = spawnSync(tool, ['spec'], { cwd: bundle, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${tool} spec failed: ${r.stderr || r.error?.message}`);
  const file = join(bundle, 'config.json');
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (!isOciConfig(parsed)) throw new Error(`${tool} spec wrote an unexpected config.json`);
  parsed.root = { path: rootfs, readonly: true };
  parsed.process.terminal = false;
  parsed.process.args = ['/bin/true'];
  edit(parsed);
  writeFileSync(file, JSON.stringify(parsed, null, 2));
}

export function writePeerBundles(l: PeerLayout): void {
  mkdirSync(l.cgMount, { recursive: true });
  mkdirSync(l.crunState, { recursive: true, mode: 0o700 });
  mkdirSync(l.runcState, { recursive: true, mode: 0o700 });
  // crun with --cgroup-manager=disabled: the default spec works as it is (baselines.md)
  writeBundle('crun', l.crunBundle, l.rootfs, () => undefined);
  // runc: cgroup mount removed, cgroupsPath set (a leaf under the peers cgroup, v2 only)
  writeBundle('runc', l.runcBundle, l.rootfs, (c) => {
    c.mounts = (c.mounts ?? []).filter((m) => m.destination !== '/sys/fs/cgroup');
    c.linux.cgroupsPath = RUNC_CGROUPS_PATH;
  });
}

export function toolVersion(cmd: string, args: string[] = ['--version']): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

export function peerCommands(l: PeerLayout): HyperfineCommand[] {
  const r = l.rootfs;
  return [
    { key: 'host-true', command: '/bin/true' },
    { key: 'unshare', command: `unshare --fork --pid --mount --uts --ipc --net --mount-proc=${r}/proc chroot ${r} /bin/true` },
    { key: 'bwrap', command: `bwrap --unshare-all --ro-bind ${r} / --proc /proc --dev /dev /bin/true` },
    { key: 'crun', command: `crun --root ${l.crunState} --cgroup-manager=disabled run --bundle ${l.crunBundle} ${CONTAINER_ID}` },
    { key: 'runc', command: `runc --root ${l.runcState} run --bundle ${l.runcBundle} ${CONTAINER_ID}` },
  ];
}

/** Force-deletes any container left in the peers' state dirs (inside the same namespace recipe). */
export function deleteLeftoverContainers(l: PeerLayout): string[] {
  const left: string[] = [];
  for (const [tool, state] of [['crun', l.crunState], ['runc', l.runcState]] as const) {
    if (!existsSync(state) || !statSync(state).isDirectory()) continue;
    const ids = readdirSync(state).filter((n) => n === CONTAINER_ID || existsSync(join(state, n, 'state.json')) || existsSync(join(state, n, 'status')));
    for (const id of ids) {
      const argv = [...peerNamespaceWrapper(), tool, '--root', state, 'delete', '--force', id];
      spawnSync(argv[0] as string, argv.slice(1), { env: peerNamespaceEnv(l), stdio: 'ignore', timeout: 10_000 });
      left.push(`${tool}:${id}`);
    }
  }
  return left;
}
