/**
 * The record reader discovery consumes spans with: a `SpanBatch` record read into a {@link SpanView} —
 * offsets and numbers in one typed array — instead of span objects.
 *
 * Discovery needs span objects (attribute maps as objects) only for the few spans whose shape it has not
 * seen within the touch interval (shape.ts), and then only with the attribute and resource keys the
 * shape reads; every other span needs its ids, times and a hash of the attribute values the rules read,
 * all of which can be taken from the Avro bytes directly. Building span objects for every span was the
 * largest part of discovery's per-span cost (UTF-8 decoding of every key and value, and the garbage of
 * ~40 objects per span).
 *
 * {@link spanBatchView} validates the whole record as avsc's decoder would, with readers compiled from
 * the writer schema (common/avro/reader.ts), so a record that would not decode still goes to the
 * dead-letter topic, and reading a span later from its offsets cannot fail. A record written with an
 * older registered version is resolved to the newest schema once (decode + re-encode) and then read the
 * same way. What the view captures of each span is discovery's projection (fields.ts `SPAN_FIELDS`), at
 * the slots of {@link FIELD_SLOTS}.
 */
import { Codec, checkSingleObjectHeader, HEADER_BYTES, readBlockCount, readLong, readResult, SchemaRegistry, type AvroType, type ReadResult, type SchemaEntry } from '../common/avro/index.ts';
import { compileRecordReader, compileSkipper, type FieldCapture, type Skip, type SlotReader } from '../common/avro/reader.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError } from '../common/errors.ts';
import type { Decoder } from '../common/bus/index.ts';
import type { AttributeValue } from '../common/records.ts';
import { SPAN_FIELDS, SPAN_FIELD_NAMES, type DiscoverySpan, type SpanField } from './fields.ts';
import type { Hasher } from './hash.ts';

/** How errors name what is being read. */
const WHAT = 'SpanBatch body';

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Slots of one span in {@link SpanView.slots}: positions (`*_AT`, `*_LEN`) and numbers. */
export const Slot = {
  BIZ: 0,
  KIND: 1,
  START_TIME: 2,
  END_TIME: 3,
  ELAPSED: 4,
  APP_AT: 5,
  APP_LEN: 6,
  TRACE_AT: 7,
  TRACE_LEN: 8,
  SPAN_AT: 9,
  SPAN_LEN: 10,
  PARENT_AT: 11,
  PARENT_LEN: 12,
  NAME_AT: 13,
  NAME_LEN: 14,
  ATTRIBUTES_AT: 15,
  RESOURCE_AT: 16,
} as const;
export type Slot = (typeof Slot)[keyof typeof Slot];
const STRIDE = 17;
const EMPTY_SLOTS: Float64Array = new Float64Array(0);

/**
 * Where the view keeps each field discovery reads (fields.ts `SPAN_FIELDS`): a number's value, a
 * string's position (its length in the next slot), a map's position.
 */
export const FIELD_SLOTS: { readonly [F in SpanField]: Slot } = {
  bk_biz_id: Slot.BIZ,
  app_name: Slot.APP_AT,
  trace_id: Slot.TRACE_AT,
  span_id: Slot.SPAN_AT,
  parent_span_id: Slot.PARENT_AT,
  span_name: Slot.NAME_AT,
  kind: Slot.KIND,
  start_time: Slot.START_TIME,
  end_time: Slot.END_TIME,
  elapsed_time: Slot.ELAPSED,
  attributes: Slot.ATTRIBUTES_AT,
  resource: Slot.RESOURCE_AT,
};

/** A SpanBatch record read to positions: span `i`'s slots are `slots[i * STRIDE + slot]`. */
export class SpanView {
  readonly buf: Buffer;
  readonly count: number;
  readonly slots: Float64Array;
  /** Each span's app name (consecutive spans of one app share the string). */
  /** Span `i`'s app name at `apps[i]`, for `i < count` (a reused list may hold stale names past `count`). */
  readonly apps: readonly string[];
  /** Skips one attribute value (the `attributes`/`resource` map value union). */
  readonly skipValue: Skip;
  /** Set by {@link release}: the slots and apps are another view's from then on. */
  #released = false;
  /** Where this view's bounded reads put their results (its reader's, reused: reads are synchronous). */
  readonly read: ReadResult;
  readonly #reader: SpanReader;

  constructor(buf: Buffer, count: number, slots: Float64Array, apps: string[], reader: SpanReader) {
    this.buf = buf;
    this.count = count;
    this.slots = slots;
    this.apps = apps;
    this.skipValue = reader.skipValue;
    this.read = reader.result;
    this.#reader = reader;
  }

  /**
   * Gives the view's slots and app list back to its reader for the next record (no typed array is then
   * allocated per record). The view must not be read afterwards; the pipeline calls this once a batch's
   * spans are processed. Idempotent.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#reader.recycle(this.slots, this.apps as string[]);
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

  /** Hashes a string field's bytes into `h` (seed 0); the id's key is then `h.a`, `h.b`. */
  hashId(i: number, at: Slot, h: Hasher): void {
    const s = this.slots;
    const start = s[i * STRIDE + at] as number;
    h.begin(0);
    h.bytes(this.buf, start, start + (s[i * STRIDE + at + 1] as number));
  }

