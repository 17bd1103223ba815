/**
 * The data plane of a cluster host (spec §4, flannel host-gw): each host with the dynos role claims a
 * /24 of 10.200.0.0/16 by compare-and-swap and puts its dyno bridge on it; every host routes the other
 * hosts' /24s via their uplinks, so a router anywhere connects to a dyno's own address directly (no
 * NAT, no host ports). An nftables `forward` chain keeps dynos unaddressable: into this host's subnet
 * only TCP to $PORT from router hosts' uplinks; from dynos, no other dyno subnet and no other host.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { ClusterError } from './errors';
import { keys } from './keys';
import { parseRecord, type HostRecord } from './records';

const run = promisify(execFile);

/** The cluster's dyno network: one /24 per host. */
export const CLUSTER_NET = '10.200.0.0/16';
export const FORWARD_TABLE = 'manifold-cluster';

export function subnetOf(n: number): string {
  return `10.200.${n}.0/24`;
}

/** Is `addr` one of this host's (network namespace's) interface addresses? */
export function isLocalAddress(addr: string): boolean {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.address === addr) return true;
  return false;
}

/**
 * This host's /24: the one it claimed before (a restart keeps its subnet, so dynos' addresses stay
 * in the same network), else the lowest free one, claimed by a Txn on `Version == 0` so two hosts
 * never take the same. No lease: a host that is gone keeps its claim, as flannel's do for a day.
 */
export async function claimSubnet(client: Etcd3, host: string, uplink: string): Promise<{ n: number; cidr: string; fresh?: boolean }> {
  const taken = new Map<number, string>();
  const res = await client.getAll().prefix(keys.subnets()).exec();
  for (const kv of res.kvs) {
    const m = /10\.200\.(\d+)\.0-24$/.exec(kv.key.toString());
    const rec = parseRecord<{ host: string; uplink: string }>(kv.value);
    if (!m || !rec) continue;
    const n = Number(m[1]);
    if (rec.host === host) {
      if (rec.uplink !== uplink) await client.put(keys.subnet(n)).value(JSON.stringify({ host, uplink }));
      return { n, cidr: subnetOf(n) };
    }
    taken.set(n, rec.host);
  }
  for (let n = 1; n <= 254; n++) {
    if (taken.has(n)) continue;
    const r = await client.if(keys.subnet(n), 'Version', '==', 0).then(client.put(keys.subnet(n)).value(JSON.stringify({ host, uplink }))).commit();
    if (r.succeeded) return { n, cidr: subnetOf(n), fresh: true };
  }
  throw new ClusterError('ESUBNETS', `dyno subnets exhausted: all 254 /24s of ${CLUSTER_NET} are claimed (${taken.size} hosts); remove the claims of hosts that are gone under ${keys.subnets()}`);
}

/** Kernel settings of a cluster host: forwarding for routed subnets, quick neighbour failure on the dyno bridge. */
export function tuneHost(bridge: string): void {
  fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  // a dyno whose namespace is gone fails a connect in ~0.2 s instead of ~4 s (spec §4, measured):
  // live dynos answer ARP in microseconds, so short probes cost nothing
  const neigh = `/proc/sys/net/ipv4/neigh/${bridge}`;
  for (const [k, v] of [['retrans_time_ms', '100'], ['mcast_solicit', '2'], ['ucast_solicit', '2'], ['delay_first_probe_time', '1']] as const) {
    try {
      fs.writeFileSync(`${neigh}/${k}`, v);
    } catch {
      /* the bridge appears with the first dyno on some runtimes: set again then */
    }
  }
}

/** The forward rules of this host (one nft transaction, replaced whole on every change of the host list). */
export function forwardRuleset(o: { bridge: string; subnet: string; webPort: number; routers: string[]; hosts: string[]; routerPorts: number[] }): string {
  const t = `inet ${FORWARD_TABLE}`;
  const set = (xs: string[]): string => (xs.length ? `{ ${xs.join(', ')} }` : '');
  const lines = [
    `add table ${t}`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `flush chain ${t} forward`,
    `add rule ${t} forward ct state established,related accept`,
    // into this host's dynos: only the routers, only $PORT
    ...(o.routers.length ? [`add rule ${t} forward oifname "${o.bridge}" ip daddr ${o.subnet} ip saddr ${set(o.routers)} tcp dport ${o.webPort} accept`] : []),
    `add rule ${t} forward oifname "${o.bridge}" ip daddr ${o.subnet} drop`,
    // from this host's dynos: no other host's dynos, no other host except the routers' published ports
    `add rule ${t} forward iifname "${o.bridge}" ip daddr ${CLUSTER_NET} drop`,
    ...(o.hosts.length && o.routerPorts.length ? [`add rule ${t} forward iifname "${o.bridge}" ip daddr ${set(o.hosts)} tcp dport ${set(o.routerPorts.map(String))} accept`] : []),
    ...(o.hosts.length ? [`add rule ${t} forward iifname "${o.bridge}" ip daddr ${set(o.hosts)} drop`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Routes to the other hosts' dyno subnets and the forward rules, kept in line with `hosts/`. What it
 * installed it removes on close(); a route another tool made is replaced only when it names one of
 * the cluster's subnets.
 */
export class HostRoutes {
  private readonly installed = new Map<string, string>(); // subnet → via
  private lastRules = '';

  constructor(private readonly o: { self: string; bridge: string | null; subnet: string | null; webPort: number; routerPort: number | null; log: (line: string) => void }) {}

  async sync(hosts: HostRecord[]): Promise<void> {
    const want = new Map<string, string>();
    for (const h of hosts) if (h.id !== this.o.self && h.subnet) want.set(h.subnet, h.uplink);
    for (const [subnet, via] of want) {
      if (this.installed.get(subnet) === via) continue;
      try {
        await run('ip', ['route', 'replace', subnet, 'via', via]);
        this.installed.set(subnet, via);
      } catch (err) {
        this.o.log(`route to ${subnet} via ${via}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    for (const subnet of [...this.installed.keys()]) {
      if (want.has(subnet)) continue;
      await run('ip', ['route', 'del', subnet]).catch(() => undefined);
      this.installed.delete(subnet);
    }
    if (this.o.bridge && this.o.subnet) {
      const routers = hosts.filter((h) => h.roles.includes('router')).map((h) => h.uplink);
      const others = hosts.filter((h) => h.id !== this.o.self).map((h) => h.uplink);
      const rules = forwardRuleset({ bridge: this.o.bridge, subnet: this.o.subnet, webPort: this.o.webPort, routers, hosts: [...new Set(others)], routerPorts: this.o.routerPort ? [this.o.routerPort] : [] });
      if (rules !== this.lastRules) {
        try {
          execFileSync('nft', ['-f', '-'], { input: rules, stdio: ['pipe', 'ignore', 'pipe'] });
          this.lastRules = rules;
        } catch (err) {
          this.o.log(`forward rules: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }
  }

  close(): void {
    for (const subnet of this.installed.keys()) {
      try {
        execFileSync('ip', ['route', 'del', subnet], { stdio: 'ignore' });
      } catch {
        /* gone with its interface */
      }
    }
    this.installed.clear();
    if (this.lastRules) {
      try {
        execFileSync('nft', ['-f', '-'], { input: `add table inet ${FORWARD_TABLE}\ndelete table inet ${FORWARD_TABLE}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
      } catch {
        /* nothing to remove */
      }
    }
  }
}
