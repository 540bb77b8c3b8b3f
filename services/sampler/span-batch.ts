/**
 * SpanBatch records read in place and written back by concatenation (README: How it works).
 *
 * The sampler needs of every span only its application, trace id and span id, and the span's bytes to
 * forward; the rest of the span is read only when conditions are evaluated, and then only the fields they
 * name. {@link spanBatchDecoder} validates a whole record as avsc would (readers compiled from the schema,
 * common/avro/reader.ts), so a record that would not decode goes to the dead-letter topic and reading a
 * span later from its positions cannot fail; a record of an older registered version is resolved to the
 * newest once. {@link SampledBatchWriter} writes the kept spans' bytes, unchanged, into new SpanBatch
 * records of the newest version.
 *
 * A span read as a document (document.ts) has the fields of the reference span document bk-collector
 * writes: `trace_id`, `span_id`, `parent_span_id`, `span_name`, `trace_state` (text), `kind`,
 * `start_time`, `end_time`, `elapsed_time` (numbers), `status` ({code, message}), `attributes` and
 * `resource` (objects keyed by the flat attribute names), `events` and `links` (arrays of objects, which
 * no condition can read a value from, so they are given empty). bkstream's own `bk_biz_id`, `app_name`
 * and `client_ip` are not in the document. Attribute values: text, booleans, numbers, null, arrays;
 * bytes read as base64 text (as Go's encoding/json writes a []byte).
 */
import { Codec, checkSingleObjectHeader, HEADER_BYTES, readBlockCount, readLong, readResult, SchemaRegistry, varintSize, type AvroType, type SchemaEntry } from '../common/avro/index.ts';
import { compileRecordReader, compileSkipper, type FieldCapture, type Skip, type SlotReader } from '../common/avro/reader.ts';
import type { Decoder } from '../common/bus/index.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError } from '../common/errors.ts';
import type { AttributeScalar, AttributeValue } from '../common/records.ts';
import type { DocObject, DocValue } from './document.ts';

const WHAT = 'SpanBatch body';

/** Slots of one span in {@link SpanBatchView.slots}. */
const S = {
  BIZ: 0,
  APP_AT: 1,
  APP_LEN: 2,
  TRACE_AT: 3,
  TRACE_LEN: 4,
  SPAN_AT: 5,
  SPAN_LEN: 6,
  PARENT_AT: 7,
  PARENT_LEN: 8,
  NAME_AT: 9,
  NAME_LEN: 10,
  KIND: 11,
  START_TIME: 12,
  END_TIME: 13,
  ELAPSED: 14,
  STATUS_AT: 15,
  STATE_AT: 16,
  STATE_LEN: 17,
  ATTRIBUTES_AT: 18,
  RESOURCE_AT: 19,
  BEGIN: 20,
  END: 21,
} as const;
const STRIDE = 22;

const SPAN_CAPTURES: Readonly<Record<string, FieldCapture>> = {
  bk_biz_id: { slot: S.BIZ, kind: 'number' },
  app_name: { slot: S.APP_AT, kind: 'bytes' },
  trace_id: { slot: S.TRACE_AT, kind: 'bytes' },
  span_id: { slot: S.SPAN_AT, kind: 'bytes' },
  parent_span_id: { slot: S.PARENT_AT, kind: 'bytes' },
  span_name: { slot: S.NAME_AT, kind: 'bytes' },
  kind: { slot: S.KIND, kind: 'number' },
  start_time: { slot: S.START_TIME, kind: 'number' },
  end_time: { slot: S.END_TIME, kind: 'number' },
  elapsed_time: { slot: S.ELAPSED, kind: 'number' },
  status: { slot: S.STATUS_AT, kind: 'start' },
  trace_state: { slot: S.STATE_AT, kind: 'bytes' },
  attributes: { slot: S.ATTRIBUTES_AT, kind: 'start' },
  resource: { slot: S.RESOURCE_AT, kind: 'start' },
};

/** The top-level fields of the reference document the view answers, and how. */
const TEXT_FIELDS: Readonly<Record<string, number>> = { trace_id: S.TRACE_AT, span_id: S.SPAN_AT, parent_span_id: S.PARENT_AT, span_name: S.NAME_AT, trace_state: S.STATE_AT };
const NUMBER_FIELDS: Readonly<Record<string, number>> = { kind: S.KIND, start_time: S.START_TIME, end_time: S.END_TIME, elapsed_time: S.ELAPSED };
const NO_ITEMS: readonly DocValue[] = Object.freeze([]);

type SchemaType = AvroType & { fields?: { name: string; type: SchemaType }[]; itemsType?: SchemaType; valuesType?: SchemaType };

/** Reads the newest SpanBatch version into views. */
class SpanBatchReader {
  readonly result = readResult();
  readonly #readSpan: SlotReader;
  readonly #readStatus: SlotReader;
  readonly #skipValue: Skip;
  readonly #valueType: AvroType;

