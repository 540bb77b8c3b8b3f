/** Formatting of times, durations, rates and counts (pure). */

/** µs → `812 µs`, `12.3 ms`, `1.25 s`, `2 m 5 s`. */
export function duration(us: number): string {
  if (!Number.isFinite(us)) return '–';
  if (us < 1_000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1_000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  if (us < 60_000_000) return `${(us / 1_000_000).toFixed(2)} s`;
  const s = Math.round(us / 1_000_000);
  return `${Math.floor(s / 60)} m ${s % 60} s`;
}

/** ms since the epoch → local `YYYY-MM-DD HH:MM:SS`. */
export function dateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** An age in ms → `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** A share in [0, 1] → `2.5 %`. */
export function percent(share: number | null | undefined): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return '–';
  const p = share * 100;
  return `${p === 0 || p >= 10 ? p.toFixed(0) : p.toFixed(1)} %`;
}

/** 1234567 → `1.23 M`. */
export function count(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  if (n < 1_000) return String(Math.round(n));
  if (n < 1_000_000) return `${(n / 1_000).toFixed(n < 10_000 ? 2 : 1)} k`;
  return `${(n / 1_000_000).toFixed(2)} M`;
}

/** Bytes → `1.5 KiB`. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** The time ranges the pages offer, in seconds. */
export const RANGES: readonly { key: string; label: string; seconds: number }[] = [
  { key: '15m', label: 'last 15 min', seconds: 900 },
  { key: '1h', label: 'last hour', seconds: 3_600 },
  { key: '6h', label: 'last 6 h', seconds: 21_600 },
  { key: '24h', label: 'last 24 h', seconds: 86_400 },
  { key: '7d', label: 'last 7 days', seconds: 604_800 },
];

export function rangeSeconds(key: string | null | undefined, fallback = '1h'): number {
  return (RANGES.find((r) => r.key === key) ?? RANGES.find((r) => r.key === fallback) ?? { seconds: 3_600 }).seconds;
}

/** OTLP span kinds as the store keeps them (1 internal … 5 consumer). */
export const SPAN_KINDS: Readonly<Record<number, string>> = { 0: 'unspecified', 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };

/** Any JSON value as display text: strings as they are, null/undefined empty, the rest as JSON. */
export function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}
