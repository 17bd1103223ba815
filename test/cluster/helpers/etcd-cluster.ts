/**
 * A 3-member etcd cluster on loopback for the cluster tests: child processes of the test, data dirs
 * in /dev/shm (tmpfs: fsync is free, so a 2-core box keeps up), random free ports, removed by stop().
 * Flags as in spec §5/§7: keepalive floor 1 s (else the client's 2 s pings get GOAWAY), revision
 * compaction (3.4 compacts nothing by default), heartbeat/election timeouts left at their defaults.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createEtcdClient } from '../../../src/cluster/etcd-client';
import { spawnTied } from './tied';

export const ETCD_BIN = 'etcd';

/** Why etcd tests can't run here, or undefined when the binary is on PATH. */
export function etcdMissing(): string | undefined {
  const r = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'etcd not installed (apt-get install etcd-server; vagrant/provision.sh installs it)';
  return undefined;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  pid: number;
  process: ChildProcess;
  /** Last lines of its stderr, for failure messages. */
  log: string[];
}

export interface EtcdCluster {
  /** Client URLs of all members, e.g. http://127.0.0.1:41234. */
  endpoints: string[];
  members: EtcdMember[];
  /** The cluster's root dir under /dev/shm (each member's data dir is inside). */
  dir: string;
  /** SIGKILLs every member (a SIGSTOPped one too), waits for their exit and removes the data dirs. */
  stop(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const SHM = '/dev/shm';

/**
 * Removes the data of clusters whose test process is gone. Its members died with it (spawnTied), but
 * a test killed by a signal never ran stop(), so its tmpfs data would stay until reboot.
 */
function sweepOrphans(): void {
  for (const name of fs.readdirSync(SHM)) {
    if (!name.startsWith('mf-etcd-')) continue;
    const dir = path.join(SHM, name);
    let owner: number;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'owner'), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Distinct free ports (asked one after another, all held until the end, so none repeats). */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Starts the cluster and waits until every member serves a linearizable read. */
export async function startEtcdCluster(t?: Teardown, opts: { size?: number; timeoutMs?: number } = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  sweepOrphans();
  const dir = fs.mkdtempSync(`${SHM}/mf-etcd-`);
  fs.writeFileSync(path.join(dir, 'owner'), String(process.pid));
  const ports = await freePorts(size * 2);
  const token = `mf-${crypto.randomBytes(6).toString('hex')}`;
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `e${i + 1}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
  }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const members: EtcdMember[] = [];
  let stopped: Promise<void> | undefined;

  const killAllSync = (): void => {
    for (const m of members) if (m.process.exitCode === null && m.process.signalCode === null) m.process.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Last resort when the test process exits without reaching stop() (an uncaught error, tap's timeout).
  process.once('exit', killAllSync);

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(
        members.map(
          (m) =>
            new Promise<void>((resolve) => {
              if (m.process.exitCode !== null || m.process.signalCode !== null) return resolve();
              m.process.once('exit', () => resolve());
              m.process.kill('SIGKILL');
            }),
        ),
      );
      fs.rmSync(dir, { recursive: true, force: true });
      process.off('exit', killAllSync);
    })();
    return stopped;
  };
  t?.teardown(stop);

  for (const s of specs) {
    const args = [
      `--name=${s.name}`,
      `--data-dir=${path.join(dir, s.name)}`,
      `--listen-client-urls=${s.clientUrl}`,
      `--advertise-client-urls=${s.clientUrl}`,
      `--listen-peer-urls=${s.peerUrl}`,
      `--initial-advertise-peer-urls=${s.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${token}`,
      '--grpc-keepalive-min-time=1s',
      '--auto-compaction-mode=revision',
      '--auto-compaction-retention=10000',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ];
    const child = spawnTied(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const log: string[] = [];
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      log.push(...chunk.split('\n').filter(Boolean));
      if (log.length > 50) log.splice(0, log.length - 50);
    });
    if (child.pid === undefined) {
      await stop();
      throw new Error(`could not start ${ETCD_BIN}`);
    }
    members.push({ ...s, pid: child.pid, process: child, log });
  }

  const cluster: EtcdCluster = { endpoints: specs.map((s) => s.clientUrl), members, dir, stop };
  try {
    await waitHealthy(cluster, opts.timeoutMs ?? 15_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return cluster;
}

/** Every member answers a linearizable get on its own (so each has joined and sees a leader). */
async function waitHealthy(cluster: EtcdCluster, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const m of cluster.members) {
    const client = createEtcdClient([m.clientUrl]);
    try {
      for (;;) {
        if (m.process.exitCode !== null) throw new Error(`etcd ${m.name} exited ${m.process.exitCode}: ${m.log.slice(-3).join(' | ')}`);
        try {
          await client.get('/manifold-fixture-health').string();
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`etcd ${m.name} not healthy after ${timeoutMs} ms: ${String(err)} ${m.log.slice(-3).join(' | ')}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      client.close();
    }
  }
}

/** Pids of live processes whose command line mentions `needle` (leak check for the fixture). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // a zombie (state Z) is already dead; its parent (us) reaps it shortly
      if (cmdline.includes(needle) && !/\) Z /.test(stat)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}
