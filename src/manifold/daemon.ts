/**
 * `manifold daemon`: the root process that owns the store, the runtime, the supervisor, the
 * router (in-process) and the control API socket. On start it cleans up whatever a previous
 * daemon killed with SIGKILL left (dyno cgroups, stale socket, half-copied slugs), then restores
 * every app's formation from the store. SIGTERM/SIGINT stop all dynos Heroku's way and exit.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CgroupTree } from '../runtime/cgroup';
import { Runtime } from '../runtime/dyno';
import { native } from '../runtime/native';
import { createRouter, defaultRouterWorkers, isRetryNotice, parseListen, type Router } from '../router';
import type { RouterWorkers } from '../router/workers/pool';
import type { DaemonInfo } from './api/protocol';
import { ApiServer, localLogSource } from './api/server';
import { Builder, buildLimitsFromEnv, defaultInstalledBuildpacks } from './build/builder';
import { LogHub } from './logs/hub';
import { Manifold } from './manifold';
import { RouterStats } from './metrics/router-stats';
import type { RequestSample } from './metrics/types';
import { RuntimeMetrics } from './metrics/runtime-metrics';
import type { SupervisionPolicy } from './policy';
import { collectSlugs } from './deploy/slug-store';
import { SqliteStateStore } from './state/sqlite-state-store';
import type { StateStore } from './state/state-store';
import { Store } from './store/store';
import { Supervisor } from './supervisor/supervisor';
import type { Launcher } from './supervisor/types';
import { DEFAULT_PORT, socketAlive } from '../shared/defaults';
import { VERSION } from '../shared/version';
import type { ClusterConfig, ClusterNode } from '../cluster/cluster-node';
import type { GitTransport } from '../git/service';

export interface DaemonOptions {
  stateDir: string;
  socket: string;
  /** host:port for the router, or null for no router. */
  listen: string | null;
  domain: string;
  net: 'none' | 'bridge';
  cgroupName: string;
  runDir?: string;
  /** Bridge networking: bridge name and subnet (defaults manifold0, 10.200.0.0/16), outbound NAT. */
  bridge?: { name?: string; subnet?: string; nat?: boolean; hostDns?: boolean };
  socketGid?: number;
  policy?: Partial<SupervisionPolicy>;
  log?: (line: string) => void;
  /**
   * Cluster mode (`--etcd`): state in etcd, roles by flag (docs/cluster.md). Without it this is the
   * single-host daemon on SQLite, and no cluster module (nor etcd3 and gRPC) is loaded.
   */
  cluster?: ClusterConfig;
  /**
   * Router event loops (`--router-workers`, default one per core, at most 8): above 1 the router runs
   * in worker threads on one SO_REUSEPORT port (src/router/workers/); drains wait for every worker,
   * and in a cluster a route revision counts as applied once every worker routes by it.
   */
  routerWorkers?: number;
  /**
   * git push (docs/git.md): the git socket (default: git.sock beside the control socket), the system
   * user of ssh pushes (default manifold) and its home when created. Single-host only; false: off.
   */
  git?: { socket?: string; user?: string; home?: string } | false;
  /** Prometheus `/metrics` on HOST:PORT (`--metrics`, docs/metrics.md#prometheus); off when null or absent. */
  metrics?: string | null;
  /** The dashboard (`--dashboard HOST:PORT`, docs/dashboard.md): off when null or absent; a non-loopback host needs dashboardPublic. */
  dashboard?: string | null;
  dashboardPublic?: boolean;
}

