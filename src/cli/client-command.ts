/**
 * A client command described once, as data: its usage in yargs notation, its options and what it
 * runs. yargs builds its command from this (help, errors, the rare forms) and the fast parser
 * (fast-parse.ts) reads the same table, so the two cannot drift apart. Only types come from yargs:
 * loading yargs costs more than Node's own start, and most invocations never need it.
 */
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_SOCKET } from '../shared/defaults';
import { report } from './errors';

export interface OptionSpec {
  type: 'string' | 'boolean' | 'number';
  /** A one-letter alias (-a, -n). */
  alias?: string;
  default?: string | boolean | number;
  describe: string;
}

/** Parsed arguments as yargs gives them to a handler: long option names, positionals by name. */
export type Args = { app?: string; socket?: string; json?: boolean } & Record<string, unknown>;

export interface ClientCommand {
  /** yargs notation: 'apps:create <name>', 'ps:restart [target]', 'ps:scale <args..>'. */
  usage: string;
  /** Other names, same notation ('restart [target]'). */
  aliases?: string[];
  describe: string;
  options: Record<string, OptionSpec>;
  /** Arguments after `--` are kept apart in args['--'] (yargs' populate--). */
  dashDash?: boolean;
  run(a: Args): Promise<void>;
}

export interface PositionalSpec {
  name: string;
  required: boolean;
  variadic: boolean;
}

/** The global option every command takes. */
export const SOCKET_OPTION: OptionSpec = { type: 'string', describe: `control socket of the daemon (default $MANIFOLD_SOCKET or ${DEFAULT_SOCKET})` };

/** 'ps:scale <args..>' → ps:scale. */
export function verbOf(usage: string): string {
  return usage.split(' ')[0] ?? usage;
}

/** 'apps:destroy [name]' → [{name, required: false, variadic: false}]. */
export function positionalsOf(usage: string): PositionalSpec[] {
  return usage
    .split(' ')
    .slice(1)
    .map((word) => {
      const variadic = word.endsWith('..>') || word.endsWith('..]');
      return { name: word.slice(1, variadic ? -3 : -1), required: word.startsWith('<'), variadic };
    });
}

/** The yargs form of a client command; a failing handler prints one line (errors.ts). */
export function toYargsCommand(c: ClientCommand): CommandModule {
  return {
    command: c.aliases ? [c.usage, ...c.aliases] : c.usage,
    describe: c.describe,
    builder: (y: Argv) => {
      for (const [name, o] of Object.entries(c.options)) {
        y = y.option(name, { type: o.type, describe: o.describe, ...(o.alias !== undefined ? { alias: o.alias } : {}), ...(o.default !== undefined ? { default: o.default } : {}) });
      }
      for (const p of positionalsOf(c.usage)) y = y.positional(p.name, { type: 'string', ...(p.variadic ? { array: true } : {}) });
      return c.dashDash ? y.parserConfiguration({ 'populate--': true }) : y;
    },
    handler: async (argv) => {
      try {
        await c.run(argv as unknown as Args);
      } catch (err) {
        report(err);
      }
    },
  };
}
