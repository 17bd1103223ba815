/**
 * Bridge networking, host side. One bridge (default manifold0, 10.200.0.1/16) is created once;
 * each dyno leases an address and a host veth name, and dyno-init creates the veth pair itself
 * through rtnetlink (native/init/netdev.c). Leases are files created with O_EXCL under the run
 * directory, so several processes (a daemon, a `dyno run`) never hand out the same address; a
 * lease whose maker died (or is a zombie) is reclaimed, and a runtime reclaiming after a crash
 * frees every lease of its own cgroup subtree that no live dyno of its holds. Teardown deletes
 * the host veth (and with it the peer) before the address is freed; only the bridge stays, until
 * cleanup().
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bridgeRuleset, removeBridgeRuleset } from './bridge-firewall';
import { DynoError } from './errors';
import { native } from './native';

export interface BridgeOptions {
  name?: string;
  /** IPv4 subnet in CIDR form; the bridge takes the first host address. */
  subnet?: string;
  /** Outbound NAT (nftables masquerade) for dynos. Off by default. */
  nat?: boolean;
  /**
   * The host serves DNS on the bridge's gateway address: dynos may reach its port 53 (UDP, TCP).
   * Off by default: nothing on the host is open to dynos (bridge-firewall.ts).
   */
  hostDns?: boolean;
}

export interface Lease {
  address: string;
  prefixLen: number;
  gateway: string;
  veth: string;
  /** ifindex asked for the host end, so dyno-init needs no lookup (it falls back if taken). */
  vethIndex: number;
  bridgeIndex: number;
}

export const DEFAULT_BRIDGE = 'manifold0';
export const DEFAULT_SUBNET = '10.200.0.0/16';

/**
 * The name of one bridge's nftables table (family inet: its input filter, its NAT; see
 * bridge-firewall.ts): `manifold` for the default bridge, `manifold-NAME` for any other. One
 * table per bridge, so a second bridge (a daemon's --bridge, a test's) neither replaces the first
 * one's rules nor removes them in its cleanup.
 */
export function natTable(bridge: string): string {
  return bridge === DEFAULT_BRIDGE ? 'manifold' : `manifold-${bridge}`;
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`invalid IPv4 address '${ip}'`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseSubnet(cidr: string): { base: number; prefixLen: number; size: number } {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(cidr);
  if (!m) throw new RangeError(`invalid subnet '${cidr}' (expected a.b.c.d/len)`);
  const prefixLen = Number(m[2]);
  if (prefixLen < 8 || prefixLen > 29) throw new RangeError(`subnet /${prefixLen} out of range (8..29)`);
  return { ...networkOf(m[1]!, prefixLen), prefixLen };
}

/** The network an address belongs to: its first address and size. */
function networkOf(addr: string, prefixLen: number): { base: number; size: number } {
  const size = 2 ** (32 - prefixLen);
  return { base: (ipToInt(addr) & ~(size - 1)) >>> 0, size };
}

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new DynoError({ errno: 5, syscall: 'ip', step: 'network', message: `ip ${args.join(' ')} failed: ${stderr.trim()}` });
  }
}

/**
 * Pins the bridge's MAC address (sets it to itself, which marks it as set). A bridge whose address
 * was never set takes the lowest MAC of its ports and changes it whenever that port comes or goes:
 * every dyno keeps the gateway's old MAC in its ARP cache, and its packets to the host — the
 * replies to the router among them — go to an address nobody has until its next ARP probe, seconds
 * later. A replaced dyno's veth leaving the bridge did exactly that to the new dyno's first replies.
 */
function pinBridgeMac(name: string): void {
  const m = /link\/ether ([0-9a-f:]{17})/.exec(ip(['-o', 'link', 'show', 'dev', name]));
  if (!m) throw new DynoError({ errno: 22, syscall: 'ip', step: 'network', message: `bridge ${name} has no Ethernet address` });
  ip(['link', 'set', 'dev', name, 'address', m[1]!]);
}

