/**
 * A byte-level line scanner for a fixed set of literals: one pass over a piece of lines (lines separated by
 * `\n` bytes) counts its newlines and finds the lines holding any of the literals, each with the set of
 * literals it holds — the work the keyword task would otherwise do per line with string searches.
 *
 * The scanner is a small WebAssembly module generated for the literals (SIMD, 16 bytes at a time): each
 * block's `\n` bytes are counted from an i8x16 comparison mask; a position is a candidate when it holds some
 * literal's first byte and, `length - 1` bytes on, that literal's last byte; candidates are checked in full
 * (8 bytes at a time against constants) and the newlines and checked candidates of a block are taken in
 * order, so every line holding a literal is reported once with the bits of all literals found on it
 * (`1 << k` for `literals[k]`). Literals are bytes: for UTF-8 text the caller passes their UTF-8 encodings
 * (keyword.ts says why that finds exactly the lines whose decoded text holds them).
 *
 * Memory: scalars at 0 (the newline count), the piece copied to {@link DATA} with zero padding after it,
 * then the line records `[start, end, found]` (end: the line's `\n`, or the piece's end; a trailing `\r`
 * is still in the line). The memory grows with the pieces, to {@link MAX_SCAN_BYTES}.
 */

/** The part of the WebAssembly JavaScript API used here (the project's TypeScript libs do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Readonly<Record<string, unknown>> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Where the piece is copied in the module's memory. */
const DATA = 64;
const PAGE = 65536;
/** The most literals a scanner takes (their bits fit an i32 with room). */
export const MAX_SCAN_LITERALS = 30;
/**
 * The largest piece a scanner takes. Its memory holds the piece and room for a record per possible line
 * (up to 4× the piece with 2-byte literals) and never shrinks: larger pieces (a line over 64 KiB makes
 * one) are left to the caller's other path.
 */
export const MAX_SCAN_BYTES = 256 * 1024;

