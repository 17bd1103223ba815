/**
 * `manifold logs` on a terminal shows an app's control characters instead of sending them to the
 * operator's terminal; `--json` and pipes keep the exact bytes (issue 9, item 4).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { escapeControls } from '../../src/cli/terminal-safe';
import { BIN, TestDaemon, waitFor } from './helpers/daemon';

t.test('escapeControls: controls, DEL, C1 and bidi overrides shown; text and tabs kept', async (t) => {
  const cases: [string, string][] = [
    ['plain text, ünïcödé ✓', 'plain text, ünïcödé ✓'],
    ['a\tb', 'a\tb'],
    ['\x1b]0;owned\x07title', '\\x1b]0;owned\\x07title'],
    ['\x1b[2J\x1b[Hcleared', '\\x1b[2J\\x1b[Hcleared'],
    ['ok\rFAIL', 'ok\\x0dFAIL'],
    ['del\x7f c1\x9b', 'del\\x7f c1\\x9b'],
    ['user \u202etxt.exe', 'user \\u202etxt.exe'],
    ['\u2066isolate\u2069', '\\u2066isolate\\u2069'],
    ['\0nul', '\\x00nul'],
  ];
  for (const [raw, want] of cases) t.equal(escapeControls(raw), want, JSON.stringify(raw));
});

/** Runs the CLI with its stdout on a pty (script(1)); resolves with what the terminal received. */
function onTerminal(args: string[], socket: string): Promise<string> {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    execFile('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, MANIFOLD_SOCKET: socket }, timeout: 30_000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });
}

if (process.getuid?.() !== 0) {
  t.test('logs on a terminal', { skip: 'needs root: runs the daemon and a dyno' }, async () => undefined);
} else {
  t.test('logs on a terminal are escaped; --json and pipes are exact', async (t) => {
    const d = new TestDaemon();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-escape-'));
    await d.start();
    t.teardown(async () => {
      await d.stop();
      d.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    // an app that tries to retitle the window, clear the screen and hide a line behind a carriage return
    fs.writeFileSync(path.join(dir, 'Procfile'), `worker: printf '\\033]0;owned\\007\\033[2Jvisible\\rHIDDEN\\n'; exec sleep 1000\n`);
    t.equal((await d.cli('apps:create', 'esc')).code, 0);
    t.equal((await d.cli('deploy', dir, '-a', 'esc')).code, 0);
    t.equal((await d.cli('ps:scale', 'worker=1', '-a', 'esc')).code, 0);
    const raw = '\x1b]0;owned\x07\x1b[2Jvisible\rHIDDEN';
    const json = await waitFor('the line in the log', async () => {
      const r = await d.cli('logs', '-a', 'esc', '--source', 'app', '--json');
      const lines = JSON.parse(r.stdout || '[]') as string[];
      return lines.find((l) => l.includes('HIDDEN'));
    });
    t.ok(json.endsWith(`app[worker.1]: ${raw}`), '--json keeps the exact bytes');
    const piped = await d.cli('logs', '-a', 'esc', '--source', 'app');
    t.ok(piped.stdout.includes(raw), 'a pipe gets the exact bytes');
    const shown = await onTerminal(['logs', '-a', 'esc', '--source', 'app'], d.socket);
    t.notOk(shown.includes('\x1b'), 'no escape character reaches the terminal');
    t.ok(shown.includes('\\x1b]0;owned\\x07\\x1b[2Jvisible\\x0dHIDDEN'), 'the sequence is shown instead');
  });
}
