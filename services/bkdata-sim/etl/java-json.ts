/**
 * JSON as BKData's databus reads and writes it (Jackson in the clean; README, Cleans): the values the ETL
 * works on keep what Java would see, so the rows come out as BKData's would.
 *
 * - Numbers keep their literal's kind: an integral literal is a Java Integer/Long/BigInteger (here a
 *   `bigint`, exact at any size), anything with a fraction or exponent a Java Double (here a `number`).
 * - Objects keep their key order (Jackson's LinkedHashMap): a `Map`, not a JS object (which would move
 *   integer-like keys first).
 * - Parsing is Jackson's default: strict JSON (no comments, NaN, leading zeros, raw control characters
 *   in strings), and text after the first value is ignored.
 * - Writing is the clean's Jackson mapper (ESCAPE_NON_ASCII): compact, every non-ASCII UTF-16 unit as
 *   `\uXXXX` (upper-case hex), doubles as Java's `Double.toString`.
 */

/** A JSON value as the clean sees it; `bigint` is an integral literal, `number` a double. */
export type JValue = null | boolean | string | bigint | number | JValue[] | JObject;
export type JObject = Map<string, JValue>;

export function isJObject(v: unknown): v is JObject {
  return v instanceof Map;
}

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

class Parser {
  readonly #s: string;
  #i = 0;
  constructor(s: string) {
    this.#s = s;
  }

  fail(what: string): never {
    throw new JsonSyntaxError(`${what} at position ${this.#i}`);
  }

  ws(): void {
    while (this.#i < this.#s.length && WS.has(this.#s.charCodeAt(this.#i))) this.#i++;
  }

  value(depth: number): JValue {
    if (depth > 1000) this.fail('nesting too deep');
    this.ws();
    const c = this.#s[this.#i];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.word('true', true);
      case 'f':
        return this.word('false', false);
      case 'n':
        return this.word('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end of input' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  word<T extends JValue>(w: string, v: T): T {
    if (this.#s.startsWith(w, this.#i)) {
      this.#i += w.length;
      return v;
    }
    return this.fail('unrecognized token');
  }

  number(): bigint | number {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.#s.slice(this.#i, this.#i + 400));
    if (!m) return this.fail('bad number');
    const next = this.#s[this.#i + m[0].length];
    if (next !== undefined && /[0-9.eE]/.test(next)) return this.fail('bad number');
    this.#i += m[0].length;
    return m[2] === undefined && m[3] === undefined ? BigInt(m[0]) : Number(m[0]);
  }

  string(): string {
    const s = this.#s;
    let i = this.#i + 1;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= s.length) {
        this.#i = i;
        return this.fail('unterminated string');
      }
      const ch = s.charCodeAt(i);
      if (ch === 0x22) break;
      if (ch < 0x20) {
        this.#i = i;
        return this.fail('control character in string');
      }
      if (ch === 0x5c) {
        out += s.slice(start, i);
        const e = s[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          this.#i = i;
          return this.fail('bad escape');
        }
        start = i;
        continue;
      }
      i++;
    }
    out += s.slice(start, i);
    this.#i = i + 1;
    return out;
  }

  array(depth: number): JValue[] {
    this.#i++;
    const out: JValue[] = [];
    this.ws();
    if (this.#s[this.#i] === ']') {
      this.#i++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.#s[this.#i++];
      if (c === ']') return out;
      if (c !== ',') return this.fail('expected , or ]');
    }
  }

  object(depth: number): JObject {
    this.#i++;
    const out: JObject = new Map();
    this.ws();
    if (this.#s[this.#i] === '}') {
      this.#i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.#s[this.#i] !== '"') return this.fail('expected a field name');
      const key = this.string();
      this.ws();
      if (this.#s[this.#i++] !== ':') return this.fail('expected :');
      const v = this.value(depth + 1);
      // A repeated key keeps its first position and the last value (LinkedHashMap.put).
      out.set(key, v);
      this.ws();
      const c = this.#s[this.#i++];
      if (c === '}') return out;
      if (c !== ',') return this.fail('expected , or }');
    }
  }
}

/** Parses the first JSON value of `text` (what follows it is ignored, as Jackson's readValue does). */
export function parseJava(text: string): JValue {
  return new Parser(text).value(0);
}

/** JSON text → a JS value for tests and fixtures: objects as Maps, integers as bigint. */
export function toJValue(v: unknown): JValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'bigint') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toJValue);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [String(k), toJValue(x)]));
  return new Map(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toJValue(x)]));
}

// ---------------------------------------------------------------------------------------------------------
// Java's string forms

/** Java's `Double.toString(d)` (digits: the shortest that round-trips, as Java 19+ prints them). */
export function javaDouble(d: number): string {
  if (Number.isNaN(d)) return 'NaN';
  if (d === Infinity) return 'Infinity';
  if (d === -Infinity) return '-Infinity';
  if (d === 0) return Object.is(d, -0) ? '-0.0' : '0.0';
  const sign = d < 0 ? '-' : '';
  const a = Math.abs(d);
  const [mant, expText] = a.toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  if (a >= 1e-3 && a < 1e7) {
    if (exp >= 0) {
      const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
      const frac = digits.slice(exp + 1);
      return `${sign}${intPart}.${frac === '' ? '0' : frac}`;
    }
    return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  }
  return `${sign}${digits[0]}.${digits.length > 1 ? digits.slice(1) : '0'}E${exp}`;
}

/** `String.valueOf(o)` of a parsed value: what a `string` field makes of a non-string. */
export function javaToString(v: JValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'number') return javaDouble(v);
  if (Array.isArray(v)) return `[${v.map(javaToString).join(', ')}]`;
  return `{${[...v].map(([k, x]) => `${k}=${javaToString(x)}`).join(', ')}}`;
}

const SHORT_ESCAPES: Record<number, string> = { 0x22: '\\"', 0x5c: '\\\\', 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };

function jacksonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7f && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    out += SHORT_ESCAPES[c] ?? `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    start = i + 1;
  }
  return `${out}${s.slice(start)}"`;
}

/** JSON text as the clean's Jackson mapper writes it (ESCAPE_NON_ASCII). */
export function writeJackson(v: JValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return jacksonString(v);
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'number') return javaDouble(v);
  if (Array.isArray(v)) return `[${v.map(writeJackson).join(',')}]`;
  return `{${[...v].map(([k, x]) => `${jacksonString(k)}:${writeJackson(x)}`).join(',')}}`;
}
