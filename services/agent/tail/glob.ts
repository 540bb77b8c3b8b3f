/**
 * Go `filepath.Glob` / `filepath.Match` for the keyword task's `paths` (reference input.go scans with
 * `filepath.Glob`): `*` any run of characters except `/` (leading dots included), `?` one character except
 * `/`, `[...]` / `[^...]` classes with ranges, `\` escapes. No `**`. Every segment may hold wildcards.
 */
import { readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';

const META = /[*?[\\]/;

/** Whether a pattern segment has wildcards. */
export function hasMeta(segment: string): boolean {
  return META.test(segment);
}

/** One pattern segment as an anchored RegExp (Go filepath.Match semantics); throws on a bad class. */
export function segmentRegExp(segment: string): RegExp {
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] as string;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\') {
      i++;
      if (i >= segment.length) throw new Error(`bad pattern ${JSON.stringify(segment)}: trailing backslash`);
      out += (segment[i] as string).replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
    } else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) throw new Error(`bad pattern ${JSON.stringify(segment)}: unterminated [`);
      let body = segment.slice(i + 1, end);
      let negate = false;
      if (body.startsWith('^')) {
        negate = true;
        body = body.slice(1);
      }
      out += `[${negate ? '^' : ''}${body.replace(/\\(.)/g, '\\$1').replace(/([\]^])/g, '\\$1')}]`;
      i = end;
    } else out += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 'u');
}

/** Go filepath.Match of a whole path against a whole pattern. */
export function matchPath(pattern: string, path: string): boolean {
  const ps = pattern.split('/');
  const xs = path.split('/');
  if (ps.length !== xs.length) return false;
  return ps.every((p, i) => (hasMeta(p) ? segmentRegExp(p).test(xs[i] as string) : p === xs[i]));
}

/** The paths matching `pattern` (files and directories alike), sorted. Unreadable directories are skipped. */
export async function glob(pattern: string): Promise<string[]> {
  const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
  const parts = abs.split(sep).filter((p, i) => i === 0 || p !== '');
  let current = [parts[0] === '' ? sep : (parts[0] as string)];
  for (const part of parts.slice(1)) {
    const next: string[] = [];
    if (!hasMeta(part)) {
      for (const dir of current) next.push(join(dir, part));
    } else {
      const re = segmentRegExp(part);
      for (const dir of current) {
        let names: string[];
        try {
          names = await readdir(dir);
        } catch {
          continue;
        }
        for (const n of names.sort()) if (re.test(n)) next.push(join(dir, n));
      }
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}
