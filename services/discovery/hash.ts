/**
 * A 53-bit hash of a sequence of values, fed part by part so that no key string is ever built (building
 * and hashing concatenated key strings dominated the per-span cost). Two 32-bit multiplicative lanes
 * (FNV-1a and a murmur-style mix) give 53 bits: with a million keys in a cache the chance that a new key
 * falsely matches one of them is about 1e-10.
 *
 * A {@link Hasher} is its own result: `begin` … `end` run on one object, which holds the two lanes,
 * and each user keeps one hasher and reuses it for every key (nothing is allocated per key, and no
 * state is shared between users).
 */
export class Hasher {
  /** The first lane (FNV-1a) as it is now; with {@link b}, a 64-bit key for tables that compare both (id-table.ts). */
  a = 0;
  /** The second lane (murmur-style mix) as it is now. */
  b = 0;

  begin(seed: number): void {
    this.a = 0x811c9dc5 ^ seed;
    this.b = 0x9747b28c ^ Math.imul(seed, 0x5bd1e995);
  }

  /** Feeds one 32-bit unit into both lanes (the parts below are made of these). */
  mix(c: number): void {
    this.a = Math.imul(this.a ^ c, 0x01000193);
    let b = Math.imul(this.b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
    this.b = b;
  }

  str(s: string): void {
    for (let i = 0; i < s.length; i++) this.mix(s.charCodeAt(i));
    this.mix(0x10001); // end of part (not a UTF-16 unit, so parts never run together)
  }

  /** Bytes `[start, end)` of a buffer, four at a time (the length first, so parts never run together). */
  bytes(buf: Buffer, start: number, end: number): void {
    this.mix(0x40000 + end - start);
    let i = start;
    for (; i + 4 <= end; i += 4) this.mix((buf[i] as number) | ((buf[i + 1] as number) << 8) | ((buf[i + 2] as number) << 16) | ((buf[i + 3] as number) << 24));
    for (; i < end; i++) this.mix(buf[i] as number);
  }

  num(n: number): void {
    if (Number.isInteger(n) && Math.abs(n) < 0x7fffffff) {
      this.mix(n & 0xffff);
      this.mix((n >>> 16) | 0x20000);
    } else {
      this.str(String(n));
    }
    this.mix(0x10002);
  }

  /** A value that may be absent or null (absent, null and '' hash differently). */
  value(v: unknown): void {
    if (v === undefined) this.mix(0x10003);
    else if (v === null) this.mix(0x10004);
    else if (typeof v === 'string') this.str(v);
    else if (typeof v === 'number') this.num(v);
    else if (typeof v === 'boolean') this.mix(v ? 0x10005 : 0x10006);
    else this.str(Buffer.isBuffer(v) ? v.toString('latin1') : JSON.stringify(v));
  }

  /** The 53-bit hash of everything fed since {@link begin}. */
  end(): number {
    return (this.a >>> 0) * 0x200000 + ((this.b >>> 0) & 0x1fffff);
  }
}
