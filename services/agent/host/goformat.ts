/**
 * The exact text forms the reference (Go) puts in its documents, so bodies stay byte-compatible with
 * what bkmonitorbeat sends: local/UTC `2006-01-02 15:04:05` stamps, Go's `Z07` zone hours, a
 * `time.Time`'s JSON (RFC 3339 with nanoseconds trimmed), `net.IP.String()`.
 */

/** The local UTC offset in minutes at an instant (east positive), from the process's time zone. */
export function localOffsetMinutes(ms: number): number {
  const off = -new Date(ms).getTimezoneOffset();
  return off === 0 ? 0 : off;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** `2006-01-02 15:04:05` of `ms` shifted by `offsetMin` (0 = UTC). */
export function formatDateTime(ms: number, offsetMin: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000 + offsetMin * 60_000);
  return (
    `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`
  );
}

/**
 * The zone as the reference reports it: `strconv.Atoi(t.Format("Z07"))` — whole hours toward zero
 * (+05:30 → 5), and 0 for UTC (Go prints "Z", which does not parse). Exceptionbeat's `offset / 3600`
 * gives the same numbers.
 */
export function zoneHours(offsetMin: number): number {
  return Math.trunc(offsetMin / 60) + 0;
}

/** A Go `time.Time`'s JSON text (RFC 3339 with trailing zeros of the fraction removed) in the given zone. */
export function goTimeJson(ms: number, offsetMin: number): string {
  const whole = Math.floor(ms / 1000) * 1000;
  const fracMs = ms - whole;
  const d = new Date(whole + offsetMin * 60_000);
  let text =
    `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}T` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
  if (fracMs > 0) text += `.${String(Math.round(fracMs)).padStart(3, '0')}`.replace(/0+$/, '');
  if (offsetMin === 0) return `${text}Z`;
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  return `${text}${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

/** Go's `net.IP.String()` of a 4- or 16-byte address (IPv4-mapped IPv6 prints as dotted quad). */
export function ipString(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return '?';
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (bytes[i] !== 0) mapped = false;
  if (mapped) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  // The longest run of zero groups (at least two; the first of equal runs) becomes "::" (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number): string => g.toString(16);
  if (bestStart < 0) return groups.map(hex).join(':');
  const head = groups.slice(0, bestStart).map(hex).join(':');
  const tail = groups.slice(bestStart + bestLen).map(hex).join(':');
  return `${head}::${tail}`;
}

/** Parses an IPv4 or IPv6 text address into Go's 16-byte form (v4 as v4-mapped), or undefined. */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    for (let i = 0; i < 4; i++) {
      const n = Number(v4[i + 1]);
      if (n > 255) return undefined;
      out[12 + i] = n;
    }
    return out;
  }
  if (!text.includes(':')) return undefined;
  let s = text;
  let tailV4: number[] = [];
  const lastColon = s.lastIndexOf(':');
  const maybeV4 = s.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    const p = parseIp(maybeV4);
    if (!p) return undefined;
    tailV4 = [((p[12] as number) << 8) | (p[13] as number), ((p[14] as number) << 8) | (p[15] as number)];
    s = s.slice(0, lastColon + 1) + '0';
  }
  const parts = s.split('::');
  if (parts.length > 2) return undefined;
  const parseGroups = (p: string): number[] | undefined => {
    if (p === '') return [];
    const out: number[] = [];
    for (const g of p.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(parts[0] as string);
  const tail = parts.length === 2 ? parseGroups(parts[1] as string) : [];
  if (!head || !tail) return undefined;
  if (tailV4.length > 0) {
    (parts.length === 2 ? tail : head).splice(-1, 1, ...tailV4);
  }
  const total = head.length + tail.length;
  if (parts.length === 1 ? total !== 8 : total > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Go's `net.ParseIP(s).String()`: the canonical text of an address, `<nil>` when it does not parse. */
export function canonicalIp(text: string): string {
  const ip = parseIp(text);
  return ip ? ipString(ip) : '<nil>';
}

/** Go's `strings.ToLower` of the first rune (libgse `FirstCharToLower`). */
export function firstCharToLower(s: string): string {
  return s === '' ? s : (s[0] as string).toLowerCase() + s.slice(1);
}

/** Go's `filepath.Base`. */
export function goBase(path: string): string {
  if (path === '') return '.';
  let p = path;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  if (p === '/') return '/';
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}
