/**
 * The fast path of the CLI: the plain forms of the client commands (`ps -a APP`, `logs -n 10`,
 * `config:set K=V`) parsed here from the same table yargs is built from. Anything else (help, an
 * unknown or repeated option, a missing or extra argument, a form the two parsers might read
 * differently) returns undefined and goes to yargs, so every message and exit code stays yargs'.
 * Loading yargs takes about as long as starting Node; this takes ~0. (node:util's parseArgs would
 * do, but loading it costs ~1 ms, more than this whole parser.)
 */
import { positionalsOf, SOCKET_OPTION, verbOf, type Args, type ClientCommand, type OptionSpec } from './client-command';

export interface FastParse {
  command: ClientCommand;
  args: Args;
}

// A plain decimal: yargs' Number() and ours agree on it (hex, exponents, NaN go to yargs).
const PLAIN_NUMBER = /^[0-9]+(\.[0-9]+)?$/;
// --name or --name=value; a long option yargs would also read as camelCase or dotted is not here
const LONG = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s;
// -a: one letter (-tn 5, -aAPP: yargs splits short groups by rules not worth copying)
const SHORT = /^-([A-Za-z])$/;

function findCommand(verb: string, commands: readonly ClientCommand[]): ClientCommand | undefined {
  return commands.find((c) => verbOf(c.usage) === verb || (c.aliases ?? []).some((a) => verbOf(a) === verb));
}

interface Scanned {
  values: Map<string, string | boolean>;
  positionals: string[];
}

/** Options and positionals of words (before any `--`), or undefined for a form left to yargs. */
function scan(words: readonly string[], specs: Record<string, OptionSpec>): Scanned | undefined {
  const byAlias = new Map(Object.entries(specs).flatMap(([name, o]) => (o.alias !== undefined ? [[o.alias, name] as const] : [])));
  const values = new Map<string, string | boolean>();
  const positionals: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('-')) {
      positionals.push(w);
      continue;
    }
    let name: string | undefined;
    let inline: string | undefined;
    let negated = false;
    const long = LONG.exec(w);
    const short = SHORT.exec(w);
    if (long) {
      name = long[1]!;
      inline = long[2];
      if (!(name in specs) && name.startsWith('no-') && specs[name.slice(3)]?.type === 'boolean') {
        name = name.slice(3);
        negated = true;
      }
    } else if (short) {
      name = byAlias.get(short[1]!);
    }
    const spec = name !== undefined ? specs[name] : undefined;
    if (name === undefined || !spec || values.has(name)) return undefined; // unknown, or repeated (yargs: an array)
    if (spec.type === 'boolean') {
      const next = words[i + 1];
      // `--json=false`, and `--json true` (yargs: the flag's value) are left to yargs
      if (inline !== undefined || next === 'true' || next === 'false') return undefined;
      values.set(name, !negated);
      continue;
    }
    if (negated) return undefined;
    let value = inline;
    if (value === undefined) {
      const next = words[i + 1];
      if (next === undefined || next.startsWith('-')) return undefined; // missing, or ambiguous (-n -5)
      value = next;
      i++;
    }
    values.set(name, value);
  }
  return { values, positionals };
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

  const specs: Record<string, OptionSpec> = { ...command.options, socket: SOCKET_OPTION };
  const scanned = scan(words, specs);
  if (!scanned) return undefined;

  const args: Args = {};
  for (const [name, o] of Object.entries(specs)) {
    const v = scanned.values.get(name);
    if (v === undefined) {
      if (o.default !== undefined) args[name] = o.default;
    } else if (o.type === 'number') {
      if (typeof v !== 'string' || !PLAIN_NUMBER.test(v)) return undefined;
      args[name] = Number(v);
    } else {
      args[name] = v;
    }
  }

  const given = scanned.positionals;
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
