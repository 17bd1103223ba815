/**
 * `manifold daemon`: runs the dyno manifold in the foreground (systemd runs it this way; `manifold
 * up` starts it detached). SIGTERM/SIGINT stop every dyno Heroku's way, then exit; a second signal
 * exits at once (dynos die with the daemon).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import type { SupervisionPolicy } from '../manifold/policy';
import type { DaemonInfo } from '../manifold/api/protocol';
import { DEFAULT_CGROUP, DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, socketPathFrom } from '../shared/defaults';
import { ApiClient } from './client';
import { report, UsageError } from './errors';

// The daemon's modules load when it runs, not when the command line is parsed (`--help`, `daemon:stop`).
const daemonModule = (): typeof import('../manifold/daemon') => require('../manifold/daemon') as typeof import('../manifold/daemon');
const policyModule = (): typeof import('../manifold/policy') => require('../manifold/policy') as typeof import('../manifold/policy');

interface DaemonArgs {
  'state-dir': string;
  socket?: string;
  'socket-group'?: string;
  listen: string;
  'router-workers': number | undefined;
  domain: string;
  net: string;
  cgroup: string;
  'run-dir'?: string;
  bridge?: string;
  subnet?: string;
  nat: boolean;
  'host-dns': boolean;
  'boot-timeout'?: string;
  'stop-grace'?: string;
  'restart-delay'?: string;
  'restart-max'?: string;
  'stable-uptime'?: string;
  cycle?: string;
  'cycle-jitter'?: string;
  drain?: string;
  etcd?: string;
  'host-id'?: string;
  uplink?: string;
  roles?: string;
  'host-ttl'?: string;
  'cluster-port'?: number;
  'host-memory'?: string;
  'stop-after-disconnect'?: string;
  'git-socket'?: string;
  'git-user'?: string;
  'git-home'?: string;
  git: boolean;
  metrics?: string;
  dashboard?: string;
  'dashboard-public': boolean;
}

const ROLE_NAMES = ['dynos', 'router', 'scheduler', 'api'] as const;

/** The cluster flags, checked together: --etcd needs --host-id and --uplink, and they mean nothing without it. */
export function clusterFrom(a: DaemonArgs): import('../cluster/cluster-node').ClusterConfig | undefined {
  const given = (['host-id', 'uplink', 'roles', 'host-ttl', 'cluster-port', 'host-memory', 'stop-after-disconnect'] as const).filter((k) => a[k] !== undefined);
  if (a.etcd === undefined) {
    if (given.length) throw new UsageError(`--${given[0]} needs --etcd (cluster mode)`);
    return undefined;
  }
  const etcd = a.etcd.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const u of etcd) if (!/^https?:\/\/[^/\s]+$/.test(u)) throw new UsageError(`invalid --etcd URL '${u}' (e.g. http://10.0.0.5:2379)`);
  if (etcd.length === 0) throw new UsageError('--etcd needs at least one URL');
  if (!a['host-id']) throw new UsageError('--etcd needs --host-id ID (this host\'s name in the cluster)');
  // checked here, before the daemon makes its state dir and cgroup subtree (ClusterNode.join checks it again)
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(a['host-id'])) throw new UsageError(`invalid --host-id '${a['host-id']}' (letters, digits, '.', '_', '-'; at most 63)`);
  if (!a.uplink) throw new UsageError('--etcd needs --uplink ADDR (this host\'s address the other hosts reach)');
  if (!/^[0-9.]+$/.test(a.uplink) && !a.uplink.includes(':')) throw new UsageError(`invalid --uplink '${a.uplink}' (an IP address of this host)`);
  const roles = (a.roles ?? ROLE_NAMES.join(',')).split(',').map((r) => r.trim());
  for (const r of roles) if (!(ROLE_NAMES as readonly string[]).includes(r)) throw new UsageError(`invalid role '${r}' in --roles (${ROLE_NAMES.join(', ')})`);
  const ttlMs = duration(a['host-ttl'] ?? '10s', 'host-ttl')!;
  if (ttlMs < 2000 || ttlMs % 1000 !== 0) throw new UsageError(`invalid --host-ttl '${a['host-ttl']}' (whole seconds, at least 2s: etcd's lease floor)`);
  const port = a['cluster-port'] ?? 7946;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`invalid --cluster-port '${String(port)}' (1-65535)`);
  let memBytes: number | undefined;
  if (a['host-memory'] !== undefined) {
    const m = /^([0-9]+)(M|G)B?$/i.exec(a['host-memory']);
    if (!m) throw new UsageError(`invalid --host-memory '${a['host-memory']}' (e.g. 4096M, 16G)`);
    memBytes = Number(m[1]) * (m[2]!.toUpperCase() === 'G' ? 1024 ** 3 : 1024 ** 2);
  }
  const stopAfter = duration(a['stop-after-disconnect'], 'stop-after-disconnect');
  if (stopAfter !== undefined && stopAfter < 1000) throw new UsageError(`invalid --stop-after-disconnect '${a['stop-after-disconnect']}' (at least 1s)`);
  if (stopAfter !== undefined && !roles.includes('dynos')) throw new UsageError('--stop-after-disconnect needs the dynos role (it stops this host\'s dynos)');
  return {
    etcd,
    hostId: a['host-id'],
    uplink: a.uplink,
    roles: [...new Set(roles)] as import('../cluster/records').Role[],
    hostTtlSeconds: ttlMs / 1000,
    clusterPort: port,
    ...(memBytes !== undefined ? { memBytes } : {}),
    ...(stopAfter !== undefined ? { stopAfterDisconnectMs: stopAfter } : {}),
  };
}

