/**
 * `manifold dyno run`: one dyno in the foreground, with this terminal's stdin/stdout/stderr.
 * Ctrl-C or SIGTERM stops it Heroku's way (SIGTERM to all its processes, grace, SIGKILL); a
 * second Ctrl-C kills it at once. The dyno's status becomes ours.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { ExitStatus } from '../runtime/dyno';
import type { DynoSpec } from '../runtime/spec';
import { DEFAULT_PORT, DEFAULT_RUN_DIR } from '../shared/defaults';
import { report, UsageError } from './errors';

// The runtime (and its native addon) loads when a dyno runs, not when the command line is parsed.
const runtimeModule = (): typeof import('../runtime/dyno') => require('../runtime/dyno') as typeof import('../runtime/dyno');
const sizesModule = (): typeof import('../runtime/sizes') => require('../runtime/sizes') as typeof import('../runtime/sizes');
const networkModule = (): typeof import('../runtime/network') => require('../runtime/network') as typeof import('../runtime/network');
const relayModule = (): typeof import('./terminal-relay') => require('./terminal-relay') as typeof import('./terminal-relay');

interface RunArgs {
  app?: string;
  stack: string;
  env: string[];
  hostname?: string;
  name: string;
  user?: string;
  net: string;
  port: number;
  grace: number;
  size: string;
  'memory-max'?: string;
  pids?: number;
  nat: boolean;
  subnet?: string;
  tty: boolean;
  command: string[];
}

export function parseEnvPairs(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`invalid --env '${pair}' (expected KEY=VALUE)`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

export function parseUser(spec: string): { uid: number; gid: number } {
  const m = /^([0-9]+):([0-9]+)$/.exec(spec);
  if (!m) throw new UsageError(`invalid --user '${spec}' (expected UID:GID)`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** An empty app directory, so a dyno run without --app never sees the caller's files. */
