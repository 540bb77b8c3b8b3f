/**
 * OTLP export of spans over OTLP/HTTP with the JSON encoding (`POST …/v1/traces`,
 * `Content-Type: application/json`), which every OTLP receiver accepts (the OpenTelemetry Collector,
 * Jaeger, Tempo, this project's collector) and which needs no protobuf. Spans are grouped by resource;
 * ids are hex as OTLP/JSON wants; times go back to nanoseconds (µs × 1000, as decimal strings);
 * attribute values keep their types (integers as `intValue`, other numbers as `doubleValue`, bytes as
 * base64 `bytesValue`, lists as `arrayValue`).
 */
import type { Attributes, AttributeValue, Span, SpanBatch } from '../../common/records.ts';
import { parseHeaders } from '../config.ts';
import { defineSink, post, type Sink, type SinkResult } from './sink.ts';

type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number }
  | { bytesValue: string }
  | { arrayValue: { values: AnyValue[] } };

function anyValue(v: AttributeValue): AnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isSafeInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  if (Buffer.isBuffer(v)) return { bytesValue: v.toString('base64') };
  if (Array.isArray(v)) return { arrayValue: { values: v.map((x) => anyValue(x)) } };
  return { stringValue: '' };
}

function keyValues(attrs: Attributes): { key: string; value: AnyValue }[] {
  const out: { key: string; value: AnyValue }[] = [];
  for (const key in attrs) {
    const v = attrs[key];
    if (v !== null && v !== undefined) out.push({ key, value: anyValue(v) });
  }
  return out;
}

const nanos = (us: number): string => (BigInt(Math.round(us)) * 1000n).toString();

function otlpSpan(s: Span): Record<string, unknown> {
  return {
    traceId: s.trace_id,
    spanId: s.span_id,
    ...(s.parent_span_id ? { parentSpanId: s.parent_span_id } : {}),
    ...(s.trace_state ? { traceState: s.trace_state } : {}),
    name: s.span_name,
    kind: s.kind,
    startTimeUnixNano: nanos(s.start_time),
    endTimeUnixNano: nanos(s.end_time),
    attributes: keyValues(s.attributes),
    events: s.events.map((e) => ({ timeUnixNano: nanos(e.timestamp), name: e.name, attributes: keyValues(e.attributes) })),
    links: s.links.map((l) => ({ traceId: l.trace_id, spanId: l.span_id, ...(l.trace_state ? { traceState: l.trace_state } : {}), attributes: keyValues(l.attributes) })),
    status: { code: s.status.code, ...(s.status.message ? { message: s.status.message } : {}) },
  };
}

/** An `ExportTraceServiceRequest` in OTLP/JSON: the spans grouped by resource. */
export function exportRequest(spans: readonly Span[]): { resourceSpans: unknown[] } {
  const byResource = new Map<string, { resource: Attributes; spans: Record<string, unknown>[] }>();
  for (const s of spans) {
    const key = JSON.stringify(s.resource, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v));
    let group = byResource.get(key);
    if (!group) {
      group = { resource: s.resource, spans: [] };
      byResource.set(key, group);
    }
    group.spans.push(otlpSpan(s));
  }
  return {
    resourceSpans: [...byResource.values()].map((g) => ({
      resource: { attributes: keyValues(g.resource) },
      scopeSpans: [{ scope: { name: 'bkstream-storage' }, spans: g.spans }],
    })),
  };
}

export const otlpSink = defineSink({
  name: 'otlp',
  topic: 'spans',
  record: 'SpanBatch',
  enabled: (c) => c.otlpEndpoint !== undefined,
  groupId: (c) => c.otlpGroupId,
  create(config, logger): Sink<SpanBatch> {
    const url = config.otlpEndpoint as string;
    const log = logger.child({ component: 'sink', sink: 'otlp' });
    const headers = { ...parseHeaders(config.otlpHeaders), 'content-type': 'application/json' };
    return {
      async send(batches) {
        const spans = batches.flatMap((b) => b.spans);
        const result: SinkResult = { sent: 0, dropped: 0 };
        for (let i = 0; i < spans.length; i += config.sinkMaxBatch) {
          const chunk = spans.slice(i, i + config.sinkMaxBatch);
          const outcome = await post(url, JSON.stringify(exportRequest(chunk)), headers, config.sinkTimeoutMs, log);
          if (outcome === 'ok') result.sent += chunk.length;
          else result.dropped += chunk.length;
        }
        return result;
      },
    };
  },
});
