/**
 * Shared benchmark helpers: timed loops, interleaved rounds (A/B alternate so machine noise hits both),
 * medians, memory, and the one `RESULT bench=<name> key=value …` line every benchmark ends with (README, "Development").
 */

/** Runs `fn` repeatedly for about `ms` milliseconds; returns operations per second. */
export function opsPerSecond(fn: () => void, ms: number): number {
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 16; i++) fn();
    ops += 16;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** Alternates the named cases for `rounds` rounds of `ms` each; returns the median ops/s per case. */
export function interleaved(cases: Record<string, () => void>, rounds: number, ms: number): Record<string, number> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const fn of Object.values(cases)) opsPerSecond(fn, ms / 2); // warm-up (JIT)
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(cases)) samples[name]?.push(opsPerSecond(fn, ms));
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

export function rssMb(): number {
  return process.memoryUsage().rss / (1 << 20);
}

/** Rounds for printing: 3 significant decimals for ratios, integers for rates. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return String(Math.round(n));
  return n.toFixed(3).replace(/\.?0+$/, '');
}

/** Prints the summary line; it must be the last line a benchmark prints. */
export function result(bench: string, values: Record<string, number>): void {
  console.log(`RESULT bench=${bench} ${Object.entries(values).map(([k, v]) => `${k}=${fmt(v)}`).join(' ')}`);
}
