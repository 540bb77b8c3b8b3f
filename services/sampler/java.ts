/**
 * The Java rules the tail-sampling job's conditions run on, for JavaScript: `Double.parseDouble`'s syntax,
 * `Collections.max`/`min` over doubles (`Double.compare`: -0.0 below 0.0, NaN above everything), and
 * `Pattern.matches` (a regex that must match the whole value) translated to a JavaScript RegExp.
 */

/** Where the reference job's Java code would throw (a value of the wrong type, bad syntax, no values). */
export class JavaError extends Error {
  override readonly name = 'JavaError';
}

/** `Double.valueOf`'s grammar after `trim()` (its javadoc's regular expression). */
const JAVA_DOUBLE = /^([+-]?)(?:(NaN)|(Infinity)|(?:((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|0[xX]((?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+))[pP]([+-]?\d+))[fFdD]?)$/;

/** `String.trim()`: drops every char up to U+0020 at both ends. */
function javaTrim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) <= 0x20) a++;
  while (b > a && s.charCodeAt(b - 1) <= 0x20) b--;
  return s.slice(a, b);
}

/** `Double.parseDouble(s)`; throws {@link JavaError} where Java throws NumberFormatException. */
export function javaParseDouble(s: string): number {
  const m = JAVA_DOUBLE.exec(javaTrim(s));
  if (!m) throw new JavaError(`not a number: ${JSON.stringify(s)}`);
  const sign = m[1] === '-' ? -1 : 1;
  if (m[2]) return NaN;
  if (m[3]) return sign * Infinity;
  if (m[4] !== undefined) return sign * Number(m[4]);
  // Hexadecimal significand with a binary exponent: exact while the significand fits 53 bits.
  const digits = m[5] as string;
  const dot = digits.indexOf('.');
  const fraction = dot < 0 ? 0 : digits.length - dot - 1;
  const mantissa = BigInt(`0x${digits.replace('.', '') || '0'}`);
  return sign * Number(mantissa) * 2 ** (Number(m[6]) - 4 * fraction);
}

/** `Double.compare(a, b)`. */
export function javaCompare(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  if (aNaN || bNaN) return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
  if (a === 0 && b === 0) return Object.is(a, b) ? 0 : Object.is(a, -0) ? -1 : 1;
  return 0;
}

/** `Collections.max` (or `min`) of boxed doubles; throws on an empty list as Java does. */
export function javaExtreme(values: readonly number[], which: 'max' | 'min'): number {
  if (values.length === 0) throw new JavaError(`${which} of no values`);
  let best = values[0] as number;
  for (let i = 1; i < values.length; i++) {
    const v = values[i] as number;
    const c = javaCompare(v, best);
    if (which === 'max' ? c > 0 : c < 0) best = v;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------
// Regular expressions

/** Chars JavaScript's `u` mode accepts escaped outside a class. */
const SYNTAX = new Set('^$\\.*+?()[]{}|/');
/** Java's `\s` (no UNICODE_CHARACTER_CLASS), `\v` and what its `.` does not match. */
const JAVA_SPACE = ' \\t\\n\\x0B\\f\\r';
const JAVA_VERTICAL = '\\n\\x0B\\f\\r\\x85\\u2028\\u2029';
const JAVA_DOT = '[^\\n\\r\\x85\\u2028\\u2029]';
/** Java's POSIX classes (US-ASCII only), which JavaScript would read as Unicode properties or refuse. */
const POSIX: Readonly<Record<string, string>> = {
  Lower: 'a-z',
  Upper: 'A-Z',
  ASCII: '\\x00-\\x7F',
  Alpha: 'a-zA-Z',
  Digit: '0-9',
  Alnum: 'a-zA-Z0-9',
  Punct: '!-\\/:-@\\[-`{-~',
  Graph: '!-~',
  Print: ' -~',
  Blank: ' \\t',
  Cntrl: '\\x00-\\x1F\\x7F',
  XDigit: '0-9a-fA-F',
  Space: JAVA_SPACE,
};

function escapeLiteral(text: string): string {
  let out = '';
  for (const ch of text) out += SYNTAX.has(ch) || ch === '-' ? `\\${ch}` : ch;
  return out;
}

/**
 * A Java regex as a JavaScript RegExp that matches the whole value (`Pattern.matches`). Translated:
 * leading inline flags `(?i)`, `(?s)`, `(?m)`, `(?u)`; `\Q…\E`; escaped punctuation; `\s`, `\S`, `\v` and
 * `.` with Java's meaning; Java's POSIX classes (`\\p{Alpha}`, …) as the ASCII classes they are. What JavaScript cannot express (possessive quantifiers, atomic groups, class
 * intersections and nested classes, Java-only classes, inline flags elsewhere) throws
 * {@link JavaError}, as an invalid pattern does in Java.
 */
export function javaRegex(pattern: string): RegExp {
  let body = pattern;
  let modifiers = '';
  let dotAll = false;
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(body);
  if (lead) {
    const flags = lead[1] as string;
    if (!/^[imsu]+$/.test(flags)) throw new JavaError(`inline flags (?${flags}) are not supported`);
    modifiers = [...new Set(flags.replace(/u/g, ''))].join('');
    dotAll = modifiers.includes('s');
    body = body.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  const cps = [...body];
  for (let i = 0; i < cps.length; i++) {
    const ch = cps[i] as string;
    if (ch === '\\') {
      const next = cps[i + 1];
      if (next === undefined) throw new JavaError('trailing backslash');
      i++;
      if (next === 'Q') {
        const rest = cps.slice(i + 1).join('');
        const end = rest.indexOf('\\E');
        out += escapeLiteral(end < 0 ? rest : rest.slice(0, end));
        i = end < 0 ? cps.length : i + [...rest.slice(0, end)].length + 2;
        continue;
      }
      const posix = next === 'p' || next === 'P' ? /^\{(\w+)\}/.exec(cps.slice(i + 1, i + 16).join('')) : null;
      const ascii = posix ? POSIX[posix[1] as string] : undefined;
      if (posix && ascii !== undefined) {
        i += (posix[0]).length;
        if (next === 'p') out += inClass ? ascii : `[${ascii}]`;
        else if (inClass) throw new JavaError('\\P{…} inside a class is not supported');
        else out += `[^${ascii}]`;
        continue;
      }
      if (next === 's') out += inClass ? JAVA_SPACE : `[${JAVA_SPACE}]`;
      else if (next === 'S') {
        if (inClass) throw new JavaError('\\S inside a class is not supported');
        out += `[^${JAVA_SPACE}]`;
      } else if (next === 'v') out += inClass ? JAVA_VERTICAL : `[${JAVA_VERTICAL}]`;
      else if (/[A-Za-z0-9]/.test(next)) out += `\\${next}`;
      else if (SYNTAX.has(next) || (inClass && next === '-')) out += `\\${next}`;
      else out += next; // Java lets any other punctuation be escaped; it is a literal either way
      continue;
    }
    if (inClass) {
      if (ch === '[') throw new JavaError('nested character classes are not supported');
      if (ch === '&' && cps[i + 1] === '&') throw new JavaError('class intersections are not supported');
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      if (cps[i + 1] === '^') out += cps[++i] as string;
      continue;
    }
    out += ch === '.' && !dotAll ? JAVA_DOT : ch;
  }
  const inner = modifiers ? `(?${modifiers}:${out})` : out;
  try {
    return new RegExp(`^(?:${inner})$`, 'u');
  } catch (err) {
    throw new JavaError(`invalid regex ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}
