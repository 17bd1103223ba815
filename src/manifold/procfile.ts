/**
 * Procfile parsing (docs/architecture.md#apps-releases-and-the-procfile): `<type>: <command>` per line, types `[A-Za-z0-9_-]+`,
 * blank lines and `#` comments ignored. Pure; every problem is a ProcfileError naming the line.
 */
export class ProcfileError extends Error {
  readonly code = 'EPROCFILE';
  constructor(message: string) {
    super(message);
    this.name = 'ProcfileError';
  }
}

export type Procfile = Record<string, string>;

export const PROCESS_TYPE = /^[A-Za-z0-9_-]+$/;
const LINE = /^([^:\s]*)\s*:\s*(.*)$/;
/** `run` names one-off dynos; a formation type of that name would collide with run.N. */
const RESERVED = new Set(['run']);
export const MAX_TYPE_LENGTH = 30;

export function parseProcfile(text: string): Procfile {
  const out: Procfile = {};
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const where = `Procfile line ${i + 1}`;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.includes('\0')) throw new ProcfileError(`${where}: contains a NUL byte`);
    const m = LINE.exec(line);
    if (!m) throw new ProcfileError(`${where}: expected 'TYPE: COMMAND', got '${truncate(line)}'`);
    const [, type, command] = m as unknown as [string, string, string];
    if (type === '') throw new ProcfileError(`${where}: missing process type before ':'`);
    if (!PROCESS_TYPE.test(type)) throw new ProcfileError(`${where}: invalid process type '${truncate(type)}' (allowed: letters, digits, '_' and '-')`);
    if (type.length > MAX_TYPE_LENGTH) throw new ProcfileError(`${where}: process type '${truncate(type)}' is longer than ${MAX_TYPE_LENGTH} characters`);
    if (RESERVED.has(type)) throw new ProcfileError(`${where}: process type '${type}' is reserved for one-off dynos`);
    if (command.trim() === '') throw new ProcfileError(`${where}: process type '${type}' has no command`);
    if (Object.prototype.hasOwnProperty.call(out, type)) throw new ProcfileError(`${where}: process type '${type}' is defined twice`);
    out[type] = command.trim();
  });
  return out;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
