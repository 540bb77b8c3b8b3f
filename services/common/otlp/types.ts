/**
 * The decoded OTLP trace messages, as protobufjs produces them (the subset the collector reads): camelCase
 * fields, ids as bytes, 64-bit integers as Long objects (exact, unlike JS numbers), repeated fields
 * default to empty arrays, and the AnyValue oneof names its set field in `value`. OTLP/JSON bodies are
 * turned into the same messages (json.ts).
 */

/** A 64-bit integer: a Long from protobufjs, or a decimal string / number. */
export interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
  toString(radix?: number): string;
}
export type Int64 = LongLike | string | number;

export type AnyValueKind = 'stringValue' | 'boolValue' | 'intValue' | 'doubleValue' | 'arrayValue' | 'kvlistValue' | 'bytesValue';

export interface AnyValue {
  /** Which member of the oneof is set (protobufjs virtual oneof field). */
  value?: AnyValueKind;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Int64;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] } | null;
  kvlistValue?: { values?: KeyValue[] } | null;
  bytesValue?: Uint8Array;
}

export interface KeyValue {
  key?: string;
  value?: AnyValue | null;
}

export interface OtlpEvent {
  timeUnixNano?: Int64;
  name?: string;
  attributes?: KeyValue[];
}

export interface OtlpLink {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  traceState?: string;
  attributes?: KeyValue[];
}

export interface OtlpSpan {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  traceState?: string;
  parentSpanId?: Uint8Array;
  name?: string;
  kind?: number;
  startTimeUnixNano?: Int64;
  endTimeUnixNano?: Int64;
  attributes?: KeyValue[];
  events?: OtlpEvent[];
  links?: OtlpLink[];
  status?: { code?: number; message?: string } | null;
}

export interface ScopeSpans {
  spans?: OtlpSpan[];
}

export interface ResourceSpans {
  resource?: { attributes?: KeyValue[] } | null;
  scopeSpans?: ScopeSpans[];
}

export interface TraceRequest {
  resourceSpans?: ResourceSpans[];
}

export interface ExportResponse {
  partialSuccess?: { rejectedSpans: number; errorMessage: string };
}
