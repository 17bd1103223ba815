/**
 * `manifold hosts`: every host the cluster knows, from one read of hosts/, drain/, subnets/ and
 * assign/. A host is up while its leased key exists, draining while a drain key names it, and lost
 * when only its subnet claim or assignments remain (its lease ran out).
 */
import type { Etcd3 } from 'etcd3';
import { sizeOf } from '../manifold/sizes';
import { keys } from './keys';
import { parseRecord, type AssignmentRecord, type HostRecord, type Role } from './records';

export interface HostView {
  id: string;
  uplink: string | null;
  subnet: string | null;
  roles: Role[];
  state: 'up' | 'draining' | 'lost';
  /** Dynos assigned to run here (retiring ones not counted). */
  dynos: number;
  memAssigned: number;
  memTotal: number | null;
  /** Seconds since the host's lease was last renewed, or null when lost. */
  leaseAge: number | null;
  record?: HostRecord;
}

export async function hostsView(client: Etcd3): Promise<HostView[]> {
  const [hosts, drains, subnets, assigns] = await Promise.all([
    client.getAll().prefix(keys.hosts()).exec(),
    client.getAll().prefix(keys.drains()).keys(),
    client.getAll().prefix(keys.subnets()).exec(),
    client.getAll().prefix(keys.allAssignments()).exec(),
  ]);
  const views = new Map<string, HostView>();
  const draining = new Set(drains.map((k) => k.slice(k.lastIndexOf('/') + 1)));
  for (const kv of hosts.kvs) {
    const rec = parseRecord<HostRecord>(kv.value);
    if (!rec) continue;
    let leaseAge: number | null = null;
    try {
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: kv.lease });
      leaseAge = Math.max(0, Number(ttl.grantedTTL) - Number(ttl.TTL));
    } catch {
      /* lease just expired: shown without an age */
    }
    views.set(rec.id, { id: rec.id, uplink: rec.uplink, subnet: rec.subnet, roles: rec.roles, state: draining.has(rec.id) ? 'draining' : 'up', dynos: 0, memAssigned: 0, memTotal: rec.memBytes, leaseAge, record: rec });
  }
  const lost = (id: string, subnet: string | null, uplink: string | null): HostView => ({ id, uplink, subnet, roles: [], state: 'lost', dynos: 0, memAssigned: 0, memTotal: null, leaseAge: null });
  for (const kv of subnets.kvs) {
    const rec = parseRecord<{ host: string; uplink: string }>(kv.value);
    const m = /10\.200\.(\d+)\.0-24$/.exec(kv.key.toString());
    if (rec && m && !views.has(rec.host)) views.set(rec.host, lost(rec.host, `10.200.${m[1]}.0/24`, rec.uplink));
  }
  const base = keys.allAssignments();
  for (const kv of assigns.kvs) {
    const host = kv.key.toString().slice(base.length).split('/')[0];
    const rec = parseRecord<AssignmentRecord>(kv.value);
    if (!host || !rec || rec.state !== 'run') continue;
    const v = views.get(host) ?? lost(host, null, null);
    views.set(host, v);
    v.dynos++;
    v.memAssigned += sizeOf(rec.size).quota;
  }
  return [...views.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
