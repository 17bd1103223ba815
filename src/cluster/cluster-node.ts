/**
 * One daemon's membership of a cluster (`manifold daemon --etcd …`): the start-up checks of issue 10
 * (etcd reachable within 10 s, a known layout, an uplink of this host, a host id nobody else holds, a
 * free dyno subnet), then the roles: the host record under its lease, the agent (dynos), the route
 * feed (router), the scheduler candidate (scheduler), the fleet and fan-out used by the API (api),
 * and the cluster server every host runs for the others.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { Etcd3 } from 'etcd3';
import { ManifoldError } from '../manifold/errors';
import type { ApiServer, LogSourceOf } from '../manifold/api/server';
import type { LogHub } from '../manifold/logs/hub';
import type { Supervisor } from '../manifold/supervisor/supervisor';
import type { DrainWatcher } from '../manifold/supervisor/types';
import type { RoutingMesh } from '../router';
import { Agent } from './agent';
import { ClusterFleet } from './cluster-fleet';
import { clusterLogSource, serveLogTail } from './cluster-logs';
import { clusterCall, ClusterServer } from './cluster-server';
import { DisconnectGuard } from './disconnect-guard';
import { createEtcdClient, ensureLayout, LayoutVersionError } from './etcd-client';
import { ClusterError } from './errors';
import { EtcdStateStore } from './etcd-state-store';
import { FleetDrain } from './fleet-drain';
import { claimSubnet, HostRoutes, isLocalAddress, tuneHost } from './host-net';
import { hostsView, type HostView } from './hosts-view';
import { keys } from './keys';
import { LeasedKeys } from './leased-keys';
import { canDrain } from './placement';
import { PrefixMirror } from './prefix-mirror';
import { parseRecord, type HostRecord, type Role, type SlugRecord } from './records';
import { RouteFeed } from './route-feed';
import { Scheduler } from './scheduler';
import { serveSlug, SlugCache } from './slug-transfer';
import { settleWithin } from './settle';

export interface ClusterConfig {
  etcd: string[];
  hostId: string;
  uplink: string;
  roles: Role[];
  hostTtlSeconds: number;
  clusterPort: number;
  /** Memory the scheduler places dynos against (default: this host's total memory). */
  memBytes?: number;
  /** --stop-after-disconnect: with no etcd answer for this long, the agent stops its dynos (off when absent). */
  stopAfterDisconnectMs?: number;
}

const START_DEADLINE_MS = 10_000;

export class ClusterNode {
  readonly incarnation = crypto.randomBytes(8).toString('hex');
  private secret = '';
  subnet: { n: number; cidr: string; fresh?: boolean } | null = null;
  /** start() ran to its end: from then on the subnet claim is this host's for good. */
  private started = false;
  private out!: LeasedKeys;
  private hosts!: PrefixMirror;
  private drains!: PrefixMirror;
  private server: ClusterServer | undefined;
  private routes: HostRoutes | undefined;
  agent: Agent | undefined;
  feed: RouteFeed | undefined;
  scheduler: Scheduler | undefined;
  private guard: DisconnectGuard | undefined;
  private slugs!: SlugCache;
  private supervisor: Supervisor | undefined;
  /** The daemon's control API object (listening or not): relayed attach sessions run through it. */
  api: ApiServer | undefined;

  private constructor(
    readonly cfg: ClusterConfig,
    readonly client: Etcd3,
    private readonly log: (line: string) => void,
  ) {}

  has(role: Role): boolean {
    return this.cfg.roles.includes(role);
  }

