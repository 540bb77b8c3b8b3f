/**
 * The record reader discovery consumes spans with: a `SpanBatch` record read into a {@link SpanView} —
 * offsets and numbers in one typed array — instead of span objects.
 *
 * Discovery needs the full span (attribute maps as objects) only for the few spans whose shape it has not
 * seen within the touch interval (shape.ts); every other span needs its ids, times and a hash of the
 * attribute values the rules read, all of which can be taken from the Avro bytes directly. Building span
 * objects for every span was the largest part of discovery's per-span cost (UTF-8 decoding of every
 * key and value, and the garbage of ~40 objects per span).
 *
 * {@link spanBatchView} validates the whole record as avsc's decoder would (union branches, lengths,
 * block counts, no truncation, no trailing bytes), so a record that would not decode still goes to the
 * dead-letter topic, and reading a span later from its offsets cannot fail. A record written with an
 * older registered version is resolved to the newest schema once (decode + re-encode) and then read the
 * same way; {@link SpanView.span} decodes one span into the discovery projection (span-codec.ts).
 */
import { Codec, HEADER_BYTES, SchemaRegistry, type AvroResolver, type AvroType, type SchemaEntry } from '../common/avro/index.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError } from '../common/errors.ts';
import type { Decoder } from '../common/bus/index.ts';
import type { AttributeValue } from '../common/records.ts';
import type { DiscoverySpan } from './fields.ts';
import * as hash from './hash.ts';
import { spanProjection } from './span-codec.ts';

// ---------------------------------------------------------------------------------------------------------
// Bounds-checked Avro binary primitives. Results come back through module state (no allocation).

/** The value read by the last {@link readLong}. */
let value = 0;
/** Where the block whose count {@link readBlockCount} read last ends, if the writer said (else -1). */
let blockEnd = -1;

function corrupt(what: string): never {
  throw new CorruptRecordError(`SpanBatch body: ${what}`);
}

/** Reads a zig-zag varint at `pos` into {@link value}; returns the position after it. */
function readLong(buf: Buffer, pos: number): number {
  const len = buf.length;
  if (pos >= len) corrupt('truncated');
  let b = buf[pos++] as number;
  let n = b & 0x7f;
  if (b >= 0x80) {
    let k = 128;
    let i = 1;
    do {
      if (pos >= len) corrupt('truncated');
      if (++i > 10) corrupt('varint longer than 10 bytes');
      b = buf[pos++] as number;
      n += (b & 0x7f) * k;
      k *= 128;
    } while (b >= 0x80);
  }
  value = n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  return pos;
}

/**
 * A block count of an array or map at `pos` into {@link value} (0 ends the value); a negative count's
 * byte size is skipped. Every item of our schemas takes at least one byte, so a count larger than the
 * bytes left is corruption (as in codec.ts's bounded reads).
 */
function readBlockCount(buf: Buffer, pos: number): number {
  pos = readLong(buf, pos);
  let n = value;
  blockEnd = -1;
  if (n < 0) {
    n = -n;
    pos = readLong(buf, pos);
    if (value < 0) corrupt(`negative block size ${value}`);
    blockEnd = pos + value;
  }
  if (n > buf.length - pos) corrupt(`block count ${n} exceeds the ${buf.length - pos} bytes left`);
  value = n;
  return pos;
}

// ---------------------------------------------------------------------------------------------------------
// Readers compiled from a writer schema

/** Returns the position after one value of a type. */
export type Skip = (buf: Buffer, pos: number) => number;

type SchemaType = AvroType & {
  typeName: string;
  name?: string;
  underlyingType?: SchemaType;
  fields?: { name: string; type: SchemaType }[];
  itemsType?: SchemaType;
  valuesType?: SchemaType;
  types?: SchemaType[];
  size?: number;
  symbols?: string[];
};

/** What a compiled span reader stores of a top-level span field. */
interface Capture {
  slot: number;
  kind: 'number' | 'string' | 'map';
}

