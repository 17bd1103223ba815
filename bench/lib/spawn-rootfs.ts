// A minimal read-only root filesystem for the spawn benchmark: busybox-static plus its applet
// symlinks (apt `busybox-static`), and the mount points every runtime expects.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

const DIRS: readonly [string, number][] = [
  ['bin', 0o755], ['sbin', 0o755], ['usr/bin', 0o755], ['usr/sbin', 0o755], ['etc', 0o755], ['app', 0o755],
  ['proc', 0o555], ['sys', 0o555], ['dev', 0o755], ['tmp', 0o1777], ['run', 0o755], ['var/tmp', 0o1777], ['root', 0o700],
];

/** Builds the rootfs in `dir` (which must exist and be empty); returns the number of applet links. */
export function buildBusyboxRootfs(dir: string): number {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing (apt-get install busybox-static)`);
  for (const [d, mode] of DIRS) {
    mkdirSync(join(dir, d), { recursive: true });
    chmodSync(join(dir, d), mode);
  }
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const list = spawnSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' });
  if (list.status !== 0) throw new Error(`busybox --list-full failed: ${list.stderr}`);
  let n = 0;
  for (const rel of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    if (rel === 'bin/busybox') continue;
    const target = join(dir, rel);
    mkdirSync(dirname(target), { recursive: true });
    if (!existsSync(target)) {
      symlinkSync('/bin/busybox', target);
      n++;
    }
  }
  if (!existsSync(join(dir, 'bin/true'))) throw new Error('busybox has no `true` applet');
  return n;
}