  constructor(latest: SchemaEntry) {
    const batch = latest.type as SchemaType;
    const fields = batch.fields ?? [];
    if (fields.length !== 1 || fields[0]?.name !== 'spans') throw new TypeError(`${latest.file}: the sampler writes SpanBatch records of exactly one field, spans`);
    const span = fields[0].type.itemsType;
    if (!span) throw new TypeError(`${latest.file}: SpanBatch.spans is not an array`);
    this.#readSpan = compileRecordReader(span, SPAN_CAPTURES, WHAT);
    const field = (name: string): SchemaType => {
      const f = span.fields?.find((x) => x.name === name);
      if (!f) throw new TypeError(`${latest.file}: span has no ${name}`);
      return f.type;
    };
    this.#readStatus = compileRecordReader(field('status'), { code: { slot: 0, kind: 'number' }, message: { slot: 1, kind: 'bytes' } }, WHAT);
    this.#valueType = field('attributes').valuesType as AvroType;
    if (JSON.stringify(this.#valueType.schema()) !== JSON.stringify((field('resource').valuesType as AvroType).schema())) {
      throw new TypeError(`${latest.file}: span attributes and resource must share their value schema`);
    }
    this.#skipValue = compileSkipper(this.#valueType, WHAT);
  }

  read(buf: Buffer, pos: number): SpanBatchView {
    const r = this.result;
    let slots = new Float64Array(0);
    let count = 0;
    for (;;) {
      pos = readBlockCount(buf, pos, r, WHAT);
      let n = r.value;
      if (n === 0) break;
      const blockEnd = r.blockEnd;
      if ((count + n) * STRIDE > slots.length) {
        const grown = new Float64Array((count + Math.min(n, 4_096)) * STRIDE);
        grown.set(slots);
        slots = grown;
      }
      while (n-- > 0) {
        if ((count + 1) * STRIDE > slots.length) {
          const grown = new Float64Array(slots.length * 2);
          grown.set(slots);
          slots = grown;
        }
        const base = count * STRIDE;
        slots[base + S.BEGIN] = pos;
        pos = this.#readSpan(buf, pos, slots, base);
        slots[base + S.END] = pos;
        count++;
      }
      if (blockEnd !== -1 && pos !== blockEnd) throw new CorruptRecordError(`${WHAT}: block size does not match its items`);
    }
    if (pos !== buf.length) throw new CorruptRecordError(`${WHAT}: ${buf.length - pos} trailing bytes`);
    return new SpanBatchView(buf, count, slots, this);
  }

  status(buf: Buffer, pos: number): { code: number; message: string } {
    const slots = new Float64Array(3);
    this.#readStatus(buf, pos, slots, 0);
    return { code: slots[0] as number, message: buf.toString('utf8', slots[1], (slots[1] as number) + (slots[2] as number)) };
  }

  /** The value of `key` in the map at `pos`, or undefined. */
  mapValue(buf: Buffer, pos: number, key: Buffer): AttributeValue | undefined {
    const r = this.result;
    for (;;) {
      pos = readBlockCount(buf, pos, r, WHAT);
      let n = r.value;
      if (n === 0) return undefined;
      while (n-- > 0) {
        pos = readLong(buf, pos, r, WHAT);
        const len = r.value;
        const at = pos;
        pos += len;
        if (len === key.length && buf.compare(key, 0, len, at, pos) === 0) return this.#valueType.decode(buf, pos).value as AttributeValue;
        pos = this.#skipValue(buf, pos);
      }
    }
  }
}

function scalar(v: AttributeScalar): DocValue {
  return Buffer.isBuffer(v) ? v.toString('base64') : v;
}

function docValueOf(v: AttributeValue): DocValue {
  return Array.isArray(v) ? v.map(scalar) : scalar(v);
}

/** Map keys as bytes, kept for the keys conditions name (few). */
const keyBytes = new Map<string, Buffer>();
function bytesOf(key: string): Buffer {
  let b = keyBytes.get(key);
  if (!b) {
    b = Buffer.from(key, 'utf8');
    if (keyBytes.size < 10_000) keyBytes.set(key, b);
  }
  return b;
}

/** A SpanBatch record read to positions: span `i`'s slots are `slots[i * STRIDE + slot]`. */
export class SpanBatchView {
  readonly buf: Buffer;
  readonly count: number;
  readonly slots: Float64Array;
  readonly #reader: SpanBatchReader;

  constructor(buf: Buffer, count: number, slots: Float64Array, reader: SpanBatchReader) {
    this.buf = buf;
    this.count = count;
    this.slots = slots;
    this.#reader = reader;
  }

  #at(i: number, slot: number): number {
    return this.slots[i * STRIDE + slot] as number;
  }

  #text(i: number, at: number): string {
    const start = this.#at(i, at);
    return this.buf.toString('utf8', start, start + this.#at(i, at + 1));
  }

  bizId(i: number): number {
    return this.#at(i, S.BIZ);
  }

  appName(i: number): string {
    return this.#text(i, S.APP_AT);
  }