  /** The checks that need nothing created on this host; a refusal is one line and leaves etcd as it was. */
  static async join(cfg: ClusterConfig, log: (line: string) => void): Promise<ClusterNode> {
    keys.host(cfg.hostId); // a '/' in the id is refused here
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(cfg.hostId)) throw new ClusterError('EOPTION', `invalid --host-id '${cfg.hostId}' (letters, digits, '.', '_', '-'; at most 63)`);
    if (!isLocalAddress(cfg.uplink)) throw new ClusterError('EUPLINK', `--uplink ${cfg.uplink} is not an address of this host (see: ip -o addr)`);
    const client = createEtcdClient(cfg.etcd);
    const node = new ClusterNode(cfg, client, log);
    try {
      await node.connect();
      if (node.has('dynos')) node.subnet = await claimSubnet(client, cfg.hostId, cfg.uplink);
    } catch (err) {
      client.close();
      throw err;
    }
    return node;
  }

  private async connect(): Promise<void> {
    const deadline = Date.now() + START_DEADLINE_MS;
    let last = 'no answer';
    for (;;) {
      // each attempt is cut at the deadline: a first call (gRPC's set-up) can outlast its own 2 s
      // call deadline by seconds on a loaded host, which made a refusal take up to ~18 s
      let timer: NodeJS.Timeout | undefined;
      const cut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(last)), Math.max(0, deadline - Date.now()));
      });
      try {
        await Promise.race([ensureLayout(this.client), cut]);
        break;
      } catch (err) {
        if (err instanceof LayoutVersionError) throw err;
        const msg = (err as Error).message.split('\n')[0] ?? '';
        if (msg && !/circuit breaker is open/.test(msg)) last = msg; // the cause, not etcd3's fail-fast after it
        if (Date.now() >= deadline) throw new ClusterError('EETCD', `etcd unreachable at ${this.cfg.etcd.join(',')} within ${START_DEADLINE_MS / 1000} s: ${last}`);
        await new Promise((r) => setTimeout(r, 250));
      } finally {
        clearTimeout(timer);
      }
    }
    const s = crypto.randomBytes(24).toString('hex');
    const r = await this.client.if(keys.secret(), 'Version', '==', 0).then(this.client.put(keys.secret()).value(s)).else(this.client.get(keys.secret())).commit();
    this.secret = r.succeeded ? s : (r.responses[0]?.response_range?.kvs[0]?.value.toString() ?? '');
    // a daemon killed a moment ago left its host key until its lease runs out: wait that long, no more
    const hostKey = keys.host(this.cfg.hostId);
    const until = Date.now() + (this.cfg.hostTtlSeconds + 1) * 1000;
    for (;;) {
      const kv = (await this.client.get(hostKey).exec()).kvs[0];
      if (!kv) break;
      if (Date.now() > until) {
        const rec = parseRecord<HostRecord>(kv.value);
        throw new ClusterError('EHOSTLIVE', `host id ${this.cfg.hostId} is live in the cluster (uplink ${rec?.uplink ?? '?'}, started ${rec ? new Date(rec.startedAt).toISOString() : '?'}): another daemon runs with it`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  store(): EtcdStateStore {
    return new EtcdStateStore(this.client, this.cfg.hostId);
  }

  token(): string {
    return this.secret;
  }

  /** Cluster server address of every live host. */
  hostAddresses(): Map<string, string> {
    const m = new Map<string, string>();
    for (const h of this.liveHosts()) m.set(h.id, `${h.uplink}:${h.clusterPort}`);
    return m;
  }

  liveHosts(): HostRecord[] {
    return [...this.hosts.entries.values()].map((v) => parseRecord<HostRecord>(v.value)).filter((h): h is HostRecord => h !== undefined);
  }

  /** The agent's RouteSink and the drain watcher the supervisor is built with (dynos role). */
  supervisorHooks(slugRoot: string, domain: string): { routes: Agent; drain: DrainWatcher } {
    this.out = new LeasedKeys({ client: this.client, ttlSeconds: this.cfg.hostTtlSeconds, log: (l) => this.log(l) });
    this.hosts = new PrefixMirror({ client: this.client, prefix: keys.hosts(), log: (l) => this.log(l), resyncMs: 5000 });
    this.drains = new PrefixMirror({ client: this.client, prefix: keys.drains(), log: (l) => this.log(l), resyncMs: 5000 });
    this.slugs = new SlugCache(slugRoot, () => this.secret);
    this.agent = new Agent({
      client: this.client,
      hostId: this.cfg.hostId,
      supervisor: () => {
        if (!this.supervisor) throw new Error('agent started before its supervisor');
        return this.supervisor;
      },
      out: this.out,
      slugs: this.slugs,
      apiHosts: () => this.liveHosts().filter((h) => h.roles.includes('api')).map((h) => `${h.uplink}:${h.clusterPort}`),
      clusterAddress: (id) => this.hostAddresses().get(id),
      domain,
      log: (l) => this.log(`agent: ${l}`),
    });
    const fleetDrain = new FleetDrain({ client: this.client, token: () => this.secret, published: () => this.out.flushed(), log: (l) => this.log(l) });
    // cut off from etcd (--stop-after-disconnect tripped): no router can be asked, the dynos stop at once
    const drain = { waitIdle: (app: string, address: string, ms: number): Promise<void> => (this.guard?.cutOff ? Promise.resolve() : fleetDrain.waitIdle(app, address, ms)) };
    return { routes: this.agent, drain };
  }

  /** Starts every role; the supervisor, router and hub are the daemon's. */
  async start(d: { supervisor: Supervisor | undefined; router: RoutingMesh | undefined; routerPort: number | null; logs: LogHub; slugRoot: string; domain: string; webPort: number; bridge: string | null }): Promise<void> {
    this.supervisor = d.supervisor;
    if (!this.out) this.supervisorHooks(d.slugRoot, d.domain);
    const lease = await this.out.start();
    // the host key is created only if absent: two daemons racing with one id can't both hold it
    const rec: HostRecord = {
      id: this.cfg.hostId,
      incarnation: this.incarnation,
      uplink: this.cfg.uplink,
      subnet: this.subnet?.cidr ?? null,
      roles: this.cfg.roles,
      clusterPort: this.cfg.clusterPort,
      memBytes: this.cfg.memBytes ?? os.totalmem(),
      startedAt: Date.now(),
    };
    const hostKey = keys.host(this.cfg.hostId);
    const claimed = await this.client.if(hostKey, 'Version', '==', 0).then(this.client.put(hostKey).value(JSON.stringify(rec)).lease(lease)).commit();
    if (!claimed.succeeded) throw new ClusterError('EHOSTLIVE', `host id ${this.cfg.hostId} was taken by another daemon while this one started`);
    this.out.set(hostKey, JSON.stringify(rec));

    this.server = new ClusterServer(() => this.secret, {
      slugPath: (sha) => (this.slugs.has(sha) ? this.slugs.pathOf(sha) : undefined),
      serveSlug,
      fetchSlug: (sha, sources) => this.slugs.ensure(sha, () => Promise.resolve(sources)),
      ...(d.router && this.has('router') ? { idle: (app: string, addr: string, rev: string, ms: number) => this.idle(d.router!, app, addr, rev, ms) } : {}),
      local: {
        restart: async (p) => this.localSupervisorCall(p, (s, app, target) => s.restart(app, target)),
        stop: async (p) => this.localSupervisorCall(p, (s, app, target) => (target ? s.stop(app, target) : [])),
        // the router's table as it routes now (the nemesis's convergence check compares it with etcd)
        table: async () => (d.router && this.has('router') ? d.router.table.toJSON() : null),
        'run-detached': async (p) => {
          const sup = this.supervisor;
          if (!sup || !this.agent || !this.has('dynos')) throw new ManifoldError('ECLUSTER', `host ${this.cfg.hostId} runs no dynos`);
          const app = String(p.app ?? '');
          await this.agent.ensureApp(app);
          const one = sup.runOneOff(app, String(p.command ?? ''), { attach: false });
          await one.started;
          // in `ps` (status/ in etcd) by the time the caller prints its name
          await this.agent.publishNow();
          return { name: one.name };
        },
        logs: async (p) => d.logs.get(String(p.app ?? '')).tail(typeof p.n === 'number' ? p.n : 100, { source: typeof p.source === 'string' ? p.source : undefined, dyno: typeof p.dyno === 'string' ? p.dyno : undefined }),
        // read-only, for bench:cluster: when this router's table first reflected revision `rev` (waits ≤ `timeout` ms for it)
        applied: async (p) => this.appliedAt(Number(p.rev) || 0, Math.min(Number(p.timeout) || 0, 30_000)),
      },
      tail: (params, res) => serveLogTail(d.logs, params, res),
      attach: (req, socket, head) => {
        if (this.api && this.has('dynos')) this.api.attach(req, socket, head);
        else socket.destroy();
      },
    });
    await this.server.listen(this.cfg.uplink, this.cfg.clusterPort);

    await this.hosts.start();
    await this.drains.start();
    this.routes = new HostRoutes({ self: this.cfg.hostId, bridge: d.bridge, subnet: this.subnet?.cidr ?? null, webPort: d.webPort, routerPort: d.routerPort, log: (l) => this.log(l) });
    const syncRoutes = (): void => void this.routes?.sync(this.liveHosts()).catch((err: unknown) => this.log(`routes: ${(err as Error).message}`));
    this.hosts.on('change', syncRoutes);
    syncRoutes();
    if (d.bridge && this.has('dynos')) tuneHost(d.bridge);

    if (this.agent && this.has('dynos') && this.supervisor) await this.agent.start();
    const agent = this.agent;
    if (agent && this.has('dynos') && this.supervisor && this.cfg.stopAfterDisconnectMs) {
      this.guard = new DisconnectGuard({
        afterMs: this.cfg.stopAfterDisconnectMs,
        probe: () => this.client.get(keys.host(this.cfg.hostId)).exec(),
        onCutOff: () => agent.hold(),
        onReconnected: () => agent.resume(),
        log: (l) => this.log(`agent: ${l}`),
      });
      this.guard.start();
    }
    if (d.router && this.has('router')) {
      const mesh = d.router;
      this.feed = new RouteFeed({
        client: this.client,
        table: mesh.table,
        domain: d.domain,
        log: (l) => this.log(`router feed: ${l}`),
        router: { id: this.cfg.hostId, admin: `${this.cfg.uplink}:${this.cfg.clusterPort}`, ttlSeconds: this.cfg.hostTtlSeconds },
        // router worker threads: a revision is applied (drains wait for it) once every worker routes by it
        ...('workers' in mesh ? { inForce: () => mesh.synced() } : {}),
      });
      await this.feed.start();
    }
    if (this.has('scheduler')) {
      this.scheduler = new Scheduler({ client: this.client, hostId: this.cfg.hostId, ttlSeconds: this.cfg.hostTtlSeconds, log: (l) => this.log(`scheduler: ${l}`) });
      this.scheduler.start();
    }
    this.started = true;
  }

  private localSupervisorCall(p: Record<string, unknown>, f: (s: Supervisor, app: string, target: string | undefined) => string[]): string[] {
    const app = String(p.app ?? '');
    const s = this.supervisor;
    if (!s || !s.has(app)) return [];
    try {
      return f(s, app, typeof p.target === 'string' ? p.target : undefined);
    } catch {
      return []; // this host runs none of the dynos the target names
    }
  }

  /** GET /v1/idle: once this router has applied `rev` (the dyno's draining state), wait for it to have no request in flight. */
  /** Resolves at the feed's next applied revision or after `ms`, whichever comes first (no listener left behind). */
  private nextApplied(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const feed = this.feed;
      const done = (): void => {
        clearTimeout(t);
        feed?.off('applied', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      feed?.on('applied', done);
    });
  }

  private async idle(router: RoutingMesh, app: string, addr: string, rev: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    const want = Number(rev);
    while (this.feed && this.feed.appliedRev < want && Date.now() < deadline) {
      await this.nextApplied(50);
    }
    await router.waitIdle(app, addr, Math.max(0, deadline - Date.now()));
  }

  /** `{rev, at}`: the router's applied revision and the epoch ms it first reflected `want` (null: not yet, or not a router). */
  private async appliedAt(want: number, ms: number): Promise<{ rev: number; at: number | null }> {
    const deadline = Date.now() + ms;
    while (this.feed && this.feed.appliedRev < want && Date.now() < deadline) {
      await this.nextApplied(50);
    }
    return { rev: this.feed?.appliedRev ?? 0, at: this.feed?.appliedAt(want) ?? null };
  }

  /**
   * Where a one-off dyno runs when this host has no dynos role: the live, undrained dynos host with
   * the fewest assigned dynos. Undefined when it runs here.
   */
  async oneOffHost(): Promise<{ address: string; token: string } | undefined> {
    if (this.has('dynos')) return undefined;
    const views = (await hostsView(this.client)).filter((h) => h.state === 'up' && h.roles.includes('dynos') && h.record);
    views.sort((a, b) => a.dynos - b.dynos || (a.id < b.id ? -1 : 1));
    const h = views[0];
    if (!h?.record) throw new ManifoldError('ECLUSTER', 'no host with the dynos role is up to run the one-off dyno');
    return { address: `${h.record.uplink}:${h.record.clusterPort}`, token: this.secret };
  }

  /** The manifold's fleet (api role). */
  fleet(): ClusterFleet {
    const sup = this.supervisor;
    return new ClusterFleet({
      client: this.client,
      token: () => this.secret,
      hostAddresses: () => this.hostAddresses(),
      runRemote: async (app, command) => {
        const target = await this.oneOffHost();
        if (!target) throw new ManifoldError('ECLUSTER', 'no host to run the one-off dyno on');
        return clusterCall<{ name: string }>(target.address, target.token, 'POST', '/v1/local/run-detached', { app, command }, 60_000);
      },
      ...(sup && this.has('dynos') && this.agent
        ? {
            runLocal: async (app, command, o) => {
              const agent = this.agent!;
              await agent.ensureApp(app);
              const one = sup.runOneOff(app, command, o);
              // started means listed: `ps` right after `run:detached` shows the dyno
              return { ...one, started: one.started.then(() => agent.publishNow()) };
            },
          }
        : {}),
    });
  }

  logSource(hub: LogHub): LogSourceOf {
    return clusterLogSource({ hub, selfId: this.cfg.hostId, token: () => this.secret, hostAddresses: () => this.hostAddresses() });
  }

  /** Records a deploy's slug in etcd; with another API host alive, returns only once it holds the slug too. */
  async publishSlug(sha: string, _dir: string, bytes: number): Promise<void> {
    const holders = [this.cfg.hostId];
    const self = `${this.cfg.uplink}:${this.cfg.clusterPort}`;
    const second = this.liveHosts().find((h) => h.id !== this.cfg.hostId && h.roles.includes('api'));
    if (second) {
      await clusterCall(`${second.uplink}:${second.clusterPort}`, this.secret, 'POST', `/v1/slugs/${sha}/fetch`, { sources: [self] }, 10 * 60_000).catch((err: unknown) => {
        throw new ManifoldError('EDEPLOY', `the slug could not be copied to a second API host (${second.id}): ${(err as Error).message}`);
      });
      holders.push(second.id);
    }
    const key = keys.slug(sha);
    for (let i = 0; i < 20; i++) {
      const kv = (await this.client.get(key).exec()).kvs[0];
      const old = kv ? parseRecord<SlugRecord>(kv.value) : undefined;
      const rec: SlugRecord = { bytes, holders: [...new Set([...(old?.holders ?? []), ...holders])] };
      const cmp = kv ? this.client.if(key, 'Mod', '==', kv.mod_revision) : this.client.if(key, 'Version', '==', 0);
      if ((await cmp.then(this.client.put(key).value(JSON.stringify(rec))).commit()).succeeded) return;
    }
  }

  /** `manifold hosts` and the drain commands (api role). */
  apiHandlers(): Record<string, (p: Record<string, unknown>) => unknown> {
    return {
      hosts: async () => (await hostsView(this.client)).map(publicView),
      'hosts:drain': async (p) => (await this.setDrain(p.host, true)).map(publicView),
      'hosts:undrain': async (p) => (await this.setDrain(p.host, false)).map(publicView),
    };
  }

  private async setDrain(hostIn: unknown, drain: boolean): Promise<HostView[]> {
    const id = typeof hostIn === 'string' ? hostIn : '';
    const views = await hostsView(this.client);
    const target = views.find((h) => h.id === id);
    if (!target) throw new ManifoldError('ENOHOST', `no such host: ${id || '(none given)'} (known: ${views.map((h) => h.id).join(', ') || 'none'})`);
    if (drain) {
      const planHosts = views.flatMap((h) => (h.record && h.state !== 'lost' ? [{ record: h.record, draining: h.state === 'draining', probation: false }] : []));
      if (target.dynos > 0 && !canDrain(id, planHosts)) throw new ManifoldError('ECLUSTER', `host ${id} is the last host that can run its dynos: add or undrain another host with the dynos role first`);
      await this.client.put(keys.drain(id)).value(JSON.stringify({ since: Date.now() }));
    } else {
      await this.client.delete().key(keys.drain(id));
    }
    return hostsView(this.client);
  }

  async stop(): Promise<void> {
    // every step bounded: with etcd away a revoke or a cancel may never be answered, and a daemon
    // told to stop must stop
    const step = (p: Promise<unknown> | undefined): Promise<void> => settleWithin(p, 5000);
    this.guard?.stop();
    await step(this.scheduler?.stop());
    await step(this.feed?.stop());
    await step(this.agent?.stop());
    await step(this.hosts?.stop());
    await step(this.drains?.stop());
    await step(this.server?.close());
    this.routes?.close();
    // the lease goes last: its keys (host, endpoints, status) vanish at once and the scheduler replaces our slots
    await step(this.out?.stop(true));
    // a daemon that failed to start gives back the subnet it claimed for it (else it shows as a lost
    // host), unless a daemon with this id is live (it raced us with this id and uses the claim)
    if (!this.started && this.subnet?.fresh) {
      const key = keys.subnet(this.subnet.n);
      await this.client
        .if(key, 'Value', '==', JSON.stringify({ host: this.cfg.hostId, uplink: this.cfg.uplink }))
        .and(keys.host(this.cfg.hostId), 'Version', '==', 0)
        .then(this.client.delete().key(key))
        .commit()
        .catch(() => undefined);
    }
    this.client.close();
  }
}

/** A host as the API shows it: its raw record stays inside. */
function publicView(h: HostView): Omit<HostView, 'record'> {
  const { record: _record, ...rest } = h;
  return rest;
}
