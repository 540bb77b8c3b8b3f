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
import { Codec, HEADER_BYTES, SchemaRegistry, type AvroResolver, type AvroType, type SchemaEntry } from '../common/codec.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError } from '../common/errors.ts';
import type { Decoder } from '../common/bus.ts';
import type { AttributeValue } from '../common/records.ts';
import type { DiscoverySpan } from './fields.ts';
import * as hash from './hash.ts';
import { spanProjection } from './span-codec.ts';

// ---------------------------------------------------------------------------------------------------------
// Bounds-checked Avro binary primitives. Results come back through module state (no allocation).

/** The value read by the last {@link readLong}. */
let value = 0;

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
 * {@link readLong} for values of Avro type `long`: like avsc, rejects values a double cannot hold
 * exactly (int values, counts and lengths are read as avsc reads them, unchecked).
 */
function readSafeLong(buf: Buffer, pos: number): number {
  pos = readLong(buf, pos);
  if (!(value >= -9007199254740990 && value <= 9007199254740990)) corrupt('long value out of the safe integer range');
  return pos;
}

/** Position after a length-prefixed string or bytes value at `pos`. */
function skipBytes(buf: Buffer, pos: number): number {
  pos = readLong(buf, pos);
  if (value < 0) corrupt(`negative length ${value}`);
  const end = pos + value;
  if (end > buf.length) corrupt('truncated');
  return end;
}

/**
 * A block count of an array or map at `pos` into {@link value} (0 ends the value); a negative count's
 * byte size is skipped. Every item of our schemas takes at least one byte, so a count larger than the
 * bytes left is corruption (as in codec.ts's bounded reads).
 */
function readBlockCount(buf: Buffer, pos: number): number {
  pos = readLong(buf, pos);
  let n = value;
  if (n < 0) {
    n = -n;
    pos = readLong(buf, pos);
  }
  if (n > buf.length - pos) corrupt(`block count ${n} exceeds the ${buf.length - pos} bytes left`);
  value = n;
  return pos;
}

/** Union branches skipped inline: null, boolean, int, long, double, string/bytes. */
const PRIMITIVE_CODES: Record<string, number> = { null: 0, boolean: 1, int: 2, long: 3, double: 4, string: 5, bytes: 5 };

/** Returns the position after one value of a type. */
export type Skip = (buf: Buffer, pos: number) => number;

