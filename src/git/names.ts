/**
 * Names and paths the git transport shares between the daemon (src/git/service.ts), the git-shell
 * that sshd runs as the git user (shell.ts), the pre-receive hook (hook.ts) and the CLI. Pure and
 * light: the git-shell loads this, and nothing of the daemon.
 */
import path from 'node:path';

/** An app name as the manifold accepts it (src/manifold/validate.ts APP_NAME, not ending in '-'). */
export const APP_NAME = /^[a-z][a-z0-9-]{0,29}$/;
export const isAppName = (s: string): boolean => APP_NAME.test(s) && !s.endsWith('-');

/** A key name: it is written into authorized_keys' forced command, so nothing a shell or sshd reads specially. */
export const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** The system user ssh pushes come in as, unless `--git-user` says otherwise. */
export const DEFAULT_GIT_USER = 'manifold';
/** Its home (authorized_keys in `.ssh/`), outside the state directory, which only root may enter. */
export const DEFAULT_GIT_HOME = '/var/lib/manifold-git';

/** The git services a session may run. */
export type GitService = 'git-receive-pack' | 'git-upload-pack';

/**
 * What an ssh client asked for (SSH_ORIGINAL_COMMAND), or undefined for anything else. Accepted:
 * `git-receive-pack 'APP.git'` and `git-upload-pack 'APP.git'` (also `git receive-pack`, a leading
 * `/` as in ssh://host/APP.git, and the name without `.git`), the whole string and nothing more.
 */
export function parseGitCommand(cmd: string): { service: GitService; app: string } | undefined {
  const m = /^git[- ](receive-pack|upload-pack) '\/?([a-z][a-z0-9-]{0,29}?)(?:\.git)?\/?'$/.exec(cmd);
  if (!m || !isAppName(m[2]!)) return undefined;
  return { service: `git-${m[1]}` as GitService, app: m[2]! };
}

/** Where the daemon keeps the git side of its state (root only, like the rest of the state directory). */
export function gitDirs(stateDir: string): { root: string; repos: string; tmp: string; locks: string; keys: string } {
  const root = path.join(stateDir, 'git');
  return { root, repos: path.join(root, 'repos'), tmp: path.join(root, 'tmp'), locks: path.join(root, 'locks'), keys: path.join(root, 'keys.json') };
}

export function repoPath(stateDir: string, app: string): string {
  return path.join(gitDirs(stateDir).repos, `${app}.git`);
}

/** The git socket beside the control socket, unless `--git-socket` says otherwise. */
export function defaultGitSocket(controlSocket: string): string {
  return path.join(path.dirname(controlSocket), 'git.sock');
}

/** bin/manifold of this installation: the git user's login shell and the forced command's program. */
export function manifoldBin(): string {
  return path.resolve(__dirname, '../../../bin/manifold');
}

/** The first line of a git-shell session: what to run for which key. */
export interface SessionHeader {
  service: GitService;
  app: string;
  key: string;
}
