/** Entry point of the `manifold` command (bin/manifold). */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { appCommands } from './app-commands';
import { daemonCommand, daemonStopCommand } from './daemon-command';
import { dynoCommand } from './dyno-command';
import { EXIT_USAGE } from './errors';
import { routerCommand } from './router-command';
import { upCommand } from './up-command';

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('manifold')
    .usage('$0 <command> [options]')
    .option('socket', { type: 'string', global: true, describe: 'control socket of the daemon (default $MANIFOLD_SOCKET or /run/manifold/api.sock)' })
    .command(upCommand)
    .command(appCommands)
    .command(daemonCommand)
    .command(daemonStopCommand)
    .command(dynoCommand)
    .command(routerCommand)
    .demandCommand(1, 'missing command')
    .strict()
    .recommendCommands()
    .completion('completion', 'print a shell completion script')
    .help()
    .version()
    .fail((msg: string | undefined, err: Error | undefined) => {
      process.stderr.write(`manifold: ${(msg ?? err?.message ?? 'invalid arguments').split('\n')[0]} (see manifold --help)\n`);
      process.exit(EXIT_USAGE);
    })
    .parseAsync();
}

if (require.main === module) {
  main(hideBin(process.argv)).catch((err: unknown) => {
    process.stderr.write(`manifold: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
