/**
 * Response matching shared by http, tcp and udp (reference §A5.3, utils/match.go + SimpleMatchParam):
 * `response_format` is `[raw|hex|]<fn>`, the `raw|` / `hex|` prefix is stripped, an empty function means
 * `startswith`. Functions: `eq`, `nq`, `startswith`, `nstartswith`, `endswith`, `nendswith`, `in`
 * (contains), `nin`, `reg` (a regex whose leftmost match is non-empty), `wildcard` (`*` → `.*`, `?` → one
 * character, then as `reg`) and plain `hex` (the expected text is hex, compared byte for byte). An empty
 * expected response always matches; an unknown function never does.
 *
 * Decisions on the reference's quirks (README "Probes"):
 * - `hex|eq` (and every `hex|<fn>`) compares the body with the expected *text*, as the reference does:
 *   the prefix only asks the loader to check that the text is valid hex.
 * - `wildcard` is converted once. The reference converts the pattern at load and again at match time,
 *   so `a*` ends up requiring a literal `.`; that makes the function unusable and is not reproduced.
 * - `reg` patterns are Go RE2 syntax translated to JavaScript (host/goregexp.ts); one that cannot be
 *   translated or compiled is a config problem here (the reference fails every match at run time).
 */
import { goRegExp } from '../host/goregexp.ts';

/** The match functions the reference knows. */
export const MATCH_FUNCTIONS = ['eq', 'nq', 'startswith', 'nstartswith', 'endswith', 'nendswith', 'in', 'nin', 'reg', 'wildcard', 'hex'] as const;
export type MatchFunction = (typeof MATCH_FUNCTIONS)[number];

/** A compiled response expectation. */
export interface ResponseMatcher {
  /** The function after the `raw|`/`hex|` prefix was stripped (unknown names are kept, and never match). */
  readonly fn: string;
  /** The expected response as bytes (empty = anything matches). */
  readonly expected: Buffer;
  match(body: Buffer): boolean;
}

const isHex = (s: string): boolean => s.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(s);

/** Decodes Go's `hex.DecodeString` input; undefined when it is not valid hex. */
export function decodeHex(s: string): Buffer | undefined {
  return isHex(s) ? Buffer.from(s, 'hex') : undefined;
}

/** `*` → `.*`, `?` → `.{1}`, everything else literal (reference WildcardToRegex, applied once). */
export function wildcardToRegex(pattern: string): string {
  let out = '';
  for (const ch of pattern) {
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.{1}';
    else out += ch.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  }
  return out;
}

/** The function part of a `response_format` (`hex|in` → `in`; '' → `startswith`). */
export function matchFunction(format: string): string {
  let fn = format;
  if (fn.startsWith('hex|')) fn = fn.slice(4);
  if (fn.startsWith('raw|')) fn = fn.slice(4);
  return fn === '' ? 'startswith' : fn;
}

/**
 * What the reference's loader says about a `response` text (as written, before any `base64://` decoding)
 * under `format`: a format starting with `hex` needs a hex response. Undefined when fine.
 */
export function responseTextProblem(format: string, text: string): string | undefined {
  return format.startsWith('hex') && text !== '' && !isHex(text) ? `must be hex for response_format ${JSON.stringify(format)}, got ${JSON.stringify(text)}` : undefined;
}

/**
 * Compiles `response_format` + expected `response` (bytes). `problem` is called for regexes JavaScript
 * cannot compile.
 */
export function compileMatcher(format: string, expected: Buffer, problem: (message: string) => void = () => undefined): ResponseMatcher {
  const fn = matchFunction(format);
  let re: RegExp | undefined;
  if ((fn === 'reg' || fn === 'wildcard') && expected.length > 0) {
    const source = fn === 'wildcard' ? wildcardToRegex(expected.toString('utf8')) : expected.toString('utf8');
    try {
      re = goRegExp(source);
    } catch (err) {
      problem(`is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const hexExpected = fn === 'hex' ? decodeHex(expected.toString('latin1')) : undefined;
  const match = (body: Buffer): boolean => {
    if (expected.length === 0) return true;
    switch (fn) {
      case 'in':
        return body.includes(expected);
      case 'nin':
        return !body.includes(expected);
      case 'eq':
        return body.equals(expected);
      case 'nq':
        return !body.equals(expected);
      case 'startswith':
        return startsWith(body, expected);
      case 'nstartswith':
        return !startsWith(body, expected);
      case 'endswith':
        return endsWith(body, expected);
      case 'nendswith':
        return !endsWith(body, expected);
      case 'hex':
        return hexExpected !== undefined && body.equals(hexExpected);
      case 'reg':
      case 'wildcard': {
        if (!re) return false;
        re.lastIndex = 0;
        const m = re.exec(body.toString('utf8'));
        return m !== null && m[0] !== '';
      }
      default:
        return false;
    }
  };
  return { fn, expected, match };
}

function startsWith(body: Buffer, prefix: Buffer): boolean {
  return body.length >= prefix.length && body.subarray(0, prefix.length).equals(prefix);
}

function endsWith(body: Buffer, suffix: Buffer): boolean {
  return body.length >= suffix.length && body.subarray(body.length - suffix.length).equals(suffix);
}
