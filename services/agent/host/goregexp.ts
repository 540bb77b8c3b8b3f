/**
 * Go (RE2) regular expressions as JavaScript RegExps. The reference's configuration carries RE2 patterns
 * (`match_pattern`, `extract_pattern`, `process_name`, black/white lists, `corefile_match_regex`); the
 * syntax is close to JavaScript's, apart from what is translated here: `(?P<name>…)` named groups, leading
 * flag groups `(?i)` `(?s)` `(?m)`, `\A` / `\z`, `\Q…\E` literals and POSIX classes such as `[[:digit:]]`.
 */

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const escapeLiteral = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/** Translates RE2 syntax to JavaScript source and flags; throws on what JavaScript cannot express. */
export function translateGoRegExp(pattern: string): { source: string; flags: string } {
  let flags = '';
  let p = pattern;
  const lead = /^\(\?([imsU]+)\)/.exec(p);
  if (lead) {
    for (const f of lead[1] as string) {
      if (f === 'U') throw new Error('the ungreedy flag (?U) is not supported');
      if (!flags.includes(f)) flags += f;
    }
    p = p.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === '\\') {
      const n = p[i + 1];
      if (n === undefined) throw new Error('trailing backslash');
      if (!inClass && n === 'Q') {
        const end = p.indexOf('\\E', i + 2);
        const lit = end < 0 ? p.slice(i + 2) : p.slice(i + 2, end);
        out += escapeLiteral(lit);
        i = end < 0 ? p.length : end + 1;
        continue;
      }
      if (!inClass && n === 'A') {
        out += '(?<![\\s\\S])';
        i++;
        continue;
      }
      if (!inClass && n === 'z') {
        out += '(?![\\s\\S])';
        i++;
        continue;
      }
      out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && p[i + 1] === ':') {
        const end = p.indexOf(':]', i + 2);
        if (end > 0) {
          const name = p.slice(i + 2, end);
          const negated = name.startsWith('^');
          const cls = POSIX[negated ? name.slice(1) : name];
          if (cls === undefined) throw new Error(`unknown POSIX class [:${name}:]`);
          if (negated) throw new Error(`negated POSIX class [:${name}:] is not supported`);
          out += cls;
          i = end + 1;
          continue;
        }
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (p[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (p[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && p.startsWith('(?P<', i)) {
      out += '(?<';
      i += 3;
      continue;
    }
    out += c;
  }
  return { source: out, flags };
}

/** A RegExp for a Go pattern (`extraFlags` e.g. `g`). Throws a SyntaxError-like Error when invalid. */
export function goRegExp(pattern: string, extraFlags = ''): RegExp {
  const { source, flags } = translateGoRegExp(pattern);
  return new RegExp(source, flags + extraFlags);
}

/**
 * The names of a pattern's capturing groups by index (Go `SubexpNames()`): index 0 is the whole match,
 * unnamed groups are ''.
 */
export function subexpNames(pattern: string): string[] {
  const names = [''];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (!inClass && pattern[i + 1] === 'Q') {
        const end = pattern.indexOf('\\E', i + 2);
        i = end < 0 ? pattern.length : end + 1;
      } else i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && pattern[i + 1] === ':') {
        const end = pattern.indexOf(':]', i + 2);
        if (end > 0) i = end + 1;
      } else if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (pattern[i + 1] === '^') i++;
      if (pattern[i + 1] === ']') i++;
      continue;
    }
    if (c !== '(') continue;
    if (pattern[i + 1] !== '?') {
      names.push('');
      continue;
    }
    const named = /^\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(pattern.slice(i));
    if (named) names.push(named[1] as string);
  }
  return names;
}

/** Go `FindAllStringSubmatch(s, -1)`: every non-overlapping match with its groups ('' for unmatched groups). */
export function findAllSubmatch(re: RegExp, s: string): string[][] {
  const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  const out: string[][] = [];
  for (const m of s.matchAll(global)) {
    out.push(Array.from(m, (g) => g ?? ''));
  }
  return out;
}
