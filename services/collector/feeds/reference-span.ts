/**
 * OTLP spans → the span documents bk-collector's traces converter publishes (bkmonitor-datalink
 * `pkg/collector/exporter/converter/traces.go`; the collector README, "Feeds"), the items of the GSE
 * envelope the tail-sampling clean reads:
 *
 * - `trace_id`, `span_id`, `parent_span_id` lower-case hex (`""` for no parent), `span_name`, `kind` and
 *   `status.code` as OTLP numbers, `trace_state` as sent;
 * - `start_time`, `end_time`: ns ÷ 1000 floored (µs); `elapsed_time`: (end − start in ns) ÷ 1000 floored —
 *   from the nanoseconds, so it can be one less than `end_time − start_time`; events' `timestamp` in µs;
 * - `attributes` (top-level blank keys dropped, as `CleanAttributesMap`), events' and links' attributes:
 *   pdata's `AsRaw` — key-value lists stay nested objects, arrays stay arrays, bytes are base64 text, int64
 *   values are exact JSON integers (beyond 2^53 too), an unset value is `null`;
 * - `resource`: the group's resource after the platform's resource filter ({@link platformResource}:
 *   `bk.instance.id` assembled, the token and `tps.tenant.id` dropped, `service.name` defaulted),
 *   `client_ip`, `bk_biz_id`, `app_name`; the envelope adds `iterationindex` (envelope.ts);
 * - the traces pipeline's processors that change span attributes before the converter: the platform's
 *   `attribute_filter/common` (`http.status_code` as an int when its text is one, `trpc.status_type` and
 *   `trpc.status_code` as text) and `apdex_calculator/standard`, so every span of kind 0–5 carries the
 *   `apdex_type` attribute (apdex.ts: the application's default thresholds).
 *
 * The values are what Go's encoding/json writes for those types, so `JSON.stringify` of a document is the
 * reference's text up to key order.
 */
import { nanosToMicros, hexId } from '../receiver/convert.ts';
import type { AttributeValue, Attributes } from '../../common/records.ts';
import type { AnyValue, Int64, KeyValue, OtlpSpan } from '../../common/otlp/index.ts';
import { ApdexCalculator, APDEX_ATTRIBUTE } from './apdex.ts';

/** A JSON value that `JSON.stringify` writes as it is (an exact integer beyond 2^53). */
const rawJSON = (text: string): unknown => (JSON as unknown as { rawJSON(this: void, text: string): unknown }).rawJSON(text);

/** An int64 for JSON: a number when exact, else the decimal text written as a JSON integer. */
export function jsonInt64(v: Int64 | null | undefined): unknown {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const text = typeof v === 'string' ? v : v.toString();
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : /^-?\d+$/.test(text) ? rawJSON(text) : 0;
}

/** The last three decimal digits of a non-negative ns timestamp (the sub-µs part). */
export function nanosRemainder(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v % 1000;
  if (typeof v === 'string') return Number(v.slice(-3)) || 0;
  // (high·2^32 + low) mod 1000, with 2^32 ≡ 296 (mod 1000)
  return (((v.high >>> 0) % 1000) * 296 + ((v.low >>> 0) % 1000)) % 1000;
}

/** A span's times: µs start/end, the reference's µs elapsed, and its duration in ns (`CalcSpanDuration`). */
export interface SpanTimes {
  startUs: number;
  endUs: number;
  elapsedUs: number;
  durationNs: number;
}

export function spanTimes(span: OtlpSpan): SpanTimes {
  const startUs = nanosToMicros(span.startTimeUnixNano);
  const endUs = nanosToMicros(span.endTimeUnixNano);
  const startRem = nanosRemainder(span.startTimeUnixNano);
  const endRem = nanosRemainder(span.endTimeUnixNano);
  const negative = endUs < startUs || (endUs === startUs && endRem < startRem);
  if (negative) return { startUs, endUs, elapsedUs: 0, durationNs: 0 };
  return { startUs, endUs, elapsedUs: endUs - startUs - (endRem < startRem ? 1 : 0), durationNs: (endUs - startUs) * 1000 + (endRem - startRem) };
}