/** A new bridge's subnet must not overlap an address of another interface (eth0's network, say). */
function refuseOverlap(name: string, subnet: ReturnType<typeof parseSubnet>): void {
  for (const line of ip(['-4', '-o', 'addr', 'show']).split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet ([0-9.]+)\/([0-9]+)/.exec(line);
    if (!m || m[1] === name || m[1] === 'lo') continue;
    const other = networkOf(m[2]!, Number(m[3]));
    if (subnet.base < other.base + other.size && other.base < subnet.base + subnet.size) {
      throw new DynoError({ errno: 22, syscall: 'ip', step: 'network', message: `subnet ${intToIp(subnet.base)}/${subnet.prefixLen} overlaps ${m[2]}/${m[3]} on ${m[1]}: choose another subnet` });
    }
  }
}

/**
 * Who made a lease: its process, and for a runtime's dyno the runtime's cgroup subtree. The
 * process's start time (clock ticks after boot, /proc/PID/stat) tells a reused pid from it.
 */
/**
 * The interface index of link `name` in this process's network namespace, or undefined. Asked of the
 * kernel through rtnetlink (`ip`), not read from /sys/class/net: sysfs shows the namespace it was
 * mounted in, so a daemon started in another network namespace (a cluster host in the tests) would
 * see the wrong bridge there.
 */