function duration(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  try {
    return policyModule().parseDuration(v);
  } catch {
    throw new UsageError(`invalid --${name} '${v}' (e.g. 500ms, 20s, 20m, 24h)`);
  }
}

/** --metrics HOST:PORT, checked before the daemon makes anything (the daemon checks it again). */
function metricsFrom(v: string): string {
  if (!/^(?:\[[^\]]+\]|[^:]*):[0-9]{1,5}$/.test(v) || Number(v.slice(v.lastIndexOf(':') + 1)) > 65535) throw new UsageError(`invalid --metrics '${v}' (HOST:PORT, e.g. 127.0.0.1:9090)`);
  return v;
}

function gidOf(group: string): number {
  if (/^[0-9]+$/.test(group)) return Number(group);
  try {
    return Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
  } catch {
    throw new UsageError(`unknown group '${group}'`);
  }
}

export function policyFrom(a: DaemonArgs): Partial<SupervisionPolicy> {
  const p: Partial<SupervisionPolicy> = {};
  const boot = duration(a['boot-timeout'], 'boot-timeout');
  if (boot !== undefined) p.bootTimeoutMs = boot;
  const grace = duration(a['stop-grace'], 'stop-grace');
  if (grace !== undefined) p.stopGraceMs = grace;
  const cycle = duration(a.cycle, 'cycle');
  if (cycle !== undefined) p.cycleMs = cycle;
  const jitter = duration(a['cycle-jitter'], 'cycle-jitter');
  if (jitter !== undefined) p.cycleJitterMs = jitter;
  const drain = duration(a.drain, 'drain');
  if (drain !== undefined) p.drainMs = drain;
  const initial = duration(a['restart-delay'], 'restart-delay');
  const max = duration(a['restart-max'], 'restart-max');
  const stable = duration(a['stable-uptime'], 'stable-uptime');
  if (initial !== undefined || max !== undefined || stable !== undefined) {
    p.restart = { initialMs: initial ?? 20_000, factor: 2, maxMs: max ?? 20 * 60_000, stableMs: stable ?? 10 * 60_000 };
  }
  return p;
}

