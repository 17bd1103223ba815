/**
 * `manifold up DIR`: the one command to get an app running. Starts the daemon if none answers
 * (detached, logging to STATE_DIR/daemon.log), creates the app from the directory name, deploys
 * it, scales web=1 on first deploy and prints the URL once web.1 is up.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { AppInfo, PsResult, ReleaseInfo } from '../manifold/api/protocol';
import { DEFAULT_STATE_DIR, socketAlive, socketPathFrom } from '../shared/defaults';
import { ApiClient } from './client';
import { ApiError, report, UsageError } from './errors';

interface UpArgs {
  dir: string;
  app?: string;
  socket?: string;
  'state-dir': string;
  listen?: string;
  domain?: string;
  wait: number;
}

const BIN = path.resolve(__dirname, '../../../bin/manifold');

async function ensureDaemon(a: UpArgs, socket: string): Promise<void> {
  if (await socketAlive(socket)) return;
  fs.mkdirSync(a['state-dir'], { recursive: true, mode: 0o700 });
  const logFile = path.join(a['state-dir'], 'daemon.log');
  const fd = fs.openSync(logFile, 'a');
  const args = [BIN, 'daemon', '--state-dir', a['state-dir'], '--socket', socket];
  if (a.listen) args.push('--listen', a.listen);
  if (a.domain) args.push('--domain', a.domain);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  child.unref();
  process.stderr.write(`Starting the manifold daemon (log: ${logFile})... `);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (exited !== null) {
      const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').pop() ?? '';
      process.stderr.write('failed\n');
      throw new Error(`the daemon exited (${exited}): ${tail}`);
    }
    if (await socketAlive(socket)) {
      process.stderr.write('done\n');
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the daemon did not open ${socket} within 15 s (see ${logFile})`);
}

async function up(a: UpArgs): Promise<void> {
  const dir = path.resolve(a.dir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`no such directory: ${dir}`);
  if (!fs.existsSync(path.join(dir, 'Procfile'))) throw new UsageError(`no Procfile in ${dir}`);
  let name: string;
  try {
    // the daemon's own naming rule, loaded only when the name comes from the directory
    name = a.app ?? (require('../manifold/validate') as typeof import('../manifold/validate')).appNameFromDir(path.basename(dir));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}; pick one with -a NAME`);
  }
  const socket = socketPathFrom(a.socket);
  await ensureDaemon(a, socket);
  const client = new ApiClient(socket);
  try {
    await client.call<AppInfo>('apps:info', { app: name });
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'ENOAPP')) throw err;
    await client.call<AppInfo>('apps:create', { name });
    process.stderr.write(`Created app ${name}\n`);
  }
  const rel = await client.call<ReleaseInfo>('deploy', { app: name, dir });
  process.stderr.write(`Deployed ${dir} to ${name} as v${rel.version}\n`);
  let info = await client.call<AppInfo>('apps:info', { app: name });
  const web = info.formation.find((f) => f.type === 'web');
  if (web && web.command !== null && web.quantity === 0) {
    await client.call('ps:scale', { app: name, args: ['web=1'] });
    info = await client.call<AppInfo>('apps:info', { app: name });
  }
  if (web) {
    const deadline = Date.now() + a.wait * 1000;
    for (;;) {
      const ps = await client.call<PsResult>('ps', { app: name });
      const webs = ps.dynos.filter((d) => d.type === 'web');
      if (webs.length > 0 && webs.some((d) => d.state === 'up')) break;
      if (webs.some((d) => d.state === 'crashed')) {
        throw new ApiError('ECRASHED', `web dyno crashed (${webs.find((d) => d.state === 'crashed')?.reason ?? ''}); see: manifold logs -a ${name}`);
      }
      if (Date.now() > deadline) {
        process.stderr.write(`web is not up yet after ${a.wait} s; see: manifold ps -a ${name}\n`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  process.stdout.write(`${info.url}\n`);
}

export const upCommand: CommandModule = {
  command: 'up <dir>',
  describe: 'Start the daemon if needed, create the app from DIR, deploy it, scale web=1 and print its URL',
  builder: (y: Argv) =>
    y
      .positional('dir', { type: 'string' })
      .option('app', { alias: 'a', type: 'string', describe: 'app name (default: the directory name)' })
      .option('state-dir', { type: 'string', default: DEFAULT_STATE_DIR, describe: 'state directory for a daemon started by this command' })
      .option('listen', { type: 'string', describe: 'router address for a daemon started by this command (default 0.0.0.0:80)' })
      .option('domain', { type: 'string', describe: 'domain for a daemon started by this command (default localhost)' })
      .option('wait', { type: 'number', default: 70, describe: 'seconds to wait for web.1 to be up' }),
  handler: async (argv) => {
    try {
      await up(argv as unknown as UpArgs);
    } catch (err) {
      report(err);
    }
  },
};
