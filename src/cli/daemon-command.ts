/**
 * `manifold daemon`: runs the dyno manifold in the foreground (systemd runs it this way; `manifold
 * up` starts it detached). SIGTERM/SIGINT stop every dyno Heroku's way, then exit; a second signal
 * exits at once (dynos die with the daemon).
 */
import { execFileSync } from 'node:child_process';
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
}

function duration(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  try {
    return policyModule().parseDuration(v);
  } catch {
    throw new UsageError(`invalid --${name} '${v}' (e.g. 500ms, 20s, 20m, 24h)`);
  }
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
  const { Daemon } = daemonModule();
  const daemon = new Daemon({
    stateDir: a['state-dir'],
    socket: socketPathFrom(a.socket),
    listen: a.listen === 'none' ? null : a.listen,
    domain: a.domain,
    net: a.net,
    cgroupName: a.cgroup,
    ...(a['run-dir'] !== undefined ? { runDir: a['run-dir'] } : {}),
    bridge: { ...(a.bridge !== undefined ? { name: a.bridge } : {}), ...(a.subnet !== undefined ? { subnet: a.subnet } : {}), nat: a.nat, hostDns: a['host-dns'] },
    policy: policyFrom(a),
    ...(a['socket-group'] !== undefined ? { socketGid: gidOf(a['socket-group']) } : {}),
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
      .option('drain', { type: 'string', describe: 'longest wait for a replaced web dyno\'s in-flight requests before SIGTERM (default 30s)' }),
  handler: async (argv) => {
    try {
      await runDaemon(argv as unknown as DaemonArgs);
    } catch (err) {
      report(err);
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
