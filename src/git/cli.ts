/**
 * The git-push verbs of the CLI (registered in src/cli/app-commands.ts): `git:remote`, `keys`,
 * `keys:add`, `keys:remove`, and `git-shell`, which sshd runs as the git user. Light, like every
 * client command: the daemon's modules are never loaded here.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { socketPathFrom } from '../shared/defaults';
import type { Args, ClientCommand, OptionSpec } from '../cli/client-command';
import { ApiClient } from '../cli/client';
import { UsageError } from '../cli/errors';
import { writeStdout } from '../cli/stdout';
import type { KeyEntry } from './keys';
import { KEY_NAME } from './names';

const JSON_OPTION: OptionSpec = { type: 'boolean', describe: 'print JSON' };
const APP_OPTION: OptionSpec = { type: 'string', alias: 'a', describe: 'app name (default: $MANIFOLD_APP)' };

const client = (a: Args): ApiClient => new ApiClient(socketPathFrom(a.socket));
const out = (text: string): void => writeStdout(text.endsWith('\n') ? text : `${text}\n`);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);

function appOf(a: Args): string {
  const app = a.app ?? process.env.MANIFOLD_APP;
  if (!app) throw new UsageError('missing app (use -a APP or set MANIFOLD_APP)');
  return app;
}

/** `user@host:APP.git`, or the ssh:// form when the host names a port. */
export function sshRemote(user: string, host: string, app: string): string {
  const m = /^(\[[^\]]+\]|[^:]+):([0-9]+)$/.exec(host);
  return m ? `ssh://${user}@${m[1]}:${m[2]}/${app}.git` : `${user}@${host}:${app}.git`;
}

function formatKeys(keys: KeyEntry[]): string {
  if (keys.length === 0) return 'No keys: add one with manifold keys:add ~/.ssh/id_ed25519.pub --name NAME';
  const rows = keys.map((k) => [k.name, k.fingerprint, k.apps ? k.apps.join(',') : '(all apps)', k.comment]);
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return ['=== Manifold Keys', ...rows.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c)).join('  ').trimEnd())].join('\n');
}

export const gitCommands: ClientCommand[] = [
  {
    usage: 'git:remote',
    describe: 'Print the git remote of an app (ssh manifold@HOST:APP.git, or --local), or add it with --add',
    options: {
      app: APP_OPTION,
      json: JSON_OPTION,
      host: { type: 'string', describe: 'host (or host:port) in the ssh remote (default: this host\'s name)' },
      local: { type: 'boolean', describe: 'the local path of the repository (root on this host)' },
      add: { type: 'boolean', describe: 'add it to the git repository of the current directory' },
      remote: { type: 'string', default: 'manifold', describe: 'name of the remote to add' },
    },
    run: async (a) => {
      const app = appOf(a);
      const r = await client(a).call<{ app: string; user: string; path: string }>('git:remote', { app });
      const url = a.local ? r.path : sshRemote(r.user, typeof a.host === 'string' ? a.host : os.hostname(), r.app);
      if (a.add) {
        const name = String(a.remote ?? 'manifold');
        try {
          execFileSync('git', ['remote', 'add', name, url], { stdio: ['ignore', 'ignore', 'pipe'] });
        } catch (err) {
          const msg = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n')[0];
          throw new UsageError(`git remote add ${name} failed: ${msg?.replace(/^(error|fatal): /, '') ?? ''}`);
        }
        if (a.json) out(JSON.stringify({ remote: name, url }, null, 2));
        else out(`set git remote ${name} to ${url}`);
        return;
      }
      out(a.json ? JSON.stringify({ url }, null, 2) : url);
    },
  },
  {
    usage: 'keys',
    describe: 'List the ssh keys that may git push',
    options: { json: JSON_OPTION },
    run: async (a) => {
      const keys = await client(a).call<KeyEntry[]>('keys');
      out(a.json ? JSON.stringify(keys, null, 2) : formatKeys(keys));
    },
  },
  {
    usage: 'keys:add <file>',
    describe: 'Allow an ssh public key to git push (to every app, or only to the --app ones)',
    options: {
      json: JSON_OPTION,
      name: { type: 'string', describe: "the key's name (default: its comment, e.g. user@host)" },
      app: { type: 'string', alias: 'a', describe: 'an app the key may push to (repeatable; default: every app)' },
    },
    run: async (a) => {
      const file = String(a.file);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      let name = typeof a.name === 'string' ? a.name : undefined;
      if (name === undefined) {
        const comment = text.trim().split(/\s+/)[2];
        if (!comment || !KEY_NAME.test(comment)) throw new UsageError('the key has no usable comment to name it: give --name NAME');
        name = comment;
      }
      const apps = strings(a.app);
      const k = await client(a).call<KeyEntry>('keys:add', { name, key: text, ...(apps.length ? { apps } : {}) });
      out(a.json ? JSON.stringify(k, null, 2) : `Adding key ${k.name} (${k.fingerprint})${k.apps ? ` for ${k.apps.join(', ')}` : ''}... done`);
    },
  },
  {
    usage: 'keys:remove <name>',
    describe: 'Remove an ssh key',
    options: { json: JSON_OPTION },
    run: async (a) => {
      const k = await client(a).call<KeyEntry>('keys:remove', { name: a.name });
      out(a.json ? JSON.stringify(k, null, 2) : `Removing key ${k.name} (${k.fingerprint})... done`);
    },
  },
  {
    usage: 'git-shell',
    describe: "sshd's forced command for git pushes (runs as the git user; reads SSH_ORIGINAL_COMMAND)",
    options: {
      key: { type: 'string', describe: 'the name of the key the client authenticated with' },
      'git-socket': { type: 'string', describe: "the daemon's git socket" },
    },
    run: async (a) => {
      if (typeof a.key !== 'string' || typeof a['git-socket'] !== 'string') throw new UsageError('git-shell needs --key NAME --git-socket PATH');
      const { runGitShell } = require('./shell') as typeof import('./shell');
      await runGitShell(a.key, a['git-socket']);
    },
  },
];
