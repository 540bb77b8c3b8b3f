/**
 * Typed reads of raw YAML values (bkmonitorbeat's main file and child task files) that never throw: a
 * value that does not fit pushes a {@link ConfigProblem} naming its key (`basereport_task.cpu.stat_times`,
 * `/etc/conf.d/tcp.conf:tasks[0].timeout`) and the default is returned, so every problem of a file is
 * reported at once.
 *
 * ```ts
 * const f = fields(raw, problems, 'basereport_task');
 * const statTimes = f.int('cpu.stat_times', { default: 4 });
 * const period = f.durationMs('period', { default: 60_000, min: 1_000 });
 * ```
 */
import type { ConfigProblem } from '../common/errors.ts';
import { parseDurationValue } from './duration.ts';

export type RawMap = Readonly<Record<string, unknown>>;

/** Whether a value is a (YAML) mapping. */
export function isMap(v: unknown): v is RawMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

/** The value at a dotted path (`cpu.stat_times`), or undefined. */
export function pathGet(raw: RawMap, path: string): unknown {
  let cur: unknown = raw;
  for (const part of path.split('.')) {
    if (!isMap(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

interface NumOpts {
  default: number;
  min?: number;
  max?: number;
}

export interface FieldReader {
  /** The key prefix problems carry (`basereport_task`, `<file>:tasks[0]`). */
  readonly prefix: string;
  readonly raw: RawMap;
  /** Whether the (dotted) key is present and not null. */
  has(key: string): boolean;
  /** An integer (YAML number or numeric string). */
  int(key: string, opts: NumOpts): number;
  /** A finite number. */
  num(key: string, opts: NumOpts): number;
  /** A duration in ms (`10s`, `1m`, plain seconds). `min`/`max` in ms. */
  durationMs(key: string, opts: NumOpts): number;
  str(key: string, opts?: { default?: string; pattern?: RegExp; values?: readonly string[] }): string;
  bool(key: string, def: boolean): boolean;
  /** A list of strings (a YAML list; a comma-free scalar gives one item; null gives []). */
  strings(key: string): string[];
  /** A list of regular expressions (Go RE2 syntax is close enough to JS for the reference's lists). */
  regexes(key: string): RegExp[];
  /** A map of string → string (numbers and booleans are stringified). */
  stringMap(key: string): Record<string, string>;
  /** A list of string maps (`labels`). */
  stringMaps(key: string): Record<string, string>[];
  /** A nested reader (`f.sub('cpu')`); a missing or non-map value reads as empty. */
  sub(key: string): FieldReader;
  /** Pushes a problem for `key` (for checks a type makes itself). */
  problem(key: string, message: string): void;
}

/** `prefix` + `key` as problems name them: `a.b`, `<file>:key`, `a.tasks[0]`. */
export function joinKey(prefix: string, key: string): string {
  if (prefix === '') return key;
  if (key === '') return prefix.endsWith(':') ? prefix.slice(0, -1) : prefix;
  return prefix.endsWith(':') || key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`;
}

/** A reader over `raw` whose problems go to `problems`, keyed `<prefix>.<key>`. */
export function fields(raw: RawMap, problems: ConfigProblem[], prefix: string): FieldReader {
  const keyOf = (key: string): string => joinKey(prefix, key);
  const problem = (key: string, message: string): void => {
    problems.push({ key: keyOf(key), message });
  };
  const get = (key: string): unknown => pathGet(raw, key);
  const number = (key: string, opts: NumOpts, integer: boolean): number => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return opts.default;
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v.trim()) : NaN;
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      problem(key, `must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
      return opts.default;
    }
    if (opts.min !== undefined && n < opts.min) {
      problem(key, `must be >= ${opts.min}, got ${n}`);
      return opts.default;
    }
    if (opts.max !== undefined && n > opts.max) {
      problem(key, `must be <= ${opts.max}, got ${n}`);
      return opts.default;
    }
    return n;
  };
  const reader: FieldReader = {
    prefix,
    raw,
    has: (key) => {
      const v = get(key);
      return v !== undefined && v !== null;
    },
    int: (key, opts) => number(key, opts, true),
    num: (key, opts) => number(key, opts, false),
    durationMs(key, opts) {
      const v = get(key);
      if (v === undefined || v === null || v === '') return opts.default;
      let ms: number;
      try {
        ms = parseDurationValue(v);
      } catch (err) {
        problem(key, (err as Error).message);
        return opts.default;
      }
      if (opts.min !== undefined && ms < opts.min) {
        problem(key, `must be at least ${opts.min} ms, got ${JSON.stringify(v)}`);
        return opts.default;
      }
      if (opts.max !== undefined && ms > opts.max) {
        problem(key, `must be at most ${opts.max} ms, got ${JSON.stringify(v)}`);
        return opts.default;
      }
      return ms;
    },
    str(key, opts = {}) {
      const v = get(key);
      const def = opts.default ?? '';
      if (v === undefined || v === null) return def;
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        problem(key, `must be a string, got ${JSON.stringify(v)}`);
        return def;
      }
      const s = String(v);
      if (opts.pattern && !opts.pattern.test(s)) {
        problem(key, `must match ${String(opts.pattern)}, got ${JSON.stringify(s)}`);
        return def;
      }
      if (opts.values && !opts.values.includes(s)) {
        problem(key, `must be one of ${opts.values.join(', ')}, got ${JSON.stringify(s)}`);
        return def;
      }
      return s;
    },
    bool(key, def) {
      const v = get(key);
      if (v === undefined || v === null || v === '') return def;
      if (typeof v === 'boolean') return v;
      const s = (typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v)).trim().toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(s)) return true;
      if (['false', 'no', 'off', '0'].includes(s)) return false;
      problem(key, `must be true or false, got ${JSON.stringify(v)}`);
      return def;
    },
    strings(key) {
      const v = get(key);
      if (v === undefined || v === null) return [];
      const list = Array.isArray(v) ? v : [v];
      const out: string[] = [];
      for (const [i, item] of list.entries()) {
        if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean') out.push(String(item));
        else problem(`${key}[${i}]`, `must be a string, got ${JSON.stringify(item)}`);
      }
      return out;
    },
    regexes(key) {
      const out: RegExp[] = [];
      for (const [i, s] of reader.strings(key).entries()) {
        try {
          out.push(new RegExp(s));
        } catch (err) {
          problem(`${key}[${i}]`, `is not a valid regular expression: ${(err as Error).message}`);
        }
      }
      return out;
    },
    stringMap(key) {
      const v = get(key);
      if (v === undefined || v === null) return {};
      if (!isMap(v)) {
        problem(key, `must be a mapping, got ${JSON.stringify(v)}`);
        return {};
      }
      return stringMapOf(v, (k, msg) => problem(`${key}.${k}`, msg));
    },
    stringMaps(key) {
      const v = get(key);
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) {
        problem(key, `must be a list of mappings, got ${JSON.stringify(v)}`);
        return [];
      }
      const out: Record<string, string>[] = [];
      for (const [i, item] of v.entries()) {
        if (item === null || item === undefined) continue;
        if (!isMap(item)) {
          problem(`${key}[${i}]`, `must be a mapping, got ${JSON.stringify(item)}`);
          continue;
        }
        out.push(stringMapOf(item, (k, msg) => problem(`${key}[${i}].${k}`, msg)));
      }
      return out;
    },
    sub(key) {
      const v = get(key);
      return fields(isMap(v) ? v : {}, problems, keyOf(key));
    },
    problem,
  };
  return reader;
}

function stringMapOf(v: RawMap, problem: (key: string, message: string) => void): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null || x === undefined) out[k] = '';
    else if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
    else problem(k, `must be a string, got ${JSON.stringify(x)}`);
  }
  return out;
}