function base64(b: Uint8Array): string {
  return (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('base64');
}

/** pdata `Value.AsRaw()` as JSON sees it. */
export function rawValue(v: AnyValue | null | undefined, depth = 0): unknown {
  if (!v || depth > 64) return null;
  switch (v.value) {
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'intValue':
      return jsonInt64(v.intValue);
    case 'doubleValue': {
      const d = v.doubleValue ?? 0;
      // Go's encoder refuses NaN and ±Inf (the reference loses the whole message); null here.
      return Number.isFinite(d) ? d : null;
    }
    case 'bytesValue':
      return v.bytesValue ? base64(v.bytesValue) : '';
    case 'arrayValue':
      return (v.arrayValue?.values ?? []).map((x) => rawValue(x, depth + 1));
    case 'kvlistValue':
      return rawMap(v.kvlistValue?.values, false, depth + 1);
    default:
      return null;
  }
}

/** pdata `Map.AsRaw()` (a later duplicate key wins); `clean` drops blank top-level keys (`CleanAttributesMap`). */
export function rawMap(kvs: readonly KeyValue[] | null | undefined, clean: boolean, depth = 0): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const kv of kvs ?? []) {
    const key = kv.key ?? '';
    if (clean && key.trim() === '') continue;
    out[key] = rawValue(kv.value, depth);
  }
  return out;
}

/** A flat resource (the receiver's, after the resource filter) as JSON values: bytes as base64. */
export function rawResource(resource: Attributes): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(resource)) out[k] = plainAttribute(v);
  return out;
}

function plainAttribute(v: AttributeValue): unknown {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map((x) => (Buffer.isBuffer(x) ? x.toString('base64') : x));
  return v;
}

/** Go encoding/json text of a raw value: sorted keys, `<`, `>`, `&`, U+2028/9 escaped. */
function goJson(v: unknown): string {
  const sorted = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sorted);
    if (x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === null) {
      const o = Object.create(null) as Record<string, unknown>;
      for (const k of Object.keys(x).sort()) o[k] = sorted((x as Record<string, unknown>)[k]);
      return o;
    }
    return x;
  };
  return JSON.stringify(sorted(v)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** pdata `Value.AsString()` of an attribute value. */
export function valueString(v: AnyValue | null | undefined): string {
  if (!v) return '';
  switch (v.value) {
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ? 'true' : 'false';
    case 'intValue': {
      const i = v.intValue;
      return i === null || i === undefined ? '0' : typeof i === 'number' ? String(i) : i.toString();
    }
    case 'doubleValue':
      return String(v.doubleValue ?? 0);
    case 'bytesValue':
      return v.bytesValue ? base64(v.bytesValue) : '';
    case 'arrayValue':
    case 'kvlistValue':
      return goJson(rawValue(v));
    default:
      return '';
  }
}

/** `Value.AsString()` of a flat resource value (the receiver's typed form). */
export function attributeValueString(v: AttributeValue | undefined): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return goJson(plainAttribute(v));
}

/** The platform's `resource_filter/instance_id` drops this resource key too (the receiver drops only the token). */
export const TENANT_RESOURCE_KEY = 'tps.tenant.id';
/** Its `default_value`: a missing or empty `service.name` becomes this. */
export const UNKNOWN_SERVICE = 'unknown_service';

/**
 * A group's resource as the platform's resource filter leaves it, after the receiver's (`bk.instance.id`
 * assembled, the token dropped): `tps.tenant.id` dropped, and `service.name` defaulted to `unknown_service`
 * when missing or empty — after the assembly, so `bk.instance.id` keeps its empty part. The same object when
 * nothing changes.
 */
export function platformResource(resource: Attributes): Attributes {
  const missingService = attributeValueString(resource['service.name']) === '';
  const tenant = Object.hasOwn(resource, TENANT_RESOURCE_KEY);
  if (!missingService && !tenant) return resource;
  const out: Attributes = { ...resource };
  delete out[TENANT_RESOURCE_KEY];
  if (missingService) out['service.name'] = UNKNOWN_SERVICE;
  return out;
}

