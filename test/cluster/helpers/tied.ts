/**
 * Spawns a child that dies with the test process. t.teardown and an 'exit' hook cover ordinary ends,
 * but not a test killed by a signal (tap's timeout, a SIGKILL): the etcd members and candidates would
 * outlive it and hold their ports and leases. `setpriv --pdeathsig KILL` (util-linux, essential on
 * Debian) sets PR_SET_PDEATHSIG and then execs the command, so the child's pid is the command's own.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';

const SETPRIV = '/usr/bin/setpriv';
const hasSetpriv = fs.existsSync(SETPRIV);

export function spawnTied(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return hasSetpriv ? spawn(SETPRIV, ['--pdeathsig', 'KILL', command, ...args], options) : spawn(command, args, options);
}
