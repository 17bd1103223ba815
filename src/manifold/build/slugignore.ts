/**
 * `.slugignore` at the root of the source: paths left out of the build and the slug, removed before
 * the buildpacks run (as on Heroku). The syntax is .gitignore's without negation (as on Heroku): one pattern
 * a line, `#` comments and blank lines skipped; `*` and `?` match within a path segment, `**`
 * across segments; a pattern with a `/` (other than a trailing one) is anchored at the root, one
 * without matches a name at any depth; a trailing `/` matches directories only. A `!` line is
 * not supported and is reported.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface SlugIgnorePattern {
  re: RegExp;
  dirOnly: boolean;
  source: string;
}

function globToRegExp(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` = any number of leading directories, `/**` or a lone `**` = anything below
        if (glob[i + 2] === '/') {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return re;
}

export function parseSlugIgnore(text: string): { patterns: SlugIgnorePattern[]; unsupported: string[] } {
  const patterns: SlugIgnorePattern[] = [];
  const unsupported: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('!')) {
      unsupported.push(line);
      continue;
    }
    let p = line;
    const dirOnly = p.endsWith('/');
    if (dirOnly) p = p.replace(/\/+$/, '');
    if (p === '') continue;
    const anchored = p.includes('/');
    p = p.replace(/^\/+/, '');
    const body = globToRegExp(p);
    patterns.push({ re: new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`), dirOnly, source: line });
  }
  return { patterns, unsupported };
}

export function ignored(patterns: readonly SlugIgnorePattern[], rel: string, isDir: boolean): boolean {
  return patterns.some((p) => (!p.dirOnly || isDir) && p.re.test(rel));
}

/**
 * Removes what the patterns match under `root` (links are never followed: a matching link is
 * removed itself). Returns the relative paths removed, in walk order.
 */
export function applySlugIgnore(root: string, patterns: readonly SlugIgnorePattern[]): string[] {
  const removed: string[] = [];
  const walk = (rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(root, rel)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(path.join(root, r));
      if (ignored(patterns, r, st.isDirectory())) {
        fs.rmSync(path.join(root, r), { recursive: true, force: true });
        removed.push(r);
      } else if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return removed;
}
