/**
 * `manifold router`: the routing mesh as a standalone process.
 *
 *   manifold router --listen 127.0.0.1:8080 [--listen …] --routes routes.json
 *                   [--balance round-robin|random|least-outstanding]
 *                   [--timeouts connect=5s,first-byte=30s,idle=55s,boot-queue=75s]
 *                   [--workers N]
 *
 * The routes file is JSON ({"apps": {"NAME": {"hosts": […], "backends": [{"dyno", "address", "state"?}]}}}),
 * reloaded on SIGHUP and when it changes, without dropping connections (a bad file keeps the old
 * table). Router log lines go to stdout, as `heroku logs` shows them.
 *
 * `--workers N` (default: the number of cores, at most 8) runs N router event loops in worker
 * threads, each accepting on its own SO_REUSEPORT socket of the same port (src/router/workers/).
 * This thread loads the routes and pushes every change to all of them; a reload is reported once
 * every worker has applied it. `--workers 1` runs the router on this thread, as before.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { BalanceStrategy, LoadResult, Router, RouterConfigInput, RoutesLoader } from '../router';
import type { RouterWorkers } from '../router/workers/pool';
import { RouterLogWriter } from './router-log-writer';

// The router loads when it runs, not when the command line is parsed.
const routerModule = (): typeof import('../router') => require('../router') as typeof import('../router');
const workersModule = (): typeof import('../router/workers/pool') => require('../router/workers/pool') as typeof import('../router/workers/pool');

/** nginx runs a worker per core; past 8 the routes fan-out and memory cost more than they give. */
export const DEFAULT_WORKERS = Math.min(os.availableParallelism(), 8); // = router/index.ts defaultRouterWorkers(), without loading the router for --help

interface RouterArgs {
  listen: string[];
  routes: string;
  balance: BalanceStrategy;
  timeouts?: string;
  'log-prefix': boolean;
  workers: number;
}

/**
 * Reloads the routes on SIGHUP and on file change (debounced; the directory is watched so atomic
 * renames count). Reading, parsing and diffing happen in the loader's worker: this thread only
 * swaps the apps that changed, so a reload of a big file stalls no request.
 */
function watchRoutes(loader: RoutesLoader, file: string, onReload: (err: Error | null, result: LoadResult | null) => void): () => void {
  let timer: NodeJS.Timeout | null = null;
  const reload = (force: boolean): void => {
    loader.load(force).then(
      (result) => {
        if (result.changed) onReload(null, result);
      },
      (err: unknown) => onReload(err as Error, null),
    );
  };
  const schedule = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      reload(false);
    }, 50);
  };
  const base = path.basename(file);
  const watcher = fs.watch(path.dirname(file), (_event, name) => {
    if (name === null || name.toString() === base) schedule();
  });
  const onHup = (): void => reload(true);
  process.on('SIGHUP', onHup);
  return () => {
    watcher.close();
    process.off('SIGHUP', onHup);
    if (timer !== null) clearTimeout(timer);
  };
}

export async function runRouter(args: RouterArgs): Promise<Router | RouterWorkers> {
  const { createRouter, parseListen, parseTimeouts, RoutesLoader } = routerModule();
  const listen = args.listen.map(parseListen);
  const timeouts = args.timeouts !== undefined ? parseTimeouts(args.timeouts) : {};
  const config: RouterConfigInput = { listen, balance: args.balance, timeouts };
  const routesFile = path.resolve(args.routes);
  const workers = args.workers ?? DEFAULT_WORKERS;
  if (!Number.isInteger(workers) || workers < 1) throw new (routerModule().RouterError)('ECONFIG', `--workers must be a positive integer (got ${workers})`);
  // One worker: the router runs on this thread (no fan-out to pay for).
  // The log is only written out here: the workers post lines, not the records statistics need.
  const router = workers === 1 ? createRouter(config) : new (workersModule().RouterWorkers)({ workers, config, logStats: false });
  const loader = new RoutesLoader(router.table, routesFile);
  try {
    await loader.load(true);
  } catch (err) {
    await loader.close();
    throw err;
  }
  const prefix = args['log-prefix'];
  const log = new RouterLogWriter(1, prefix);
  if ('workers' in router) {
    router.on('lines', (lines, times) => {
      for (let i = 0; i < lines.length; i++) log.push(lines[i]!, times[i]!);
    });
    router.on('worker-exit', (i, code) => process.stderr.write(`manifold router: worker ${i} exited (${code}), restarting it\n`));
  } else {
    router.on('log', (entry) => log.push(entry.line, Date.now()));
  }
  router.on('error', (err: Error) => process.stderr.write(`manifold router: ${err.message}\n`));
  let bound: { host: string; port: number }[];
  try {
    bound = await router.listen();
  } catch (err) {
    await loader.close();
    if ('workers' in router) await router.close();
    throw err;
  }
  const count = workers === 1 ? '' : ` (${workers} workers)`;
  process.stderr.write(`manifold router: listening on ${bound.map((b) => `${b.host}:${b.port}`).join(', ')}${count}\n`);
  // A reload is reported once every worker routes by it (one router: at once).
  const applied = (): Promise<void> => ('workers' in router ? router.synced() : Promise.resolve());
  const stopWatching = watchRoutes(loader, routesFile, (err, r) => {
    if (err) process.stderr.write(`manifold router: routes not reloaded, keeping the previous table: ${err.message}\n`);
    else
      void applied().then(() =>
        process.stderr.write(`manifold router: routes reloaded from ${routesFile} (${r!.total} apps, ${r!.updated} added or changed, ${r!.removed} removed)\n`),
      );
  });
  const stop = (): void => {
    stopWatching();
    void loader.close();
    void router.close().then(() => {
      log.flush();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return router;
}

export const routerCommand: CommandModule = {
  command: 'router',
  describe: "Run the HTTP routing mesh (Heroku's router) in the foreground",
  builder: (yargs: Argv) =>
    yargs
      .option('listen', { type: 'string', array: true, demandOption: true, describe: 'HOST:PORT to accept HTTP on (repeatable)' })
      .option('routes', { type: 'string', demandOption: true, describe: 'routes JSON file (reloaded on SIGHUP and on change)' })
      .option('balance', { choices: ['round-robin', 'random', 'least-outstanding'], default: 'round-robin', describe: 'how requests spread over web dynos' })
      .option('timeouts', { type: 'string', describe: 'e.g. connect=5s,first-byte=30s,idle=55s,boot-queue=75s' })
      .option('log-prefix', { type: 'boolean', default: true, describe: 'prefix log lines with a timestamp and heroku[router]:' })
      .option('workers', { type: 'number', default: DEFAULT_WORKERS, describe: 'router event loops (worker threads sharing the port with SO_REUSEPORT); 1 = this thread' }),
  handler: async (argv) => {
    try {
      await runRouter(argv as unknown as RouterArgs);
    } catch (err) {
      process.stderr.write(`manifold router: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof routerModule().RouterError && err.code !== 'ELISTEN' ? 2 : 1;
    }
  },
};