/**
 * Emits straight-line JavaScript that moves `pos` over one value of a type, validating what avsc's
 * decoder validates (plus: no negative lengths, no block count larger than the bytes left, no varint
 * longer than 10 bytes). Like avsc's own generated readers, this avoids a call per value; a varint reads
 * its bytes first and checks the bounds once (a byte past the end reads as `undefined`, which ends it).
 */
class ReaderSource {
  readonly #lines: string[] = [];
  #depth = 0;
  readonly #records: string[] = [];

  get text(): string {
    return this.#lines.join('\n');
  }

  #emit(line: string): void {
    this.#lines.push(line);
  }

  /** A zig-zag varint into the variable `to`. */
  varint(to: string): void {
    this.#emit(`b = buf[pos++]; ${to} = b & 127;`);
    this.#emit(`if (b > 127) { k = 128; i = 1; do { b = buf[pos++]; ${to} += (b & 127) * k; k *= 128; } while (b > 127 && ++i < 10); if (b > 127) corrupt('varint longer than 10 bytes'); }`);
    this.#emit(`if (pos > len) corrupt('truncated');`);
    this.#emit(`${to} = ${to} % 2 === 0 ? ${to} / 2 : -(${to} + 1) / 2;`);
  }

  /** avsc rejects `long` values a double cannot hold exactly ("potential precision loss"). */
  #safe(v: string): void {
    this.#emit(`if (!(${v} >= -9007199254740990 && ${v} <= 9007199254740990)) corrupt('long value out of the safe integer range');`);
  }

  /** A length-prefixed string/bytes; `at` captures its position and length. */
  #bytes(at?: number): void {
    this.varint('v');
    this.#emit(`if (v < 0) corrupt('negative length ' + v);`);
    if (at !== undefined) this.#emit(`slots[base + ${at}] = pos; slots[base + ${at + 1}] = v;`);
    this.#emit(`pos += v; if (pos > len) corrupt('truncated');`);
  }

  #fixed(size: number): void {
    this.#emit(`pos += ${size}; if (pos > len) corrupt('truncated');`);
  }

  /** Blocks of an array or map: `item` emits one item. */
  #blocks(item: () => void): void {
    const c = `c${this.#depth++}`;
    if (this.#depth >= 8) throw new TypeError('Avro arrays and maps nested deeper than 8 are not supported by the span reader');
    this.#emit(`for (;;) {`);
    this.varint(c);
    this.#emit(`if (${c} === 0) break;`);
    // A negative count is followed by the block's byte size: it must be the items' size (avsc's reader
    // ignores it, its skipper trusts it, so a wrong one would make the two disagree).
    const e = `e${this.#depth - 1}`;
    this.#emit(`${e} = -1;`);
    this.#emit(`if (${c} < 0) { ${c} = -${c};`);
    this.varint('v');
    this.#emit(`if (v < 0) corrupt('negative block size ' + v); ${e} = pos + v; }`);
    this.#emit(`if (${c} > len - pos) corrupt('block count ' + ${c} + ' exceeds the ' + (len - pos) + ' bytes left');`);
    this.#emit(`while (${c}-- > 0) {`);
    item();
    this.#emit(`}`);
    this.#emit(`if (${e} !== -1 && pos !== ${e}) corrupt('block size does not match its items');`);
    this.#emit(`}`);
    this.#depth--;
  }

  /** One value of `type`; `capture` stores a top-level span field. */
  value(type: SchemaType, capture?: Capture): void {
    const t = type.underlyingType ?? type;
    if (capture?.kind === 'string') return this.#bytes(capture.slot);
    if (capture?.kind === 'map') this.#emit(`slots[base + ${capture.slot}] = pos;`);
    switch (t.typeName) {
      case 'null':
        return;
      case 'boolean':
        return this.#fixed(1);
      case 'int':
      case 'long':
        this.varint('v');
        if (t.typeName === 'long') this.#safe('v');
        if (capture) this.#emit(`slots[base + ${capture.slot}] = v;`);
        return;
      case 'float':
        return this.#fixed(4);
      case 'double':
        return this.#fixed(8);
      case 'fixed':
        return this.#fixed(t.size as number);
      case 'string':
      case 'bytes':
        return this.#bytes();
      case 'enum':
        this.varint('v');
        this.#emit(`if (!(v >= 0 && v < ${(t.symbols as string[]).length})) corrupt('enum index ' + v + ' out of range');`);
        return;
      case 'array':
        return this.#blocks(() => this.value(t.itemsType as SchemaType));
      case 'map':
        return this.#blocks(() => {
          this.#bytes();
          this.value(t.valuesType as SchemaType);
        });
      case 'record':
      case 'error': {
        const name = t.name ?? '';
        if (this.#records.includes(name)) throw new TypeError(`recursive Avro type ${name} is not supported by the span reader`);
        this.#records.push(name);
        for (const f of t.fields ?? []) this.value(f.type);
        this.#records.pop();
        return;
      }
      default: {
        if (!t.typeName.startsWith('union')) throw new TypeError(`no reader for Avro type ${t.typeName}`);
        this.varint('v');
        this.#emit(`switch (v) {`);
        (t.types as SchemaType[]).forEach((branch, i) => {
          this.#emit(`case ${i}: {`);
          this.value(branch);
          this.#emit(`break; }`);
        });
        this.#emit(`default: corrupt('union branch ' + v + ' out of range');`);
        this.#emit(`}`);
      }
    }
  }

  /** Compiles the emitted lines into `(buf, pos, slots, base) => pos`. */
  compile(name: string): (buf: Buffer, pos: number, slots: Float64Array, base: number) => number {
    const counters = Array.from({ length: 8 }, (_, i) => `c${i} = 0, e${i} = 0`).join(', ');
    const body = `return function ${name}(buf, pos, slots, base) {\nconst len = buf.length;\nlet b = 0, k = 0, i = 0, v = 0, ${counters};\n${this.text}\nreturn pos;\n};`;
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from a schema, as avsc does
    const make = new Function('corrupt', body) as (fail: typeof corrupt) => (buf: Buffer, pos: number, slots: Float64Array, base: number) => number;
    return make(corrupt);
  }
}