export class Daemon {
  store!: StateStore;
  runtime!: Runtime;
  supervisor!: Supervisor;
  manifold!: Manifold;
  cluster: ClusterNode | undefined;
  router: Router | undefined;
  /** The router when it runs in worker threads (routerWorkers > 1); `router` is then undefined. */
  routerWorkers: RouterWorkers | undefined;
  api!: ApiServer;
  /** The git transport (repositories, keys, git socket); undefined in cluster mode or when off. */
  git: GitTransport | undefined;
  readonly logs = new LogHub();
  /** Each app's router traffic over the last hour (the dashboard's charts); always on, one O(1) call per request. */
  readonly routerStats = new RouterStats();
  /** The Prometheus registry and its /metrics server, when --metrics is given. */
  prometheus: import('./metrics/prometheus').PrometheusMetrics | undefined;
  private metricsServer: import('./metrics/prometheus').MetricsServer | undefined;
  private statsSweep: NodeJS.Timeout | undefined;
  /** Heroku's log-runtime-metrics lines and the last hour of each dyno's memory and load (docs/metrics.md). */
  runtimeMetrics: RuntimeMetrics | undefined;
  /** The dashboard's web server, when --dashboard is given. */
  dashboard: import('./dashboard/server').DashboardServer | undefined;
  private stopping: Promise<void> | undefined;
  private readonly log: (line: string) => void;

  constructor(readonly o: DaemonOptions) {
    this.log = o.log ?? ((l) => process.stderr.write(`manifold daemon: ${l}\n`));
  }

