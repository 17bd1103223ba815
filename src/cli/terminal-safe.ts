/**
 * Log lines are written by apps, and a terminal obeys what it is sent: an escape sequence in a log
 * line could retitle the operator's window, clear the screen, rewrite what a line appears to say
 * (carriage return, cursor moves, bidi overrides) or, on some terminals, answer back as input. On a
 * terminal the CLI shows such characters instead (`\x1b`, `\u202e`); `--json` and pipes get the
 * exact bytes.
 */

/** C0 controls but tab, DEL, C1 controls, and the Unicode bidi embeddings, overrides and isolates. */
const UNSAFE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function shown(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One line as a terminal may safely show it. */
export function escapeControls(line: string): string {
  return line.replace(UNSAFE, shown);
}

// node:tty is cheap here: the client has loaded node:net, which it builds on, for the socket
// eslint-disable-next-line @typescript-eslint/no-require-imports
const isatty = (fd: number): boolean => (require('node:tty') as typeof import('node:tty')).isatty(fd);

/** Whether fd 1 is a terminal (then log lines are escaped). */
export function stdoutIsTerminal(): boolean {
  return isatty(1);
}

/** Whether fd 2 is a terminal (then a deploy shows its progress there). */
export function stderrIsTerminal(): boolean {
  return isatty(2);
}
