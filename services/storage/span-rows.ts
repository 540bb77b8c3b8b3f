/**
 * A decoded span as a storage row: typed columns for what queries filter on, JSON text for attributes,
 * resource, events and links (stored as JSONB). Values are made storable: NUL characters (which
 * PostgreSQL's text and jsonb refuse) are removed, bytes become base64 strings.
 */
import type { Attributes, AttributeValue, Span } from '../common/records.ts';
import { copyText } from '../common/store/copy.ts';

export interface SpanRow {
  bk_biz_id: number;
  app_name: string;
  retention_days: number;
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  span_name: string;
  kind: number;
  start_time: number;
  end_time: number;
  elapsed_time: number;
  status_code: number;
  status_message: string;
  trace_state: string;
  service_name: string;
  category: string;
  attributes: string;
  resource: string;
  events: string;
  links: string;
  client_ip: string;
}

/** Columns in the order of the staging table, COPY and unnest, with their SQL types. */
export const SPAN_COLUMNS = [
  ['bk_biz_id', 'bigint'],
  ['app_name', 'text'],
  ['retention_days', 'integer'],
  ['trace_id', 'text'],
  ['span_id', 'text'],
  ['parent_span_id', 'text'],
  ['span_name', 'text'],
  ['kind', 'smallint'],
  ['start_time', 'bigint'],
  ['end_time', 'bigint'],
  ['elapsed_time', 'bigint'],
  ['status_code', 'smallint'],
  ['status_message', 'text'],
  ['trace_state', 'text'],
  ['service_name', 'text'],
  ['category', 'text'],
  ['attributes', 'jsonb'],
  ['resource', 'jsonb'],
  ['events', 'jsonb'],
  ['links', 'jsonb'],
  ['client_ip', 'text'],
] as const satisfies readonly (readonly [keyof SpanRow, string])[];

/**
 * The columns of a COPY row, in the order the Avro span has them (so the transcoder of span-copy.ts writes a
 * row in one pass over the span's bytes), then what is derived from the maps, then the retention class
 * (appended when the row is queued: the class is known only after the application's retention is looked up).
 */
export const SPAN_COPY_COLUMNS = [
  'bk_biz_id', 'app_name', 'trace_id', 'span_id', 'parent_span_id', 'span_name', 'kind', 'start_time', 'end_time', 'elapsed_time',
  'status_code', 'status_message', 'trace_state', 'attributes', 'resource', 'events', 'links', 'client_ip', 'service_name', 'category', 'retention_days',
] as const satisfies readonly (keyof SpanRow)[];

const NUL = /\u0000/g;

export function clean(s: string): string {
  return s.includes('\u0000') ? s.replace(NUL, '') : s;
}

function value(v: AttributeValue): unknown {
  if (typeof v === 'string') return clean(v);
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map((x) => value(x));
  return v;
}

/** Attributes as a plain object (keys and values cleaned). */
function attributesObject(attrs: Attributes): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key in attrs) out[clean(key)] = value(attrs[key] as AttributeValue);
  return out;
}

/** Whether JSON.stringify would store the value as is (no NUL character, no bytes). */
function plain(v: AttributeValue | undefined): boolean {
  if (typeof v === 'string') return !v.includes('\u0000');
  if (Buffer.isBuffer(v)) return false;
  if (Array.isArray(v)) return v.every((x) => plain(x));
  return true;
}

/** Attributes as a JSON object (keys and values cleaned; most maps need no copy). */
export function attributesJson(attrs: Attributes): string {
  for (const key in attrs) {
    if (key.includes('\u0000') || !plain(attrs[key])) return JSON.stringify(attributesObject(attrs));
  }
  return JSON.stringify(attrs);
}

/**
 * The span's category (the keys of the reference trace summary's `category_statistics`): the first of
 * db, messaging, rpc, http, async_backend whose marker attribute is present, else other.
 */
export function categoryOf(attrs: Attributes): string {
  if (truthy(attrs['db.system'])) return 'db';
  if (truthy(attrs['messaging.system']) || truthy(attrs['messaging.destination'])) return 'messaging';
  if (truthy(attrs['rpc.system'])) return 'rpc';
  if (truthy(attrs['http.method']) || truthy(attrs['http.request.method'])) return 'http';
  if (truthy(attrs['celery.action']) || truthy(attrs['celery.task_name'])) return 'async_backend';
  return 'other';
}

function truthy(v: AttributeValue | undefined): boolean {
  return v !== undefined && v !== null && v !== '' && v !== 0 && v !== false;
}