/** A compiled skipper for one value of a type. */
function skipperFor(type: AvroType): Skip {
  const src = new ReaderSource();
  src.value(type);
  const read = src.compile('skip');
  const none = new Float64Array(0);
  return (buf, pos) => read(buf, pos, none, 0);
}

/** A compiled reader of one span record, storing the captured fields into a view's slots. */
function spanReaderFor(span: SchemaType, captures: Record<string, Capture>): (buf: Buffer, pos: number, slots: Float64Array, base: number) => number {
  const src = new ReaderSource();
  for (const f of span.fields ?? []) src.value(f.type, captures[f.name]);
  return src.compile('readSpan');
}

// ---------------------------------------------------------------------------------------------------------
// The view

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Slots of one span in {@link SpanView.slots}: positions (`*_AT`, `*_LEN`) and numbers. */
export const Slot = {
  START_AT: 0,
  BIZ: 1,
  KIND: 2,
  START_TIME: 3,
  END_TIME: 4,
  ELAPSED: 5,
  APP_AT: 6,
  APP_LEN: 7,
  TRACE_AT: 8,
  TRACE_LEN: 9,
  SPAN_AT: 10,
  SPAN_LEN: 11,
  PARENT_AT: 12,
  PARENT_LEN: 13,
  NAME_AT: 14,
  NAME_LEN: 15,
  ATTRIBUTES_AT: 16,
  RESOURCE_AT: 17,
} as const;
export type Slot = (typeof Slot)[keyof typeof Slot];
const STRIDE = 18;
const EMPTY_SLOTS: Float64Array = new Float64Array(0);

