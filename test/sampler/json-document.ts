/**
 * Span documents from JSON text, as the Flink job reads `span_info` with Gson: numbers keep the text they
 * were written with (`5.0` stays `5.0`), so conditions compare what the job compares. Used by the
 * conformance test, whose spans are JSON.
 */
import { JsonNumber, type DocObject, type DocValue } from '../../services/sampler/document.ts';
import { JavaError } from '../../services/sampler/java.ts';

type Reviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;

/** A parsed JSON value as a document value (plain numbers are written as JavaScript writes them). */
export function docValue(v: unknown): DocValue {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v instanceof JsonNumber) return v;
  if (Array.isArray(v)) return v.map(docValue);
  if (typeof v === 'object') return docObject(v as Record<string, unknown>);
  throw new TypeError(`not a JSON value: ${typeof v}`);
}

export function docObject(o: Record<string, unknown>): DocObject {
  return { kind: 'object', get: (key) => (Object.hasOwn(o, key) ? docValue(o[key]) : undefined) };
}

/** `span_info` text as Gson's `fromJson(text, JsonObject.class)`; throws JavaError where Gson throws. */
export function parseSpanInfo(text: string): DocObject {
  let parsed: unknown;
  const keepNumberText: Reviver = (_key, value, context) => (typeof value === 'number' && context?.source !== undefined ? new JsonNumber(context.source) : value);
  try {
    parsed = JSON.parse(text, keepNumberText);
  } catch (err) {
    throw new JavaError(`span_info does not parse: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new JavaError('span_info is not a JSON object');
  return docObject(parsed as Record<string, unknown>);
}
