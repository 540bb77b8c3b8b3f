/**
 * Avro binary primitives shared by every fast path that reads or writes Avro bytes itself (the
 * receiver's span writer, discovery's span view) and by the codec: the single-object header, zig-zag
 * varints (bounded reads; results in a reused object, never module state), block counts, union branch
 * bytes, and a growable writer.
 */
import { CorruptRecordError } from '../errors.ts';

/** The single-object marker. */
export const MAGIC = Buffer.from([0xc3, 0x01]);
/** Marker + 8-byte fingerprint. */
export const HEADER_BYTES = 10;

/** Map key for the 8 fingerprint bytes at `offset` (a latin1 string is the cheapest exact key). */
export function fingerprintKey(buf: Buffer, offset = 2): string {
  return buf.toString('latin1', offset, offset + 8);
}

/** Throws {@link CorruptRecordError} unless `buf` starts with a whole single-object header. */
export function checkSingleObjectHeader(buf: Buffer): void {
  if (buf.length < HEADER_BYTES || buf[0] !== 0xc3 || buf[1] !== 0x01) {
    throw new CorruptRecordError(
      buf.length < HEADER_BYTES ? `record of ${buf.length} bytes is shorter than the single-object header` : 'record lacks the Avro single-object marker C3 01',
    );
  }
}

/** The byte of union branch `index` (its zig-zag varint, for indexes < 64). */
export function unionByte(index: number): number {
  return index << 1;
}

/**
 * The longs avsc round-trips. It writes and reads the zig-zag value in a double: above 2^53 − 2 it
 * refuses ("potential precision loss"), and below −2^52 the zig-zag value (2|n| − 1, odd, ≥ 2^53) is not
 * a double, so the sign or the last bit is lost on the way.
 */
export const AVRO_LONG_MAX = 9_007_199_254_740_990;
export const AVRO_LONG_MIN = -4_503_599_627_370_496;

/** Whether `n` can travel as an Avro long that avsc reads back exactly. */
export function isAvroLong(n: number): boolean {
  return Number.isInteger(n) && n >= AVRO_LONG_MIN && n <= AVRO_LONG_MAX;
}

/** Size of the zig-zag varint of a non-negative length. */
export function varintSize(n: number): number {
  let size = 1;
  let z = n * 2;
  while (z >= 128) {
    z = Math.floor(z / 128);
    size++;
  }
  return size;
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/** Where a bounded read puts its result; one per reader, reused for every read. */
export interface ReadResult {
  /** The long just read (or the block count, for {@link readBlockCount}). */
  value: number;
  /** Where the block whose count was read last ends, if the writer said (else -1). */
  blockEnd: number;
}

export function readResult(): ReadResult {
  return { value: 0, blockEnd: -1 };
}

/** Reads a zig-zag varint at `pos` into `out.value`; returns the position after it. `what` names the record in errors. */
export function readLong(buf: Buffer, pos: number, out: ReadResult, what = 'Avro body'): number {
  const len = buf.length;
  if (pos >= len) throw new CorruptRecordError(`${what}: truncated`);
  let b = buf[pos++] as number;
  let n = b & 0x7f;
  if (b >= 0x80) {
    let k = 128;
    let i = 1;
    do {
      if (pos >= len) throw new CorruptRecordError(`${what}: truncated`);
      if (++i > 10) throw new CorruptRecordError(`${what}: varint longer than 10 bytes`);
      b = buf[pos++] as number;
      n += (b & 0x7f) * k;
      k *= 128;
    } while (b >= 0x80);
  }
  out.value = n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  return pos;
}

/**
 * A block count of an array or map at `pos` into `out.value` (0 ends the value); a negative count's byte
 * size is read into `out.blockEnd`. Every item of our schemas takes at least one byte, so a count larger
 * than the bytes left is corruption.
 */
export function readBlockCount(buf: Buffer, pos: number, out: ReadResult, what = 'Avro body'): number {
  pos = readLong(buf, pos, out, what);
  let n = out.value;
  out.blockEnd = -1;
  if (n < 0) {
    n = -n;
    pos = readLong(buf, pos, out, what);
    if (out.value < 0) throw new CorruptRecordError(`${what}: negative block size ${out.value}`);
    out.blockEnd = pos + out.value;
  }
  if (n > buf.length - pos) throw new CorruptRecordError(`${what}: block count ${n} exceeds the ${buf.length - pos} bytes left`);
  out.value = n;
  return pos;
}

// ---------------------------------------------------------------------------------------------------------
// Writing

const INT30 = 1_073_741_824;

/** A growable buffer of Avro binary values. */
export class AvroWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  reset(): void {
    this.pos = 0;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** An Avro int or long (zig-zag varint) of a safe integer. */
  long(n: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    if (n >= -INT30 && n < INT30) {
      let m = n >= 0 ? n << 1 : (~n << 1) | 1;
      while (m > 0x7f) {
        buf[pos++] = (m & 0x7f) | 0x80;
        m >>>= 7;
      }
      buf[pos++] = m;
    } else {
      let f = n >= 0 ? n * 2 : -n * 2 - 1;
      while (f >= 128) {
        buf[pos++] = (f % 128) | 0x80;
        f = Math.floor(f / 128);
      }
      buf[pos++] = f;
    }
    this.pos = pos;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  double(d: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(d, this.pos);
    this.pos += 8;
  }

  string(s: string): void {
    const len = s.length;
    this.ensure(10 + len * 3);
    const buf = this.buf;
    const start = this.pos;
    if (len < 64) {
      // Short ASCII (ids, keys, names): a JS loop beats the native call.
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[start + 1 + i] = c;
      }
      if (i === len) {
        buf[start] = len << 1;
        this.pos = start + 1 + len;
        return;
      }
    }
    const n = buf.write(s, start + 1, 'utf8');
    if (n < 64) {
      buf[start] = n << 1;
      this.pos = start + 1 + n;
      return;
    }
    const k = varintSize(n);
    buf.copyWithin(start + k, start + 1, start + 1 + n);
    this.pos = start;
    this.long(n);
    this.pos = start + k + n;
  }

  bytes(b: Uint8Array): void {
    this.long(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The bytes written since `from` (a view, valid until the next write). */
  view(from = 0): Buffer {
    return this.buf.subarray(from, this.pos);
  }
}

/** Bytes of the zig-zag varint of `n` (n ≥ 0), for batch headers. */
export function longBytes(n: number): Buffer {
  const w = new AvroWriter(16);
  w.long(n);
  return Buffer.from(w.view());
}