/** Span fields the view reads, with the Avro type each must have in the writer schema. */
const CAPTURED: Record<string, { type: string; slot: Slot }> = {
  bk_biz_id: { type: 'long', slot: Slot.BIZ },
  kind: { type: 'int', slot: Slot.KIND },
  start_time: { type: 'long', slot: Slot.START_TIME },
  end_time: { type: 'long', slot: Slot.END_TIME },
  elapsed_time: { type: 'long', slot: Slot.ELAPSED },
  app_name: { type: 'string', slot: Slot.APP_AT },
  trace_id: { type: 'string', slot: Slot.TRACE_AT },
  span_id: { type: 'string', slot: Slot.SPAN_AT },
  parent_span_id: { type: 'string', slot: Slot.PARENT_AT },
  span_name: { type: 'string', slot: Slot.NAME_AT },
  attributes: { type: 'map', slot: Slot.ATTRIBUTES_AT },
  resource: { type: 'map', slot: Slot.RESOURCE_AT },
};

/** A SpanBatch record read to positions: span `i`'s slots are `slots[i * STRIDE + slot]`. */
export class SpanView {
  readonly buf: Buffer;
  readonly count: number;
  readonly slots: Float64Array;
  /** Each span's app name (consecutive spans of one app share the string). */
  readonly apps: readonly string[];
  /** Skips one attribute value (the `attributes`/`resource` map value union). */
  readonly skipValue: Skip;
  readonly #reader: SpanReader;

  constructor(buf: Buffer, count: number, slots: Float64Array, apps: string[], reader: SpanReader) {
    this.buf = buf;
    this.count = count;
    this.slots = slots;
    this.apps = apps;
    this.skipValue = reader.skipValue;
    this.#reader = reader;
  }

  /** Slot `slot` (a {@link Slot}, or a string slot + 1 for its length) of span `i`. */
  at(i: number, slot: number): number {
    return this.slots[i * STRIDE + slot] as number;
  }

  /** A string field as a JS string of its bytes read as latin1 (exact and cheap; for ids used as keys). */
  latin1(i: number, at: Slot): string {
    const s = this.slots;
    const start = s[i * STRIDE + at] as number;
    // Buffer's own latin1Slice (what toString('latin1') calls after checking its arguments); on the per-span path.
    return (this.buf as Latin1Buffer).latin1Slice(start, start + (s[i * STRIDE + at + 1] as number));
  }

  /** Hashes a string field's bytes (hash.ts, seed 0); read the id's key with `laneA()`/`laneB()`. */
  hashId(i: number, at: Slot): void {
    const s = this.slots;
    const start = s[i * STRIDE + at] as number;
    hash.begin(0);
    hash.bytes(this.buf, start, start + (s[i * STRIDE + at + 1] as number));
  }

  /** A string field decoded as UTF-8 (as avsc decodes it). */
  text(i: number, at: Slot): string {
    const start = this.at(i, at);
    return this.buf.toString('utf8', start, start + this.at(i, at + 1));
  }

  /**
   * Span `i` with only the attribute and resource entries whose keys the tables know — all that
   * discovery reads under a rule set (shape.ts) — decoding nothing else.
   */
  spanReading(i: number, attributes: KeyNames, resource: KeyNames): DiscoverySpan {
    return {
      bk_biz_id: this.at(i, Slot.BIZ),
      app_name: this.apps[i] as string,
      trace_id: this.text(i, Slot.TRACE_AT),
      span_id: this.text(i, Slot.SPAN_AT),
      parent_span_id: this.text(i, Slot.PARENT_AT),
      span_name: this.text(i, Slot.NAME_AT),
      kind: this.at(i, Slot.KIND),
      start_time: this.at(i, Slot.START_TIME),
      end_time: this.at(i, Slot.END_TIME),
      elapsed_time: this.at(i, Slot.ELAPSED),
      attributes: this.#entries(this.at(i, Slot.ATTRIBUTES_AT), attributes),
      resource: this.#entries(this.at(i, Slot.RESOURCE_AT), resource),
    };
  }

