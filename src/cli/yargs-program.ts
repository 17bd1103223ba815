/**
 * The whole command line as yargs sees it: help, completion, every command and yargs' own
 * messages for what the fast path (fast-parse.ts) leaves to it. Loaded only then: yargs alone
 * takes about as long to load as Node takes to start.
 */
import yargs from 'yargs';
import { appCommands } from './app-commands';
import { SOCKET_OPTION, toYargsCommand, type ClientCommand } from './client-command';
import { clusterImportCommand } from './cluster-command';
import { daemonCommand, daemonStopCommand } from './daemon-command';
import { dynoCommand } from './dyno-command';
import { EXIT_USAGE } from './errors';
import { routerCommand } from './router-command';
import { upCommand } from './up-command';
import { VERSION } from '../shared/version';

export async function runYargs(argv: string[], clientCommands: readonly ClientCommand[] = appCommands): Promise<void> {
  await yargs(argv)
    .scriptName('manifold')
    .usage('$0 <command> [options]')
    .option('socket', { ...SOCKET_OPTION, global: true })
    .command(upCommand)
    .command(clientCommands.map(toYargsCommand))
    .command(daemonCommand)
    .command(daemonStopCommand)
    .command(clusterImportCommand)
    .command(dynoCommand)
    .command(routerCommand)
    .demandCommand(1, 'missing command')
    .strict()
    .recommendCommands()
    .completion('completion', 'print a shell completion script')
    .help()
    .version(VERSION)
    .fail((msg: string | undefined, err: Error | undefined) => {
      process.stderr.write(`manifold: ${(msg ?? err?.message ?? 'invalid arguments').split('\n')[0]} (see manifold --help)\n`);
      process.exit(EXIT_USAGE);
    })
    .parseAsync();
}
