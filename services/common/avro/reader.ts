/**
 * Validating Avro readers compiled from a writer schema, for consumers that read records' bytes in place
 * instead of decoding them into objects (discovery's span view; storage next).
 *
 * {@link compileSkipper} makes a function that moves over one value of any type; {@link compileRecordReader}
 * one that moves over a record and stores chosen fields into a `Float64Array` of slots (a number's value,
 * a string's position and length, or where any value starts), so the caller can read them later
 * without decoding anything else. Both validate what avsc's decoder validates — union branches, enum
 * indexes, lengths, block counts, safe longs, no truncation — plus what avsc trusts: no negative length,
 * no block count larger than the bytes left, no varint longer than 10 bytes, and a negative block count's
 * byte size equal to its items' size. So a record they accept is one avsc decodes, and reading a field
 * later from its stored position cannot fail. Failures throw {@link CorruptRecordError}.
 *
 * Like avsc's own generated readers, the code is straight-line JavaScript emitted per type (no call per
 * value); a varint reads its bytes first and checks the bounds once (a byte past the end reads as
 * `undefined`, which ends it). Recursive types and arrays/maps nested deeper than 8 are not supported.
 */
import { CorruptRecordError } from '../errors.ts';
import { AVRO_LONG_MAX } from './wire.ts';
import type { AvroType } from './types.ts';

/** Returns the position after one value of a type. */
export type Skip = (buf: Buffer, pos: number) => number;

/** Reads one record at `pos`, storing its captured fields at `slots[base + slot]`; returns the position after it. */
export type SlotReader = (buf: Buffer, pos: number, slots: Float64Array, base: number) => number;

/**
 * What a compiled record reader stores of one field:
 * - `number`: the value of an `int` or `long` at `slot`;
 * - `bytes`: the position of a `string` or `bytes` value's first byte at `slot`, its length at `slot + 1`;
 * - `start`: the position where a value of any type starts (its block count, for a map or array).
 */
export interface FieldCapture {
  slot: number;
  kind: 'number' | 'bytes' | 'start';
}

/** The parts of avsc's types the compiler reads. */
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

const MAX_DEPTH = 8;