/** The context a resource group's spans share. */
export interface FeedGroupContext {
  bkBizId: number;
  appName: string;
  clientIp: string;
  /** The group's resource after the resource filter (flat). */
  resource: Attributes;
}

/** What the feeds read of one span: the span, its group, its times and the attribute the apdex calculator set. */
export interface FeedSpan {
  readonly span: OtlpSpan;
  readonly group: FeedGroupContext;
  readonly times: SpanTimes;
  /** `apdex_type`, or undefined for kinds without an apdex rule. */
  readonly apdex: string | undefined;
}

const APDEX = new ApdexCalculator();

export function feedSpan(span: OtlpSpan, group: FeedGroupContext, apdex: ApdexCalculator = APDEX): FeedSpan {
  const times = spanTimes(span);
  const attribute = (key: string): string | undefined => {
    const v = spanAttribute(span, key);
    return v === undefined ? undefined : valueString(v);
  };
  return { span, group, times, apdex: apdex.apdexType(span.kind ?? 0, times.durationNs, attribute) };
}

/** The platform's `attribute_filter/common` (bk-monitor `DEFAULT_APM_PLATFORM_ATTRIBUTE_CONFIG`): `as_int` keys. */
export const AS_INT_ATTRIBUTES = ['http.status_code'];
/** Its `as_string` keys. */
export const AS_STRING_ATTRIBUTES = ['trpc.status_type', 'trpc.status_code'];
const INT64_MAX = 9_223_372_036_854_775_807n;

/** `strconv.ParseInt(s, 10, 64)` as JSON, or undefined when it would fail. */
function parseInt64(text: string): unknown {
  if (!/^[+-]?\d+$/.test(text)) return undefined;
  const n = BigInt(text);
  if (n > INT64_MAX || n < -INT64_MAX - 1n) return undefined;
  return jsonInt64(n.toString());
}

/** The span's attributes after the platform's attribute filter and the apdex calculator. */
function spanAttributes(s: FeedSpan): Record<string, unknown> {
  const span = s.span;
  const attributes = rawMap(span.attributes, true);
  for (const key of AS_STRING_ATTRIBUTES) {
    const v = spanAttribute(span, key);
    if (v !== undefined) attributes[key] = valueString(v);
  }
  for (const key of AS_INT_ATTRIBUTES) {
    const v = spanAttribute(span, key);
    const n = v === undefined ? undefined : parseInt64(valueString(v));
    if (n !== undefined) attributes[key] = n;
  }
  if (s.apdex !== undefined) attributes[APDEX_ATTRIBUTE] = s.apdex;
  return attributes;
}

/** The reference span document of one span (`iterationindex` is the envelope's). */
export function referenceSpan(s: FeedSpan): Record<string, unknown> {
  const { span, group, times } = s;
  const attributes = spanAttributes(s);
  return {
    span_name: span.name ?? '',
    span_id: hexId(span.spanId),
    trace_id: hexId(span.traceId),
    parent_span_id: hexId(span.parentSpanId),
    kind: span.kind ?? 0,
    start_time: times.startUs,
    end_time: times.endUs,
    trace_state: span.traceState ?? '',
    elapsed_time: times.elapsedUs,
    links: (span.links ?? []).map((l) => ({ trace_id: hexId(l.traceId), span_id: hexId(l.spanId), trace_state: l.traceState ?? '', attributes: rawMap(l.attributes, true) })),
    events: (span.events ?? []).map((e) => ({ name: e.name ?? '', timestamp: nanosToMicros(e.timeUnixNano), attributes: rawMap(e.attributes, true) })),
    status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
    attributes,
    resource: rawResource(group.resource),
    client_ip: group.clientIp,
    bk_biz_id: group.bkBizId,
    app_name: group.appName,
  };
}

/** The first value of `key` among a span's attributes (pdata `Map.Get`), or undefined. */
export function spanAttribute(span: OtlpSpan, key: string): AnyValue | null | undefined {
  for (const kv of span.attributes ?? []) if (kv.key === key) return kv.value ?? null;
  return undefined;
}
