/**
 * Entry point of the `manifold` command (bin/manifold). The plain forms of the client commands
 * are parsed here from the command table and run at once; everything else (help, errors, the
 * daemon, dyno and router commands) goes through yargs, loaded only then.
 */
import { appCommands } from './app-commands';
import { report } from './errors';
import { fastParse } from './fast-parse';

export async function main(argv: string[]): Promise<void> {
  if (argv.length === 1 && argv[0] === '--version') {
    const { VERSION } = require('../shared/version') as typeof import('../shared/version');
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const fast = fastParse(argv, appCommands);
  if (fast) {
    await fast.command.run(fast.args).catch(report);
    return;
  }
  const { runYargs } = require('./yargs-program') as typeof import('./yargs-program');
  await runYargs(argv);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`manifold: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
