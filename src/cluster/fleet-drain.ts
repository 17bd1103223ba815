/**
 * DrainWatcher of a cluster agent (spec §2 seam 4): a draining web dyno may be stopped only once
 * EVERY router reports it idle, not just a local one. The agent first makes sure its `draining`
 * endpoint is in etcd (revision R), then asks each live router (`routers/*`) to answer once it has
 * applied R (so it sends the dyno no new request) and has nothing in flight to the dyno. Routers that
 * don't answer within the drain cap are given up on: the cap bounds the wait, as on one host.
 */
import type { Etcd3 } from 'etcd3';
import type { DrainWatcher } from '../manifold/supervisor/types';
import { clusterCall } from './cluster-server';
import { keys } from './keys';
import { parseRecord, type RouterRecord } from './records';

export class FleetDrain implements DrainWatcher {
  constructor(
    private readonly o: {
      client: Etcd3;
      token: () => string;
      /** Revision at which this host's endpoint writes so far are visible. */
      published: () => Promise<string>;
      log?: (line: string) => void;
    },
  ) {}

  async waitIdle(app: string, address: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const rev = await withTimeout(this.o.published(), timeoutMs).catch(() => '0');
    let routers: RouterRecord[] = [];
    try {
      const res = await this.o.client.getAll().prefix(keys.routers()).exec();
      routers = res.kvs.map((kv) => parseRecord<RouterRecord>(kv.value)).filter((r): r is RouterRecord => r !== undefined);
    } catch (err) {
      // etcd away: no way to know the routers, so the cap is all that is left
      this.o.log?.(`drain of ${address}: cannot list routers (${(err as Error).message}); waiting the drain cap`);
      await new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())));
      return;
    }
    const q = new URLSearchParams({ app, addr: address, rev, timeout: String(Math.max(0, deadline - Date.now())) });
    await Promise.all(
      routers.map((r) =>
        clusterCall(r.admin, this.o.token(), 'GET', `/v1/idle?${q}`, undefined, Math.max(1, deadline - Date.now()) + 1000).catch((err: unknown) => {
          this.o.log?.(`drain of ${address}: router ${r.admin} did not confirm (${(err as Error).message})`);
        }),
      ),
    );
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