/** Emits the lines of a reader: `pos` moves over values; captures write `slots[base + …]`. */
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
  #varint(to: string): void {
    this.#emit(`b = buf[pos++]; ${to} = b & 127;`);
    this.#emit(`if (b > 127) { k = 128; i = 1; do { b = buf[pos++]; ${to} += (b & 127) * k; k *= 128; } while (b > 127 && ++i < 10); if (b > 127) corrupt('varint longer than 10 bytes'); }`);
    this.#emit(`if (pos > len) corrupt('truncated');`);
    this.#emit(`${to} = ${to} % 2 === 0 ? ${to} / 2 : -(${to} + 1) / 2;`);
  }

  /** avsc rejects `long` values a double cannot hold exactly ("potential precision loss"). */
  #safe(v: string): void {
    this.#emit(`if (!(${v} >= -${AVRO_LONG_MAX} && ${v} <= ${AVRO_LONG_MAX})) corrupt('long value out of the safe integer range');`);
  }

  /** A length-prefixed string/bytes; `at` stores its position and length. */
  #bytes(at?: number): void {
    this.#varint('v');
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
    if (this.#depth >= MAX_DEPTH) throw new TypeError(`Avro arrays and maps nested deeper than ${MAX_DEPTH} are not supported by the compiled reader`);
    this.#emit(`for (;;) {`);
    this.#varint(c);
    this.#emit(`if (${c} === 0) break;`);
    // A negative count is followed by the block's byte size: it must be the items' size (avsc's reader
    // ignores it, its skipper trusts it, so a wrong one would make the two disagree).
    const e = `e${this.#depth - 1}`;
    this.#emit(`${e} = -1;`);
    this.#emit(`if (${c} < 0) { ${c} = -${c};`);
    this.#varint('v');
    this.#emit(`if (v < 0) corrupt('negative block size ' + v); ${e} = pos + v; }`);
    this.#emit(`if (${c} > len - pos) corrupt('block count ' + ${c} + ' exceeds the ' + (len - pos) + ' bytes left');`);
    this.#emit(`while (${c}-- > 0) {`);
    item();
    this.#emit(`}`);
    this.#emit(`if (${e} !== -1 && pos !== ${e}) corrupt('block size does not match its items');`);
    this.#emit(`}`);
    this.#depth--;
  }

  /** One value of `type`; `capture` stores it (or where it starts). */
  value(type: SchemaType, capture?: FieldCapture): void {
    const t = type.underlyingType ?? type;
    if (capture?.kind === 'bytes') return this.#bytes(capture.slot);
    if (capture?.kind === 'start') this.#emit(`slots[base + ${capture.slot}] = pos;`);
    switch (t.typeName) {
      case 'null':
        return;
      case 'boolean':
        return this.#fixed(1);
      case 'int':
      case 'long':
        this.#varint('v');
        if (t.typeName === 'long') this.#safe('v');
        if (capture?.kind === 'number') this.#emit(`slots[base + ${capture.slot}] = v;`);
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
        this.#varint('v');
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
        if (this.#records.includes(name)) throw new TypeError(`recursive Avro type ${name} is not supported by the compiled reader`);
        this.#records.push(name);
        for (const f of t.fields ?? []) this.value(f.type);
        this.#records.pop();
        return;
      }
      default: {
        if (!t.typeName.startsWith('union')) throw new TypeError(`no compiled reader for Avro type ${t.typeName}`);
        this.#varint('v');
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

  /** Compiles the emitted lines into a {@link SlotReader} whose failures name `what` ("SpanBatch body: truncated"). */
  compile(name: string, what: string): SlotReader {
    const counters = Array.from({ length: MAX_DEPTH }, (_, i) => `c${i} = 0, e${i} = 0`).join(', ');
    const body = `return function ${name}(buf, pos, slots, base) {\nconst len = buf.length;\nlet b = 0, k = 0, i = 0, v = 0, ${counters};\n${this.text}\nreturn pos;\n};`;
    const corrupt = (message: string): never => {
      throw new CorruptRecordError(`${what}: ${message}`);
    };
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from a schema, as avsc does
    const make = new Function('corrupt', body) as (fail: typeof corrupt) => SlotReader;
    return make(corrupt);
  }
}

const NO_SLOTS = new Float64Array(0);

/** A compiled skipper for one value of `type`; `what` names the record in errors. */
export function compileSkipper(type: AvroType, what: string): Skip {
  const src = new ReaderSource();
  src.value(type);
  const read = src.compile('skip', what);
  return (buf, pos) => read(buf, pos, NO_SLOTS, 0);
}

const CAPTURABLE: Record<FieldCapture['kind'], (typeName: string) => boolean> = {
  number: (n) => n === 'int' || n === 'long',
  bytes: (n) => n === 'string' || n === 'bytes',
  start: () => true,
};

/**
 * A compiled reader of one `record` value that stores the fields named in `captures`. Throws a
 * TypeError for a capture of a field the record lacks or whose type cannot be captured that way.
 */
export function compileRecordReader(record: AvroType, captures: Readonly<Record<string, FieldCapture>>, what: string): SlotReader {
  const r = record as SchemaType;
  const fields = r.fields ?? [];
  for (const [name, capture] of Object.entries(captures)) {
    const field = fields.find((f) => f.name === name);
    if (!field) throw new TypeError(`${r.name ?? 'record'} has no field ${name} to capture`);
    const typeName = (field.type.underlyingType ?? field.type).typeName;
    if (!CAPTURABLE[capture.kind](typeName)) throw new TypeError(`${r.name ?? 'record'}.${name} is ${typeName}, which cannot be captured as ${capture.kind}`);
  }
  const src = new ReaderSource();
  for (const f of fields) src.value(f.type, captures[f.name]);
  return src.compile(`read${r.name?.split('.').pop() ?? 'Record'}`, what);
}