export function spanRow(span: Span, retentionDays: number): SpanRow {
  const service = span.resource['service.name'];
  return {
    bk_biz_id: span.bk_biz_id,
    app_name: clean(span.app_name),
    retention_days: retentionDays,
    trace_id: clean(span.trace_id),
    span_id: clean(span.span_id),
    parent_span_id: clean(span.parent_span_id),
    span_name: clean(span.span_name),
    kind: span.kind,
    start_time: span.start_time,
    end_time: span.end_time,
    elapsed_time: span.elapsed_time,
    status_code: span.status.code,
    status_message: clean(span.status.message),
    trace_state: clean(span.trace_state),
    service_name: typeof service === 'string' ? clean(service) : '',
    category: categoryOf(span.attributes),
    attributes: attributesJson(span.attributes),
    resource: attributesJson(span.resource),
    events: span.events.length === 0 ? '[]' : JSON.stringify(span.events.map((e) => ({ name: clean(e.name), timestamp: e.timestamp, attributes: attributesObject(e.attributes) }))),
    links: span.links.length === 0 ? '[]' : JSON.stringify(span.links.map((l) => ({ trace_id: clean(l.trace_id), span_id: clean(l.span_id), trace_state: clean(l.trace_state), attributes: attributesObject(l.attributes) }))),
    client_ip: clean(span.client_ip),
  };
}

/** A row's COPY text in {@link SPAN_COPY_COLUMNS} order up to `category` (no retention class, no newline). */
export function copyRowBody(r: SpanRow): string {
  return (
    `${r.bk_biz_id}\t${copyText(r.app_name)}\t${copyText(r.trace_id)}\t${copyText(r.span_id)}\t${copyText(r.parent_span_id)}\t${copyText(r.span_name)}\t` +
    `${r.kind}\t${r.start_time}\t${r.end_time}\t${r.elapsed_time}\t${r.status_code}\t${copyText(r.status_message)}\t${copyText(r.trace_state)}\t` +
    `${copyText(r.attributes)}\t${copyText(r.resource)}\t${copyText(r.events)}\t${copyText(r.links)}\t${copyText(r.client_ip)}\t` +
    `${copyText(r.service_name)}\t${copyText(r.category)}`
  );
}

/** What the pieces need of a stored span (values as stored: NUL removed). */
export interface SpanFacts {
  bk_biz_id: number;
  app_name: string;
  retention_days: number;
  trace_id: string;
  span_id: string;
  span_name: string;
  service_name: string;
  kind: number;
  start_time: number;
  end_time: number;
  elapsed_time: number;
  status_code: number;
  category: string;
  /** parent_span_id is not empty. */
  has_parent: boolean;
  /**
   * The entry-service status code the SQL reads from the stored attributes:
   * `COALESCE(attributes->>'http.status_code', attributes->>'rpc.grpc.status_code')` when it is an
   * integer of at most 9 digits, else null.
   */
  status_attr: number | null;
}

const STATUS_TEXT = /^-?[0-9]{1,9}$/;

/** The status code a `->>` text gives (null when it is not an integer of at most 9 digits). */
export function statusCodeOf(text: string | null): number | null {
  return text !== null && STATUS_TEXT.test(text) ? Number(text) | 0 : null;
}

/** `jsonb ->> key` of a value parsed from the stored JSON: null for JSON null or absent, else its text (what decides a status code). */
function jsonText(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return JSON.stringify(v);
}

/** The facts of a row made from a span object (span-rows.ts `spanRow`). */
export function rowFacts(r: SpanRow): SpanFacts {
  const attributes = JSON.parse(r.attributes) as Record<string, unknown>;
  const http = Object.hasOwn(attributes, 'http.status_code') ? jsonText(attributes['http.status_code']) : null;
  const rpc = Object.hasOwn(attributes, 'rpc.grpc.status_code') ? jsonText(attributes['rpc.grpc.status_code']) : null;
  return {
    bk_biz_id: r.bk_biz_id,
    app_name: r.app_name,
    retention_days: r.retention_days,
    trace_id: r.trace_id,
    span_id: r.span_id,
    span_name: r.span_name,
    service_name: r.service_name,
    kind: r.kind,
    start_time: r.start_time,
    end_time: r.end_time,
    elapsed_time: r.elapsed_time,
    status_code: r.status_code,
    category: r.category,
    has_parent: r.parent_span_id !== '',
    status_attr: statusCodeOf(http ?? rpc),
  };
}
