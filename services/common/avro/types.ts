/**
 * avsc types with bkstream's additions: typed attribute numbers (safe integers travel as `long`, other
 * numbers as `double`, while the union stays unwrapped) and array/map reads bounded by the bytes left
 * (avsc trusts block counts: a corrupt count would spin or exhaust memory).
 */
import avro from 'avsc';
import { CorruptRecordError } from '../errors.ts';

/** avsc's type and resolver, for modules that read Avro bytes themselves (discovery's span view). */
export type AvroType = avro.Type;
export type AvroResolver = avro.Resolver;

/**
 * `long` branch of an attribute value: safe JS integers. Together with {@link Float64Type} it lets the
 * attribute union stay unwrapped (plain JS values) while the wire keeps long vs double.
 */
class Int64Type extends avro.types.LogicalType {
  protected override _fromValue(val: unknown): unknown {
    return val;
  }
  protected override _toValue(any: unknown): unknown {
    return typeof any === 'number' && Number.isSafeInteger(any) ? any : undefined;
  }
  protected override _resolve(type: avro.Type): unknown {
    const name = type.typeName;
    if (name === 'long' || name === 'int' || name === this.typeName) return (v: unknown) => v;
    return undefined;
  }
}

/** `double` branch of an attribute value: every number that is not a safe integer. */
class Float64Type extends avro.types.LogicalType {
  protected override _fromValue(val: unknown): unknown {
    return val;
  }
  protected override _toValue(any: unknown): unknown {
    return typeof any === 'number' && !Number.isSafeInteger(any) ? any : undefined;
  }
  protected override _resolve(type: avro.Type): unknown {
    const name = type.typeName;
    if (name === 'double' || name === 'float' || name === this.typeName) return (v: unknown) => v;
    return undefined;
  }
}

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
}
interface ItemReader {
  _read(tap: Tap): unknown;
}

/**
 * avsc reads an array/map block count and loops that many times without checking the buffer: a corrupt
 * count (say 2^40) spins or exhausts memory. Every item of our schemas takes at least one byte, so a
 * count larger than the bytes left is corruption.
 */
function readBlockCount(tap: Tap): number {
  let n = tap.readLong();
  if (n < 0) {
    n = -n;
    tap.skipLong();
  }
  const left = tap.buf.length - tap.pos;
  if (left < 0) throw new CorruptRecordError('truncated body');
  if (n > left) throw new CorruptRecordError(`block count ${n} exceeds the ${left} bytes left`);
  return n;
}

class BoundedArrayType extends avro.types.ArrayType {
  _read(this: { itemsType: ItemReader }, tap: Tap): unknown[] {
    const items = this.itemsType;
    const out: unknown[] = [];
    let n: number;
    while ((n = readBlockCount(tap))) {
      while (n--) out.push(items._read(tap));
    }
    return out;
  }
}

class BoundedMapType extends avro.types.MapType {
  _read(this: { valuesType: ItemReader }, tap: Tap): Record<string, unknown> {
    const values = this.valuesType;
    const out: Record<string, unknown> = {};
    let n: number;
    while ((n = readBlockCount(tap))) {
      while (n--) {
        const key = tap.readString();
        out[key] = values._read(tap);
      }
    }
    return out;
  }
}

const typeOptions: Partial<avro.ForSchemaOptions> = {
  wrapUnions: 'auto',
  logicalTypes: { 'bk-int64': Int64Type, 'bk-float64': Float64Type },
  typeHook: (schema, opts) => {
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
    const t = (schema as { type?: unknown; logicalType?: unknown }).type;
    if ((schema as { logicalType?: unknown }).logicalType !== undefined) return undefined;
    if (t === 'array') return new BoundedArrayType(schema, opts);
    if (t === 'map') return new BoundedMapType(schema, opts);
    return undefined;
  },
};

/** Parses an Avro schema (object or JSON text) with bkstream's logical types and bounded reads. */
export function parseSchema(schema: object | string): avro.Type {
  return avro.Type.forSchema(typeof schema === 'string' ? (JSON.parse(schema) as avro.Schema) : (schema as avro.Schema), {
    ...typeOptions,
    registry: {},
  });
}

/** Parsing Canonical Form of a type (avsc's schema without attributes is canonical). */
export function canonicalForm(type: avro.Type): string {
  return JSON.stringify(type.schema());
}
