/** Durations and times on the command line. */

const UNITS: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600, d: 86_400 };

/** `250ms`, `1.5s`, `30m`, `2h`, `7d`, `500us` (a bare number is `unit`) → seconds; undefined when unreadable. */
export function parseDuration(text: string, unit: 'us' | 'ms' | 's' | 'm' | 'h' | 'd'): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?$/.exec(text.trim().replace(/^-/, ''));
  if (!m) return undefined;
  return Number(m[1]) * (UNITS[m[2] ?? unit] as number);
}

/** The option's duration in seconds, or a usage error naming it. */
export function durationOption(name: string, text: string, unit: 'us' | 'ms' | 's' | 'm' | 'h' | 'd', usage: (message: string) => never): number {
  return parseDuration(text, unit) ?? usage(`--${name}: expected a duration such as 250ms, 30m, 2h or 7d (got ${JSON.stringify(text)})`);
}

/** µs as a short human duration. */
export function formatUs(us: number): string {
  if (us < 1_000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1_000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}
