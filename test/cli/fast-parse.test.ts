/**
 * The fast path reads a command line exactly as yargs does, or leaves it to yargs: for each
 * command line, the arguments the fast parser hands a command equal those yargs hands it
 * (both built from the same table), and the forms the two might read differently fall back.
 */
import t from 'tap';
import { appCommands } from '../../src/cli/app-commands';
import { positionalsOf, type Args, type ClientCommand } from '../../src/cli/client-command';
import { fastParse } from '../../src/cli/fast-parse';
import { runYargs } from '../../src/cli/yargs-program';

/** The declared arguments of a command (yargs adds aliases, camel-case copies, $0 and _). */
function declared(c: ClientCommand, a: Args): Record<string, unknown> {
  const keys = [...Object.keys(c.options), ...positionalsOf(c.usage).map((p) => p.name), 'socket', '--'];
  const out: Record<string, unknown> = {};
  for (const k of keys) if (a[k] !== undefined) out[k] = a[k];
  return out;
}

/** What yargs hands the command's handler for argv. */
async function viaYargs(argv: string[]): Promise<{ verb: string; args: Args } | undefined> {
  let got: { verb: string; args: Args } | undefined;
  const capturing = appCommands.map((c) => ({ ...c, run: async (a: Args) => void (got = { verb: c.usage, args: a }) }));
  await runYargs(argv, capturing);
  return got;
}

const fast: string[][] = [
  ['apps'],
  ['apps', '--json'],
  ['apps:create', 'demo'],
  ['apps:destroy', '-a', 'demo', '--confirm', 'demo'],
  ['apps:destroy', 'demo', '--confirm=demo'],
  ['apps:settings', '-a', 'demo', '--stop-grace', '10', '--stop-signal', 'INT', '--memory-quota', '256m', '--kill-factor', '2.5'],
  ['deploy', '/tmp/x', '--app', 'demo'],
  ['releases', '-a', 'demo'],
  ['rollback', 'v2', '-a', 'demo'],
  ['config', '-a', 'demo', '--no-json'],
  ['config:get', 'KEY', '-a', 'demo'],
  ['config:set', 'A=1', 'B=x=y', '-a', 'demo'],
  ['config:set', '-a', 'demo', 'A=1', '--json'],
  ['config:unset', 'A', 'B', '-a', 'demo'],
  ['ps', '-a', 'demo'],
  ['ps', '--app=demo', '--socket', '/tmp/s'],
  ['ps:scale', 'web=2', 'worker+1', '-a', 'demo'],
  ['ps:restart', '-a', 'demo'],
  ['restart', 'web.1', '-a', 'demo'],
  ['restart', '--json', 'web', '-a', 'demo'],
  ['config:set', 'A=--x', 'B=', '--app', 'demo'],
  ['ps:stop', 'web', '-a', 'demo'],
  ['run', '-a', 'demo', '--', 'echo', 'hi', '--json'],
  ['run', '-a', 'demo', '--no-tty', 'bash'],
  ['run', '-a', 'demo', 'echo', '--', 'hi'],
  ['run:detached', '-a', 'demo', '--', 'sleep', '1'],
  ['logs', '-a', 'demo'],
  ['logs', '-a', 'demo', '-n', '10', '-t', '-s', 'app', '-d', 'web.1'],
  ['logs', '--num', '1500', '--tail', '--source', 'manifold', '--dyno', 'router', '-a', 'demo'],
];

t.test('fast forms: the same arguments as yargs', async (t) => {
  for (const argv of fast) {
    const f = fastParse(argv, appCommands);
    t.ok(f, `${argv.join(' ')}: parsed on the fast path`);
    if (!f) continue;
    const y = await viaYargs(argv);
    t.equal(y?.verb, f.command.usage, `${argv.join(' ')}: same command`);
    t.same(declared(f.command, f.args), y ? declared(f.command, y.args) : undefined, `${argv.join(' ')}: same arguments`);
  }
});

t.test('forms the parsers might read differently go to yargs', async (t) => {
  const slow: string[][] = [
    [],
    ['--help'],
    ['ps', '--help'],
    ['-a', 'demo', 'ps'],
    ['ps', 'extra'],
    ['ps', '--bogus'],
    ['ps', '-a'],
    ['ps', '-a', 'x', '-a', 'y'],
    ['ps', '--json', 'true'],
    ['config:set', '--json', 'false', 'A=1'],
    ['config:set', '-a', 'demo'],
    ['ps', '--', 'x'],
    ['ps', '-ademo'],
    ['logs', '-tn', '5'],
    ['logs', '-n', '0x10'],
    ['logs', '-n', '-5'],
    ['logs', '-n', '1e3'],
    ['logs', '--json=false'],
    ['ps', '--no-app'],
    ['ps', '-a', 'demo', '--no-json', '--json'],
    ['logs', '-a', 'demo', '-t', '--tail'],
    ['ps', '-A', 'x'],
    ['ps', '--APP', 'x'],
    ['ps', '-a', '-'],
    ['apps:create', '-'], // yargs reads a lone - as ''
    ['apps:settings', '--stopGrace', '5'],
    ['dyno', 'run', '--', 'true'],
    ['daemon'],
  ];
  for (const argv of slow) t.equal(fastParse(argv, appCommands), undefined, `${JSON.stringify(argv)}: left to yargs`);
});