  /** Whether span `i` has the same application as span `j` (compares bytes, makes no string). */
  sameApp(i: number, j: number): boolean {
    if (this.#at(i, S.BIZ) !== this.#at(j, S.BIZ)) return false;
    const len = this.#at(i, S.APP_LEN);
    if (len !== this.#at(j, S.APP_LEN)) return false;
    const a = this.#at(i, S.APP_AT);
    const b = this.#at(j, S.APP_AT);
    return this.buf.compare(this.buf, a, a + len, b, b + len) === 0;
  }

  traceId(i: number): string {
    return this.#text(i, S.TRACE_AT);
  }

  /** Start and end of the trace id's bytes (for hashing it to a partition). */
  traceIdRange(i: number): [number, number] {
    const at = this.#at(i, S.TRACE_AT);
    return [at, at + this.#at(i, S.TRACE_LEN)];
  }

  spanId(i: number): string {
    return this.#text(i, S.SPAN_AT);
  }

  /** Span `i`'s Avro bytes (a view of the record). */
  bytes(i: number): Buffer {
    return this.buf.subarray(this.#at(i, S.BEGIN), this.#at(i, S.END));
  }

  /** Span `i` as the reference span document; values are read when asked for. */
  document(i: number): DocObject {
    return {
      kind: 'object',
      get: (field) => {
        const text = TEXT_FIELDS[field];
        if (text !== undefined) return this.#text(i, text);
        const num = NUMBER_FIELDS[field];
        if (num !== undefined) return this.#at(i, num);
        switch (field) {
          case 'status': {
            const s = this.#reader.status(this.buf, this.#at(i, S.STATUS_AT));
            return { kind: 'object', get: (k) => (k === 'code' ? s.code : k === 'message' ? s.message : undefined) };
          }
          case 'attributes':
          case 'resource': {
            const pos = this.#at(i, field === 'attributes' ? S.ATTRIBUTES_AT : S.RESOURCE_AT);
            return {
              kind: 'object',
              get: (key) => {
                const v = this.#reader.mapValue(this.buf, pos, bytesOf(key));
                return v === undefined ? undefined : docValueOf(v);
              },
            };
          }
          case 'events':
          case 'links':
            return NO_ITEMS;
          default:
            return undefined;
        }
      },
    };
  }
}

/**
 * The sampler's decoder: single-object SpanBatch records of any registered version into views of the
 * newest; anything that would not decode throws (the bus dead-letters it).
 */
export function spanBatchDecoder(registry: SchemaRegistry = SchemaRegistry.load()): Decoder<SpanBatchView> {
  const latest = registry.get('SpanBatch');
  const reader = new SpanBatchReader(latest);
  const full = new Codec<unknown>('SpanBatch', { registry });
  return {
    decode(buf: Buffer): SpanBatchView {
      checkSingleObjectHeader(buf);
      const writer = registry.byHeader(buf);
      if (!writer) throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
      if (writer.name !== 'SpanBatch') throw new SchemaMismatchError(`${writer.name} v${writer.version} cannot be read as SpanBatch`);
      return reader.read(writer === latest ? buf : full.encode(full.decode(buf)), HEADER_BYTES);
    },
  };
}

/**
 * Writes spans' Avro bytes (of the newest SpanBatch version) into SpanBatch records of at most
 * `maxRecordBytes` (a single larger span gets a record of its own).
 */
export class SampledBatchWriter {
  readonly #header: Buffer;
  readonly #maxRecordBytes: number;

  constructor(options: { maxRecordBytes: number; registry?: SchemaRegistry }) {
    this.#header = (options.registry ?? SchemaRegistry.load()).get('SpanBatch').header;
    this.#maxRecordBytes = options.maxRecordBytes;
  }

  /** Records holding `spans` in order; `onRecord` gets each record and the index of its first span. */
  write(spans: readonly Buffer[], onRecord: (value: Buffer, first: number) => void): void {
    let first = 0;
    while (first < spans.length) {
      let bytes = HEADER_BYTES + 2;
      let end = first;
      while (end < spans.length) {
        const next = (spans[end] as Buffer).length;
        if (end > first && bytes + next + 10 > this.#maxRecordBytes) break;
        bytes += next;
        end++;
      }
      const n = end - first;
      const out = Buffer.allocUnsafe(bytes + varintSize(n) + 1);
      let pos = this.#header.copy(out, 0);
      pos = writeCount(out, pos, n);
      for (let i = first; i < end; i++) pos += (spans[i] as Buffer).copy(out, pos);
      out[pos++] = 0;
      onRecord(out.subarray(0, pos), first);
      first = end;
    }
  }
}

/** An array block count (zig-zag varint of a non-negative n). */
function writeCount(out: Buffer, pos: number, n: number): number {
  let z = n * 2;
  while (z >= 128) {
    out[pos++] = (z % 128) | 0x80;
    z = Math.floor(z / 128);
  }
  out[pos++] = z;
  return pos;
}