async function runDaemon(a: DaemonArgs): Promise<void> {
  if (a.net !== 'bridge' && a.net !== 'none') throw new UsageError(`invalid --net '${a.net}' (bridge or none)`);
  const cluster = clusterFrom(a);
  if (cluster && a.net !== 'bridge') throw new UsageError('cluster mode needs --net bridge (routers on other hosts reach dynos by their own addresses)');
  const { Daemon } = daemonModule();
  const daemon = new Daemon({
    stateDir: a['state-dir'],
    socket: socketPathFrom(a.socket),
    listen: a.listen === 'none' ? null : a.listen,
    routerWorkers: a['router-workers'],
    domain: a.domain,
    net: a.net,
    cgroupName: a.cgroup,
    ...(a['run-dir'] !== undefined ? { runDir: a['run-dir'] } : {}),
    bridge: { ...(a.bridge !== undefined ? { name: a.bridge } : {}), ...(a.subnet !== undefined ? { subnet: a.subnet } : {}), nat: a.nat, hostDns: a['host-dns'] },
    policy: policyFrom(a),
    ...(a['socket-group'] !== undefined ? { socketGid: gidOf(a['socket-group']) } : {}),
    ...(cluster ? { cluster } : {}),
    ...(a.metrics !== undefined && a.metrics !== 'none' ? { metrics: metricsFrom(a.metrics) } : {}),
    ...(a.dashboard !== undefined && a.dashboard !== 'none' ? { dashboard: a.dashboard, dashboardPublic: a['dashboard-public'] } : {}),
    git: a.git ? { ...(a['git-socket'] !== undefined ? { socket: a['git-socket'] } : {}), ...(a['git-user'] !== undefined ? { user: a['git-user'] } : {}), ...(a['git-home'] !== undefined ? { home: a['git-home'] } : {}) } : false,
  });
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    if (signals > 1) process.exit(130);
    void daemon.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => undefined);
    // a cluster refusal (etcd, uplink, host id, layout, subnets) comes after this daemon locked its
    // cgroup subtree, which the lock created: remove it again (rmdir: only while it is empty)
    const name = (err as Error | undefined)?.name;
    if (cluster && (name === 'ClusterError' || name === 'LayoutVersionError')) {
      try {
        const { CgroupTree } = require('../runtime/cgroup') as typeof import('../runtime/cgroup');
        fs.rmdirSync(CgroupTree.open(a.cgroup).root);
      } catch {
        /* not ours to remove, or dynos' leaves in it */
      }
    }
    throw err;
  }
}

