/**
 * Entry point of the `manifold` command (bin/manifold). The plain forms of the client commands
 * are parsed here from the command table and run at once; everything else (help, errors, the
 * daemon, dyno and router commands) goes through yargs, loaded only then.
 */
// Each path loads only what it uses (requires inside main): a CLI run's cost is mostly loading.
export async function main(argv: string[]): Promise<void> {
  if (argv.length === 1 && argv[0] === '--version') {
    const { VERSION } = require('../shared/version') as typeof import('../shared/version');
    (require('./stdout') as typeof import('./stdout')).writeStdout(`${VERSION}\n`);
    return;
  }
  // the git user's login shell: sshd runs `manifold -c 'FORCED COMMAND'` (src/git/shell.ts)
  if (argv.length === 2 && argv[0] === '-c') {
    await (require('../git/shell') as typeof import('../git/shell')).loginShell(argv[1]!);
    return;
  }
  const { appCommands } = require('./app-commands') as typeof import('./app-commands');
  const { fastParse } = require('./fast-parse') as typeof import('./fast-parse');
  const fast = fastParse(argv, appCommands);
  if (fast) {
    const { report } = require('./errors') as typeof import('./errors');
    await fast.command.run(fast.args).catch(report);
    return;
  }
  (require('./compile-cache') as typeof import('./compile-cache')).useCompileCache();
  const { runYargs } = require('./yargs-program') as typeof import('./yargs-program');
  await runYargs(argv);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`manifold: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
