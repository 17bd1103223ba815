/**
 * The manifold's Fleet in cluster mode: desired state is in etcd, so the notifications of a change
 * (addApp, setRelease, setFormation…) are no-ops here: the scheduler follows etcd and the agents
 * follow their assignments. What needs every host goes to every host: status from `status/` (each
 * agent publishes its own), restarts and ps:stop through each agent's cluster server, one-off dynos
 * on this host's own agent.
 */
import type { Etcd3 } from 'etcd3';
import { ManifoldError } from '../manifold/errors';
import type { Fleet } from '../manifold/fleet';
import type { DynoStatus, OneOff, OneOffOptions } from '../manifold/supervisor/supervisor';
import { clusterCall } from './cluster-server';
import { keys } from './keys';
import { parseRecord, type StatusRecord } from './records';

export interface ClusterFleetOptions {
  client: Etcd3;
  token: () => string;
  /** Cluster server address of every live host (id → host:port). */
  hostAddresses: () => Map<string, string>;
  /** This host's agent, when it has the dynos role: one-off dynos run here. */
  runLocal?: (app: string, command: string, o: OneOffOptions) => Promise<OneOff>;
  /** A detached one-off on another host (this one has no dynos role); attached ones are relayed by the API. */
  runRemote?: (app: string, command: string) => Promise<{ name: string }>;
}

const CALL_TIMEOUT_MS = 10_000;

function slotOrder(a: DynoStatus, b: DynoStatus): number {
  const [ta, na] = [a.type, Number(a.name.slice(a.name.lastIndexOf('.') + 1))];
  const [tb, nb] = [b.type, Number(b.name.slice(b.name.lastIndexOf('.') + 1))];
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (na !== nb) return na - nb;
  return (a.host ?? '') < (b.host ?? '') ? -1 : 1;
}

export class ClusterFleet implements Fleet {
  constructor(private readonly o: ClusterFleetOptions) {}

  addApp(): void {}
  setSettings(): void {}
  setRelease(): void {}
  setFormation(): void {}
  async removeApp(): Promise<void> {}

  async status(app: string): Promise<DynoStatus[]> {
    const res = await this.o.client.getAll().prefix(keys.statuses(app)).exec();
    const out: DynoStatus[] = [];
    for (const kv of res.kvs) {
      const s = parseRecord<StatusRecord>(kv.value);
      if (s) out.push({ ...s, host: s.host });
    }
    return out.sort(slotOrder);
  }

  restart(app: string, target?: string): Promise<string[]> {
    return this.fanOut('restart', app, target);
  }

  stop(app: string, target: string): Promise<string[]> {
    return this.fanOut('stop', app, target);
  }

  async runOneOff(app: string, command: string, o: OneOffOptions): Promise<OneOff> {
    if (!this.o.runLocal && this.o.runRemote && !o.attach) {
      const { name } = await this.o.runRemote(app, command);
      // it runs and ends over there: `ps` and `logs` show it; nothing here to wait for or stop
      return { name, started: Promise.resolve(), exited: new Promise(() => undefined), stop: () => undefined };
    }
    if (!this.o.runLocal) throw new ManifoldError('ECLUSTER', 'this API host runs no dynos (its roles lack "dynos"): run one-off dynos through a host that has the dynos role');
    return this.o.runLocal(app, command, o);
  }

  /** Sends `method` to every host that runs a dyno the target names; the names they acted on. */
  private async fanOut(method: 'restart' | 'stop', app: string, target: string | undefined): Promise<string[]> {
    const dynos = await this.status(app);
    const hit = dynos.filter((d) => target === undefined || d.name === target || d.type === target);
    if (target !== undefined && hit.length === 0) {
      const what = /\.[0-9]+$/.test(target) ? 'dyno' : 'process type';
      throw new ManifoldError('ENODYNO', `no such ${what}: ${target} in app ${app}`);
    }
    const hosts = new Set(hit.map((d) => d.host).filter((h): h is string => h !== undefined));
    const addresses = this.o.hostAddresses();
    const names = new Set<string>();
    await Promise.all(
      [...hosts].map(async (h) => {
        const addr = addresses.get(h);
        if (!addr) return;
        const r = await clusterCall<string[]>(addr, this.o.token(), 'POST', `/v1/local/${method}`, { app, target }, CALL_TIMEOUT_MS).catch(() => [] as string[]);
        for (const n of r) names.add(n);
      }),
    );
    return [...names].sort();
  }
}
