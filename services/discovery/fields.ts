/**
 * What discovery reads of a span, and field addressing (README: How it works › Rules and field
 * addressing): a rule string such as `attributes.http.method` is split once on the first dot into a
 * pair (`attributes`, `http.method`); a string without a dot addresses a top-level span field
 * (`span_name` → (``, `span_name`)).
 *
 * Pairs are compiled once into accessors so reading a field per span costs one property lookup.
 */
import type { AttributeValue, Span } from '../common/records.ts';
import type { JsonValue } from './records.ts';

/**
 * The span fields discovery reads — its projection of the newest `Span` schema (schemas/README.md) —
 * with the Avro type each has there. The span view captures these (span-view.ts), the projection reader
 * keeps these (span-codec.ts), and rules can address these.
 */
export const SPAN_FIELDS = {
  bk_biz_id: 'long',
  app_name: 'string',
  trace_id: 'string',
  span_id: 'string',
  parent_span_id: 'string',
  span_name: 'string',
  kind: 'int',
  start_time: 'long',
  end_time: 'long',
  elapsed_time: 'long',
  attributes: 'map',
  resource: 'map',
} as const satisfies Partial<Record<keyof Span, 'long' | 'int' | 'string' | 'map'>>;

export type SpanField = keyof typeof SPAN_FIELDS;

/** What discovery reads of a span: the fields of {@link SPAN_FIELDS}. */
export type DiscoverySpan = Pick<Span, SpanField>;

/** The fields of {@link SPAN_FIELDS} in declaration order. */
export const SPAN_FIELD_NAMES = Object.keys(SPAN_FIELDS) as SpanField[];

export type KeyPair = readonly [first: string, second: string];
export type Accessor = (span: DiscoverySpan) => unknown;

/** `attributes.http.method` → [`attributes`, `http.method`]; `span_name` → [``, `span_name`]; `` → [``, ``]. */
export function keyPair(key: string): KeyPair {
  const dot = key.indexOf('.');
  return dot < 0 ? ['', key] : [key.slice(0, dot), key.slice(dot + 1)];
}

/** The dotted string of a pair (the reverse of {@link keyPair}), as the reference writes it into extra_data. */
export function joinPair([first, second]: KeyPair): string {
  return first === '' ? second : `${first}.${second}`;
}

const MAP_FIELDS = new Set<string>(SPAN_FIELD_NAMES.filter((f) => SPAN_FIELDS[f] === 'map'));
/** The top-level fields that are no maps (a rule's dotless key reads one of them). */
export const SCALAR_FIELDS: ReadonlySet<string> = new Set(SPAN_FIELD_NAMES.filter((f) => SPAN_FIELDS[f] !== 'map'));

function mapGetter(field: 'attributes' | 'resource', key: string): Accessor {
  // A key like `constructor` must not read Object.prototype through a plain decoded map.
  if (key in Object.prototype) return (s) => (Object.hasOwn(s[field], key) ? s[field][key] : undefined);
  return (s) => s[field][key];
}

/**
 * Compiles a pair into a reader, with the reference's semantics: the container is `span[first]` when the
 * span has a field `first`, else the span itself. A container that is not a mapping (a string field)
 * yields nothing.
 */
export function accessor(pair: KeyPair): Accessor {
  const [first, second] = pair;
  if (MAP_FIELDS.has(first)) return mapGetter(first as 'attributes' | 'resource', second);
  if (SCALAR_FIELDS.has(first)) return () => undefined;
  // `first` is not a span field (or is empty): read the top-level field `second`.
  if (SCALAR_FIELDS.has(second)) return (s) => s[second as keyof DiscoverySpan];
  return () => undefined;
}

/** Python truthiness: empty strings, 0, false, null and empty lists are absent. */
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  switch (typeof v) {
    case 'string':
      return v.length > 0;
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    default:
      if (Array.isArray(v) || Buffer.isBuffer(v)) return v.length > 0;
      return true;
  }
}

/**
 * The text a value contributes to a key or a column. Deliberate difference from the reference: a
 * present-but-null value gives `''` (the reference's `str(None)` gives `"None"`). Booleans print as
 * Python does (`True`/`False`) so keys match the reference's.
 */
export function keyString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return `[${(v as AttributeValue[]).map((x) => keyString(x)).join(', ')}]`;
  return JSON.stringify(v) ?? '';
}

/**
 * A field's raw typed value as the node's JSON columns store it, as the reference does (its spans keep
 * the collector's attribute types): strings, booleans and finite numbers as they are, arrays as JSON
 * arrays of their items, bytes as their UTF-8 text (as in keys), a number JSON cannot hold (NaN, ±Infinity)
 * as its text; null when the field is absent or null.
 */
export function jsonValue(v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    default:
      if (Buffer.isBuffer(v)) return v.toString('utf8');
      if (Array.isArray(v)) return v.map((x) => jsonValue(x));
      return keyString(v);
  }
}

/** A nullable column's value: `null` when the field is absent or null, else its key text. */
export function nullableString(v: unknown): string | null {
  return v === null || v === undefined ? null : keyString(v);
}

