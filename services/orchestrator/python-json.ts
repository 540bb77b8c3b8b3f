/**
 * Python's `json.dumps(value)` text with its default options, for the strings the reference serialises
 * that way and BKData keeps (a Flink node's `user_args`; README, Differences from the reference): `", "`
 * and `": "` separators, object keys in insertion order, every character outside printable ASCII
 * escaped as `\uXXXX` (lower-case hex, astral characters as surrogate pairs), floats as Python's `repr`.
 * A node config holding another text than the reference's looks changed: one update and a restart.
 */

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/** A string as `json.dumps` (ensure_ascii) writes it: anything but `' '`..`'~'` escaped, per UTF-16 unit. */
function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    const code = s.charCodeAt(i);
    const short = SHORT_ESCAPES[ch];
    if (short !== undefined) out += short;
    else if (code < 0x20 || code > 0x7e) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * A number as Python writes it. Integral values are Python ints (all digits); others are floats, `repr`
 * switching to an exponent below 1e-4 (`1e-05`, two exponent digits at least) where JavaScript waits
 * until 1e-7. (Integral floats such as `1.0` cannot be told from ints once parsed in JavaScript.)
 */
function pyNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  if (Number.isInteger(n)) return BigInt(n).toString();
  const [mantissa = '', exp = '0'] = n.toExponential().split('e');
  const e = Number(exp);
  if (e < -4) return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  return String(n);
}

/** `json.dumps(value)`. Undefined object members are left out (they have no Python value). */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return pyString(value);
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const members = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${members.map(([k, v]) => `${pyString(k)}: ${pythonJsonDumps(v)}`).join(', ')}}`;
  }
  throw new TypeError(`json.dumps: ${typeof value} is not JSON serializable`);
}
