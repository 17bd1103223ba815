/**
 * cgroup v2 only. Each dyno gets a leaf in a `manifold/` subtree of the v2 hierarchy, wherever it is
 * mounted (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones). The dyno enters
 * its leaf atomically through CLONE_INTO_CGROUP. cgroup v1 hierarchies are never touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DynoError } from './errors';

export const WANTED_CONTROLLERS = ['cpu', 'memory', 'pids', 'io'] as const;
export type Controller = (typeof WANTED_CONTROLLERS)[number];

export interface CgroupMount {
  /** Mount point of the cgroup2 filesystem. */
  mountPoint: string;
  /** Path of this process's own cgroup under the mount point ('/' for the root). */
  ownCgroup: string;
}

/** Finds the cgroup2 mount from /proc/self/mountinfo (fstype field after the ' - ' separator). */
export function findCgroup2Mount(): CgroupMount | undefined {
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  let mountPoint: string | undefined;
  for (const line of lines) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype !== 'cgroup2') continue;
    const fields = line.slice(0, sep).split(' ');
    const mp = fields[4];
    // prefer the canonical locations if several are mounted
    if (mp !== undefined && (mountPoint === undefined || mp === '/sys/fs/cgroup')) mountPoint = mp;
  }
  if (mountPoint === undefined) return undefined;
  const self = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
  return { mountPoint, ownCgroup: self ? self.slice(3) : '/' };
}

function readList(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function cgroupError(err: unknown, syscall: string, p: string): DynoError {
  const errno = (err as NodeJS.ErrnoException).errno;
  return new DynoError({ errno: typeof errno === 'number' ? -errno : 5, syscall, step: 'cgroup', path: p });
}

export class CgroupTree {
  readonly root: string;
  /** Controllers that the manifold subtree can use (enabled in its subtree_control). */
  readonly controllers: Controller[];
  /** Wanted controllers this host's cgroup v2 does not offer (bound to v1, or disabled). */
  readonly missing: Controller[];

  private constructor(root: string, controllers: Controller[], missing: Controller[]) {
    this.root = root;
    this.controllers = controllers;
    this.missing = missing;
  }

  /**
   * Detects cgroup v2 and prepares the dynos' subtree; throws ENOENT when there is no cgroup v2.
   * A process in the root cgroup (plain root process) uses `<mount>/manifold`. A process in a
   * delegated cgroup (systemd `Delegate=yes`) first moves itself into `<own>/supervisor`, since
   * controllers can only be enabled for children of a cgroup that has no processes of its own
   * (the "no internal processes" rule), then uses `<own>/manifold`.
   */
  static open(name = 'manifold'): CgroupTree {
    const mount = findCgroup2Mount();
    if (!mount) {
      throw new DynoError({ errno: 2, syscall: 'open', step: 'cgroup', path: '/sys/fs/cgroup', message: 'no cgroup v2 hierarchy is mounted (Manifold needs cgroup v2)' });
    }
    const parent = delegatedParent(mount);
    const root = path.join(parent, name);
    try {
      fs.mkdirSync(root, { recursive: true });
    } catch (err) {
      throw cgroupError(err, 'mkdir', root);
    }
    const available = new Set(readList(path.join(parent, 'cgroup.controllers')));
    const controllers: Controller[] = [];
    const missing: Controller[] = [];
    for (const c of WANTED_CONTROLLERS) (available.has(c) ? controllers : missing).push(c);
    if (controllers.length > 0) enableControllers(parent, controllers);
    if (controllers.length > 0) enableControllers(root, controllers);
    return new CgroupTree(root, controllers, missing);
  }

  /** One line for operators when limits cannot be applied; undefined when all is there. */
  warning(): string | undefined {
    if (this.missing.length === 0) return undefined;
    return `warning: cgroup v2 at ${path.dirname(this.root)} lacks the ${this.missing.join(', ')} controller${this.missing.length > 1 ? 's' : ''} (bound to cgroup v1 or disabled); dynos run without those limits`;
  }

  /** Creates the leaf for one dyno and returns an O_DIRECTORY fd for CLONE_INTO_CGROUP. */
  create(id: string): { path: string; fd: number } {
    const dir = path.join(this.root, id);
    try {
      fs.mkdirSync(dir);
      return { path: dir, fd: fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY) };
    } catch (err) {
      throw cgroupError(err, 'mkdir', dir);
    }
  }

  /** Writes resource files (memory.max, pids.max, ...) into a dyno's leaf. */
  write(id: string, file: string, value: string): void {
    const p = path.join(this.root, id, file);
    try {
      fs.writeFileSync(p, value);
    } catch (err) {
      throw cgroupError(err, 'write', p);
    }
  }

  hasFile(id: string, file: string): boolean {
    return fs.existsSync(path.join(this.root, id, file));
  }

  /** SIGKILL every process of the dyno's cgroup, race-free (cgroup.kill, Linux 5.14). */
  kill(id: string): void {
    try {
      fs.writeFileSync(path.join(this.root, id, 'cgroup.kill'), '1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cgroupError(err, 'write', path.join(this.root, id, 'cgroup.kill'));
    }
  }

  populated(id: string): boolean {
    try {
      return /^populated 1$/m.test(fs.readFileSync(path.join(this.root, id, 'cgroup.events'), 'utf8'));
    } catch {
      return false;
    }
  }

  /**
   * Removes a dyno's leaf. Exited tasks can keep it busy for a moment, so an EBUSY rmdir is
   * retried (after another cgroup.kill) until the deadline.
   */
  async remove(id: string, timeoutMs = 5000): Promise<void> {
    const dir = path.join(this.root, id);
    const deadline = Date.now() + timeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      try {
        fs.rmdirSync(dir);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        if (code !== 'EBUSY' || Date.now() > deadline) throw cgroupError(err, 'rmdir', dir);
      }
      this.kill(id);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** Leaves of dynos that are still there (e.g. after a crash of the supervisor). */
  leaves(): string[] {
    try {
      return fs.readdirSync(this.root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return [];
    }
  }
}

/** The cgroup under which the manifold subtree lives, after moving this process out of the way. */
function delegatedParent(mount: CgroupMount): string {
  if (mount.ownCgroup === '/' || mount.ownCgroup === '') return mount.mountPoint;
  const own = path.join(mount.mountPoint, mount.ownCgroup);
  // Already moved by an earlier open() of this process: our cgroup is <delegated>/supervisor.
  if (path.basename(own) === 'supervisor') return path.dirname(own);
  const supervisor = path.join(own, 'supervisor');
  try {
    fs.mkdirSync(supervisor, { recursive: true });
    fs.writeFileSync(path.join(supervisor, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    throw cgroupError(err, 'write', path.join(supervisor, 'cgroup.procs'));
  }
  return own;
}

/** Enables controllers one by one (crun does the same: one unavailable controller must not block the rest). */
function enableControllers(dir: string, controllers: Controller[]): void {
  const file = path.join(dir, 'cgroup.subtree_control');
  const enabled = new Set(readList(file));
  for (const c of controllers) {
    if (enabled.has(c)) continue;
    try {
      fs.writeFileSync(file, `+${c}`);
    } catch (err) {
      throw cgroupError(err, 'write', `${file} (+${c})`);
    }
  }
}
