/**
 * What the manifold needs from whatever runs its dynos. On one host that is the Supervisor itself;
 * in cluster mode (src/cluster/cluster-fleet.ts) the desired state in etcd drives the scheduler and
 * the agents, so the notifications are no-ops, and status, restarts and one-offs reach every host.
 */
import type { AppSettings, FormationRow, Release } from './store/store';
import type { DynoStatus, OneOff, OneOffOptions } from './supervisor/supervisor';

export interface Fleet {
  addApp(name: string, hosts: string[], release: Release | undefined, formation: FormationRow[], settings: AppSettings): void;
  setSettings(name: string, settings: AppSettings): void;
  setRelease(name: string, release: Release): void;
  setFormation(name: string, formation: FormationRow[]): void;
  removeApp(name: string): Promise<void>;
  status(name: string): DynoStatus[] | Promise<DynoStatus[]>;
  restart(name: string, target?: string): string[] | Promise<string[]>;
  stop(name: string, target: string): string[] | Promise<string[]>;
  runOneOff(name: string, command: string, o: OneOffOptions): OneOff | Promise<OneOff>;
}
