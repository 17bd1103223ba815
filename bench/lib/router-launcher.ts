// Runs the router CLI command module (src/cli/router-command.ts) the way `manifold router` does,
// for as long as bin/manifold does not register the command yet:
//   node router-launcher.js --listen HOST:PORT --routes FILE [...]
import yargs from 'yargs';
import { routerCommand } from '../../src/cli/router-command';

void yargs(['router', ...process.argv.slice(2)])
  .scriptName('manifold')
  .command(routerCommand)
  .demandCommand(1)
  .strict()
  .parseAsync();
