/** Runs the `router` yargs command module as a tiny CLI (until the lead wires it into bin/manifold). */
import yargs from 'yargs';
import { routerCommand } from '../../../src/cli/router-command';

void yargs(process.argv.slice(2)).command(routerCommand).demandCommand(1).strict().parseAsync();