  async start(): Promise<void> {
    const o = this.o;
    if (process.getuid?.() !== 0) throw new Error('manifold daemon must run as root');
    // refusals that need nothing created come first: a daemon that won't start leaves nothing behind
    const existing = fs.lstatSync(o.socket, { throwIfNoEntry: false });
    if (existing && !existing.isSocket()) throw new Error(`--socket ${o.socket} exists and is not a socket; refusing to replace it`);
    if (existing && (await socketAlive(o.socket))) throw new Error(`a daemon is already running on ${o.socket}`);
    const dashboardListen = o.dashboard ? (require('./dashboard/auth') as typeof import('./dashboard/auth')).parseDashboardListen(o.dashboard, o.dashboardPublic === true) : undefined;
    if (o.metrics) (require('./metrics/prometheus') as typeof import('./metrics/prometheus')).parseMetricsListen(o.metrics);
    fs.mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
    // before anything is read, killed or replaced: one daemon per state directory and per cgroup subtree
    lockOrExplain(path.join(o.stateDir, 'daemon.lock'), false, `state directory ${o.stateDir}`);
    lockOrExplain(CgroupTree.open(o.cgroupName).root, true, `cgroup ${o.cgroupName}`);
    if (existing) fs.rmSync(o.socket, { force: true }); // stale: its daemon is gone
    let bridge = o.bridge;
    if (o.cluster) {
      const { ClusterNode } = require('../cluster/cluster-node') as typeof import('../cluster/cluster-node');
      this.cluster = await ClusterNode.join(o.cluster, this.log);
      this.store = this.cluster.store();
      // in a cluster each host's dynos live in the /24 it claimed, routed from the other hosts
      if (this.cluster.subnet) bridge = { ...(o.bridge ?? {}), subnet: this.cluster.subnet.cidr };
    } else {
      this.store = new SqliteStateStore(new Store(path.join(o.stateDir, 'manifold.db')));
    }
    this.runtime = Runtime.open({ cgroupName: o.cgroupName, ...(o.runDir ? { runDir: o.runDir } : {}), ...(bridge ? { bridge } : {}) });
    const warning = this.runtime.warning();
    if (warning) this.log(warning);
    await this.cleanupLeftovers();

    const cluster = this.cluster;
    let routerPort: number | null = null;
    if (o.listen !== null && (!cluster || cluster.has('router'))) {
      const spec = parseListen(o.listen);
      const workers = o.routerWorkers ?? defaultRouterWorkers();
      if (!Number.isInteger(workers) || workers < 1) throw new Error(`--router-workers must be a positive integer (got ${workers})`);
      let bound: { host: string; port: number }[];
      if (workers > 1) {
        const { RouterWorkers } = require('../router/workers/pool') as typeof import('../router/workers/pool');
        const pool = (this.routerWorkers = new RouterWorkers({ workers, config: { listen: [spec] } }));
        pool.on('log', (e) => {
          if (e.app) this.logs.push(e.app, 'manifold', 'router', e.line);
          if (!e.retry) this.routerRequest(e.app, e);
        });
        pool.on('error', (err) => this.log(`router: ${err.message}`));
        pool.on('worker-exit', (i, code) => this.log(`router: worker ${i} exited (${code}), restarting it`));
        bound = await pool.listen();
      } else {
        this.router = createRouter({ listen: [spec] });
        this.router.on('log', (e) => {
          if (e.app) this.logs.push(e.app, 'manifold', 'router', e.line);
          if (!isRetryNotice(e)) this.routerRequest(e.app, e);
        });
        this.router.on('error', (err) => this.log(`router: ${err.message}`));
        bound = await this.router.listen();
      }
      routerPort = bound[0]?.port ?? spec.port;
      this.log(`router listening on ${bound.map((b) => `${b.host}:${b.port}`).join(', ')}${workers > 1 ? ` (${workers} workers)` : ''}`);
    }

    const runtime = this.runtime;
    const launcher: Launcher = {
      start: (spec) => runtime.start(spec),
      pipe: () => native().pipe(),
      openPty: (cols, rows) => native().openPty(cols, rows),
      resizePty: (fd, cols, rows) => native().resizePty(fd, cols, rows),
    };
    const slugRoot = path.join(o.stateDir, 'slugs');
    // in a cluster the router's table comes from etcd; the supervisor's web instances go to etcd
    const hooks = cluster?.supervisorHooks(slugRoot, o.domain);
    this.supervisor = new Supervisor({
      launcher,
      logs: this.logs,
      routes: hooks ? hooks.routes : (this.router ?? this.routerWorkers)?.table,
      drain: hooks ? hooks.drain : this.router ?? this.routerWorkers,
      drainOnScaleDown: hooks !== undefined,
      net: o.net,
      webPort: DEFAULT_PORT,
      policy: o.policy ?? {},
      // the store applies these in call order (StateStore), so a forget never overtakes its record
      onDynoStarted: (app, name, release, dyno) => {
        this.store.recordDyno({ id: dyno.id, app, name, release, pid: dyno.pid, startedAt: Date.now() }).catch((err: unknown) => this.log(`recording dyno ${dyno.id}: ${String(err)}`));
      },
      onDynoGone: (id) => {
        this.store.forgetDyno(id).catch(() => {
          /* store closed during shutdown */
        });
      },
      onEvent: (ev) => this.prometheus?.event(ev),
    });
    await this.startMetrics();
    // each host samples the dynos its own supervisor runs (in a cluster too)
    this.runtimeMetrics = new RuntimeMetrics({ dynos: this.supervisor, logs: this.logs, log: this.log });
    this.runtimeMetrics.start();
    if (cluster) {
      // the bridge now, not at the first dyno: its neighbour settings and forward rules go on it at start
      if (cluster.has('dynos')) this.runtime.bridge();
      await cluster.start({ supervisor: cluster.has('dynos') ? this.supervisor : undefined, router: this.router ?? this.routerWorkers, routerPort, logs: this.logs, slugRoot, domain: o.domain, webPort: DEFAULT_PORT, bridge: cluster.has('dynos') ? this.runtime.bridgeName : null });
    }
    this.manifold = new Manifold({
      store: this.store,
      supervisor: cluster ? cluster.fleet() : this.supervisor,
      logs: this.logs,
      stateDir: o.stateDir,
      domain: o.domain,
      routerPort,
      ...(cluster ? { publishSlug: (sha: string, dir: string, bytes: number) => cluster.publishSlug(sha, dir, bytes) } : {}),
    });
    if (!cluster) await this.manifold.restore();
    if (!cluster && o.git !== false) this.git = this.openGit();
    this.api = new ApiServer({
      ...(cluster ? { logSource: cluster.logSource(this.logs), extra: cluster.apiHandlers(), attachElsewhere: () => cluster.oneOffHost() } : {}),
      ...(this.git ? { extra: this.gitHandlers(this.git) } : {}),
      manifold: this.manifold,
      logs: this.logs,
      launcher,
      // builds run on one host (a cluster refuses them: docs/build.md)
      ...(cluster ? {} : { builder: new Builder({ stateDir: o.stateDir, host: this.manifold, launcher, logs: this.logs, net: o.net, installed: defaultInstalledBuildpacks(), limits: buildLimitsFromEnv() }) }),
      socketPath: o.socket,
      socketGid: o.socketGid,
      info: (): DaemonInfo => ({
        version: VERSION,
        pid: process.pid,
        stateDir: o.stateDir,
        listen: o.listen === null ? null : `${parseListen(o.listen).host}:${routerPort}`,
        domain: o.domain,
        net: o.net,
        warning: warning ?? null,
        dashboard: this.dashboard?.url() ? { url: this.dashboard.url()!, tokenFile: this.dashboard.tokenFile } : null,
      }),
    });
    if (cluster) cluster.api = this.api;
    if (cluster && !cluster.has('api')) {
      // no control socket; the API object still runs one-offs that API hosts relay here
      this.log(`ready: cluster host ${o.cluster!.hostId} (${o.cluster!.roles.join(',')}), no control socket (no api role)`);
      return;
    }
    await this.api.listen();
    if (dashboardListen) await this.startDashboard(dashboardListen);
    if (this.git) {
      try {
        await this.git.start();
      } catch (err) {
        this.log(`git push is off: ${err instanceof Error ? err.message : String(err)}`);
        this.git = undefined;
      }
    }
    if (cluster) this.log(`ready: cluster host ${o.cluster!.hostId} (${o.cluster!.roles.join(',')}), uplink ${o.cluster!.uplink}, subnet ${cluster.subnet?.cidr ?? 'none'}, socket ${o.socket}`);
    else this.log(`ready: state ${o.stateDir}, socket ${o.socket}, ${(await this.store.listApps()).length} app(s) restored`);
  }