// ---- a minimal WebAssembly encoder ----

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(value: bigint): number[] {
  const out: number[] = [];
  let n = value;
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items: readonly (readonly number[])[]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, bytes: readonly number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
const name = (s: string): number[] => vec([...Buffer.from(s)].map((b) => [b]));

const I32 = 0x7f;
const V128 = 0x7b;
const VOID = 0x40;
const op = {
  block: [0x02, VOID],
  loop: [0x03, VOID],
  if: [0x04, VOID],
  else: [0x05],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  i32: (n: number) => [0x41, ...sleb(BigInt(n | 0))],
  i64: (n: bigint) => [0x42, ...sleb(BigInt.asIntN(64, n))],
  i32Store: (offset: number) => [0x36, 2, ...uleb(offset)],
  i64Load: (offset: number) => [0x29, 0, ...uleb(offset)],
  eqz: [0x45],
  eq: [0x46],
  leU: [0x4d],
  geU: [0x4f],
  i64Eq: [0x51],
  clz: [0x67],
  ctz: [0x68],
  popcnt: [0x69],
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  and: [0x71],
  or: [0x72],
  shl: [0x74],
  shrU: [0x76],
  i64And: [0x83],
  v128Load: (offset: number) => [0xfd, 0x00, 0, ...uleb(offset)],
  v128Const: (bytes: readonly number[]) => [0xfd, 0x0c, ...bytes],
  splat: [0xfd, 0x0f],
  i8Eq: [0xfd, 0x23],
  v128And: [0xfd, 0x4e],
  v128Or: [0xfd, 0x50],
  bitmask: [0xfd, 0x64],
};

/** The little-endian i64 of `bytes[from, from + 8)` (bytes past the end are 0) and the mask of the bytes in it. */
function chunk(bytes: Uint8Array, from: number): { value: bigint; mask: bigint } {
  let value = 0n;
  let mask = 0n;
  for (let j = 0; j < 8 && from + j < bytes.length; j++) {
    value |= BigInt(bytes[from + j] as number) << BigInt(8 * j);
    mask |= 0xffn << BigInt(8 * j);
  }
  return { value, mask };
}

/**
 * The module with `scan(len, rec) -> records` over `literals`, for a piece of `len` bytes at {@link DATA}
 * (zero padding after it) writing its records at `rec`:
 *
 *     for i = 0; i < len; i += 16
 *       nlm  = bits of the block's bytes equal to '\n'
 *       cand = bits of its positions where some literal k has its first byte, and its last byte k.length - 1 on
 *       if cand == 0 (the common case)
 *         newlines += popcount(nlm); if a line is open: close it at the first newline; lastNl = the last one
 *       else for each set bit of nlm | cand, in order, at p = i + bit
 *         a newline: newlines++; close the open line at p; lastNl = p
 *         a candidate: unless the open line already holds every literal, check each literal at p (within len);
 *           some found: open the line if none is (start lastNl + 1); add their bits to the line's
 *     close the open line at len; store the newlines at 0; return the number of records
 *
 * Closing a line writes its record `[start, end, found]`.
 */
function scanModule(literals: readonly Uint8Array[]): Uint8Array {
  const n = literals.length;
  // locals: params 0 len, 1 rec; i32 2 i, 3 nlm, 4 cand, 5 bits, 6 p, 7 lastNl, 8 open, 9 start, 10 found,
  // 11 nrec, 12 nlc, 13 vb, 14 b, 15 addr; v128 16 v, 17 NL, 18 + 2k first-byte splat, 19 + 2k last-byte splat of literal k
  const [len, rec, i, nlm, cand, bits, p, lastNl, open, start, found, nrec, nlc, vb, b, addr] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  const v = 16;
  const NL = 17;
  const first = (k: number): number => 18 + 2 * k;
  const last = (k: number): number => 19 + 2 * k;
  const all = (1 << n) - 1;
  const splat = (byte: number): number[] => op.v128Const(new Array<number>(16).fill(byte));
  /** Stores the open line's record `[start, end, found]` (`end`: code for the end), counts it, closes the line. */
  const closeRecord = (end: number[]): number[] => [
    ...op.get(rec), ...op.get(nrec), ...op.i32(12), ...op.mul, ...op.add, ...op.set(addr),
    ...op.get(addr), ...op.get(start), ...op.i32Store(0),
    ...op.get(addr), ...end, ...op.i32Store(4),
    ...op.get(addr), ...op.get(found), ...op.i32Store(8),
    ...op.get(nrec), ...op.i32(1), ...op.add, ...op.set(nrec),
    ...op.i32(0), ...op.set(open),
  ];
  /** i32 1 when literal k is at data offset `p` (within `len`). */
  const verify = (k: number): number[] => {
    const bytes = literals[k] as Uint8Array;
    const m = bytes.length;
    const code = [...op.get(p), ...op.i32(m), ...op.add, ...op.get(len), ...op.leU];
    const offsets: number[] = [];
    for (let o = 0; o < m; o += 8) offsets.push(Math.min(o, Math.max(0, m - 8)));
    for (const o of [...new Set(offsets)]) {
      const { value, mask } = chunk(bytes, o);
      code.push(...op.get(p), ...op.i64Load(DATA + o));
      if (mask !== 0xffffffffffffffffn) code.push(...op.i64(mask), ...op.i64And);
      code.push(...op.i64(value), ...op.i64Eq, ...op.and);
    }
    return code;
  };
  const candidates: number[] = [];
  for (let k = 0; k < n; k++) {
    const m = (literals[k] as Uint8Array).length;
    candidates.push(...op.get(v), ...op.get(first(k)), ...op.i8Eq, ...op.get(i), ...op.v128Load(DATA + m - 1), ...op.get(last(k)), ...op.i8Eq, ...op.v128And);
    if (k > 0) candidates.push(...op.v128Or);
  }
  const verifyAll: number[] = [...op.i32(0), ...op.set(vb)];
  for (let k = 0; k < n; k++) verifyAll.push(...op.get(vb), ...verify(k), ...op.i32(k), ...op.shl, ...op.or, ...op.set(vb));
  const body = [
    ...op.i32(10), ...op.splat, ...op.set(NL),
    ...literals.flatMap((l, k) => [...splat(l[0] as number), ...op.set(first(k)), ...splat(l[l.length - 1] as number), ...op.set(last(k))]),
    ...op.i32(-1), ...op.set(lastNl),
    ...op.block,
    ...op.loop, // blocks of 16 bytes
    ...op.get(i), ...op.get(len), ...op.geU, ...op.brIf(1),
    ...op.get(i), ...op.v128Load(DATA), ...op.set(v),
    ...op.get(v), ...op.get(NL), ...op.i8Eq, ...op.bitmask, ...op.set(nlm),
    ...candidates, ...op.bitmask, ...op.set(cand),
    ...op.get(cand), ...op.eqz,
    ...op.if, // no candidate: newlines only
    ...op.get(nlm),
    ...op.if,
    ...op.get(nlc), ...op.get(nlm), ...op.popcnt, ...op.add, ...op.set(nlc),
    ...op.get(open),
    ...op.if,
    ...closeRecord([...op.get(i), ...op.get(nlm), ...op.ctz, ...op.add]),
    ...op.end, // if open
    ...op.get(i), ...op.i32(31), ...op.add, ...op.get(nlm), ...op.clz, ...op.sub, ...op.set(lastNl),
    ...op.end, // if nlm
    ...op.else, // newlines and candidates in order
    ...op.get(nlm), ...op.get(cand), ...op.or, ...op.set(bits),
    ...op.block,
    ...op.loop,
    ...op.get(bits), ...op.eqz, ...op.brIf(1),
    ...op.get(bits), ...op.ctz, ...op.set(b),
    ...op.get(bits), ...op.get(bits), ...op.i32(1), ...op.sub, ...op.and, ...op.set(bits),
    ...op.get(i), ...op.get(b), ...op.add, ...op.set(p),
    ...op.get(nlm), ...op.get(b), ...op.shrU, ...op.i32(1), ...op.and,
    ...op.if, // a newline at p
    ...op.get(nlc), ...op.i32(1), ...op.add, ...op.set(nlc),
    ...op.get(open),
    ...op.if,
    ...closeRecord(op.get(p)),
    ...op.end, // if open
    ...op.get(p), ...op.set(lastNl),
    ...op.else, // a candidate at p: check it unless its line already holds every literal
    ...op.get(open), ...op.get(found), ...op.i32(all), ...op.eq, ...op.and, ...op.eqz,
    ...op.if,
    ...verifyAll,
    ...op.get(vb),
    ...op.if,
    ...op.get(open), ...op.eqz,
    ...op.if,
    ...op.i32(1), ...op.set(open), ...op.get(lastNl), ...op.i32(1), ...op.add, ...op.set(start), ...op.i32(0), ...op.set(found),
    ...op.end, // if not open
    ...op.get(found), ...op.get(vb), ...op.or, ...op.set(found),
    ...op.end, // if vb
    ...op.end, // unless every literal
    ...op.end, // newline or candidate
    ...op.br(0),
    ...op.end, // loop over the block's bits
    ...op.end, // block
    ...op.end, // cand == 0 or not
    ...op.get(i), ...op.i32(16), ...op.add, ...op.set(i),
    ...op.br(0),
    ...op.end, // loop over blocks
    ...op.end, // block
    ...op.get(open),
    ...op.if,
    ...closeRecord(op.get(len)),
    ...op.end,
    ...op.i32(0), ...op.get(nlc), ...op.i32Store(0),
    ...op.get(nrec),
    ...op.end,
  ];
  const locals = vec([[...uleb(14), I32], [...uleb(2 + 2 * n), V128]]);
  const code = [...locals, ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32]]), ...vec([[I32]])]])),
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(7, vec([[...name('scan'), 0x00, 0], [...name('memory'), 0x02, 0]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}

/**
 * The scanner for `literals` (1 to {@link MAX_SCAN_LITERALS} byte strings, none empty, none holding `\n`).
 */
export class LineScanner {
  readonly #scan: (len: number, rec: number) => number;
  readonly #memory: WasmMemory;
  readonly #minLength: number;
  readonly #padding: number;
  #bytes: Uint8Array;
  #ints: Int32Array;
  /** `\n` bytes in the last piece scanned (its lines: one more). */
  newlines = 0;
  /** Where the last scan's records start in {@link records} (an index). */
  at = 0;

  constructor(literals: readonly Uint8Array[]) {
    if (literals.length === 0 || literals.length > MAX_SCAN_LITERALS) throw new Error(`a line scanner takes 1 to ${MAX_SCAN_LITERALS} literals`);
    for (const l of literals) if (l.length === 0 || l.includes(10)) throw new Error('scanner literals are not empty and hold no newline');
    const instance = new wasm.Instance(new wasm.Module(scanModule(literals)));
    this.#scan = instance.exports.scan as (len: number, rec: number) => number;
    this.#memory = instance.exports.memory as WasmMemory;
    this.#minLength = Math.min(...literals.map((l) => l.length));
    // past the piece: the 16-byte block, a literal's last byte from it, an 8-byte check from there
    this.#padding = 32 + Math.max(...literals.map((l) => l.length)) + 8;
    this.#bytes = new Uint8Array(this.#memory.buffer);
    this.#ints = new Int32Array(this.#memory.buffer);
  }

  /** The records `[start, end, found]` of the last scan, from index {@link at}. Valid until the next scan. */
  get records(): Int32Array {
    return this.#ints;
  }

  /**
   * Scans `piece` (lines separated by `\n`): sets {@link newlines}, returns how many lines hold a literal
   * (their records from {@link at} in {@link records}, in order).
   */
  scan(piece: Uint8Array): number {
    const len = piece.length;
    if (len > MAX_SCAN_BYTES) throw new RangeError(`a piece of ${len} bytes is over the scanner's ${MAX_SCAN_BYTES}`);
    const end = DATA + len + this.#padding;
    const rec = (end + 7) & ~7;
    // a line with a record holds a literal and, but the last, a newline
    const need = rec + 12 * (Math.floor((len + 1) / (this.#minLength + 1)) + 1);
    if (need > this.#memory.buffer.byteLength) {
      this.#memory.grow(Math.ceil((need - this.#memory.buffer.byteLength) / PAGE));
      this.#bytes = new Uint8Array(this.#memory.buffer);
      this.#ints = new Int32Array(this.#memory.buffer);
    }
    const bytes = this.#bytes;
    bytes.set(piece, DATA);
    bytes.fill(0, DATA + len, end);
    const records = this.#scan(len, rec);
    this.newlines = this.#ints[0] as number;
    this.at = rec >> 2;
    return records;
  }
}
