/**
 * Manifold daemons on the fabric's hosts (spec §7 Tier 2): one `manifold daemon --etcd …` per host
 * namespace, each with its own state dir, run dir, cgroup subtree and control socket (sockets are
 * files, so the test process in the root network namespace drives every host's API directly).
 * stop() ends them with SIGTERM (SIGKILL after 20 s), then removes what they left.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { CgroupTree } from '../../../src/runtime/cgroup';
import { BIN, runCli, sleep, waitFor, type CliResult } from '../../manifold/helpers/daemon';
import type { Fabric } from './fabric';
import type { Test } from 'tap';

export const ROUTER_PORT = 8080;

export interface HostDaemonOptions {
  roles?: string;
  /**
   * Host lease TTL (default 5s). The spec's 3 s is for the fault tests, which measure detection; on
   * a loaded 2-core box a 3 s lease can expire with no fault at all (spec §7's gate), and a spurious
   * expiry moves dynos the spread assertions are about.
   */
  hostTtl?: string;
  extra?: string[];
}

export class HostDaemon {
  child: ChildProcess | undefined;
  log = '';
  readonly socket: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly cgroup: string;
  /** Path of the daemon's cgroup subtree; found once (CgroupTree.open creates it), then only checked and removed. */
  readonly cgroupRoot: string;

  constructor(
    readonly fabric: Fabric,
    readonly host: string,
    readonly dir: string,
    readonly tag: string,
    readonly o: HostDaemonOptions,
  ) {
    this.socket = path.join(dir, 'api.sock');
    this.stateDir = path.join(dir, 'state');
    this.runDir = `/run/mf-cl-${tag}-${host}`;
    this.cgroup = `mf-cl-${tag}-${host}`;
    this.cgroupRoot = CgroupTree.open(this.cgroup).root;
  }

  get uplink(): string {
    return this.fabric.address(this.host);
  }

  get router(): string {
    return `${this.uplink}:${ROUTER_PORT}`;
  }

  args(): string[] {
    return [
      BIN, 'daemon', '--etcd', this.fabric.etcdEndpoints.join(','), '--host-id', this.host, '--uplink', this.uplink, '--host-ttl', this.o.hostTtl ?? '5s',
      '--state-dir', this.stateDir, '--socket', this.socket, '--run-dir', this.runDir, '--cgroup', this.cgroup,
      '--listen', `${this.uplink}:${ROUTER_PORT}`, '--domain', 'example.test', '--drain', '10s', '--stop-grace', '5s',
      ...(this.o.roles ? ['--roles', this.o.roles] : []), ...(this.o.extra ?? []),
    ];
  }

  async start(timeoutMs = 30_000): Promise<void> {
    this.log = '';
    const child = this.fabric.spawn(this.host, process.execPath, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + timeoutMs;
    while (!/ready:/.test(this.log)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`daemon ${this.host} exited: ${this.log}`);
      if (Date.now() > deadline) throw new Error(`daemon ${this.host} did not start: ${this.log}`);
      await sleep(50);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(t);
  }

  cli(...args: string[]): Promise<CliResult> {
    return runCli(args, { MANIFOLD_SOCKET: this.socket });
  }

  async cleanup(): Promise<void> {
    fs.rmSync(this.runDir, { recursive: true, force: true });
    // the last dyno's exit may still be settling in the kernel (EBUSY for a moment): retry briefly
    const root = this.cgroupRoot;
    for (let i = 0; i < 40 && fs.existsSync(root); i++) {
      try {
        fs.rmdirSync(root);
      } catch {
        await sleep(50);
      }
    }
  }
}

export class ClusterHosts {
  readonly daemons = new Map<string, HostDaemon>();
  readonly dir: string;
  readonly tag = randomBytes(3).toString('hex');

  constructor(readonly fabric: Fabric) {
    this.dir = fs.mkdtempSync('/tmp/mf-cluster-');
  }