export const daemonCommand: CommandModule = {
  command: 'daemon',
  describe: 'Run the dyno manifold daemon (root): store, supervisor, router and control socket',
  builder: (y: Argv) =>
    y
      .option('state-dir', { type: 'string', default: DEFAULT_STATE_DIR, describe: 'where the database and slugs live' })
      .option('socket-group', { type: 'string', describe: 'group allowed to use the control socket (default: root only)' })
      .option('listen', { type: 'string', default: '0.0.0.0:80', describe: "router address host:port, or 'none'" })
      // 1 until the cluster route feed takes worker threads; single-host drains wait for every worker
      .option('router-workers', { type: 'number', describe: 'router event loops (worker threads on one SO_REUSEPORT port; 1 = the daemon\'s own thread); default: one per core, at most 8' })
      .option('domain', { type: 'string', default: 'localhost', describe: 'apps answer at APP.DOMAIN' })
      .option('net', { type: 'string', default: 'bridge', describe: "dyno network: 'bridge' (own address, routed) or 'none'" })
      .option('cgroup', { type: 'string', default: DEFAULT_CGROUP, describe: 'cgroup v2 subtree for the dynos' })
      .option('run-dir', { type: 'string', describe: `runtime directory: stack skeleton, scratch, address leases (default ${DEFAULT_RUN_DIR})` })
      .option('bridge', { type: 'string', describe: 'host bridge for dyno networking (default manifold0)' })
      .option('subnet', { type: 'string', describe: 'subnet of the bridge when it is created (default 10.200.0.0/16)' })
      .option('nat', { type: 'boolean', default: false, describe: 'outbound NAT (nftables masquerade) for dynos' })
      .option('host-dns', { type: 'boolean', default: false, describe: 'the host serves DNS on the bridge gateway: open its port 53 to dynos (nothing else on the host is)' })
      .option('boot-timeout', { type: 'string', describe: 'R10 boot timeout (default 60s)' })
      .option('stop-grace', { type: 'string', describe: 'R12 stop grace (default 30s)' })
      .option('restart-delay', { type: 'string', describe: 'second crash restart delay, doubling (default 20s)' })
      .option('restart-max', { type: 'string', describe: 'restart delay cap (default 20m)' })
      .option('stable-uptime', { type: 'string', describe: 'uptime that resets the crash count (default 10m)' })
      .option('cycle', { type: 'string', describe: "daily cycling interval (default 24h; '0' disables)" })
      .option('cycle-jitter', { type: 'string', describe: 'random extra per dyno (default 216m)' })
      .option('drain', { type: 'string', describe: 'longest wait for a replaced web dyno\'s in-flight requests before SIGTERM (default 30s)' })
      .option('etcd', { type: 'string', describe: 'cluster mode: etcd client URLs, comma-separated (state in etcd instead of SQLite)' })
      .option('host-id', { type: 'string', describe: 'cluster: this host\'s id (unique, stable across restarts)' })
      .option('uplink', { type: 'string', describe: 'cluster: this host\'s address the other hosts route dyno traffic through' })
      .option('roles', { type: 'string', describe: 'cluster: dynos,router,scheduler,api (default all four)' })
      .option('host-ttl', { type: 'string', describe: 'cluster: host lease TTL, how soon a lost host\'s dynos are replaced (default 10s)' })
      .option('cluster-port', { type: 'number', describe: 'cluster: port of the host-to-host server on the uplink (default 7946)' })
      .option('host-memory', { type: 'string', describe: 'cluster: memory the scheduler may place dynos against (default: all of it)' })
      .option('git', { type: 'boolean', default: true, describe: 'git push: repositories, keys and the git socket (--no-git: off; single-host only)' })
      .option('git-socket', { type: 'string', describe: 'socket the git user\'s ssh sessions reach the daemon through (default: git.sock beside --socket)' })
      .option('git-user', { type: 'string', describe: 'system user of ssh pushes, created by the first keys:add (default manifold)' })
      .option('git-home', { type: 'string', describe: 'its home when created, for .ssh/authorized_keys (default /var/lib/manifold-git)' })
      .option('dashboard', { type: 'string', describe: 'serve the dashboard (one page: apps, dynos, charts, live logs) on HOST:PORT, loopback only unless --dashboard-public; off by default (docs/dashboard.md)' })
      .option('dashboard-public', { type: 'boolean', default: false, describe: 'allow --dashboard on a non-loopback address (still needs the token)' })
      .option('metrics', { type: 'string', describe: "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9090; no auth, so keep it on loopback or a private network); off by default (docs/metrics.md#prometheus)" })
      .option('stop-after-disconnect', { type: 'string', describe: 'cluster, dynos role: stop this host\'s dynos after DURATION without an answer from etcd (e.g. 30s; off by default)' }),
  handler: async (argv) => {
    try {
      await runDaemon(argv as unknown as DaemonArgs);
    } catch (err) {
      report(err);
      // exit now: a connection left in flight (gRPC's to an unreachable etcd) held a refused daemon ~3 s more
      process.exit();
    }
  },
};

/** `manifold daemon:stop`: SIGTERM to the daemon found on the socket (it stops its dynos Heroku's way). */
export const daemonStopCommand: CommandModule = {
  command: 'daemon:stop',
  describe: 'Stop the daemon: every dyno gets SIGTERM, then the daemon exits',
  builder: (y: Argv) => y.option('wait', { type: 'number', default: 40, describe: 'seconds to wait for it to exit' }),
  handler: async (argv) => {
    try {
      const a = argv as unknown as { socket?: string; wait: number };
      const info = await new ApiClient(socketPathFrom(a.socket)).call<DaemonInfo>('info', {});
      process.kill(info.pid, 'SIGTERM');
      const deadline = Date.now() + a.wait * 1000;
      while (processAlive(info.pid)) {
        if (Date.now() > deadline) throw new Error(`the daemon (pid ${info.pid}) did not exit within ${a.wait} s`);
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stdout.write(`Stopped the manifold daemon (pid ${info.pid})\n`);
    } catch (err) {
      report(err);
    }
  },
};

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
