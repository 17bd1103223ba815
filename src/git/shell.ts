/**
 * `manifold git-shell --key NAME --git-socket PATH`: what sshd runs for every session of the git
 * user (the forced command of each authorized_keys line; also the user's login shell, as
 * `manifold -c '...'`). It runs as the git user and does nothing but this: read
 * SSH_ORIGINAL_COMMAND, allow `git-receive-pack 'APP.git'` or `git-upload-pack 'APP.git'` and
 * nothing else, then ask the daemon over the git socket to run that service for the key and relay
 * bytes both ways (frames, as an attached `manifold run`). The daemon checks the key and the app.
 */
import net from 'node:net';
import { FRAME, frame, FrameReader } from '../manifold/api/protocol';
import { KEY_NAME, parseGitCommand, type SessionHeader } from './names';

function fail(message: string, code = 1): void {
  process.stderr.write(`manifold: ${message}\n`);
  process.exitCode = code;
}

/** A client's command as it may be shown: printable, one line, bounded. */
function shown(cmd: string): string {
  const s = cmd.replace(/[^\x20-\x7e]/g, '?');
  return s.length > 120 ? `${s.slice(0, 120)}...` : s;
}

export function runGitShell(key: string, gitSocket: string): Promise<void> {
  if (!KEY_NAME.test(key)) {
    fail(`invalid key name '${shown(key)}'`);
    return Promise.resolve();
  }
  const original = process.env.SSH_ORIGINAL_COMMAND;
  if (original === undefined || original.trim() === '') {
    fail(`hi ${key}: this account gives no shell; it only takes git pushes (git push manifold main)`);
    return Promise.resolve();
  }
  const cmd = parseGitCommand(original);
  if (!cmd) {
    fail(`refused '${shown(original)}': only git push and git fetch of APP.git are allowed here`);
    return Promise.resolve();
  }
  const header: SessionHeader = { service: cmd.service, app: cmd.app, key };
  return new Promise<void>((resolve) => {
    const socket = net.connect(gitSocket);
    let finished = false;
    const finish = (code: number, message?: string): void => {
      if (finished) return;
      finished = true;
      process.stdin.pause();
      socket.destroy();
      process.exitCode = code;
      // what is still buffered for the client (stderr, then stdout) goes out, then the process ends at
      // once: waiting for sshd to close stdin would hold the client's git for a round trip more
      process.stderr.write(message ? `manifold: ${message}\n` : '', () =>
        process.stdout.write('', () => {
          resolve();
          process.exit(code);
        }),
      );
    };
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') finish(1, 'the manifold daemon is not running (no git socket); try again later');
      else if (err.code === 'EACCES') finish(1, 'this user may not use the git socket');
      else finish(1, `lost the daemon: ${err.message}`);
    });
    socket.on('close', () => finish(1, 'the daemon ended the session'));
    const reader = new FrameReader((type, payload) => {
      if (type === FRAME.STDOUT) {
        if (!process.stdout.write(payload)) socket.pause();
      } else if (type === FRAME.STDERR) process.stderr.write(payload);
      else if (type === FRAME.ERROR) finish(1, payload.toString('utf8'));
      else if (type === FRAME.EXIT) finish((JSON.parse(payload.toString('utf8')) as { status: number }).status);
    });
    socket.on('data', (d: Buffer) => reader.push(d));
    process.stdout.on('drain', () => socket.resume());
    // the client went away (ssh closed): end the session; the daemon then stops git
    process.stdout.on('error', () => finish(1));
    socket.on('drain', () => process.stdin.resume());
    socket.on('connect', () => {
      socket.write(`${JSON.stringify(header)}\n`);
      process.stdin.on('data', (d: Buffer) => {
        if (!socket.write(frame(FRAME.STDIN, d))) process.stdin.pause();
      });
      process.stdin.on('end', () => {
        if (!socket.destroyed) socket.write(frame(FRAME.STDIN_EOF));
      });
      process.stdin.on('error', () => undefined);
    });
  });
}

/**
 * The git user's login shell: sshd runs `SHELL -c 'FORCED COMMAND'`. Only the forced command that
 * the daemon writes is accepted; without `-c` (an interactive login) the CLI prints its usage.
 */
export function loginShell(command: string): Promise<void> {
  const m = /^\S+ git-shell --key (\S+) --git-socket (\/\S+)$/.exec(command);
  if (!m) {
    fail('this account only takes git pushes');
    return Promise.resolve();
  }
  return runGitShell(m[1]!, m[2]!);
}