  /** The dashboard reads what the API reads, and the metrics sources as they are at each build. */
  private async startDashboard(listen: import('./dashboard/auth').DashboardListen): Promise<void> {
    const { DashboardServer } = require('./dashboard/server') as typeof import('./dashboard/server');
    this.dashboard = new DashboardServer({
      listen,
      tokenDir: this.runtime.runDir,
      model: this.manifold,
      logs: this.cluster ? this.cluster.logSource(this.logs) : localLogSource(this.logs),
      memory: () => this.runtimeMetrics,
      traffic: () => this.routerStats,
      log: this.log,
    });
    await this.dashboard.listen();
    this.log(`dashboard on ${this.dashboard.url()} (token in ${this.dashboard.tokenFile}; manifold dashboard prints the address with it)`);
  }

  /** One router request (retry notices are filtered out by the caller): the traffic statistics and Prometheus. */
  private routerRequest(app: string | null, e: Readonly<Omit<RequestSample, 'app'>>): void {
    if (app !== null) this.routerStats.add(app, e);
    this.prometheus?.request(app, e);
  }

  /**
   * Statistics of destroyed apps are dropped once a minute: an app is alive while this host's
   * supervisor or router table has it. Then Prometheus, when --metrics is given.
   */
  private async startMetrics(): Promise<void> {
    const table = (this.router ?? this.routerWorkers)?.table;
    const alive = (app: string): boolean => this.supervisor.has(app) || table?.app(app) !== undefined;
    this.statsSweep = setInterval(() => {
      this.routerStats.retain(alive);
      this.prometheus?.retain(alive);
    }, 60_000).unref();
    if (!this.o.metrics) return;
    const { PrometheusMetrics, MetricsServer } = require('./metrics/prometheus') as typeof import('./metrics/prometheus');
    this.prometheus = new PrometheusMetrics({
      dynos: this.supervisor,
      // read at each scrape: the sampler is made after this
      memory: () => this.runtimeMetrics,
      routerLoad: () => this.router?.load() ?? this.routerWorkers?.load(),
      version: VERSION,
      alive,
    });
    this.metricsServer = new MetricsServer(this.prometheus);
    await this.metricsServer.listen(this.o.metrics);
    this.log(`metrics on ${this.metricsServer.url()}`);
  }

