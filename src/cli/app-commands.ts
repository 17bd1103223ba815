/**
 * The Heroku-style commands that talk to the daemon: apps, deploy, releases, config, ps, run, logs.
 * Every failure is one line on stderr and a non-zero exit code (errors.ts); `--json` prints data.
 * Kept light: a client command loads this, the client and the formatters, never the daemon.
 */
import path from 'node:path';
import { LOG_LINES_MAX, type AppInfo, type BuildProgress, type BuildResult, type PsResult, type ReleaseInfo, type ScaleResult } from '../manifold/api/protocol';
import { socketPathFrom } from '../shared/defaults';
import type { Args, ClientCommand, OptionSpec } from './client-command';
import { ApiClient } from './client';
import { gitCommands } from '../git/cli';
import { dashboardCommands } from './dashboard-command';
import { UsageError } from './errors';
import { formatConfig, formatHosts, formatInfo, formatPs, formatReleases, formatScale, joinCommand, type HostRow } from './format';
import { writeStdout } from './stdout';
import { escapeControls, stderrIsTerminal, stdoutIsTerminal } from './terminal-safe';

export interface CommonArgs {
  app?: string;
  socket?: string;
  json?: boolean;
}

export function clientFor(a: CommonArgs): ApiClient {
  return new ApiClient(socketPathFrom(a.socket));
}

export function appOf(a: CommonArgs): string {
  const app = a.app ?? process.env.MANIFOLD_APP;
  if (!app) throw new UsageError('missing app (use -a APP or set MANIFOLD_APP)');
  return app;
}

function out(text: string): void {
  writeStdout(text.endsWith('\n') ? text : `${text}\n`);
}

function json(v: unknown): void {
  out(JSON.stringify(v, null, 2));
}

/** Options every app command takes. */
const APP_OPTIONS: Record<string, OptionSpec> = {
  app: { type: 'string', alias: 'a', describe: 'app name (default: $MANIFOLD_APP)' },
  json: { type: 'boolean', describe: 'print JSON' },
};

function cmd(usage: string | string[], describe: string, options: Record<string, OptionSpec>, run: (a: Args) => Promise<void>, extra: { dashDash?: boolean } = {}): ClientCommand {
  const [first, ...aliases] = Array.isArray(usage) ? usage : [usage];
  return { usage: first!, ...(aliases.length ? { aliases } : {}), describe, options: { ...APP_OPTIONS, ...options }, run, ...extra };
}

