/**
 * SSH keys allowed to push (`keys:add`, `keys`, `keys:remove`) and the authorized_keys file of the
 * git user that sshd reads: one line per key, each with a forced command, so a key can only ever
 * run `manifold git-shell --key NAME`. The list lives in STATE/git/keys.json (root only); the file
 * is rendered from it after every change, root-owned, so the git user cannot add a key itself.
 * Every input is checked before anything is written, and a failed write puts the old list back.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManifoldError } from '../manifold/errors';
import { isAppName, KEY_NAME } from './names';

export interface KeyEntry {
  name: string;
  /** Key type and base64 blob (`ssh-ed25519 AAAA...`), without options or comment. */
  key: string;
  comment: string;
  fingerprint: string;
  /** Apps the key may push to; null: every app (single tenant). */
  apps: string[] | null;
  addedAt: number;
}

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/** `TYPE BASE64 [comment]` of a public key file's text, or an EINVAL naming what is wrong. */
export function parsePublicKey(text: string): { key: string; comment: string } {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) throw new ManifoldError('EINVAL', lines.length === 0 ? 'the key file is empty' : 'the key file must hold exactly one public key (one line)');
  const line = lines[0]!;
  if (line.includes('PRIVATE KEY')) throw new ManifoldError('EINVAL', 'that is a private key: give the public one (the .pub file)');
  const [type = '', blob = '', ...rest] = line.split(/\s+/);
  if (!KEY_TYPES.test(type)) throw new ManifoldError('EINVAL', `not an OpenSSH public key (starts with '${type.slice(0, 40)}'; options before the key are not accepted)`);
  if (!/^[A-Za-z0-9+/]+={0,3}$/.test(blob)) throw new ManifoldError('EINVAL', 'not an OpenSSH public key (bad base64 after the key type)');
  const comment = rest.join(' ').replace(/[^\x20-\x7e]/g, '').slice(0, 200);
  return { key: `${type} ${blob}`, comment };
}

/** `ssh-keygen -l -f` on the key: its fingerprint, or EINVAL with ssh-keygen's complaint. */
export function fingerprintOf(key: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'manifold-key-'));
  try {
    const file = path.join(dir, 'key.pub');
    fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
    let out: string;
    try {
      out = execFileSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') throw new ManifoldError('EINTERNAL', 'ssh-keygen not found (install openssh-client)');
      throw new ManifoldError('EINVAL', `not a valid public key (ssh-keygen -l: ${(e.stderr ?? '').trim().split('\n')[0]?.replace(file, 'FILE') || 'refused'})`);
    }
    const fp = /^\d+ (\S+)/.exec(out);
    if (!fp) throw new ManifoldError('EINVAL', 'not a valid public key (ssh-keygen -l printed no fingerprint)');
    return fp[1]!;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface KeyStoreOptions {
  /** STATE/git/keys.json */
  file: string;
  /** The forced command of a key's line (the daemon knows the program and the git socket). */
  forcedCommand: (name: string) => string;
}

export class KeyStore {
  private keys: KeyEntry[];

  constructor(private readonly o: KeyStoreOptions) {
    this.keys = KeyStore.read(o.file);
  }

  private static read(file: string): KeyEntry[] {
    try {
      const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      return Array.isArray(v) ? (v as KeyEntry[]) : [];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
  }

  list(): KeyEntry[] {
    return this.keys.map((k) => ({ ...k, apps: k.apps ? [...k.apps] : null }));
  }

  get(name: string): KeyEntry | undefined {
    return this.keys.find((k) => k.name === name);
  }

  /** Checks name, key and apps (appExists says whether an app is known), then adds; `commit` writes the files. */
  async add(nameIn: unknown, text: unknown, appsIn: unknown, appExists: (app: string) => Promise<boolean>, commit: (keys: KeyEntry[]) => void): Promise<KeyEntry> {
    if (typeof nameIn !== 'string' || !KEY_NAME.test(nameIn)) {
      throw new ManifoldError('EINVAL', `invalid key name '${String(nameIn)}' (letters, digits, '.', '_', '@', '-', starting with a letter or digit, at most 64)`);
    }
    if (typeof text !== 'string') throw new ManifoldError('EINVAL', 'missing key');
    if (Buffer.byteLength(text) > 16 * 1024) throw new ManifoldError('EINVAL', 'the key file is too large for a public key');
    let apps: string[] | null = null;
    if (appsIn !== undefined && appsIn !== null) {
      if (!Array.isArray(appsIn) || appsIn.length === 0) throw new ManifoldError('EINVAL', '--app needs app names');
      apps = [];
      for (const a of appsIn) {
        if (typeof a !== 'string' || !isAppName(a)) throw new ManifoldError('EINVAL', `invalid app name '${String(a)}'`);
        if (!(await appExists(a))) throw new ManifoldError('ENOAPP', `no such app: ${a}`);
        if (!apps.includes(a)) apps.push(a);
      }
    }
    const { key, comment } = parsePublicKey(text);
    const fingerprint = fingerprintOf(key);
    // checked after the awaits, in the same turn as the change
    if (this.get(nameIn)) throw new ManifoldError('EEXIST', `a key named ${nameIn} already exists (keys:remove ${nameIn} first)`);
    const same = this.keys.find((k) => k.key === key);
    if (same) throw new ManifoldError('EEXIST', `this key is already added, as ${same.name} (${fingerprint})`);
    const entry: KeyEntry = { name: nameIn, key, comment, fingerprint, apps, addedAt: Date.now() };
    this.replace([...this.keys, entry], commit);
    return { ...entry };
  }

  remove(name: unknown, commit: (keys: KeyEntry[]) => void): KeyEntry {
    const k = typeof name === 'string' ? this.get(name) : undefined;
    if (!k) throw new ManifoldError('EINVAL', `no key named ${String(name)} (see manifold keys)`);
    this.replace(this.keys.filter((x) => x !== k), commit);
    return k;
  }

  /** The new list goes to keys.json and authorized_keys; on any failure both are as before. */
  private replace(next: KeyEntry[], commit: (keys: KeyEntry[]) => void): void {
    const before = this.keys;
    try {
      writeAtomic(this.o.file, `${JSON.stringify(next, null, 2)}\n`, 0o600);
      commit(next);
    } catch (err) {
      writeAtomic(this.o.file, `${JSON.stringify(before, null, 2)}\n`, 0o600);
      try {
        commit(before);
      } catch {
        /* the first failure is the one to report */
      }
      throw new ManifoldError('EINTERNAL', `cannot write the keys: ${(err as Error).message}`);
    }
    this.keys = next;
  }

  /** The authorized_keys text for a list. */
  render(keys: KeyEntry[] = this.keys): string {
    const opts = 'no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,restrict';
    const lines = keys.map((k) => `command="${this.o.forcedCommand(k.name)}",${opts} ${k.key} ${k.name}`);
    return `# written by the manifold daemon from ${this.o.file}; edits here are lost (use manifold keys:add)\n${lines.map((l) => `${l}\n`).join('')}`;
  }

  /** May this key run a session for this app? undefined if yes, else why not. */
  refusal(name: string, app: string): string | undefined {
    const k = this.get(name);
    if (!k) return `key ${name} is not (or no longer) allowed to push`;
    if (k.apps && !k.apps.includes(app)) return `key ${name} may not push to ${app} (it is limited to ${k.apps.join(', ')})`;
    return undefined;
  }
}

/** Write to a temporary file beside `file`, then rename over it: readers see the old or the new text. */
export function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}
