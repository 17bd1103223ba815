/**
 * The 'host' stack: a small skeleton directory used as the read-only lower layer of every dyno's
 * root, holding the mount points, the merged-/usr symlinks and a filtered copy of /etc. The host's
 * /usr (and /bin, /lib... where they are real directories) are bound read-only on top by dyno-init.
 * Secrets (/root, /etc/shadow, ssh keys, sudoers, the daemon's state) are simply not in it.
 * Built once per runtime directory, atomically (build in a temp dir, then rename).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_USER } from './spec';

const STACK_VERSION = '1';

/** /etc entries a program may need; everything else (shadow, ssh, sudoers, ...) stays on the host. */
const ETC_ALLOWLIST = [
  'alternatives', 'bash.bashrc', 'ca-certificates', 'ca-certificates.conf', 'debian_version', 'gai.conf',
  'host.conf', 'hosts', 'inputrc', 'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'locale.alias', 'localtime',
  'mime.types', 'nsswitch.conf', 'os-release', 'protocols', 'resolv.conf', 'rpc', 'services', 'ssl', 'timezone',
  'profile', 'environment', 'shells', 'magic', 'mailcap', 'xdg', 'fonts', 'java-17-openjdk', 'python3', 'perl',
];

const TOP_LEVEL_MAYBE_LINKS = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];
const EMPTY_DIRS: [string, number][] = [
  ['app', 0o755], ['dev', 0o755], ['etc', 0o755], ['home', 0o755], ['mnt', 0o755], ['opt', 0o755], ['proc', 0o555],
  ['run', 0o755], ['srv', 0o755], ['sys', 0o555], ['tmp', 0o1777], ['usr', 0o755], ['var', 0o755],
  ['var/tmp', 0o1777], ['var/log', 0o755], ['var/cache', 0o755], ['var/lib', 0o755],
];

export interface PreparedStack {
  /** Lower layer of the root overlay. */
  lowerDir: string;
  /** Host directories dyno-init binds read-only into the root. */
  binds: { source: string; target: string }[];
}

/** A custom stack directory is the whole root filesystem; nothing is bound. */
export function directoryStack(dir: string): PreparedStack {
  return { lowerDir: dir, binds: [] };
}

export function hostStack(runDir: string): PreparedStack {
  const lowerDir = path.join(runDir, 'stacks', 'host');
  const binds: { source: string; target: string }[] = [{ source: '/usr', target: '/usr' }];
  for (const name of TOP_LEVEL_MAYBE_LINKS) {
    const st = lstatOrUndefined(`/${name}`);
    if (st?.isDirectory()) binds.push({ source: `/${name}`, target: `/${name}` });
  }
  if (!fs.existsSync(path.join(lowerDir, '.manifold-stack')) || fs.readFileSync(path.join(lowerDir, '.manifold-stack'), 'utf8') !== STACK_VERSION) {
    buildHostSkeleton(lowerDir);
  }
  return { lowerDir, binds };
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

function buildHostSkeleton(target: string): void {
  fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  const tmp = fs.mkdtempSync(`${target}.building-`);
  fs.chmodSync(tmp, 0o755);
  for (const [dir, mode] of EMPTY_DIRS) {
    fs.mkdirSync(path.join(tmp, dir), { recursive: true });
    fs.chmodSync(path.join(tmp, dir), mode);
  }
  for (const name of TOP_LEVEL_MAYBE_LINKS) {
    const st = lstatOrUndefined(`/${name}`);
    if (st?.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(`/${name}`), path.join(tmp, name));
    else if (st?.isDirectory()) fs.mkdirSync(path.join(tmp, name));
  }
  for (const name of ETC_ALLOWLIST) {
    const src = path.join('/etc', name);
    if (lstatOrUndefined(src)) fs.cpSync(src, path.join(tmp, 'etc', name), { recursive: true, verbatimSymlinks: true, errorOnExist: false });
  }
  writeAccounts(path.join(tmp, 'etc'));
  fs.writeFileSync(path.join(tmp, '.manifold-stack'), STACK_VERSION);
  // Replace any older skeleton atomically; a concurrent builder may win the rename, which is fine.
  const old = `${target}.old-${process.pid}`;
  try {
    fs.renameSync(target, old);
  } catch {
    /* no previous skeleton */
  }
  try {
    fs.renameSync(tmp, target);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.rmSync(old, { recursive: true, force: true });
}

/** passwd/group with system accounts only (no password hashes exist in them) plus the dyno user. */
function writeAccounts(etc: string): void {
  const keep = (line: string): boolean => {
    const id = Number(line.split(':')[2]);
    return Number.isInteger(id) && (id < 1000 || id === 65534);
  };
  const passwd = fs.readFileSync('/etc/passwd', 'utf8').split('\n').filter((l) => l && keep(l));
  const group = fs.readFileSync('/etc/group', 'utf8').split('\n').filter((l) => l && keep(l));
  passwd.push(`dyno:x:${DEFAULT_USER.uid}:${DEFAULT_USER.gid}:Manifold dyno:/app:/bin/bash`);
  group.push(`dyno:x:${DEFAULT_USER.gid}:`);
  fs.writeFileSync(path.join(etc, 'passwd'), passwd.join('\n') + '\n', { mode: 0o644 });
  fs.writeFileSync(path.join(etc, 'group'), group.join('\n') + '\n', { mode: 0o644 });
}
