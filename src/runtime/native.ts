/** Typed view of the N-API addon (native/addon) and the path of the dyno-init helper it executes. */
import path from 'node:path';
import { checkNativeTables, type NativeTables } from './native-table';

const BUILD_DIR = path.resolve(__dirname, '../../../build/Release');

export const HELPER_PATH = path.join(BUILD_DIR, 'dyno-init');

/** A message from dyno-init over the status channel (see native/common/protocol.h). */
export interface NativeStatus {
  kind: 'error' | 'started' | 'exited' | 'warning' | 'eof' | 'unknown';
  errno?: number;
  pid?: number;
  step?: string;
  syscall?: string;
  detail?: string;
  code?: number;
  signal?: number;
}

/** How dyno-init itself ended, from waitid(P_PIDFD). */
export interface NativeExit {
  code: number | null;
  signal: number | null;
}

export interface NativeDynoProcess {
  readonly pid: number;
  /** pidfd_send_signal; false once the dyno has exited. */
  kill(signal: number): boolean;
}

export interface NativeFileWatch {
  close(): void;
}

interface NativeAddon {
  loadHelper(path: string): void;
  spawn(
    config: Buffer,
    cgroupFd: number,
    stdio: [number, number, number],
    hostNetlink: boolean,
    onStatus: (s: NativeStatus) => void,
    onExit: (e: NativeExit) => void,
    /** Called once the dyno is cloned (on a pool thread); the fds above may be closed right after spawn(). */
    onSpawned: (err: Error | null, proc: NativeDynoProcess | undefined) => void,
  ): void;
  pipe(): [number, number];
  /** Deletes a host network interface by name on a pool thread; an interface already gone is no error. */
  deleteLink(name: string, done: (err: Error | null) => void): void;
  /** Deletes the host's IPv4 neighbour entry for `address` on interface `ifindex` on a pool thread; none is no error. */
  deleteNeighbour(ifindex: number, address: string, done: (err: Error | null) => void): void;
  /** A pseudo-terminal pair [master, slave] (close-on-exec) of the given size. */
  openPty(cols: number, rows: number): [number, number];
  resizePty(masterFd: number, cols: number, rows: number): void;
  /** SO_PEERCRED of a connected unix socket: who connected (as the kernel saw it at connect). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** flock(LOCK_EX|LOCK_NB) on a directory or a lock file; the fd is held for the process's life. */
  lockExclusive(path: string, directory: boolean): number;
  /** Watches a kernfs event file (memory.events, cgroup.events); onChange gets its new contents. */
  watchFile(path: string, onChange: (contents: string) => void): NativeFileWatch;
  /** native/common/dyno_table.h as built into this addon. */
  readonly tables: NativeTables;
}

let addon: NativeAddon | undefined;

/** The addon, with the helper loaded into its sealed memfd on first use. */
export function native(): NativeAddon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(path.join(BUILD_DIR, 'manifold_native.node')) as NativeAddon;
    checkNativeTables(loaded.tables);
    loaded.loadHelper(HELPER_PATH);
    addon = loaded;
  }
  return addon;
}