/** A skipper for any avsc type (validating exactly what avsc's decoder validates). */
export function skipperFor(type: AvroType): Skip {
  const t = type as AvroType & {
    typeName: string;
    underlyingType?: AvroType;
    fields?: { type: AvroType }[];
    itemsType?: AvroType;
    valuesType?: AvroType;
    types?: AvroType[];
    size?: number;
    symbols?: string[];
  };
  if (t.underlyingType) return skipperFor(t.underlyingType);
  switch (t.typeName) {
    case 'null':
      return (_buf, pos) => pos;
    case 'boolean':
      return (buf, pos) => (pos < buf.length ? pos + 1 : corrupt('truncated'));
    case 'int':
      return readLong;
    case 'long':
      return readSafeLong;
    case 'float':
    case 'double':
    case 'fixed': {
      const size = t.typeName === 'float' ? 4 : t.typeName === 'double' ? 8 : (t.size as number);
      return (buf, pos) => (pos + size <= buf.length ? pos + size : corrupt('truncated'));
    }
    case 'string':
    case 'bytes':
      return skipBytes;
    case 'enum': {
      const n = (t.symbols as string[]).length;
      return (buf, pos) => {
        pos = readLong(buf, pos);
        return value >= 0 && value < n ? pos : corrupt(`enum index ${value} out of range`);
      };
    }
    case 'array': {
      const item = skipperFor(t.itemsType as AvroType);
      return (buf, pos) => {
        for (;;) {
          pos = readBlockCount(buf, pos);
          let n = value;
          if (n === 0) return pos;
          while (n-- > 0) pos = item(buf, pos);
        }
      };
    }
    case 'map': {
      const values = skipperFor(t.valuesType as AvroType);
      return (buf, pos) => {
        for (;;) {
          pos = readBlockCount(buf, pos);
          let n = value;
          if (n === 0) return pos;
          while (n-- > 0) pos = values(buf, skipBytes(buf, pos));
        }
      };
    }
    case 'record':
    case 'error': {
      const fields = (t.fields ?? []).map((f) => skipperFor(f.type));
      return (buf, pos) => {
        for (const f of fields) pos = f(buf, pos);
        return pos;
      };
    }
    default: {
      if (!t.typeName.startsWith('union')) throw new TypeError(`no skipper for Avro type ${t.typeName}`);
      const types = t.types as (AvroType & { typeName: string; underlyingType?: AvroType & { typeName: string } })[];
      const branches = types.map(skipperFor);
      // Primitive branches are skipped inline (attribute values are unions of primitives and one array).
      const codes = Int8Array.from(types, (b) => PRIMITIVE_CODES[(b.underlyingType ?? b).typeName] ?? -1);
      return (buf, pos) => {
        pos = readLong(buf, pos);
        const branch = value;
        switch (codes[branch]) {
          case 0:
            return pos;
          case 1:
            return pos < buf.length ? pos + 1 : corrupt('truncated');
          case 2:
            return readLong(buf, pos);
          case 3:
            return readSafeLong(buf, pos);
          case 4:
            return pos + 8 <= buf.length ? pos + 8 : corrupt('truncated');
          case 5:
            return skipBytes(buf, pos);
          default: {
            const skip = branches[branch];
            return skip ? skip(buf, pos) : corrupt(`union branch ${branch} out of range`);
          }
        }
      };
    }
  }
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

/** How a span field is read: skipped, or captured into a slot as a number, a string (position and length) or a map (position). */
const StepKind = { skip: 0, number: 1, string: 2, map: 3 } as const;

/** One span field of the writer schema. */
interface Step {
  slot: number;
  kind: (typeof StepKind)[keyof typeof StepKind];
  skip: Skip;
}

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

function sameBytes(buf: Buffer, a: number, b: number, length: number): boolean {
  for (let j = 0; j < length; j++) if (buf[a + j] !== buf[b + j]) return false;
  return true;
}

/** Reads the newest SpanBatch version's body into views. */
class SpanReader {
  readonly skipValue: Skip;
  readonly #steps: Step[];
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
    let skipValue: Skip | undefined;
    let valueType: AvroType | undefined;
    this.#steps = spanType.fields.map((f): Step => {
      const skip = skipperFor(f.type);
      const captured = CAPTURED[f.name];
      if (!captured) return { slot: -1, kind: StepKind.skip, skip };
      const name = (f.type as AvroType & { typeName: string }).typeName;
      if (name !== captured.type) throw new TypeError(`${writer.file}: span field ${f.name} is ${name}, discovery reads it as ${captured.type}`);
      if (name === 'map') {
        valueType ??= (f.type as AvroType & { valuesType: AvroType }).valuesType;
        skipValue ??= skipperFor(valueType);
      }
      return { slot: captured.slot, kind: name === 'int' || name === 'long' ? StepKind.number : name === 'string' ? StepKind.string : StepKind.map, skip };
    });
    const missing = Object.keys(CAPTURED).filter((k) => !spanType.fields.some((f) => f.name === k));
    if (missing.length > 0 || !skipValue || !valueType) throw new TypeError(`${writer.file}: span lacks ${missing.join(', ')}`);
    this.skipValue = skipValue;
    this.#valueType = valueType;
    this.#spanType = (projection as AvroType & { field(n: string): { type: { itemsType: AvroType } } }).field('spans').type.itemsType;
    this.#resolver = this.#spanType.createResolver(spanType);
  }

  read(buf: Buffer, pos: number): SpanView {
    for (const s of this.#before) pos = s(buf, pos);
    let slots = new Float64Array(STRIDE * 16);
    const apps: string[] = [];
    let count = 0;
    let appAt = -1;
    let appLen = -1;
    let app = '';
    const steps = this.#steps;
    for (;;) {
      pos = readBlockCount(buf, pos);
      let n = value;
      if (n === 0) break;
      while (n-- > 0) {
        if ((count + 1) * STRIDE > slots.length) {
          const grown = new Float64Array(slots.length * 2);
          grown.set(slots);
          slots = grown;
        }
        const base = count * STRIDE;
        slots[base + Slot.START_AT] = pos;
        for (const step of steps) {
          const kind = step.kind;
          if (kind === StepKind.skip) {
            pos = step.skip(buf, pos);
          } else if (kind === StepKind.number) {
            pos = step.skip(buf, pos);
            slots[base + step.slot] = value;
          } else if (kind === StepKind.string) {
            const end = skipBytes(buf, pos);
            slots[base + step.slot + 1] = value;
            slots[base + step.slot] = end - value;
            pos = end;
          } else {
            slots[base + step.slot] = pos;
            pos = step.skip(buf, pos);
          }
        }
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
