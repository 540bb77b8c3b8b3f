/**
 * Durations as bkmonitorbeat's configuration writes them (libbeat/ucfg semantics): Go duration strings
 * (`500ms`, `10s`, `1m`, `1h30m`, `1.5h`, units ns/us/µs/ms/s/m/h), and plain numbers meaning seconds
 * (`60`, `"60"`, `0.5`). Values are returned in milliseconds (fractions kept for sub-millisecond units).
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/** Parses a Go duration string (`time.ParseDuration`) into ms; throws on anything else. */
export function parseGoDuration(text: string): number {
  let s = text.trim();
  if (s === '') throw new Error('empty duration');
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`invalid duration ${JSON.stringify(text)}`);
  let total = 0;
  while (s.length > 0) {
    const m = PART.exec(s);
    if (!m) throw new Error(`invalid duration ${JSON.stringify(text)} (expected e.g. 500ms, 10s, 1m, 1h30m)`);
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** A duration config value in ms: a number (seconds), a numeric string (seconds) or a Go duration string. */
export function parseDurationValue(raw: unknown): number {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) throw new Error(`invalid duration ${String(raw)}`);
    return raw * 1_000;
  }
  if (typeof raw === 'string') {
    const t = raw.trim();
    if (/^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(t)) return Number(t) * 1_000;
    return parseGoDuration(t);
  }
  throw new Error(`expected a duration such as 10s or 1m, got ${JSON.stringify(raw)}`);
}

/** Formats ms the way Go prints a duration (`1m0s`, `10s`, `500ms`), for logs and check mode. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (Math.abs(ms) < 1_000) return `${ms}ms`;
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1_000;
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