  #entries(pos: number, keys: KeyNames): DiscoverySpan['attributes'] {
    const { buf, skipValue } = this;
    const out: DiscoverySpan['attributes'] = {};
    for (;;) {
      pos = readBlockCount(buf, pos);
      let n = value;
      if (n === 0) return out;
      while (n-- > 0) {
        pos = readLong(buf, pos);
        const k = keys.find(buf, pos, value);
        const at = pos + value;
        pos = skipValue(buf, at);
        if (k >= 0) out[keys.name(k)] = this.#reader.decodeValue(buf, at);
      }
    }
  }

  /** Span `i` decoded into the discovery projection. */
  span(i: number): DiscoverySpan {
    return this.#reader.decodeSpan(this.buf, this.at(i, Slot.START_AT));
  }

  /** Every span decoded (tests, and callers that want objects). */
  spans(): DiscoverySpan[] {
    return Array.from({ length: this.count }, (_, i) => this.span(i));
  }
}

/** Finds a map key by its bytes (shape.ts's KeyTable). */
export interface KeyFinder {
  find(buf: Buffer, at: number, length: number): number;
}

/** A {@link KeyFinder} that also names its keys. */
export interface KeyNames extends KeyFinder {
  name(index: number): string;
}

/**
 * Hashes the entries of the map at `pos` of a view whose key `keys` knows: the key's index, then the
 * value's encoded bytes (union branch included). The view was validated when read.
 */
export function hashMapEntries(view: SpanView, pos: number, keys: KeyFinder): void {
  const { buf, skipValue } = view;
  for (;;) {
    pos = readBlockCount(buf, pos);
    let n = value;
    if (n === 0) return;
    while (n-- > 0) {
      pos = readLong(buf, pos);
      const at = pos;
      const length = value;
      pos += length;
      const end = skipValue(buf, pos);
      const k = keys.find(buf, at, length);
      if (k >= 0) {
        hash.num(k);
        hash.bytes(buf, pos, end);
      }
      pos = end;
    }
  }
}

function grow(slots: Float64Array, length: number): Float64Array {
  const grown = new Float64Array(length);
  grown.set(slots);
  return grown;
}

function sameBytes(buf: Buffer, a: number, b: number, length: number): boolean {
  for (let j = 0; j < length; j++) if (buf[a + j] !== buf[b + j]) return false;
  return true;
}

/** Reads the newest SpanBatch version's body into views. */
class SpanReader {
  readonly skipValue: Skip;
  readonly #readSpan: (buf: Buffer, pos: number, slots: Float64Array, base: number) => number;
  readonly #before: Skip[];
  readonly #after: Skip[];
  readonly #spanType: AvroType;
  readonly #resolver: AvroResolver;
  readonly #valueType: AvroType;

