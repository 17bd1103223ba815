/**
 * Tier 2 of spec §7: hosts as network namespaces on one L2 segment, for the cluster fault tests.
 *
 * Every namespace is held by a process (`unshare --net sleep infinity`, tied to the test with
 * PR_SET_PDEATHSIG), never by a bind mount in /run/netns: when the test dies by any means, the holders
 * die and the kernel frees the namespaces with every veth and bridge in them. The root network
 * namespace is never touched: each veth is created inside its host namespace with its peer moved
 * straight into `fab`, so no interface ever exists in the root netns, not even for a moment.
 *
 *   fab  : bridge fab0 (STP off, forward delay 0, so a port forwards the moment it is up)
 *   hI   : eth0 10.99.0.I/24      <-> upI  in fab
 *   eI   : eth0 10.99.0.20I/24    <-> upeI in fab (one etcd member each, so a test can cut one)
 *   cl   : eth0 10.99.0.100/24    <-> upcl in fab (the load generator)
 *
 * The mount namespace is shared (daemons use the host filesystem). The test process stays in the root
 * netns and can't reach 10.99.0.0/24; it talks to etcd through a unix socket each member also listens
 * on (`etcdLocalEndpoints`), and runs anything else inside a namespace with spawn()/exec().
 */
import { spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { createEtcdClient } from '../../../src/cluster/etcd-client';
import { ETCD_BIN } from './etcd-cluster';
import { spawnTied } from './tied';

export const FABRIC_PREFIX = 'mf-fabric-';
const SHM = '/dev/shm';
const SUBNET = '10.99.0';

export interface Namespace {
  name: string;
  /** Pid of the holder process (`sleep infinity` in the namespace): the target of `nsenter -t`. */
  pid: number;
  /** Inode of the namespace (from /proc/PID/ns/net), to tell it from a reused pid and for the leak check. */
  inode: string;
  /** Its address on the fabric (undefined for `fab` itself). */
  address?: string;
  /** Its port on fab0, e.g. up1 (undefined for `fab`). */
  port?: string;
  holder: ChildProcess;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  status: number | null;
}

export interface FabricOptions {
  /** Number of hosts h1..hN (default 3, at most 99: their addresses are 10.99.0.1–99). */
  hosts?: number;
  /** Start the 3 etcd members (default true). */
  etcd?: boolean;
  /** How long startFabric may wait for etcd to serve (default 20 s). */
  timeoutMs?: number;
}

export interface EtcdFabricMember {
  name: string;
  /** The namespace the member runs in (same name). */
  ns: string;
  /** http://10.99.0.20I:2379, reachable from the other namespaces only. */
  clientUrl: string;
  /** unix:///dev/shm/mf-fabric-…/eI.sock:2379, reachable from the test process. */
  localUrl: string;
  process: ChildProcess | undefined;
  log: string[];
}

export interface LeakReport {
  /** Fabric data dirs of this process still on /dev/shm. */
  dirs: string[];
  /** Pids of live processes still in one of the fabric's namespaces (holders or anything started there). */
  processesInNamespaces: number[];
  /** Interfaces of the root netns that appeared or vanished since startFabric (name@ifindex). */
  rootLinksAdded: string[];
  rootLinksRemoved: string[];
  /** Those of rootLinksAdded that carry a fabric name (fab0, upN, upeN, upcl): ours for sure. */
  ourLinksInRoot: string[];
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function nsInode(pid: number | 'self'): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

/** Interfaces of the calling process's netns, as name@ifindex (an index changes if a link is recreated). */
export function rootLinks(): string[] {
  const r = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -o link: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => /^(\d+):\s+([^:@\s]+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[2]}@${m[1]}`)
    .sort();
}

/** Pids of live (non-zombie) processes whose netns inode is one of `inodes`. */
export function processesInNamespaces(inodes: ReadonlySet<string>): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ino = nsInode(Number(entry));
    if (ino === undefined || !inodes.has(ino)) continue;
    try {
      if (/\) Z /.test(fs.readFileSync(`/proc/${entry}/stat`, 'utf8'))) continue;
    } catch {
      continue;
    }
    pids.push(Number(entry));
  }
  return pids;
}

/** Removes the data dirs of fabrics whose test process is gone (killed before its stop() ran). */
function sweepOrphans(): void {
  for (const name of fs.readdirSync(SHM)) {
    if (!name.startsWith(FABRIC_PREFIX)) continue;
    const dir = path.join(SHM, name);
    let owner: number;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'owner'), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || nsInode(owner) !== undefined) continue;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Why the fabric can't run here, or undefined. */
export function fabricMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'fabric needs root (network namespaces)';
  for (const [bin, args] of [
    ['nft', ['--version']],
    ['unshare', ['--version']],
    ['nsenter', ['--version']],
    ['ip', ['-V']],
  ] as const) {
    const r = spawnSync(bin, args, { encoding: 'utf8' });
    if (r.error || r.status !== 0) return `${bin} not available`;
  }
  return undefined;
}


/** Why the etcd members can't run here, or undefined. */
function etcdBinMissing(): string | undefined {
  const r = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? 'etcd not installed (apt-get install etcd-server)' : undefined;
}

/** The fabric of spec §7 Tier 2. Build it with startFabric(); stop() (registered with t.teardown) undoes all. */
export class Fabric {
  readonly hosts: string[];
  readonly members: EtcdFabricMember[] = [];
  private readonly namespaces = new Map<string, Namespace>();
  private readonly children = new Set<ChildProcess>();
  /** Active dropTo/dropFrom entries, as "set:name". */
  private readonly cuts = new Set<string>();
  private readonly rootInode: string;
  private readonly rootLinksBefore: string[];
  private stopping: Promise<void> | undefined;
  private readonly killAllSync = (): void => {
    for (const c of [...this.children, ...[...this.namespaces.values()].map((n) => n.holder)]) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  };

  private constructor(
    readonly dir: string,
    hostCount: number,
  ) {
    this.hosts = Array.from({ length: hostCount }, (_, i) => `h${i + 1}`);
    const root = nsInode('self');
    if (root === undefined) throw new Error('cannot read /proc/self/ns/net');
    this.rootInode = root;
    this.rootLinksBefore = rootLinks();
    // Last resort when the test process exits without reaching stop(); a signal death is covered by pdeathsig.
    process.once('exit', this.killAllSync);
  }

  /** Creates the namespaces, wires them to fab0 and (unless opts.etcd === false) starts etcd. */
  static async start(t: Teardown | undefined, opts: FabricOptions = {}): Promise<Fabric> {
    const hostCount = opts.hosts ?? 3;
    if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > 99) throw new RangeError(`hosts must be 1..99, got ${hostCount}`);
    const missing = fabricMissing() ?? (opts.etcd === false ? undefined : etcdBinMissing());
    if (missing) throw new Error(missing);
    sweepOrphans();
    const dir = fs.mkdtempSync(`${SHM}/${FABRIC_PREFIX}`);
    fs.writeFileSync(path.join(dir, 'owner'), String(process.pid));
    const fabric = new Fabric(dir, hostCount);
    t?.teardown(() => fabric.stop());
    try {
      await fabric.build(opts.etcd !== false);
      if (opts.etcd !== false) await fabric.startEtcd(opts.timeoutMs ?? 20_000);
    } catch (err) {
      await fabric.stop();
      throw err;
    }
    return fabric;
  }

  /** The namespace called `name` (fab, h1.., e1.., cl); throws if unknown or its holder is gone. */
  ns(name: string): Namespace {
    const ns = this.namespaces.get(name);
    if (!ns) throw new Error(`no namespace ${name} in this fabric`);
    // Guard nsenter against a dead holder whose pid was reused: it would put the command in another netns.
    if (nsInode(ns.pid) !== ns.inode) throw new Error(`namespace ${name}: holder ${ns.pid} is gone`);
    return ns;
  }

  /** Names of all namespaces. */
  names(): string[] {
    return [...this.namespaces.keys()];
  }

  /** The fabric address of a namespace (10.99.0.I for hI). */
  address(name: string): string {
    const a = this.ns(name).address;
    if (a === undefined) throw new Error(`${name} has no fabric address`);
    return a;
  }

  /** Client URLs on the fabric, for programs running inside the namespaces. */
  get etcdEndpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** Unix-socket client URLs, for the test process in the root netns (etcd3 / grpc-js take them as hosts). */
  get etcdLocalEndpoints(): string[] {
    return this.members.map((m) => m.localUrl);
  }

  /** Runs a short command inside `name` and waits for it (synchronous; killed after timeoutMs, default 10 s). */
  exec(name: string, cmd: string, args: readonly string[] = [], opts: { input?: string; timeoutMs?: number } = {}): ExecResult {
    const r = spawnSync('nsenter', this.nsenterArgs(name, cmd, args), {
      encoding: 'utf8',
      input: opts.input,
      timeout: opts.timeoutMs ?? 10_000,
    });
    if (r.error) return { stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${String(r.error)}`, status: null };
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  }

  /** exec() that throws unless the command exits 0; returns its stdout. */
  execOk(name: string, cmd: string, args: readonly string[] = [], opts: { input?: string; timeoutMs?: number } = {}): string {
    const r = this.exec(name, cmd, args, opts);
    if (r.status !== 0) throw new Error(`${name}: ${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * Starts a long-lived command inside `name`, tied to the test (pdeathsig) and killed by stop().
   * nsenter enters only the netns and then execs the command, so the child's pid is the command's own
   * (SIGSTOP/SIGKILL on child.pid reach it directly).
   */
  spawn(name: string, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    if (this.stopping) throw new Error('fabric is stopping');
    const child = spawnTied('nsenter', this.nsenterArgs(name, cmd, args), opts);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** spawn() of a node script (the test's own node binary). */
  node(name: string, script: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    return this.spawn(name, process.execPath, [script, ...args], opts);
  }

  /** Runs a command inside `name` to its end, collecting its output (async; for node programs that take time). */
  run(name: string, cmd: string, args: readonly string[] = [], timeoutMs = 30_000): Promise<ExecResult> {
    const child = this.spawn(name, cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    return new Promise((resolve) => {
      child.once('close', (status) => {
        clearTimeout(timer);
        resolve({ stdout, stderr, status });
      });
    });
  }

  /** Cuts `name` off the fabric (its port on fab0 down, as spec §7 fault #3: `ip link set up3 down` in fab). */
  linkDown(name: string): void {
    this.execOk('fab', 'ip', ['link', 'set', this.port(name), 'down']);
  }

  /** Reconnects `name` (STP is off, so the port forwards at once). */
  linkUp(name: string): void {
    this.execOk('fab', 'ip', ['link', 'set', this.port(name), 'up']);
  }

  /** One-way loss fab → `name`: the bridge drops every frame (ARP too) it would deliver to `name`. */
  dropTo(name: string): void {
    this.setCut('cut_to', name, true);
  }

  /** One-way loss `name` → fab: the bridge drops every frame coming from `name`. */
  dropFrom(name: string): void {
    this.setCut('cut_from', name, true);
  }

  /** Ends dropTo/dropFrom for `name`. */
  undrop(name: string): void {
    this.setCut('cut_to', name, false);
    this.setCut('cut_from', name, false);
  }

  private setCut(set: 'cut_to' | 'cut_from', name: string, on: boolean): void {
    const key = `${set}:${name}`;
    if (on === this.cuts.has(key)) return;
    this.execOk('fab', 'nft', [on ? 'add' : 'delete', 'element', 'bridge', 'mf', set, `{ "${this.port(name)}" }`]);
    if (on) this.cuts.add(key);
    else this.cuts.delete(key);
  }

  /** The etcd member `i` (1-based, e1..e3). */
  member(i: number): EtcdFabricMember {
    const m = this.members[i - 1];
    if (!m) throw new Error(`no etcd member ${i}`);
    return m;
  }

  /**
   * The member (1-based) the first answering member names as leader, for faults aimed at the leader
   * (spec §7 #5). Asks the members one by one over their unix sockets; throws if none answers.
   */
  async leaderMember(): Promise<number> {
    for (const m of this.members) {
      const client = createEtcdClient([m.localUrl]);
      try {
        const status = await client.maintenance.status();
        for (let i = 0; i < this.members.length; i++) {
          const peer = createEtcdClient([this.members[i]?.localUrl as string]);
          try {
            if ((await peer.maintenance.status()).header.member_id === status.leader) return i + 1;
          } catch {
            // that member is down: it is not the leader the others see
          } finally {
            peer.close();
          }
        }
      } catch {
        // frozen or dead member: ask the next one
      } finally {
        client.close();
      }
    }
    throw new Error('no etcd member names a reachable leader');
  }

  /** Freezes etcd member i (SIGSTOP): its sockets stay open but it answers nothing. */
  stopMember(i: number): void {
    this.memberProcess(i).kill('SIGSTOP');
  }

  /** Thaws a member frozen by stopMember(). */
  contMember(i: number): void {
    this.memberProcess(i).kill('SIGCONT');
  }

  /** SIGKILLs member i and waits for its exit; its data dir stays, so startMember(i) rejoins. */
  async killMember(i: number): Promise<void> {
    const child = this.member(i).process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Restarts a killed member on its data dir and waits until it serves a linearizable read. */
  async startMember(i: number, timeoutMs = 20_000): Promise<void> {
    const m = this.member(i);
    if (m.process && m.process.exitCode === null && m.process.signalCode === null) throw new Error(`${m.name} is running`);
    this.launchMember(m, 'existing');
    await this.waitServing(m, Date.now() + timeoutMs);
  }

  /** Kills every process started here and every holder, waits until the namespaces are empty, removes the dir. */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  /**
   * What the fabric left behind. After stop() every list must be empty: no dir, nothing in any of its
   * namespaces (so the kernel freed them with their links), no fabric link in the root netns. Root links
   * added by something else (another suite running at the same time) show in rootLinksAdded only.
   */
  leakCheck(): LeakReport {
    const dirs = fs.existsSync(this.dir) ? [this.dir] : [];
    const inodes = new Set([...this.namespaces.values()].map((n) => n.inode));
    const after = rootLinks();
    const before = new Set(this.rootLinksBefore);
    const added = after.filter((l) => !before.has(l));
    const afterSet = new Set(after);
    const removed = this.rootLinksBefore.filter((l) => !afterSet.has(l));
    const ourNames = /^(fab0|up\d+|upe\d+|upcl)@/;
    return {
      dirs,
      processesInNamespaces: processesInNamespaces(inodes),
      rootLinksAdded: added,
      rootLinksRemoved: removed,
      ourLinksInRoot: added.filter((l) => ourNames.test(l)),
    };
  }

  // ---- construction ----

  private async build(withEtcd: boolean): Promise<void> {
    await this.addNamespace('fab');
    this.execOk('fab', 'ip', ['-batch', '-'], {
      input: ['link set lo up', 'link add fab0 type bridge stp_state 0 forward_delay 0', 'link set fab0 up', ''].join('\n'),
    });
    // One-way loss for spec §7 fault #4. This kernel has no sch_netem (CONFIG_NET_SCH_NETEM unset), so
    // the bridge drops the frames instead: a port in cut_to gets nothing, one in cut_from sends nothing.
    this.execOk('fab', 'nft', ['-f', '-'], {
      input: [
        'table bridge mf {',
        '  set cut_to { type ifname; }',
        '  set cut_from { type ifname; }',
        '  chain cut { type filter hook forward priority 0; policy accept; oifname @cut_to drop; iifname @cut_from drop; }',
        '}',
        '',
      ].join('\n'),
    });
    for (let i = 1; i <= this.hosts.length; i++) await this.attach(`h${i}`, `${SUBNET}.${i}`, `up${i}`);
    if (withEtcd) for (let i = 1; i <= 3; i++) await this.attach(`e${i}`, `${SUBNET}.${200 + i}`, `upe${i}`);
    await this.attach('cl', `${SUBNET}.100`, 'upcl');
  }

  /** Starts a holder and waits until it has left the root netns (nsenter before that would enter the root netns). */
  private async addNamespace(name: string, address?: string, port?: string): Promise<Namespace> {
    const holder = spawnTied('unshare', ['--net', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
    const pid = holder.pid;
    if (pid === undefined) throw new Error(`could not start the holder of ${name}`);
    const deadline = Date.now() + 5000;
    let inode = nsInode(pid);
    while (inode === undefined || inode === this.rootInode) {
      if (holder.exitCode !== null || Date.now() > deadline) {
        holder.kill('SIGKILL');
        throw new Error(`holder of ${name} did not enter a new netns`);
      }
      await sleep(5);
      inode = nsInode(pid);
    }
    const ns: Namespace = { name, pid, inode, holder, ...(address ? { address } : {}), ...(port ? { port } : {}) };
    this.namespaces.set(name, ns);
    return ns;
  }

  /** A namespace with eth0 = `address`/24 whose veth peer `port` is created directly in fab and enslaved to fab0. */
  private async attach(name: string, address: string, port: string): Promise<void> {
    await this.addNamespace(name, address, port);
    const fab = this.ns('fab');
    this.execOk(name, 'ip', ['-batch', '-'], {
      input: [
        'link set lo up',
        `link add eth0 type veth peer name ${port} netns ${fab.pid}`,
        `addr add ${address}/24 dev eth0`,
        'link set eth0 up',
        '',
      ].join('\n'),
    });
    this.execOk('fab', 'ip', ['-batch', '-'], { input: `link set ${port} master fab0\nlink set ${port} up\n` });
  }

  private port(name: string): string {
    const p = this.ns(name).port;
    if (p === undefined) throw new Error(`${name} has no port on fab0`);
    return p;
  }

  private nsenterArgs(name: string, cmd: string, args: readonly string[]): string[] {
    return ['-t', String(this.ns(name).pid), '-n', '--', cmd, ...args];
  }

  // ---- etcd ----

  private async startEtcd(timeoutMs: number): Promise<void> {
    for (let i = 1; i <= 3; i++) {
      const name = `e${i}`;
      const ip = `${SUBNET}.${200 + i}`;
      this.members.push({
        name,
        ns: name,
        clientUrl: `http://${ip}:2379`,
        // etcd wants host:port even for unix URLs and listens on the "host:port" string as a path
        // relative to its cwd (the fabric dir), so the socket is <dir>/eI.sock:2379.
        localUrl: `unix://${path.join(this.dir, `${name}.sock:2379`)}`,
        process: undefined,
        log: [],
      });
    }
    const token = `mf-fabric-${crypto.randomBytes(6).toString('hex')}`;
    for (const m of this.members) this.launchMember(m, 'new', token);
    const deadline = Date.now() + timeoutMs;
    for (const m of this.members) await this.waitServing(m, deadline);
  }

  private launchMember(m: EtcdFabricMember, state: 'new' | 'existing', token = 'mf-fabric'): void {
    const ip = this.address(m.ns);
    const initialCluster = this.members.map((x) => `${x.name}=http://${this.address(x.ns)}:2380`).join(',');
    // A socket file left by a killed member would make the restarted one fail with EADDRINUSE.
    fs.rmSync(path.join(this.dir, `${m.name}.sock:2379`), { force: true });
    const args = [
      `--name=${m.name}`,
      `--data-dir=${path.join(this.dir, m.name)}`,
      `--listen-client-urls=http://${ip}:2379,unix://${m.name}.sock:2379`,
      `--advertise-client-urls=http://${ip}:2379`,
      `--listen-peer-urls=http://${ip}:2380`,
      `--initial-advertise-peer-urls=http://${ip}:2380`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      `--initial-cluster-token=${token}`,
      '--grpc-keepalive-min-time=1s',
      '--auto-compaction-mode=revision',
      '--auto-compaction-retention=10000',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ];
    const child = this.spawn(m.ns, ETCD_BIN, args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    m.process = child;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      m.log.push(...chunk.split('\n').filter(Boolean));
      if (m.log.length > 50) m.log.splice(0, m.log.length - 50);
    });
  }

  /** Waits until member m alone answers a linearizable get (so it has joined and sees a leader). */
  private async waitServing(m: EtcdFabricMember, deadline: number): Promise<void> {
    // Wait for the socket file first: a gRPC client that finds no socket backs off for seconds (1 s,
    // 1.6 s, 2.6 s…) and would delay a restarted member's readiness far past the moment it listens.
    const socket = m.localUrl.slice('unix://'.length);
    while (!fs.existsSync(socket)) {
      const p = m.process;
      if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`etcd ${m.name} exited: ${m.log.slice(-3).join(' | ')}`);
      if (Date.now() > deadline) throw new Error(`etcd ${m.name} never listened on ${socket}: ${m.log.slice(-3).join(' | ')}`);
      await sleep(20);
    }
    const client = createEtcdClient([m.localUrl]);
    try {
      for (;;) {
        const p = m.process;
        if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`etcd ${m.name} exited: ${m.log.slice(-3).join(' | ')}`);
        try {
          await client.get('/manifold-fabric-health').string();
          return;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`etcd ${m.name} not serving: ${String(err)} ${m.log.slice(-3).join(' | ')}`);
          await sleep(100);
        }
      }
    } finally {
      client.close();
    }
  }

  private memberProcess(i: number): ChildProcess {
    const p = this.member(i).process;
    if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`etcd e${i} is not running`);
    return p;
  }

  // ---- teardown ----

  private async stopNow(): Promise<void> {
    const waitExit = (c: ChildProcess): Promise<void> =>
      new Promise((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGKILL'); // also ends a SIGSTOPped process
      });
    await Promise.all([...this.children].map(waitExit));
    // Processes that entered a namespace some other way (a daemon's own children) would keep it alive.
    // Kill them while the holders still pin the namespaces: the inodes are surely ours then (a freed
    // namespace's inode number can be reused by someone else's new one).
    const holders = new Set([...this.namespaces.values()].map((n) => n.pid));
    const inodes = new Set([...this.namespaces.values()].map((n) => n.inode));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const strays = processesInNamespaces(inodes).filter((pid) => !holders.has(pid));
      if (strays.length === 0 || Date.now() > deadline) break; // leakCheck() reports what stayed
      for (const pid of strays) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await sleep(50);
    }
    await Promise.all([...this.namespaces.values()].map((n) => waitExit(n.holder)));
    fs.rmSync(this.dir, { recursive: true, force: true });
    process.off('exit', this.killAllSync);
  }
}

/** Builds the fabric (hosts h1..hN, cl, and etcd e1..e3 unless opts.etcd is false); stop() runs at t's teardown. */
export function startFabric(t: Teardown | undefined, opts: FabricOptions = {}): Promise<Fabric> {
  return Fabric.start(t, opts);
}

/** Starts a `node -e` server inside `ns` and waits for its first line (its "ready"); the caller kills it. */
export async function serveIn(fabric: Fabric, ns: string, script: string, args: string[]): Promise<ChildProcess> {
  const child = fabric.spawn(ns, process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`server in ${ns} exited ${code}`)));
  });
  return child;
}
