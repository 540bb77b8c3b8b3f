/**
 * OTLP attribute values → the typed, flat attribute maps of the span record (the collector README,
 * "Interfaces").
 *
 * - string, bool, bytes as they are; doubles as numbers; int64 as a number when an Avro long holds it
 *   (|n| ≤ 2^53 − 2, what avsc reads back), otherwise as its decimal string.
 * - key-value lists are flattened into dotted keys (`{http: {method: GET}}` → `http.method`), down to
 *   {@link MAX_FLATTEN_DEPTH} levels; deeper lists are kept as a JSON string.
 * - arrays of scalars stay arrays; an array holding arrays or lists becomes one JSON string.
 * - keys that are empty or blank are dropped (as the reference converter does); a later duplicate key
 *   wins.
 */
import type { AttributeScalar, AttributeValue, Attributes } from '../../common/records.ts';
import type { AnyValue, Int64, KeyValue } from '../../common/otlp/index.ts';
import { isAvroLong } from '../../common/avro/index.ts';

export const MAX_FLATTEN_DEPTH = 8;

const TWO_POW_32 = 4_294_967_296;
/** |high| below 2^21 means the 64-bit value is within ±2^53. */
const SAFE_HIGH = 2_097_152;

/** An int64 as a JS number when an Avro long holds it exactly, else as its decimal string. */
export function int64Value(v: Int64 | null | undefined): number | string {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const n = Number(v);
    return isAvroLong(n) ? n : v;
  }
  const high = v.unsigned ? v.high >>> 0 : v.high | 0;
  if (high >= SAFE_HIGH || high < -SAFE_HIGH) return v.toString();
  const n = high * TWO_POW_32 + (v.low >>> 0);
  return isAvroLong(n) ? n : v.toString();
}

function isBlank(key: string): boolean {
  return key.length === 0 || key.trim().length === 0;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A plain JS rendering of any value (bytes as base64), for JSON strings of nested structures. */
export function plainValue(v: AnyValue | null | undefined, depth = 0): unknown {
  if (!v || depth > 64) return null;
  if (v.value === 'arrayValue') return (v.arrayValue?.values ?? []).map((x) => plainValue(x, depth + 1));
  if (v.value === 'kvlistValue') {
    const out: Record<string, unknown> = {};
    for (const kv of v.kvlistValue?.values ?? []) if (kv.key) out[kv.key] = plainValue(kv.value, depth + 1);
    return out;
  }
  const s = scalar(v);
  return Buffer.isBuffer(s) ? s.toString('base64') : (s ?? null);
}

function scalar(v: AnyValue | null | undefined): AttributeScalar | undefined {
  if (!v) return null;
  switch (v.value) {
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'intValue':
      return int64Value(v.intValue);
    case 'doubleValue':
      return v.doubleValue ?? 0;
    case 'bytesValue':
      return v.bytesValue ? asBuffer(v.bytesValue) : Buffer.alloc(0);
    case undefined:
      return null;
    default:
      return undefined; // array or list: not a scalar
  }
}

function arrayValue(values: readonly AnyValue[]): AttributeValue {
  const out: AttributeScalar[] = [];
  for (const item of values) {
    const s = scalar(item);
    if (s === undefined) return JSON.stringify(values.map((x) => plainValue(x)));
    out.push(s);
  }
  return out;
}

/**
 * Adds `kvs` to `out` as a flat map; nested lists get `prefix.`-ed keys. Returns `out`.
 */
export function flattenAttributes(kvs: readonly KeyValue[] | null | undefined, out: Attributes = {}, prefix = '', depth = 0): Attributes {
  if (!kvs) return out;
  for (const kv of kvs) {
    const key = kv.key;
    if (key === undefined || isBlank(key)) continue;
    const full = prefix === '' ? key : `${prefix}.${key}`;
    const v = kv.value;
    if (!v) {
      out[full] = null;
      continue;
    }
    switch (v.value) {
      case 'arrayValue':
        out[full] = arrayValue(v.arrayValue?.values ?? []);
        break;
      case 'kvlistValue':
        if (depth < MAX_FLATTEN_DEPTH) flattenAttributes(v.kvlistValue?.values, out, full, depth + 1);
        else out[full] = JSON.stringify(plainValue(v));
        break;
      default:
        out[full] = scalar(v) ?? null;
    }
  }
  return out;
}

/** The string form of an attribute value, as the reference's `AsString` renders it (for assembled keys). */
export function attributeString(v: AttributeValue | undefined): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Buffer.isBuffer(v)) return v.toString('base64');
  return JSON.stringify(v.map((x) => (Buffer.isBuffer(x) ? x.toString('base64') : x)));
}