/** `12.3K slug, 4.1 s, procfile`: a build's metadata in `releases`. */
function buildSummary(b: NonNullable<ReleaseInfo['build']>): string {
  const n = b.slugBytes;
  const size = n < 1024 ? `${n}B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)}K` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)}M` : `${(n / 1024 ** 3).toFixed(1)}G`;
  return `${size} slug, ${(b.buildMs / 1000).toFixed(1)} s, ${b.buildpacks.join(' + ')}`;
}

/**
 * Labs features: per-app switches stored as app settings (on unless set to false). Heroku's name
 * `log-runtime-metrics` is accepted for `runtime-metrics`. No restart is needed: the sampler reads
 * the settings at every round.
 */
const LABS = [{ name: 'runtime-metrics', aliases: ['log-runtime-metrics'], setting: 'runtimeMetrics', describe: 'Memory and load of every dyno in the app log every 20 s (Heroku\'s log-runtime-metrics)' }] as const;

function labsFeature(v: unknown): (typeof LABS)[number] {
  const name = String(v ?? '');
  const f = LABS.find((x) => x.name === name || (x.aliases as readonly string[]).includes(name));
  if (!f) throw new UsageError(`unknown labs feature '${name}' (features: ${LABS.map((x) => x.name).join(', ')})`);
  return f;
}

/** `labs:enable` / `labs:disable`: one app setting each feature maps to, set true or false. */
function labsSwitch(on: boolean): ClientCommand {
  return cmd(`labs:${on ? 'enable' : 'disable'} <feature>`, `Turn a labs feature ${on ? 'on' : 'off'} for an app (runtime-metrics)`, {}, async (a) => {
    const app = appOf(a);
    const f = labsFeature(a.feature);
    await clientFor(a).call('apps:settings', { app, settings: { [f.setting]: on } });
    if (a.json) json({ feature: f.name, enabled: on });
    else out(`${on ? 'Enabling' : 'Disabling'} ${f.name} for ${app}... done`);
  });
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);

export const appCommands: ClientCommand[] = [
  cmd('apps', 'List apps', {}, async (a) => {
    const apps = await clientFor(a).call<string[]>('apps');
    if (a.json) json(apps);
    else out(['=== Apps', ...apps].join('\n'));
  }),
  cmd('apps:create <name>', 'Create an app', {}, async (a) => {
    const info = await clientFor(a).call<AppInfo>('apps:create', { name: a.name });
    if (a.json) json(info);
    else out(`Creating ${info.name}... done\n${info.url}`);
  }),
  cmd('apps:destroy [name]', 'Destroy an app and everything it has', { confirm: { type: 'string', describe: 'the app name again' } }, async (a) => {
    const name = (a.name as string | undefined) ?? appOf(a);
    await clientFor(a).call('apps:destroy', { app: name, confirm: a.confirm });
    out(`Destroying ${name}... done`);
  }),
  cmd('apps:info', 'Show an app', {}, async (a) => {
    const info = await clientFor(a).call<AppInfo>('apps:info', { app: appOf(a) });
    out(a.json ? JSON.stringify(info, null, 2) : formatInfo(info));
  }),
  cmd(
    'apps:settings',
    'Per-app dyno manager settings',
    {
      'stop-grace': { type: 'number', describe: 'seconds between the stop signal and SIGKILL (default 30)' },
      'stop-signal': { type: 'string', describe: 'signal sent on stop (default SIGTERM)' },
      'boot-timeout': { type: 'number', describe: 'seconds a web dyno has to bind $PORT (default 60)' },
      'memory-quota': { type: 'string', describe: "memory quota for R14, e.g. 256m (default: the dyno size's)" },
      'kill-factor': { type: 'number', describe: 'R15 kill limit as a multiple of the quota (default 3)' },
      'metrics-interval': { type: 'number', describe: 'seconds between runtime-metrics lines per dyno (default 20)' },
    },
    async (a) => {
      const settings: Record<string, unknown> = {};
      if (a['stop-grace'] !== undefined) settings.stopGraceMs = Math.round(Number(a['stop-grace']) * 1000);
      if (a['stop-signal'] !== undefined) settings.stopSignal = String(a['stop-signal']).toUpperCase().replace(/^(?!SIG)/, 'SIG');
      if (a['boot-timeout'] !== undefined) settings.bootTimeoutMs = Math.round(Number(a['boot-timeout']) * 1000);
      if (a['memory-quota'] !== undefined) {
        try {
          // the runtime's size parser, loaded only for this option: client commands stay light
          const { parseBytes } = require('../runtime/sizes') as typeof import('../runtime/sizes');
          settings.memoryQuota = parseBytes(String(a['memory-quota']));
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
      }
      if (a['kill-factor'] !== undefined) settings.memoryKillFactor = Number(a['kill-factor']);
      if (a['metrics-interval'] !== undefined) settings.runtimeMetricsIntervalMs = Math.round(Number(a['metrics-interval']) * 1000);
      const r = await clientFor(a).call<Record<string, unknown>>('apps:settings', { app: appOf(a), settings });
      if (a.json) json(r);
      else out(Object.entries(r).map(([k, v]) => `${k}: ${String(v)}`).join('\n') || 'defaults');
    },
  ),
  cmd('labs', "List an app's labs features and whether each is on", {}, async (a) => {
    const app = appOf(a);
    const info = await clientFor(a).call<AppInfo>('apps:info', { app });
    const rows = LABS.map((f) => ({ name: f.name, enabled: Reflect.get(info.settings, f.setting) !== false, description: f.describe }));
    if (a.json) json(rows);
    else out([`=== App Features (${app})`, ...rows.map((r) => `[${r.enabled ? '+' : ' '}] ${r.name.padEnd(16)} ${r.description}`)].join('\n'));
  }),
  labsSwitch(true),
  labsSwitch(false),
  cmd('deploy <dir>', 'Deploy a directory (with a Procfile) as a new release', {}, async (a) => {
    const app = appOf(a);
    const params = { app, dir: path.resolve(String(a.dir)) };
    // on a terminal the copy shows its progress (a large tree takes a while); otherwise one plain call
    const r = stderrIsTerminal()
      ? await clientFor(a).callWithProgress<ReleaseInfo, { files: number; bytes: number }>('deploy', params, (p) => {
          process.stderr.write(`\rCopying ${params.dir}: ${p.files} files, ${(p.bytes / 1e6).toFixed(1)} MB`);
        }).finally(() => process.stderr.write('\r\x1b[K'))
      : await clientFor(a).call<ReleaseInfo>('deploy', params);
    if (a.json) json(r);
    else out(`Deploying to ${app}... done, v${r.version}`);
  }),
  cmd('build <dir>', 'Build a directory with buildpacks in a build dyno and release it (prints the build live)', {
    version: { type: 'string', describe: 'the source version (e.g. a commit), shown in the release' },
    description: { type: 'string', describe: 'the release description' },
  }, async (a) => {
    const app = appOf(a);
    const params = { app, dir: path.resolve(String(a.dir)), ...(a.version !== undefined ? { version: String(a.version) } : {}), ...(a.description !== undefined ? { description: String(a.description) } : {}) };
    // buildpacks write these lines: a terminal gets their control characters shown, not obeyed
    const show = stdoutIsTerminal() ? escapeControls : (l: string): string => l;
    const r = await clientFor(a).callWithProgress<BuildResult, BuildProgress>('build', params, (p) => {
      if (!a.json) out(show(p.line));
    });
    if (a.json) json(r);
  }),
  cmd('buildpacks', "List an app's buildpacks", {}, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<string[]>('buildpacks', { app });
    if (a.json) json(r);
    else out(r.length ? [`=== ${app} Buildpack${r.length > 1 ? 's' : ''}`, ...r.map((b, i) => (r.length > 1 ? `${i + 1}. ${b}` : b))].join('\n') : `${app} has no buildpack set: the installed ones are tried in order`);
  }),
  cmd('buildpacks:set <buildpack>', "Set an app's buildpack (a name, an absolute path or a git URL), replacing its list", {}, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<string[]>('buildpacks:set', { app, buildpacks: [String(a.buildpack)] });
    if (a.json) json(r);
    else out(`Buildpack set. Next release on ${app} will use ${r[0]}.`);
  }),
  cmd('buildpacks:add <buildpack>', 'Add a buildpack to an app (last, or at --index N)', { index: { type: 'number', alias: 'i', describe: 'position, 1 for first' } }, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<string[]>('buildpacks:add', { app, buildpack: String(a.buildpack), index: a.index });
    if (a.json) json(r);
    else out([`Buildpack added. Next release on ${app} will use:`, ...r.map((b, i) => `  ${i + 1}. ${b}`)].join('\n'));
  }),
  cmd('buildpacks:remove [buildpack]', 'Remove a buildpack from an app (by reference or --index N)', { index: { type: 'number', alias: 'i', describe: 'position, 1 for first' } }, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<string[]>('buildpacks:remove', { app, ...(a.buildpack !== undefined ? { buildpack: String(a.buildpack) } : {}), index: a.index });
    if (a.json) json(r);
    else out(r.length ? [`Buildpack removed. Next release on ${app} will use:`, ...r.map((b, i) => `  ${i + 1}. ${b}`)].join('\n') : `Buildpack removed. ${app} has no buildpack set: the installed ones are tried in order.`);
  }),
  cmd('buildpacks:clear', "Clear an app's buildpacks (detection over the installed ones)", {}, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<string[]>('buildpacks:clear', { app });
    if (a.json) json(r);
    else out(`Buildpacks cleared. Next release on ${app} will detect its buildpack.`);
  }),
  cmd('releases', 'List releases', {}, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<ReleaseInfo[]>('releases', { app });
    // a build's release shows its slug size, build time and buildpacks after its description
    const shown = r.map((x) => (x.build ? { ...x, description: `${x.description} (${buildSummary(x.build)})` } : x));
    out(a.json ? JSON.stringify(r, null, 2) : formatReleases(app, shown));
  }),
  cmd('rollback <release>', 'Roll back to an earlier release vN (creates a new one)', {}, async (a) => {
    const app = appOf(a);
    const r = await clientFor(a).call<ReleaseInfo>('rollback', { app, version: String(a.release) });
    if (a.json) json(r);
    else out(`Rolling back ${app}... done, v${r.version} (${r.description})`);
  }),
  cmd('config', 'Show config vars', {}, async (a) => {
    const app = appOf(a);
    const c = await clientFor(a).call<Record<string, string>>('config', { app });
    out(a.json ? JSON.stringify(c, null, 2) : formatConfig(app, c));
  }),
  cmd('config:get <key>', 'Show one config var', {}, async (a) => {
    const c = await clientFor(a).call<Record<string, string>>('config', { app: appOf(a) });
    const v = c[String(a.key)];
    if (a.json) json(v ?? null);
    else out(v ?? '');
  }),
  cmd('config:set <pairs..>', 'Set config vars (a new release; dynos restart)', {}, async (a) => {
    const app = appOf(a);
    const set: Record<string, string> = {};
    for (const p of strings(a.pairs)) {
      const eq = p.indexOf('=');
      if (eq <= 0) throw new UsageError(`invalid config pair '${p}' (expected KEY=VALUE)`);
      set[p.slice(0, eq)] = p.slice(eq + 1);
    }
    const r = await clientFor(a).call<{ release: number | null; config: Record<string, string> }>('config:update', { app, set });
    if (a.json) json(r);
    else out(`Setting ${Object.keys(set).join(', ')} and restarting ${app}... done${r.release !== null ? `, v${r.release}` : ' (no change)'}`);
  }),
  cmd('config:unset <keys..>', 'Remove config vars (a new release; dynos restart)', {}, async (a) => {
    const app = appOf(a);
    const keys = strings(a.keys);
    const r = await clientFor(a).call<{ release: number | null }>('config:update', { app, unset: keys });
    if (a.json) json(r);
    else out(`Unsetting ${keys.join(', ')} and restarting ${app}... done${r.release !== null ? `, v${r.release}` : ' (no change)'}`);
  }),
  cmd('ps', 'List dynos', {}, async (a) => {
    const ps = await clientFor(a).call<PsResult>('ps', { app: appOf(a) });
    out(a.json ? JSON.stringify(ps, null, 2) : formatPs(ps));
  }),
  cmd('ps:scale <args..>', 'Scale process types: web=2 worker+1 web=2:standard-2x', {}, async (a) => {
    const r = await clientFor(a).call<ScaleResult>('ps:scale', { app: appOf(a), args: strings(a.args) });
    if (a.json) json(r);
    else out(formatScale(r.formation));
  }),
  cmd(['ps:restart [target]', 'restart [target]'], 'Restart all dynos, one process type or one dyno', {}, async (a) => {
    const app = appOf(a);
    const names = await clientFor(a).call<string[]>('ps:restart', { app, target: a.target });
    if (a.json) json(names);
    else out(`Restarting ${a.target ? String(a.target) : 'all'} dynos on ${app}... done`);
  }),
  cmd('ps:stop <target>', 'Stop a dyno (formation dynos are started again by the manager)', {}, async (a) => {
    const app = appOf(a);
    const names = await clientFor(a).call<string[]>('ps:stop', { app, target: a.target });
    if (a.json) json(names);
    else out(`Stopping ${String(a.target)} dynos on ${app}... done`);
  }),
  cmd('run:detached [command..]', 'Run a one-off dyno in the background; output goes to the logs', {}, async (a) => {
    const args = [...strings(a.command), ...strings(a['--'])];
    if (args.length === 0) throw new UsageError('no command given (usage: manifold run:detached -a APP -- CMD ...)');
    const app = appOf(a);
    const r = await clientFor(a).call<{ name: string }>('run:detached', { app, command: joinCommand(args) });
    if (a.json) json(r);
    else out(`Running ${joinCommand(args)} on ${app}... up, ${r.name}\nUse 'manifold logs -a ${app} --dyno ${r.name}' to view the output.`);
  }, { dashDash: true }),
  cmd('run [command..]', 'Run a one-off dyno attached to this terminal; exits with its status', { tty: { type: 'boolean', default: true, describe: 'give the dyno a terminal when this is one (--no-tty: pipes)' } }, async (a) => {
    const args = [...strings(a.command), ...strings(a['--'])];
    if (args.length === 0) throw new UsageError('no command given (usage: manifold run -a APP -- CMD ...)');
    const app = appOf(a);
    const client = clientFor(a);
    // On a terminal the dyno gets one too (a pty in the daemon): raw mode here, window size followed.
    const tty = process.stdin.isTTY && process.stdout.isTTY && a.tty !== false;
    const restore = (): void => {
      if (tty) process.stdin.setRawMode(false);
    };
    let r: { status: number; signal: string | null };
    try {
      r = await client.attach(
        { app, command: joinCommand(args), ...(tty ? { tty: { cols: process.stdout.columns, rows: process.stdout.rows, term: process.env.TERM ?? 'xterm' } } : {}) },
        {
          stdin: process.stdin,
          stdout: process.stdout,
          stderr: process.stderr,
          onStarted: (name) => {
            if (process.stderr.isTTY) process.stderr.write(`Running ${joinCommand(args)} on ${app}... up, ${name}\r\n`);
            if (tty) process.stdin.setRawMode(true);
          },
          ...(tty ? { onResizer: (send: (cols: number, rows: number) => void) => process.stdout.on('resize', () => send(process.stdout.columns, process.stdout.rows)) } : {}),
        },
      );
    } finally {
      restore();
    }
    process.exitCode = r.status;
    // stdin may keep the loop alive
    setImmediate(() => process.exit(r.status));
  }, { dashDash: true }),
  cmd(
    'logs',
    'Show the app log (app, manifold and router lines)',
    {
      num: { alias: 'n', type: 'number', default: 100, describe: `number of lines (max ${LOG_LINES_MAX})` },
      tail: { alias: 't', type: 'boolean', describe: 'keep streaming new lines' },
      source: { alias: 's', type: 'string', describe: 'only lines from this source (app, manifold)' },
      dyno: { alias: 'd', type: 'string', describe: 'only lines of this dyno or type (web.1, web, router)' },
    },
    async (a) => {
      const params = { app: appOf(a), n: a.num, source: a.source, dyno: a.dyno };
      const client = clientFor(a);
      // apps write these lines: a terminal gets their control characters shown, not obeyed
      const show = stdoutIsTerminal() ? escapeControls : (l: string): string => l;
      if (a.tail) {
        await client.tail(params, (l) => out(show(l)));
        return;
      }
      const lines = await client.call<string[]>('logs', params);
      if (a.json) json(lines);
      else if (lines.length) out(lines.map(show).join('\n'));
    },
  ),
  cmd('hosts', 'List the hosts of the cluster (id, uplink, subnet, roles, state, dynos, memory, lease age)', {}, async (a) => {
    const hosts = await clientFor(a).call<HostRow[]>('hosts');
    out(a.json ? JSON.stringify(hosts, null, 2) : formatHosts(hosts));
  }),
  cmd('hosts:drain <host>', 'Move every dyno off a host (each new one up before the old one drains)', {}, async (a) => {
    const hosts = await clientFor(a).call<HostRow[]>('hosts:drain', { host: a.host });
    out(a.json ? JSON.stringify(hosts, null, 2) : `Draining ${String(a.host)}: its dynos move to the other hosts\n${formatHosts(hosts)}`);
  }),
  cmd('hosts:undrain <host>', 'Let a drained host take dynos again', {}, async (a) => {
    const hosts = await clientFor(a).call<HostRow[]>('hosts:undrain', { host: a.host });
    out(a.json ? JSON.stringify(hosts, null, 2) : `${String(a.host)} takes dynos again\n${formatHosts(hosts)}`);
  }),
  // git push (issue 14): git:remote, keys, keys:add, keys:remove, git-shell
  ...gitCommands,
  // the dashboard's address with its token (issue 13)
  ...dashboardCommands,
];
