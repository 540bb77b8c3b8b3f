/**
 * The clean's time handling (README, Cleans): the ETL `conf` turns the time field's value into epoch
 * milliseconds (BKData's TimeTransformer), and the clean writes the time columns from it in BKData's
 * display time zone (GMT+8): `dtEventTime`, `dtEventTimeStamp`, `localTime`, `timestamp`.
 */
import { javaToString, type JValue } from './java-json.ts';

/** BKData's display time zone (`databus.display.timezone=GMT+8`), ms. */
export const DISPLAY_OFFSET_MS = 8 * 3_600_000;

/** A time value the transformer cannot read (BKData's TimeFormatError: the row is dropped). */
export class TimeFormatError extends Error {
  override readonly name = 'TimeFormatError';
}

export interface TimeConf {
  timeFormat: string;
  /** Digits of a Unix timestamp (13 ms, 10 s, 8 min, 16 µs); 0: parse `timeFormat` instead. */
  timestampLen: number;
  /** Hours the parsed wall-clock time is ahead of UTC (default 8). */
  timezone: number;
  /** Round down to a multiple of this many ms (default 1). */
  timeRound: number;
}

export type TimeTransformer = (value: JValue) => number;

const LONG_MIN = -(1n << 63n);
const LONG_MAX = (1n << 63n) - 1n;

/** Java's `Long.parseLong` (sign, digits, range), or a TimeFormatError. */
function parseLong(text: string): bigint {
  if (!/^[+-]?\d+$/.test(text)) throw new TimeFormatError(`For input string: "${text}"`);
  const v = BigInt(text);
  if (v < LONG_MIN || v > LONG_MAX) throw new TimeFormatError(`For input string: "${text}"`);
  return v;
}

/** Java `String.trim()`: every char ≤ U+0020 at both ends. */
export function javaTrim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) <= 0x20) a++;
  while (b > a && s.charCodeAt(b - 1) <= 0x20) b--;
  return s.slice(a, b);
}

/** Java long division (truncates toward zero). */
const div = (a: bigint, b: bigint): bigint => a / b;

interface PatternPart {
  kind: 'y' | 'M' | 'd' | 'H' | 'm' | 's' | 'S' | 'literal';
  text: string;
}

/**
 * The subset of SimpleDateFormat patterns the sim reads: y M d H m s S as numbers and literal text
 * (quoted or not). Other letters (months by name, am/pm, zones…) are refused: undefined.
 */
export function compilePattern(format: string): PatternPart[] | undefined {
  const parts: PatternPart[] = [];
  let i = 0;
  while (i < format.length) {
    const c = format[i] as string;
    if (c === "'") {
      const end = format.indexOf("'", i + 1);
      if (end < 0) return undefined;
      parts.push({ kind: 'literal', text: end === i + 1 ? "'" : format.slice(i + 1, end) });
      i = end + 1;
    } else if (/[a-zA-Z]/.test(c)) {
      if (!'yMdHmsS'.includes(c)) return undefined;
      let j = i;
      while (format[j] === c) j++;
      parts.push({ kind: c as PatternPart['kind'], text: format.slice(i, j) });
      i = j;
    } else {
      parts.push({ kind: 'literal', text: c });
      i++;
    }
  }
  return parts;
}

/**
 * Lenient SimpleDateFormat parsing in UTC (values roll over: month 13 is January of the next year);
 * text after the pattern is ignored, as `DateFormat.parse(String)` does. Epoch ms.
 */
function parsePattern(parts: PatternPart[], text: string): number {
  const f = { y: 1970, M: 1, d: 1, H: 0, m: 0, s: 0, S: 0 };
  let i = 0;
  for (const [n, p] of parts.entries()) {
    if (p.kind === 'literal') {
      if (!text.startsWith(p.text, i)) throw new TimeFormatError(`Unparseable date: "${text}"`);
      i += p.text.length;
      continue;
    }
    // A number directly followed by another number field is read with its pattern's width.
    const abuts = parts[n + 1] !== undefined && parts[n + 1]?.kind !== 'literal';
    const m = (abuts ? new RegExp(`^\\d{1,${p.text.length}}`) : /^\d+/).exec(text.slice(i));
    if (!m) throw new TimeFormatError(`Unparseable date: "${text}"`);
    f[p.kind] = Number(m[0]);
    i += m[0].length;
  }
  const at = Date.UTC(f.y, f.M - 1, f.d, f.H, f.m, f.s, f.S);
  // Date.UTC maps years 0-99 to 1900-1999; Java does not.
  if (f.y >= 0 && f.y < 100) return new Date(at).setUTCFullYear(f.y);
  return at;
}

/** BKData's TimeTransformer for a clean's `conf`: a value → epoch ms, or TimeFormatError. */
export function timeTransformer(conf: TimeConf): TimeTransformer {
  const round = BigInt(conf.timeRound);
  if (conf.timestampLen > 0) {
    const len = conf.timestampLen;
    return (value) => {
      if (value === null) throw new TimeFormatError('no time value');
      const v = parseLong(javaTrim(javaToString(value)));
      let ms: bigint;
      if (len === 13) ms = v;
      else if (len === 10) ms = v * 1000n;
      else if (len === 8) ms = v * 60_000n;
      else if (len === 16) ms = div(v, 1000n);
      else ms = div(v, BigInt(10 * (10 - len))) * 1000n; // BKData's formula for other lengths, as it is
      return Number(div(ms, round) * round);
    };
  }
  const parts = compilePattern(conf.timeFormat);
  return (value) => {
    if (value === null) throw new TimeFormatError('no time value');
    if (!parts) throw new TimeFormatError(`time format ${conf.timeFormat} is not supported by bkdata-sim`);
    const utc = parsePattern(parts, javaToString(value));
    return Math.trunc((utc - conf.timezone * 3_600_000) / conf.timeRound) * conf.timeRound;
  };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** `yyyy-MM-dd HH:mm:ss` of an epoch-ms time in the display zone (GMT+8). */
export function displayTime(ms: number): string {
  const d = new Date(ms + DISPLAY_OFFSET_MS);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
