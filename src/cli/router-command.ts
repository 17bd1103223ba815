/**
 * `manifold router`: the routing mesh as a standalone process.
 *
 *   manifold router --listen 127.0.0.1:8080 [--listen …] --routes routes.json
 *                   [--balance round-robin|random|least-outstanding]
 *                   [--timeouts connect=5s,first-byte=30s,idle=55s,boot-queue=75s]
 *
 * The routes file is JSON ({"apps": {"NAME": {"hosts": […], "backends": [{"dyno", "address", "state"?}]}}}),
 * reloaded on SIGHUP and when it changes, without dropping connections (a bad file keeps the old
 * table). Router log lines go to stdout, as `heroku logs` shows them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { BalanceStrategy, LoadResult, Router, RoutesLoader } from '../router';

// The router loads when it runs, not when the command line is parsed.
const routerModule = (): typeof import('../router') => require('../router') as typeof import('../router');

interface RouterArgs {
  listen: string[];
  routes: string;
  balance: BalanceStrategy;
  timeouts?: string;
  'log-prefix': boolean;
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

export async function runRouter(args: RouterArgs): Promise<Router> {
  const { createRouter, parseListen, parseTimeouts, RoutesLoader } = routerModule();
  const listen = args.listen.map(parseListen);
  const timeouts = args.timeouts !== undefined ? parseTimeouts(args.timeouts) : {};
  const routesFile = path.resolve(args.routes);
  const router = createRouter({ listen, balance: args.balance, timeouts });
  const loader = new RoutesLoader(router.table, routesFile);
  try {
    await loader.load(true);
  } catch (err) {
    await loader.close();
    throw err;
  }
  const prefix = args['log-prefix'];
  const log = new LogBatcher(prefix);
  router.on('log', (entry) => {
    log.push(entry.line);
  });
  router.on('error', (err) => process.stderr.write(`manifold router: ${err.message}\n`));
  const bound = await router.listen();
  process.stderr.write(`manifold router: listening on ${bound.map((b) => `${b.host}:${b.port}`).join(', ')}\n`);
  const stopWatching = watchRoutes(loader, routesFile, (err, r) => {
    if (err) process.stderr.write(`manifold router: routes not reloaded, keeping the previous table: ${err.message}\n`);
    else process.stderr.write(`manifold router: routes reloaded from ${routesFile} (${r!.total} apps, ${r!.updated} added or changed, ${r!.removed} removed)\n`);
  });
  const stop = (): void => {
    stopWatching();
    void loader.close();
    void router.close().then(() => process.exit(0));
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
      .option('log-prefix', { type: 'boolean', default: true, describe: 'prefix log lines with a timestamp and heroku[router]:' }),
  handler: async (argv) => {
    try {
      await runRouter(argv as unknown as RouterArgs);
    } catch (err) {
      process.stderr.write(`manifold router: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof routerModule().RouterError && err.code !== 'ELISTEN' ? 2 : 1;
    }
  },
};

/**
 * Log lines leave in one stdout write per event-loop turn instead of one write(2) each, with the
 * ISO timestamp formatted once per millisecond: under load that was the largest cost per request.
 */
class LogBatcher {
  private pending = '';
  private scheduled = false;
  private stampMs = -1;
  private stamp = '';

  constructor(private readonly prefix: boolean) {}

  push(line: string): void {
    if (this.prefix) {
      const now = Date.now();
      if (now !== this.stampMs) {
        this.stampMs = now;
        this.stamp = `${new Date(now).toISOString()} heroku[router]: `;
      }
      this.pending += this.stamp + line + '\n';
    } else {
      this.pending += line + '\n';
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const text = this.pending;
    this.pending = '';
    if (text) process.stdout.write(text);
  }
}