  add(host: string, o: HostDaemonOptions = {}): HostDaemon {
    const d = new HostDaemon(this.fabric, host, path.join(this.dir, host), this.tag, o);
    fs.mkdirSync(d.dir, { recursive: true });
    this.daemons.set(host, d);
    return d;
  }

  get(host: string): HostDaemon {
    const d = this.daemons.get(host);
    if (!d) throw new Error(`no daemon on ${host}`);
    return d;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.daemons.values()].map((d) => d.stop()));
    // MF_TEST_DAEMON_LOGS=DIR keeps every daemon's output for a look after a failed run
    const keep = process.env.MF_TEST_DAEMON_LOGS;
    if (keep) {
      fs.mkdirSync(keep, { recursive: true });
      for (const d of this.daemons.values()) fs.writeFileSync(path.join(keep, `${d.host}.log`), d.log);
    }
    for (const d of this.daemons.values()) await d.cleanup();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Dyno cgroups (leaves) under every daemon's subtree: one per running dyno. */
  dynoCgroups(): string[] {
    const out: string[] = [];
    for (const d of this.daemons.values()) {
      if (!fs.existsSync(d.cgroupRoot)) continue;
      for (const e of fs.readdirSync(d.cgroupRoot, { withFileTypes: true })) if (e.isDirectory()) out.push(`${d.host}/${e.name}`);
    }
    return out;
  }

  /**
   * `host`'s dyno cgroups that still hold a process. A daemon killed with -9 cannot remove its dynos'
   * cgroups, so an empty one left behind is not a running dyno.
   */
  liveDynoCgroups(host: string): string[] {
    const root = this.get(host).cgroupRoot;
    return this.dynoCgroups().filter((c) => {
      if (!c.startsWith(`${host}/`)) return false;
      try {
        return /^populated 1$/m.test(fs.readFileSync(path.join(root, c.slice(host.length + 1), 'cgroup.events'), 'utf8'));
      } catch {
        return false;
      }
    });
  }

  /**
   * Epoch ms at which `host` was first seen with no live dyno (polled every 5 ms). After a daemon's
   * kill -9 its dynos die by PDEATHSIG, which takes from a few ms to over 50 ms on a loaded box: a
   * request that reaches a dyno in that window meets the fault as surely as one in flight at the kill.
   */
  async dynosGoneAt(host: string, timeoutMs = 10_000): Promise<number> {
    return waitFor(`no live dyno on ${host}`, async () => (this.liveDynoCgroups(host).length === 0 ? Date.now() : undefined), timeoutMs, 5);
  }

  /** What the daemons may have left: cgroups, run dirs (the leak assertions). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const d of this.daemons.values()) {
      if (fs.existsSync(d.cgroupRoot)) out.push(`cgroup ${d.cgroup}`);
      if (fs.existsSync(d.runDir)) out.push(d.runDir);
    }
    if (fs.existsSync(this.dir)) out.push(this.dir);
    return out;
  }
}

/** The last subtest of every fabric test: daemons and fabric stopped, nothing of theirs left anywhere. */
export async function assertNothingLeft(t: Test, cluster: ClusterHosts, fabric: Fabric): Promise<void> {
  await cluster.stop();
  t.same(cluster.leftovers(), [], 'no cgroup subtree, run dir or state dir left');
  await fabric.stop();
  const leak = fabric.leakCheck();
  t.same(leak.dirs, [], 'no fabric dir');
  t.same(leak.processesInNamespaces, [], 'no process (daemon, dyno, etcd) left in the namespaces');
  t.same(leak.ourLinksInRoot, [], 'no fabric veth or bridge in the root namespace');
  t.same(leak.rootLinksAdded.filter((l) => /^(manifold|mf)/.test(l)), [], 'no dyno bridge or veth in the root namespace');
  t.same(leak.rootLinksRemoved, [], 'no root interface removed');
}