function emptyAppDir(runDir: string): string {
  const dir = path.join(runDir, 'empty-app');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

async function runDyno(args: RunArgs): Promise<void> {
  if (args.command.length === 0) throw new UsageError('no command given (usage: manifold dyno run [options] -- CMD [ARGS...])');
  if (args.net !== 'none' && args.net !== 'bridge') throw new UsageError(`unsupported --net '${args.net}' (supported: none, bridge)`);
  const env = parseEnvPairs(args.env);
  const user = args.user !== undefined ? parseUser(args.user) : undefined;
  const { parseBytes, resourcesFor } = sizesModule();
  let resources;
  try {
    resources = resourcesFor(args.size, {
      ...(args['memory-max'] !== undefined ? { memoryMax: parseBytes(args['memory-max']) } : {}),
      ...(args.pids !== undefined ? { pids: args.pids } : {}),
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (args.pids !== undefined && (!Number.isInteger(args.pids) || args.pids < 1)) throw new UsageError(`invalid --pids ${args.pids}`);
  const runtime = runtimeModule().Runtime.open({ bridge: { nat: args.nat, ...(args.subnet !== undefined ? { subnet: args.subnet } : {}) } });
  const spec: DynoSpec = {
    name: args.name,
    command: { argv: args.command },
    appDir: args.app !== undefined ? path.resolve(args.app) : emptyAppDir(runtime.runDir),
    stack: args.stack === 'host' ? 'host' : path.resolve(args.stack),
    env,
    net: { mode: args.net === 'bridge' ? 'bridge' : 'none' },
    resources,
    stdio: { stdin: 0, stdout: 1, stderr: 2 },
    ...(args.hostname !== undefined ? { hostname: args.hostname } : {}),
    ...(user ? { user } : {}),
    port: args.port,
  };

  // On a terminal the dyno gets a pty of its own (job control, ^C to its foreground job), with TERM.
  const terminal = args.tty && process.stdin.isTTY && process.stdout.isTTY ? new (relayModule().TerminalRelay)() : undefined;
  if (terminal) {
    // stderr redirected away from the terminal (2>file) stays where the caller put it
    spec.stdio = { stdin: terminal.slave, stdout: terminal.slave, stderr: process.stderr.isTTY ? terminal.slave : 2 };
    spec.env = { TERM: process.env.TERM ?? 'xterm', ...env };
  }

  let interrupts = 0;
  let stopping: ((sig: NodeJS.Signals) => void) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    stopping?.(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    const dyno = await runtime.start(spec);
    terminal?.start();
    // after the start, so a failing run prints only its one error line
    const warning = runtime.warning();
    if (warning) process.stderr.write(`manifold: ${warning}\n`);
    if (dyno.address) process.stderr.write(`manifold: ${dyno.name} is at ${dyno.address}:${args.port}\n`);
    stopping = () => {
      if (interrupts > 1) void dyno.kill();
      else void dyno.stop(args.grace * 1000);
    };
    if (interrupts > 0) stopping('SIGTERM');
    const status: ExitStatus = await dyno.exited;
    await runtime.settled(); // the veth and the address lease, too, before the CLI is done
    process.exitCode = status.status;
  } finally {
    await terminal?.finish();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}

export const dynoCommand: CommandModule = {
  command: 'dyno <action>',
  describe: 'Run a single dyno directly, without the daemon',
  builder: (yargs: Argv) =>
    yargs.command({
      command: 'run [command..]',
      describe: 'Run one dyno in the foreground: manifold dyno run [options] -- CMD [ARGS...]',
      builder: (y: Argv) =>
        y
          .option('app', { type: 'string', describe: 'app directory, mounted copy-on-write at /app (default: empty)' })
          .option('stack', { type: 'string', default: 'host', describe: "read-only root: 'host' or a root filesystem directory" })
          .option('env', { alias: 'e', type: 'string', array: true, default: [], describe: 'config var KEY=VALUE (repeatable)' })
          .option('hostname', { type: 'string', describe: 'hostname inside the dyno (default: the dyno name)' })
          .option('name', { type: 'string', default: 'run.1', describe: 'dyno name, e.g. web.1 (becomes $DYNO)' })
          .option('user', { type: 'string', describe: 'UID:GID to run as (never 0; default 10001:10001)' })
          .option('net', { type: 'string', default: 'none', describe: "network: 'none' (own namespace, loopback only) or 'bridge' (own address on the manifold0 bridge)" })
          .option('nat', { type: 'boolean', default: false, describe: 'bridge: outbound NAT (nftables masquerade) for dynos' })
          .option('subnet', { type: 'string', describe: 'bridge: subnet of the bridge when it is created (default 10.200.0.0/16)' })
          .option('size', { type: 'string', default: sizesModule().DEFAULT_SIZE, describe: 'dyno size: eco, basic, standard-1x, standard-2x, performance-m, performance-l, ...' })
          .option('memory-max', { type: 'string', describe: 'override the kill limit (memory.max), e.g. 256m' })
          .option('pids', { type: 'number', describe: 'override pids.max' })
          .option('port', { type: 'number', default: DEFAULT_PORT, describe: 'value of $PORT (every dyno has one, as on Heroku)' })
          .option('grace', { type: 'number', default: 30, describe: 'seconds between SIGTERM and SIGKILL on stop' })
          .option('tty', { type: 'boolean', default: true, describe: 'on a terminal, give the dyno a pty of its own (--no-tty: this terminal as plain stdio)' })
          .positional('command', { type: 'string', array: true, default: [] })
          .parserConfiguration({ 'populate--': true }),
      handler: async (argv) => {
        const raw = argv as unknown as Omit<RunArgs, 'command'> & { command?: string[]; '--'?: string[] };
        const command = [...(raw.command ?? []), ...(raw['--'] ?? [])].map(String);
        try {
          await runDyno({ ...raw, command });
        } catch (err) {
          report(err);
        }
      },
    })
    .command({
      command: 'cleanup',
      describe: 'Remove what dynos share on this host: the bridge, its address leases, its nftables table (firewall, NAT)',
      handler: () => {
        try {
          networkModule().BridgeNetwork.cleanup(DEFAULT_RUN_DIR);
        } catch (err) {
          report(err);
        }
      },
    })
    .demandCommand(1, 'missing action (try: manifold dyno run -- CMD)'),
  handler: () => undefined,
};
