/**
 * Who made a release (Release.by), Heroku's `releases` author column. The API knows its caller only
 * as a uid (SO_PEERCRED), so the name comes from the passwd file.
 */
import fs from 'node:fs';

/**
 * The user name of `uid` in `passwdFile`, else `uid N` (no entry, or the file unreadable). Read on
 * every call, not cached: accounts come and go while the daemon runs, and the file is a few KB.
 */
export function userNameOf(uid: number, passwdFile = '/etc/passwd'): string {
  let text: string;
  try {
    text = fs.readFileSync(passwdFile, 'utf8');
  } catch {
    return `uid ${uid}`;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    // name:password:uid:gid:gecos:home:shell; a name with control characters would garble the listing
    if (f.length >= 3 && f[2] === String(uid) && f[0] && !/[\0-\x1f\x7f]/.test(f[0])) return f[0];
  }
  return `uid ${uid}`;
}
