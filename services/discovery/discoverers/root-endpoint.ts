/**
 * Root endpoints (README: How it works › Discoverers): per trace, the first SERVER or PRODUCER span ordered by start time
 * (then longest first). In the stream a trace's spans arrive over time: the window keeps the best
 * candidate per trace and emits it when the trace has been quiet for the pairing TTL.
 */
import { SpanKind } from '../../common/records.ts';
import type { ClassifiedSpan } from '../classify.ts';
import { keyString, type DiscoverySpan } from '../fields.ts';
import type { RootEndpointRow, Sink } from '../records.ts';

export interface RootCandidate {
  bk_biz_id: number;
  app_name: string;
  start: number;
  elapsed: number;
  /** Tie-break so the choice never depends on arrival order. */
  spanId: string;
  timeUs: number;
  row: RootEndpointRow;
  /** What made `row` (the pipeline's shape serial; 0 when unknown): rows of one source are equal. */
  source: number;
}

/** The root-endpoint row a SERVER or PRODUCER span would make. */
export function rootRow(c: ClassifiedSpan): RootEndpointRow | undefined {
  const { span } = c;
  if (!c.filtered || (span.kind !== SpanKind.SERVER && span.kind !== SpanKind.PRODUCER)) return undefined;
  return { endpoint_name: keyString(c.rule.endpoint?.get(span)), service_name: c.service, category_id: c.rule.categoryId };
}

/** What the window needs of a span to weigh it as its trace's root (a {@link DiscoverySpan} is one). */
export type RootSighting = Pick<DiscoverySpan, 'bk_biz_id' | 'app_name' | 'span_id' | 'start_time' | 'elapsed_time' | 'end_time'>;

export function rootCandidate(span: RootSighting, row: RootEndpointRow, source = 0): RootCandidate {
  return { bk_biz_id: span.bk_biz_id, app_name: span.app_name, start: span.start_time, elapsed: span.elapsed_time, spanId: span.span_id, timeUs: span.end_time, row, source };
}

/** Makes `c` the candidate of `span` instead (the window's candidates are its own: nothing else holds them). */
export function replaceCandidate(c: RootCandidate, span: RootSighting, row: RootEndpointRow, source = 0): void {
  c.bk_biz_id = span.bk_biz_id;
  c.app_name = span.app_name;
  c.start = span.start_time;
  c.elapsed = span.elapsed_time;
  c.spanId = span.span_id;
  c.timeUs = span.end_time;
  c.row = row;
  c.source = source;
}

/** Whether a span comes before a candidate: earlier start, then longer, then smaller span id. */
export function spanBefore(span: RootSighting, c: RootCandidate): boolean {
  return span.start_time < c.start || (span.start_time === c.start && (span.elapsed_time > c.elapsed || (span.elapsed_time === c.elapsed && span.span_id < c.spanId)));
}

export function emitRoot(c: RootCandidate, sink: Sink): void {
  sink.emit('root_endpoint', c.bk_biz_id, c.app_name, c.row, c.timeUs);
}