  /** A string field decoded as UTF-8 (as avsc decodes it). */
  text(i: number, at: Slot): string {
    const start = this.at(i, at);
    return this.buf.toString('utf8', start, start + this.at(i, at + 1));
  }

  /**
   * Span `i` with only the attribute and resource entries whose keys `attributes` / `resource` know —
   * all that discovery reads under a rule set (shape.ts) — decoding nothing else.
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
    const { buf, skipValue, read } = this;
    const out: DiscoverySpan['attributes'] = {};
    for (;;) {
      pos = readBlockCount(buf, pos, read, WHAT);
      let n = read.value;
      if (n === 0) return out;
      while (n-- > 0) {
        pos = readLong(buf, pos, read, WHAT);
        const k = keys.find(buf, pos, read.value);
        const at = pos + read.value;
        pos = skipValue(buf, at);
        if (k >= 0) out[keys.name(k)] = this.#reader.decodeValue(buf, at);
      }
    }
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
 * Hashes into `h` the entries of the map at `pos` of a view whose key `keys` knows: the key's index,
 * then the value's encoded bytes (union branch included); returns the position after the map. The view
 * was validated when read.
 */
export function hashMapEntries(view: SpanView, pos: number, keys: KeyFinder, h: Hasher): number {
  const { buf, skipValue, read } = view;
  for (;;) {
    pos = readBlockCount(buf, pos, read, WHAT);
    let n = read.value;
    if (n === 0) return pos;
    while (n-- > 0) {
      pos = readLong(buf, pos, read, WHAT);
      const at = pos;
      const length = read.value;
      pos += length;
      const end = skipValue(buf, pos);
      const k = keys.find(buf, at, length);
      if (k >= 0) {
        h.num(k);
        h.bytes(buf, pos, end);
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

/** Released slot arrays kept for reuse (a consumer holds a few batches of ~40 records at a time). */
const POOL_MAX = 256;

function sameBytes(buf: Buffer, a: number, b: number, length: number): boolean {
  for (let j = 0; j < length; j++) if (buf[a + j] !== buf[b + j]) return false;
  return true;
}

/** Reads the newest SpanBatch version's body into views. */
class SpanReader {
  readonly skipValue: Skip;
  /** The result object of this reader's bounded reads and of its views' (one consumer reads synchronously). */
  readonly result: ReadResult = readResult();
  readonly #readSpan: SlotReader;
  readonly #before: Skip[];
  readonly #after: Skip[];
  readonly #valueType: AvroType;
  /** Union branches of the attribute value decoded here without avsc (-1 when the union has none). */
  readonly #nullBranch: number;
  readonly #booleanBranch: number;
  readonly #stringBranch: number;
  /** Slots and app lists of released views, reused by the next records (every slot is written per span). */
  readonly #slotsPool: Float64Array[] = [];
  readonly #appsPool: string[][] = [];

  constructor(writer: SchemaEntry) {
    const batch = writer.type as AvroType & { fields: { name: string; type: AvroType & { itemsType?: AvroType } }[] };
    const at = batch.fields.findIndex((f) => f.name === 'spans');
    const spansField = batch.fields[at];
    const spanType = spansField?.type.itemsType as (AvroType & { fields: { name: string; type: AvroType }[] }) | undefined;
    if (!spanType) throw new TypeError(`${writer.file}: SpanBatch has no spans array`);
    this.#before = batch.fields.slice(0, at).map((f) => compileSkipper(f.type, WHAT));
    this.#after = batch.fields.slice(at + 1).map((f) => compileSkipper(f.type, WHAT));
    const captures: Record<string, FieldCapture> = {};
    for (const f of spanType.fields) {
      if (!Object.hasOwn(SPAN_FIELDS, f.name)) continue;
      const expected = SPAN_FIELDS[f.name as SpanField];
      const name = (f.type as AvroType & { typeName: string }).typeName;
      if (name !== expected) throw new TypeError(`${writer.file}: span field ${f.name} is ${name}, discovery reads it as ${expected}`);
      captures[f.name] = { slot: FIELD_SLOTS[f.name as SpanField], kind: name === 'int' || name === 'long' ? 'number' : name === 'string' ? 'bytes' : 'start' };
    }
    const missing = SPAN_FIELD_NAMES.filter((k) => !captures[k]);
    if (missing.length > 0) throw new TypeError(`${writer.file}: span lacks ${missing.join(', ')}`);
    this.#readSpan = compileRecordReader(spanType, captures, WHAT);
    const valuesOf = (name: string): AvroType => (spanType.fields.find((f) => f.name === name)?.type as AvroType & { valuesType: AvroType }).valuesType;
    this.#valueType = valuesOf('attributes');
    // One skipper and one decoder serve both maps.
    if (JSON.stringify(this.#valueType.schema()) !== JSON.stringify(valuesOf('resource').schema())) {
      throw new TypeError(`${writer.file}: span attributes and resource must have the same value schema for the span reader`);
    }
    this.skipValue = compileSkipper(this.#valueType, WHAT);
    // Plain branches (no logical type) of the value union, read directly: what most attributes are.
    const union = this.#valueType.schema();
    const branches = Array.isArray(union) ? union.map((b) => (typeof b === 'string' ? b : '')) : [];
    this.#nullBranch = branches.indexOf('null');
    this.#booleanBranch = branches.indexOf('boolean');
    this.#stringBranch = branches.indexOf('string');
  }

  read(buf: Buffer, pos: number): SpanView {
    for (const s of this.#before) pos = s(buf, pos);
    const result = this.result;
    let slots: Float64Array = this.#slotsPool.pop() ?? EMPTY_SLOTS;
    // Written by index, never truncated: setting a list's length to 0 would drop its backing store.
    const apps: string[] = this.#appsPool.pop() ?? [];
    let count = 0;
    let appAt = -1;
    let appLen = -1;
    let app = '';
    const readSpan = this.#readSpan;
    for (;;) {
      pos = readBlockCount(buf, pos, result, WHAT);
      let n = result.value;
      if (n === 0) break;
      const end = result.blockEnd;
      // Sized by the block count (writers put all spans in one block), so usually one allocation per
      // record; a count beyond 4 096 spans (which a corrupt record can claim) grows by doubling instead.
      const want = (count + Math.min(n, 4_096)) * STRIDE;
      if (want > slots.length) slots = count === 0 ? new Float64Array(want) : grow(slots, want);
      while (n-- > 0) {
        if ((count + 1) * STRIDE > slots.length) slots = grow(slots, slots.length * 2);
        const base = count * STRIDE;
        pos = readSpan(buf, pos, slots, base);
        // The app name as a string, made again only when its bytes differ from the previous span's.
        const at = slots[base + Slot.APP_AT] as number;
        const len = slots[base + Slot.APP_LEN] as number;
        if (len !== appLen || !sameBytes(buf, appAt, at, len)) {
          app = buf.toString('utf8', at, at + len);
          appAt = at;
          appLen = len;
        }
        apps[count] = app;
        count++;
      }
      if (end !== -1 && pos !== end) throw new CorruptRecordError(`${WHAT}: block size does not match its items`);
    }
    for (const s of this.#after) pos = s(buf, pos);
    if (pos !== buf.length) throw new CorruptRecordError(`${WHAT}: ${buf.length - pos} trailing bytes`);
    return new SpanView(buf, count, slots, apps, this);
  }

  /** Takes back a released view's arrays. */
  recycle(slots: Float64Array, apps: string[]): void {
    if (this.#slotsPool.length < POOL_MAX && slots.length > 0) this.#slotsPool.push(slots);
    if (this.#appsPool.length < POOL_MAX) this.#appsPool.push(apps);
  }

  /**
   * The attribute value at `pos` (a value of the `attributes`/`resource` maps; the record was validated
   * when read). Null, boolean and string values are read here (as avsc reads them, without its tap and
   * result objects); other branches (numbers with their logical types, bytes, arrays) through avsc.
   * Overwrites {@link result} (callers read it before calling).
   */
  decodeValue(buf: Buffer, pos: number): AttributeValue {
    const read = this.result;
    const at = readLong(buf, pos, read, WHAT);
    const branch = read.value;
    if (branch === this.#stringBranch) {
      const start = readLong(buf, at, read, WHAT);
      return buf.toString('utf8', start, start + read.value);
    }
    if (branch === this.#nullBranch) return null;
    if (branch === this.#booleanBranch) return buf[at] !== 0;
    return this.#valueType.decode(buf, pos).value as AttributeValue;
  }
}

/**
 * The decoder discovery's span consumers use: single-object SpanBatch records of any registered version
 * into {@link SpanView}s; anything that would not decode throws (the bus dead-letters it).
 */
export function spanBatchView(registry: SchemaRegistry = SchemaRegistry.load()): Decoder<SpanView> {
  const latest = registry.get('SpanBatch');
  const reader = new SpanReader(latest);
  // Older versions: resolved to the newest by avsc, re-encoded, then read like any other record.
  const full = new Codec<unknown>('SpanBatch', { registry });
  const resolve = (buf: Buffer): Buffer => full.encode(full.decode(buf));
  return {
    decode(buf: Buffer): SpanView {
      checkSingleObjectHeader(buf);
      const writer = registry.byHeader(buf);
      if (!writer) throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
      if (writer.name !== 'SpanBatch') throw new SchemaMismatchError(`${writer.name} v${writer.version} cannot be read as SpanBatch`);
      return reader.read(writer === latest ? buf : resolve(buf), HEADER_BYTES);
    },
  };
}
