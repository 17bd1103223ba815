/**
 * A dyno's environment: only what the spec gives (config vars, PORT, DYNO, HOME, PATH) plus what bash
 * adds; .profile.d/*.sh then .profile are sourced in that order, and .profile can override a config var.
 */
import t from 'tap';
import { checked, leakWatch } from './helpers/leaks';
import { makeAppDir, openTestRuntime, requireRoot, runDyno, sh, testSpec } from './helpers/run';

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);

  t.test('env hygiene: only the spec’s variables and what bash adds', checked(leaks, async (t) => {
    // variables of the supervising process must not leak into the dyno
    process.env.MANIFOLD_TEST_HOST_SECRET = 'do-not-leak';
    t.teardown(() => {
      delete process.env.MANIFOLD_TEST_HOST_SECRET;
    });
    const appDir = makeAppDir(t);
    for (const command of [{ argv: ['env', '-0'] }, sh('env -0')]) {
      const r = await runDyno(runtime, testSpec({ name: 'web.3', appDir, port: 5123, env: { DATABASE_URL: 'postgres://x', EMPTY: '' }, command }));
      const env = parseEnv(r.stdout);
      const mode = 'argv' in command ? 'argv' : 'shell';
      t.match(env, { PORT: '5123', DYNO: 'web.3', HOME: '/app', PATH: '/usr/local/bin:/usr/bin:/bin', DATABASE_URL: 'postgres://x', EMPTY: '' }, `${mode}: spec variables`);
      const allowed = new Set(['PORT', 'DYNO', 'HOME', 'PATH', 'DATABASE_URL', 'EMPTY', 'PWD', 'SHLVL', '_', 'OLDPWD']);
      const extra = Object.keys(env).filter((k) => !allowed.has(k));
      t.same(extra, [], `${mode}: nothing else in the environment (${Object.keys(env).join(' ')})`);
      if (env.PWD !== undefined) t.equal(env.PWD, '/app', `${mode}: PWD (when bash exports it) is /app`);
    }
    const noPort = await runDyno(runtime, testSpec({ appDir, command: { argv: ['env', '-0'] } }));
    t.notOk('PORT' in parseEnv(noPort.stdout), 'no PORT unless the spec has one');
  }));

  t.test('.profile.d/*.sh then .profile are sourced in order; .profile overrides a config var', checked(leaks, async (t) => {
    const appDir = makeAppDir(t, {
      '.profile.d/10-first.sh': 'echo "profile.d first FOO=$FOO"\nexport FROM_PROFILE_D=yes\n',
      '.profile.d/20-second.sh': 'echo "profile.d second"\n',
      '.profile.d/30-not-a-script.txt': 'echo "must not run"\n',
      '.profile': 'echo "profile FROM_PROFILE_D=$FROM_PROFILE_D"\nexport FOO=from-profile\n',
    });
    const shell = await runDyno(runtime, testSpec({ appDir, env: { FOO: 'from-config' }, command: sh('echo "command FOO=$FOO FROM_PROFILE_D=$FROM_PROFILE_D"') }));
    t.same(
      shell.stdout.trim().split('\n'),
      ['profile.d first FOO=from-config', 'profile.d second', 'profile FROM_PROFILE_D=yes', 'command FOO=from-profile FROM_PROFILE_D=yes'],
      'shell command: order and override',
    );
    const argv = await runDyno(runtime, testSpec({ appDir, env: { FOO: 'from-config' }, command: { argv: ['printenv', 'FOO'] } }));
    t.equal(argv.stdout.trim().split('\n').at(-1), 'from-profile', 'argv command sees the .profile override');
    t.notMatch(argv.stdout + shell.stdout, /must not run/, 'only *.sh files of .profile.d are sourced');
  }));

  t.test('argv commands keep their arguments verbatim', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const args = ['a b', '$HOME', '"quoted"', "it's", '*', ''];
    const r = await runDyno(runtime, testSpec({ appDir, command: { argv: ['printf', '[%s]\\n', ...args] } }));
    t.equal(r.stdout, args.map((a) => `[${a}]\n`).join(''));
  }));
}
