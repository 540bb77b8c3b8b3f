/**
 * Endpoints (README: How it works › Discoverers): one row per (endpoint, service, category, category kind, span kind) of the
 * SERVER/CLIENT/PRODUCER/CONSUMER spans, plus the same row under the remote-service node
 * (`{category}:{peer.service}`) when `peer.service` is set.
 */
import type { Attributes } from '../../common/records.ts';
import type { ClassifiedSpan } from '../classify.ts';
import { keyString } from '../fields.ts';
import type { EndpointRow, Sink } from '../records.ts';

/** Attribute keys whose *presence* (not truthiness) names the category kind, in this order. */
export const CATEGORY_KIND_KEYS = ['db.system', 'messaging.system', 'rpc.system', 'http.method', 'messaging.destination'] as const;

/** The first category-kind key present on the span's attributes, and its value; `['', '']` when none. */
export function categoryKind(attributes: Attributes): [key: string, value: string] {
  for (const key of CATEGORY_KIND_KEYS) {
    if (Object.hasOwn(attributes, key)) return [key, keyString(attributes[key])];
  }
  return ['', ''];
}

export function discoverEndpoint(c: ClassifiedSpan, sink: Sink): void {
  if (!c.filtered) return;
  const { span, rule } = c;
  const [kindKey, kindValue] = categoryKind(span.attributes);
  const row: EndpointRow = {
    endpoint_name: keyString(rule.endpoint?.get(span)),
    service_name: c.service,
    category_id: rule.categoryId,
    category_kind_key: kindKey,
    category_kind_value: kindValue,
    span_kind: span.kind,
  };
  sink.emit('endpoint', span.bk_biz_id, span.app_name, row, span.end_time);
  if (c.peerService !== undefined) {
    sink.emit('endpoint', span.bk_biz_id, span.app_name, { ...row, service_name: `${rule.categoryId}:${c.peerService}` }, span.end_time);
  }
}