  constructor(writer: SchemaEntry, projection: AvroType) {
    const batch = writer.type as AvroType & { fields: { name: string; type: AvroType & { itemsType?: AvroType } }[] };
    const at = batch.fields.findIndex((f) => f.name === 'spans');
    const spansField = batch.fields[at];
    const spanType = spansField?.type.itemsType as (AvroType & { fields: { name: string; type: AvroType }[] }) | undefined;
    if (!spanType) throw new TypeError(`${writer.file}: SpanBatch has no spans array`);
    this.#before = batch.fields.slice(0, at).map((f) => skipperFor(f.type));
    this.#after = batch.fields.slice(at + 1).map((f) => skipperFor(f.type));
    const captures: Record<string, Capture> = {};
    for (const f of spanType.fields) {
      const captured = CAPTURED[f.name];
      if (!captured) continue;
      const name = (f.type as AvroType & { typeName: string }).typeName;
      if (name !== captured.type) throw new TypeError(`${writer.file}: span field ${f.name} is ${name}, discovery reads it as ${captured.type}`);
      captures[f.name] = { slot: captured.slot, kind: name === 'int' || name === 'long' ? 'number' : (name as 'string' | 'map') };
    }
    const missing = Object.keys(CAPTURED).filter((k) => !captures[k]);
    if (missing.length > 0) throw new TypeError(`${writer.file}: span lacks ${missing.join(', ')}`);
    this.#readSpan = spanReaderFor(spanType, captures);
    const valuesOf = (name: string): AvroType => (spanType.fields.find((f) => f.name === name)?.type as AvroType & { valuesType: AvroType }).valuesType;
    this.#valueType = valuesOf('attributes');
    // One skipper and one decoder serve both maps.
    if (JSON.stringify(this.#valueType.schema()) !== JSON.stringify(valuesOf('resource').schema())) {
      throw new TypeError(`${writer.file}: span attributes and resource must have the same value schema for the span reader`);
    }
    this.skipValue = skipperFor(this.#valueType);
    this.#spanType = (projection as AvroType & { field(n: string): { type: { itemsType: AvroType } } }).field('spans').type.itemsType;
    this.#resolver = this.#spanType.createResolver(spanType);
  }

  read(buf: Buffer, pos: number): SpanView {
    for (const s of this.#before) pos = s(buf, pos);
    let slots: Float64Array = EMPTY_SLOTS;
    const apps: string[] = [];
    let count = 0;
    let appAt = -1;
    let appLen = -1;
    let app = '';
    const readSpan = this.#readSpan;
    for (;;) {
      pos = readBlockCount(buf, pos);
      let n = value;
      if (n === 0) break;
      const end = blockEnd;
      // Sized by the block count (writers put all spans in one block), so usually one allocation per
      // record; a count beyond 4 096 spans (which a corrupt record can claim) grows by doubling instead.
      const want = (count + Math.min(n, 4_096)) * STRIDE;
      if (want > slots.length) slots = grow(slots, want);
      while (n-- > 0) {
        if ((count + 1) * STRIDE > slots.length) slots = grow(slots, slots.length * 2);
        const base = count * STRIDE;
        slots[base + Slot.START_AT] = pos;
        pos = readSpan(buf, pos, slots, base);
        // The app name as a string, made again only when its bytes differ from the previous span's.
        const at = slots[base + Slot.APP_AT] as number;
        const len = slots[base + Slot.APP_LEN] as number;
        if (len !== appLen || !sameBytes(buf, appAt, at, len)) {
          app = buf.toString('utf8', at, at + len);
          appAt = at;
          appLen = len;
        }
        apps.push(app);
        count++;
      }
      if (end !== -1 && pos !== end) corrupt('block size does not match its items');
    }
    for (const s of this.#after) pos = s(buf, pos);
    if (pos !== buf.length) corrupt(`${buf.length - pos} trailing bytes`);
    return new SpanView(buf, count, slots, apps, this);
  }

  /** The attribute value at `pos` (a value of the `attributes`/`resource` maps). */
  decodeValue(buf: Buffer, pos: number): AttributeValue {
    return this.#valueType.decode(buf, pos).value as AttributeValue;
  }

  decodeSpan(buf: Buffer, pos: number): DiscoverySpan {
    return this.#spanType.decode(buf, pos, this.#resolver).value as DiscoverySpan;
  }
}

/**
 * The decoder discovery's span consumers use: single-object SpanBatch records of any registered version
 * into {@link SpanView}s; anything that would not decode throws (the bus dead-letters it).
 */
export function spanBatchView(registry: SchemaRegistry = SchemaRegistry.load()): Decoder<SpanView> {
  const latest = registry.get('SpanBatch');
  const reader = new SpanReader(latest, spanProjection(registry));
  // Older versions: resolved to the newest by avsc, re-encoded, then read like any other record.
  const full = new Codec<unknown>('SpanBatch', { registry });
  const resolve = (buf: Buffer): Buffer => full.encode(full.decode(buf));
  return {
    decode(buf: Buffer): SpanView {
      if (buf.length < HEADER_BYTES || buf[0] !== 0xc3 || buf[1] !== 0x01) {
        throw new CorruptRecordError(
          buf.length < HEADER_BYTES ? `record of ${buf.length} bytes is shorter than the single-object header` : 'record lacks the Avro single-object marker C3 01',
        );
      }
      const writer = registry.byHeader(buf);
      if (!writer) throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
      if (writer.name !== 'SpanBatch') throw new SchemaMismatchError(`${writer.name} v${writer.version} cannot be read as SpanBatch`);
      return reader.read(writer === latest ? buf : resolve(buf), HEADER_BYTES);
    },
  };
}
