/**
 * A 53-bit hash of a sequence of values, fed part by part so that no key string is ever built (building
 * and hashing concatenated key strings dominated the per-span cost). Two 32-bit multiplicative lanes
 * (FNV-1a and a murmur-style mix) give 53 bits: with a million keys in a cache the chance that a new key
 * falsely matches one of them is about 1e-10.
 *
 * The hasher keeps its state in module variables: `begin` … `end` must not interleave (they never do,
 * hashing is synchronous).
 */

let a = 0;
let b = 0;

export function begin(seed: number): void {
  a = 0x811c9dc5 ^ seed;
  b = 0x9747b28c ^ Math.imul(seed, 0x5bd1e995);
}

function mix(c: number): void {
  a = Math.imul(a ^ c, 0x01000193);
  b = Math.imul(b ^ c, 0x5bd1e995);
  b ^= b >>> 15;
}

export function str(s: string): void {
  for (let i = 0; i < s.length; i++) mix(s.charCodeAt(i));
  mix(0x10001); // end of part (not a UTF-16 unit, so parts never run together)
}

/** Bytes `[start, end)` of a buffer, four at a time (the length first, so parts never run together). */
export function bytes(buf: Buffer, start: number, end: number): void {
  mix(0x40000 + end - start);
  let i = start;
  for (; i + 4 <= end; i += 4) mix((buf[i] as number) | ((buf[i + 1] as number) << 8) | ((buf[i + 2] as number) << 16) | ((buf[i + 3] as number) << 24));
  for (; i < end; i++) mix(buf[i] as number);
}

export function num(n: number): void {
  if (Number.isInteger(n) && Math.abs(n) < 0x7fffffff) {
    mix(n & 0xffff);
    mix((n >>> 16) | 0x20000);
  } else {
    str(String(n));
  }
  mix(0x10002);
}

/** A value that may be absent or null (absent, null and '' hash differently). */
export function value(v: unknown): void {
  if (v === undefined) mix(0x10003);
  else if (v === null) mix(0x10004);
  else if (typeof v === 'string') str(v);
  else if (typeof v === 'number') num(v);
  else if (typeof v === 'boolean') mix(v ? 0x10005 : 0x10006);
  else str(Buffer.isBuffer(v) ? v.toString('latin1') : JSON.stringify(v));
}

/** The two 32-bit lanes as they are now (a 64-bit key, for tables that compare both; see id-table.ts). */
export function laneA(): number {
  return a;
}

export function laneB(): number {
  return b;
}

export function end(): number {
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}