  /** The git transport, or undefined (with one line saying why) when its paths can't be used. */
  private openGit(): GitTransport | undefined {
    const g = this.o.git || {};
    try {
      const { GitTransport: Transport } = require('../git/service') as typeof import('../git/service');
      const names = require('../git/names') as typeof import('../git/names');
      return new Transport({
        stateDir: this.o.stateDir,
        socket: g.socket ?? names.defaultGitSocket(this.o.socket),
        controlSocket: this.o.socket,
        user: g.user ?? names.DEFAULT_GIT_USER,
        home: g.home ?? names.DEFAULT_GIT_HOME,
        appExists: async (app) => (await this.store.getApp(app)) !== undefined,
        log: this.log,
      });
    } catch (err) {
      this.log(`git push is off: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  }

  /** git:remote and keys*, and apps:destroy, which removes the app's repository too. */
  private gitHandlers(git: GitTransport): Record<string, (p: Record<string, unknown>) => unknown> {
    return {
      ...git.handlers(),
      'apps:destroy': async (p) => {
        await this.manifold.destroyApp(p.app, p.confirm);
        git.removeRepo(String(p.app));
      },
    };
  }

  /**
   * Dyno cgroups and bridge leases left by a daemon that died without teardown: kill and remove them;
   * drop slugs no release of any app refers to (shared slugs stay while one does) and unfinished builds.
   */
  private async cleanupLeftovers(): Promise<void> {
    const recorded = new Map((await this.store.liveDynos()).map((d) => [d.id, d]));
    const stale = await this.runtime.reclaimStale();
    for (const id of new Set([...stale, ...recorded.keys()])) {
      const d = recorded.get(id);
      this.log(`cleaning up dyno ${d ? `${d.app} ${d.name} ` : ''}(${id}) left by a previous daemon`);
      await this.store.forgetDyno(id);
    }
    // in a cluster, another API host may be deploying a release that names a slug held here
    if (!this.o.cluster) await collectSlugs(path.join(this.o.stateDir, 'slugs'), (p) => this.store.slugInUse(p));
    // stages of builds a killed daemon did not finish
    fs.rmSync(path.join(this.o.stateDir, 'builds'), { recursive: true, force: true });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // a start that failed before opening anything (a lock held by another daemon) has nothing to say
      const opened = (this.store as StateStore | undefined) !== undefined;
      if (opened) this.log('stopping: all dynos get their stop signal');
      await this.git?.close();
      clearInterval(this.statsSweep);
      await this.metricsServer?.close();
      await this.dashboard?.close();
      await this.api?.close();
      this.runtimeMetrics?.stop();
      await this.supervisor?.shutdown();
      await this.cluster?.stop().catch((err: unknown) => this.log(`leaving the cluster: ${String(err)}`));
      await this.router?.close();
      await this.routerWorkers?.close();
      await this.runtime?.close();
      await this.store?.close();
      if (opened) this.log('stopped');
    })();
    return this.stopping;
  }
}

/**
 * Holds an exclusive lock for the daemon's life; a second daemon on the same state directory or
 * cgroup subtree would run duplicate dynos or kill the first one's, so it stops here with one line.
 */
function lockOrExplain(target: string, directory: boolean, what: string): void {
  try {
    native().lockExclusive(target, directory);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { errno?: number };
    if (e.errno === 11 || e.code === 'EWOULDBLOCK' || e.code === 'EAGAIN') throw new Error(`another manifold daemon is using the ${what}`);
    throw new Error(`cannot lock the ${what}: ${e.code ?? e.message}`);
  }
}
