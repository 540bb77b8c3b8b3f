/**
 * A span as the tail-sampling job sees it: the reference span document (the JSON `span_info` BKData's clean
 * writes, README: How it works), read through Gson's rules. The native sampler reads its values from the
 * Avro span in place (span-batch.ts); the conformance tests read them from JSON text. Both hand the
 * conditions the same kinds of value:
 *
 * - `string`, `boolean`, `null`, arrays, objects ({@link DocObject}) as in JSON;
 * - `number`: a JSON number whose text is JavaScript's (`String(n)`, the shortest round-trip form, which
 *   is also what Go's encoding/json writes for a float64, as bk-collector does);
 * - {@link JsonNumber}: a JSON number with its own text (`5.0` stays `5.0`, as Gson keeps it).
 *
 * {@link gsonText} and {@link gsonNumber} are Gson's `getAsString` and `getAsDouble`: they throw
 * {@link JavaError} where Gson throws (null, objects, arrays of other than one element, non-numeric text as a number).
 */
import { JavaError, javaParseDouble } from './java.ts';

/** A JSON number with the text it was written with. */
export class JsonNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** A JSON object: `get` answers `undefined` for a key it lacks. */
export interface DocObject {
  readonly kind: 'object';
  get(key: string): DocValue | undefined;
}

export type DocValue = string | number | boolean | null | JsonNumber | readonly DocValue[] | DocObject;

export function isDocObject(v: DocValue): v is DocObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);
}

function describe(v: DocValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return isDocObject(v) ? 'an object' : typeof v;
}

/** Gson's `JsonElement.getAsString()`. */
export function gsonText(v: DocValue): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v instanceof JsonNumber) return v.text;
  if (Array.isArray(v)) {
    const items = v as readonly DocValue[];
    if (items.length === 1) return gsonText(items[0] as DocValue);
  }
  throw new JavaError(`${describe(v)} cannot be read as text`);
}

/** Gson's `JsonElement.getAsDouble()`. */
export function gsonNumber(v: DocValue): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return javaParseDouble(v);
  if (v instanceof JsonNumber) return javaParseDouble(v.text);
  if (Array.isArray(v)) {
    const items = v as readonly DocValue[];
    if (items.length === 1) return gsonNumber(items[0] as DocValue);
  }
  throw new JavaError(`${describe(v)} cannot be read as a number`);
}