export function linkIndex(name: string): number | undefined {
  try {
    const out = execFileSync('ip', ['-o', 'link', 'show', 'dev', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /^(\d+):/.exec(out);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface LeaseOwner {
  pid: number;
  start?: number;
  subtree?: string;
}

/** State letter and start time of a process; undefined when there is no such process. */
function processStat(pid: number): { state: string; start: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: Number(fields[19]) };
}

let ownStart: number | undefined;
function ownOwner(subtree: string | undefined): LeaseOwner {
  ownStart ??= processStat(process.pid)?.start;
  return { pid: process.pid, ...(ownStart !== undefined ? { start: ownStart } : {}), ...(subtree !== undefined ? { subtree } : {}) };
}

/** A lease file's owner: JSON, or a bare pid (leases of earlier versions). */
function parseOwner(text: string): LeaseOwner | undefined {
  if (/^\s*\d+\s*$/.test(text)) return { pid: Number(text) };
  try {
    const o = JSON.parse(text) as Partial<LeaseOwner>;
    if (!Number.isInteger(o.pid) || (o.pid ?? 0) <= 0) return undefined;
    return { pid: o.pid!, ...(typeof o.start === 'number' ? { start: o.start } : {}), ...(typeof o.subtree === 'string' ? { subtree: o.subtree } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Whether the lease's maker still runs. A zombie does not: kill(pid, 0) still succeeds on one, and
 * a daemon killed with SIGKILL stays one until its parent reaps it (pid 1 of some hosts does so
 * seconds later), while a new daemon already runs. Nor does a process with the pid but another
 * start time (the pid was reused).
 */
function ownerRuns(owner: LeaseOwner): boolean {
  const stat = processStat(owner.pid);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X') return false;
  return owner.start === undefined || stat.start === owner.start;
}

export class BridgeNetwork {
  readonly name: string;
  readonly gateway: string;
  readonly prefixLen: number;
  readonly index: number;
  private readonly base: number;
  private readonly size: number;
  private readonly leaseDir: string;
  private readonly nat: boolean;
  private readonly hostDns: boolean;

  private constructor(name: string, subnet: ReturnType<typeof parseSubnet>, index: number, leaseDir: string, opts: BridgeOptions) {
    this.name = name;
    this.base = subnet.base;
    this.size = subnet.size;
    this.prefixLen = subnet.prefixLen;
    this.gateway = intToIp(subnet.base + 1);
    this.index = index;
    this.leaseDir = leaseDir;
    this.nat = opts.nat === true;
    this.hostDns = opts.hostDns === true;
  }

  /** Creates the bridge if it is missing (one `ip` call, once per host boot) and returns it. */
  static ensure(runDir: string, opts: BridgeOptions = {}): BridgeNetwork {
    const name = opts.name ?? DEFAULT_BRIDGE;
    if (!/^[A-Za-z0-9_-]{1,15}$/.test(name)) throw new RangeError(`invalid bridge name '${name}'`);
    const subnet = parseSubnet(opts.subnet ?? DEFAULT_SUBNET);
    const gateway = `${intToIp(subnet.base + 1)}/${subnet.prefixLen}`;
    if (linkIndex(name) === undefined) {
      refuseOverlap(name, subnet);
      ip(['link', 'add', name, 'type', 'bridge']);
      ip(['addr', 'add', gateway, 'dev', name]);
      ip(['link', 'set', name, 'up']);
    }
    // before a port joins (a bridge made by an earlier version keeps the address it has now)
    pinBridgeMac(name);
    // An existing bridge must carry the gateway of the subnet we lease from: addresses outside the
    // bridge's subnet would be routed off the host instead of to the dynos.
    const addresses = ip(['-4', '-o', 'addr', 'show', 'dev', name]);
    if (!addresses.includes(` ${gateway} `)) {
      const found = /inet ([0-9./]+)/.exec(addresses)?.[1] ?? 'no IPv4 address';
      throw new DynoError({ errno: 22, syscall: 'ip', step: 'network', message: `bridge ${name} exists with ${found}, not ${gateway}: remove it (manifold dyno cleanup) or use its subnet` });
    }
    const index = linkIndex(name);
    if (index === undefined) throw new DynoError({ errno: 19, syscall: 'ip', step: 'network', message: `bridge ${name} vanished while it was being set up` });
    const leaseDir = path.join(runDir, 'net', name);
    fs.mkdirSync(leaseDir, { recursive: true, mode: 0o700 });
    const net = new BridgeNetwork(name, subnet, index, leaseDir, opts);
    // before any dyno joins: a bridge without its input filter would open the host to dynos
    net.loadRules();
    return net;
  }

  /**
   * Leases a free address (random probing; O_EXCL files make it safe across processes). The file
   * names its maker and `subtree`, the cgroup subtree of the runtime it is for (see reclaimStaleLeases).
   */
  lease(subtree?: string): Lease {
    const owner = JSON.stringify(ownOwner(subtree));
    const first = this.base + 2;
    const count = this.size - 3; // minus network, gateway, broadcast
    const take = (addr: string): Lease | 'taken' => {
      const file = path.join(this.leaseDir, addr);
      try {
        fs.writeFileSync(file, owner, { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        return this.reclaimIfStale(file) ? take(addr) : 'taken';
      }
      const veth = `mfv${randomBytes(4).toString('hex')}`;
      const vethIndex = 0x100000 + randomInt(0x3ff00000);
      return { address: addr, prefixLen: this.prefixLen, gateway: this.gateway, veth, vethIndex, bridgeIndex: this.index };
    };
    // random probing finds a free address at once while the subnet is far from full...
    for (let attempt = 0; attempt < 64; attempt++) {
      const got = take(intToIp(first + randomInt(count)));
      if (got !== 'taken') return got;
    }
    // ...and a nearly full one is scanned, so that any free address is found
    const start = randomInt(count);
    for (let i = 0; i < count; i++) {
      const got = take(intToIp(first + ((start + i) % count)));
      if (got !== 'taken') return got;
    }
    throw new DynoError({ errno: 105, syscall: 'lease', step: 'network', message: `no free address on ${this.name}` });
  }

  release(lease: Lease): void {
    fs.rmSync(path.join(this.leaseDir, lease.address), { force: true });
  }

  /**
   * Deletes the dyno's host veth (and so its peer), then frees the address. The kernel would
   * delete the pair itself once the dyno's netns dies, but later, on a workqueue: without this a
   * dyno that has "ended" could still show its veth on the bridge for tens of milliseconds.
   */
  async releaseWithVeth(lease: Lease): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => native().deleteLink(lease.veth, (err) => (err ? reject(err) : resolve())));
    } finally {
      // before the address can be leased again: the next dyno on it must not inherit this one's MAC
      await this.forgetNeighbour(lease.address).catch(() => undefined);
      this.release(lease);
    }
  }

  /**
   * Drops the host's ARP entry for a dyno address. A port leaving the bridge does not flush the
   * bridge's neighbour table, so the host kept the old dyno's MAC for its address (REACHABLE, no
   * probing): a new dyno leasing the address got nothing from the host, neither the port check nor
   * the router's requests, for about a minute (measured on this kernel: 60 s, then FAILED), and a
   * web dyno hit R10. Without the entry the host resolves the address afresh on first use.
   */
  forgetNeighbour(address: string): Promise<void> {
    return new Promise<void>((resolve, reject) => native().deleteNeighbour(this.index, address, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Frees every lease whose maker no longer runs and, given `mine`, every lease made for the
   * subtree `mine.subtree` but `mine.live`'s: the caller owns that subtree alone (the daemon locks
   * it and kills every dyno cgroup there it did not start), so those leases belong to dynos of a
   * previous owner, whether or not its pid still shows.
   */
  reclaimStaleLeases(mine?: { subtree: string; live: ReadonlySet<string> }): void {
    for (const name of fs.readdirSync(this.leaseDir)) this.reclaimIfStale(path.join(this.leaseDir, name), mine);
  }

  private reclaimIfStale(file: string, mine?: { subtree: string; live: ReadonlySet<string> }): boolean {
    let owner: LeaseOwner | undefined;
    try {
      owner = parseOwner(fs.readFileSync(file, 'utf8'));
    } catch {
      return true; // released meanwhile
    }
    // a lease being written reads empty for a moment: only an unreadable, non-empty one is junk
    if (owner === undefined && this.youngerThan(file, 10_000)) return false;
    const previousOwners = mine !== undefined && owner?.subtree === mine.subtree && !mine.live.has(path.basename(file));
    if (owner !== undefined && !previousOwners && ownerRuns(owner)) return false;
    // its dyno died without releaseWithVeth: forget its MAC too (done on a pool thread in well under
    // the time a new dyno on the address takes to start and be spoken to)
    this.forgetNeighbour(path.basename(file)).catch(() => undefined);
    fs.rmSync(file, { force: true });
    return true;
  }

  private youngerThan(file: string, ms: number): boolean {
    try {
      return Date.now() - fs.statSync(file).mtimeMs < ms;
    } catch {
      return false;
    }
  }

  /** Loads the bridge's nftables table (input filter; NAT if asked): fails closed when nft cannot. */
  private loadRules(): void {
    if (this.nat) fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    const script = bridgeRuleset({
      bridge: this.name,
      table: natTable(this.name),
      subnet: `${intToIp(this.base)}/${this.prefixLen}`,
      gateway: this.gateway,
      nat: this.nat,
      hostDns: this.hostDns,
    });
    try {
      execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
    } catch (err) {
      throw new DynoError({ errno: 5, syscall: 'nft', step: 'network', message: `loading the nftables rules of bridge ${this.name} failed (bridged dynos need nft): ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}` });
    }
  }

  /** Removes the bridge, its leases and its nftables table: `manifold` told to clean up. */
  static cleanup(runDir: string, name = DEFAULT_BRIDGE): void {
    if (linkIndex(name) !== undefined) ip(['link', 'del', name]);
    fs.rmSync(path.join(runDir, 'net', name), { recursive: true, force: true });
    try {
      execFileSync('nft', ['-f', '-'], { input: removeBridgeRuleset(natTable(name)), stdio: ['pipe', 'ignore', 'ignore'] });
    } catch {
      /* no nft: then there is no table either */
    }
  }
}
