/**
 * The fast path of the CLI: the plain forms of the client commands (`ps -a APP`, `logs -n 10`,
 * `config:set K=V`) parsed with node:util's parseArgs from the same table yargs is built from.
 * Anything else (help, an unknown or repeated option, a missing or extra argument, a form the
 * two parsers might read differently) returns undefined and goes to yargs, so every message and
 * exit code stays yargs'. Loading yargs takes about as long as starting Node; this takes ~0.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { positionalsOf, SOCKET_OPTION, verbOf, type Args, type ClientCommand, type OptionSpec } from './client-command';

export interface FastParse {
  command: ClientCommand;
  args: Args;
}

// A plain decimal: yargs' Number() and ours agree on it (hex, exponents, NaN go to yargs).
const PLAIN_NUMBER = /^[0-9]+(\.[0-9]+)?$/;
// -tn 5, -aAPP: yargs splits short groups by its own rules; not worth copying.
const SHORT_GROUP = /^-[^-]{2,}/;

function findCommand(verb: string, commands: readonly ClientCommand[]): ClientCommand | undefined {
  return commands.find((c) => verbOf(c.usage) === verb || (c.aliases ?? []).some((a) => verbOf(a) === verb));
}

/** undefined for an unknown option, a missing value, ...: yargs says what is wrong, its way. */
function strictParse(words: string[], options: ParseArgsOptionsConfig) {
  try {
    return parseArgs({ args: words, options, allowPositionals: true, allowNegative: true, strict: true, tokens: true });
  } catch {
    return undefined;
  }
}

export function fastParse(argv: readonly string[], commands: readonly ClientCommand[]): FastParse | undefined {
  const command = argv[0] === undefined ? undefined : findCommand(argv[0], commands);
  if (!command) return undefined;
  let words = argv.slice(1);
  let afterDashDash: string[] | undefined;
  const dd = words.indexOf('--');
  if (dd >= 0) {
    if (!command.dashDash) return undefined;
    afterDashDash = words.slice(dd + 1);
    words = words.slice(0, dd);
  }
  if (words.some((w) => SHORT_GROUP.test(w))) return undefined;

  const specs: Record<string, OptionSpec> = { ...command.options, socket: SOCKET_OPTION };
  const config: ParseArgsOptionsConfig = {};
  for (const [name, o] of Object.entries(specs)) {
    config[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.alias !== undefined && o.alias.length === 1 ? { short: o.alias } : {}) };
  }
  const parsed = strictParse(words, config);
  if (!parsed) return undefined;

  const seen = new Set<string>();
  const tokens = parsed.tokens;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) return undefined; // yargs makes a repeated option an array
    seen.add(t.name);
    const next = tokens[i + 1];
    // yargs reads `--json true` as the flag's value; parseArgs as a positional
    if (specs[t.name]?.type === 'boolean' && next?.kind === 'positional' && (next.value === 'true' || next.value === 'false')) return undefined;
  }

  const args: Args = {};
  for (const [name, o] of Object.entries(specs)) {
    const v = parsed.values[name];
    if (v === undefined) {
      if (o.default !== undefined) args[name] = o.default;
    } else if (o.type === 'number') {
      if (typeof v !== 'string' || !PLAIN_NUMBER.test(v)) return undefined;
      args[name] = Number(v);
    } else {
      args[name] = v;
    }
  }

  const given = parsed.positionals;
  const wanted = positionalsOf(command.usage);
  const required = wanted.filter((p) => p.required).length;
  const variadic = wanted.some((p) => p.variadic);
  if (given.length < required || (!variadic && given.length > wanted.length)) return undefined;
  wanted.forEach((p, i) => {
    if (p.variadic) args[p.name] = given.slice(i);
    else if (given[i] !== undefined) args[p.name] = given[i];
  });
  if (afterDashDash !== undefined) args['--'] = afterDashDash;
  return { command, args };
}
