/**
 * OTLP spans → span records (the collector README, "Interfaces"; bk-collector's "traces" converter):
 * hex ids, µs times (ns / 1000, floored, computed exactly), flat typed attribute and resource maps,
 * status, events, links, plus biz/app from the token and the client's address.
 *
 * The resource of a group goes through the `resource_filter` steps the reference pipeline applies to
 * traces by default: `bk.instance.id` is assembled from five resource keys, and the token attribute is
 * dropped (it is a credential; the reference template drops it too).
 */
import type { Attributes, Span, SpanEvent, SpanLink } from '../../common/records.ts';
import { attributeString, flattenAttributes } from './attributes.ts';
import { isAvroLong } from '../../common/avro/index.ts';
import type { Int64, KeyValue, OtlpSpan } from '../../common/otlp/index.ts';

/** Resource attribute that may carry the application token of its group. */
export const TOKEN_RESOURCE_KEY = 'bk.data.token';
/** `resource_filter` assemble: destination and keys (joined with `:`; a missing key gives an empty part). */
export const INSTANCE_ID_KEY = 'bk.instance.id';
export const INSTANCE_ID_PARTS = ['telemetry.sdk.language', 'service.name', 'net.host.name', 'net.host.ip', 'net.host.port'] as const;

/** Why one span was not converted. */
export class SpanRejection extends Error {
  readonly reason: 'invalid_span';
  constructor(message: string) {
    super(message);
    this.name = 'SpanRejection';
    this.reason = 'invalid_span';
  }
}

const DIGITS = /^\d+$/;

/**
 * Nanoseconds since the epoch → µs, floored, without losing precision (a ns timestamp does not fit a
 * JS number; the µs one does). Throws {@link SpanRejection} past what an Avro long holds (year 2255).
 */
export function nanosToMicros(v: Int64 | null | undefined): number {
  let us: number;
  if (v === null || v === undefined) return 0;
  if (typeof v === 'string') {
    if (!DIGITS.test(v)) throw new SpanRejection(`timestamp ${JSON.stringify(v.slice(0, 40))} is not a non-negative integer`);
    us = v.length <= 3 ? 0 : Number(v.slice(0, -3));
  } else if (typeof v === 'number') {
    if (!(v >= 0)) throw new SpanRejection(`timestamp ${v} is negative`);
    us = Math.floor(v / 1000);
  } else {
    // fixed64: ns = high·2^32 + low, and 2^32 = 1000·4294967 + 296
    const high = v.high >>> 0;
    us = high * 4_294_967 + Math.floor((high * 296 + (v.low >>> 0)) / 1000);
  }
  if (!isAvroLong(us)) throw new SpanRejection('timestamp is out of range');
  return us;
}

/** Lower-case hex of an id; the empty string for no bytes. */
export function hexId(b: Uint8Array | null | undefined): string {
  if (!b || b.length === 0) return '';
  return (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('hex');
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** The context one resource group's spans share. */
export interface GroupContext {
  bkBizId: number;
  appName: string;
  clientIp: string;
  /** The group's resource after {@link resourceAttributes}; shared by its spans, never mutated. */
  resource: Attributes;
}

/**
 * A group's resource attributes as a flat map after the `resource_filter` steps: the token attribute
 * taken out (returned apart), `bk.instance.id` assembled (upserted, as the reference does).
 */
export function filterResource(kvs: readonly KeyValue[] | null | undefined): { resource: Attributes; token: string | undefined } {
  const resource = flattenAttributes(kvs);
  const token = resource[TOKEN_RESOURCE_KEY];
  delete resource[TOKEN_RESOURCE_KEY];
  resource[INSTANCE_ID_KEY] = INSTANCE_ID_PARTS.map((k) => attributeString(resource[k])).join(':');
  return { resource, token: typeof token === 'string' && token !== '' ? token : undefined };
}

function events(span: OtlpSpan): SpanEvent[] {
  const list = span.events;
  if (!list || list.length === 0) return [];
  return list.map((e) => ({ name: e.name ?? '', timestamp: nanosToMicros(e.timeUnixNano), attributes: flattenAttributes(e.attributes) }));
}

function links(span: OtlpSpan): SpanLink[] {
  const list = span.links;
  if (!list || list.length === 0) return [];
  return list.map((l) => ({ trace_id: hexId(l.traceId), span_id: hexId(l.spanId), trace_state: l.traceState ?? '', attributes: flattenAttributes(l.attributes) }));
}

/**
 * One OTLP span → a span record. Throws {@link SpanRejection} for a span that cannot be keyed or stored:
 * trace id not 16 bytes or all zero, span id not 8 bytes or all zero, parent id neither empty nor 8
 * bytes, timestamps out of range.
 */
export function convertSpan(span: OtlpSpan, ctx: GroupContext): Span {
  const traceId = span.traceId;
  if (!traceId || traceId.length !== 16 || isZero(traceId)) throw new SpanRejection('trace_id must be 16 bytes, not all zero');
  const spanId = span.spanId;
  if (!spanId || spanId.length !== 8 || isZero(spanId)) throw new SpanRejection('span_id must be 8 bytes, not all zero');
  const parent = span.parentSpanId;
  if (parent && parent.length !== 0 && parent.length !== 8) throw new SpanRejection('parent_span_id must be empty or 8 bytes');
  const start = nanosToMicros(span.startTimeUnixNano);
  const end = nanosToMicros(span.endTimeUnixNano);
  return {
    bk_biz_id: ctx.bkBizId,
    app_name: ctx.appName,
    trace_id: hexId(traceId),
    span_id: hexId(spanId),
    parent_span_id: hexId(parent),
    span_name: span.name ?? '',
    kind: span.kind ?? 0,
    start_time: start,
    end_time: end,
    // The reference subtracts unsigned ns and wraps around when end < start; a negative span is 0 here.
    elapsed_time: end > start ? end - start : 0,
    status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
    trace_state: span.traceState ?? '',
    attributes: flattenAttributes(span.attributes),
    resource: ctx.resource,
    events: events(span),
    links: links(span),
    client_ip: ctx.clientIp,
  };
}
