/**
 * Config reads shared by the host task types: RE2 pattern lists (the reference's configuration carries Go
 * regular expressions), reported per item with their key.
 */
import type { FieldReader } from '../config-fields.ts';
import { goRegExp } from './goregexp.ts';

/** A list of Go regular expressions at `key`; one that does not compile is a problem of `key[i]`. */
export function goRegexList(f: FieldReader, key: string): RegExp[] {
  const out: RegExp[] = [];
  for (const [i, pattern] of f.strings(key).entries()) {
    try {
      out.push(goRegExp(pattern));
    } catch (err) {
      f.problem(`${key}[${i}]`, `is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  return out;
}

/** One Go regular expression at `key` ('' = none). */
export function goRegexField(f: FieldReader, key: string): RegExp | undefined {
  const pattern = f.str(key);
  if (pattern === '') return undefined;
  try {
    return goRegExp(pattern);
  } catch (err) {
    f.problem(key, `is not a valid regular expression: ${(err as Error).message}`);
    return undefined;
  }
}
