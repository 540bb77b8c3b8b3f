/**
 * Relations (README: How it works › Discoverers).
 * A. Single span: a span with `peer.service` relates its service to the remote service
 *    `{first present category-kind key's prefix}:{peer}` (category stored as `http`, as the reference
 *    does); otherwise a span matching a component rule relates its service and `{service}-{predicate}`
 *    (CLIENT/PRODUCER: service → component; SERVER/CONSUMER: component → service, with the service
 *    node's kind/category). A PRODUCER matching a component rule also emits service → that component.
 * B. Parent/child: a CLIENT/PRODUCER span and each SERVER/CONSUMER span whose parent it is. Pairing
 *    needs both spans: the streaming core keeps them in a per-partition window (window.ts) and calls
 *    {@link pairRelation} when they meet.
 */
import { SpanKind } from '../../common/records.ts';
import type { ClassifiedSpan } from '../classify.ts';
import type { RelationRow, Sink } from '../records.ts';
import { CATEGORY_HTTP, nodeKey, topoKey, TOPO_COMPONENT, TOPO_REMOTE_SERVICE, TOPO_SERVICE } from '../rules.ts';
import { CATEGORY_KIND_KEYS } from './endpoint.ts';

export type RelationKind = 'sync' | 'async';

/** The kind and category of a topo node as stored (the reference reads TopoNode.extra_data). */
export interface NodeKindLookup {
  nodeKind(bkBizId: number, appName: string, topoKey: string): { kind: string; category: string } | undefined;
}

export function relationKind(spanKind: number): RelationKind | undefined {
  if (spanKind === SpanKind.CLIENT || spanKind === SpanKind.SERVER) return 'sync';
  if (spanKind === SpanKind.PRODUCER || spanKind === SpanKind.CONSUMER) return 'async';
  return undefined;
}

function towardService(kinds: NodeKindLookup, biz: number, app: string, from: string, service: string, kind: RelationKind): RelationRow {
  const node = kinds.nodeKind(biz, app, service);
  return { from_topo_key: from, to_topo_key: service, kind, to_topo_key_kind: node?.kind ?? TOPO_SERVICE, to_topo_key_category: node?.category ?? CATEGORY_HTTP };
}

export function discoverSingleSpanRelation(c: ClassifiedSpan, kinds: NodeKindLookup, sink: Sink): void {
  const { span, service } = c;
  const kind = relationKind(span.kind);
  if (!c.filtered || !kind) return;
  const biz = span.bk_biz_id;
  const app = span.app_name;
  const component = c.component;
  if (c.peerService !== undefined) {
    const attrKey = CATEGORY_KIND_KEYS.find((k) => Object.hasOwn(span.attributes, k));
    if (attrKey) {
      const to = `${attrKey.slice(0, attrKey.indexOf('.'))}:${c.peerService}`;
      sink.emit('relation', biz, app, { from_topo_key: service, to_topo_key: to, kind, to_topo_key_kind: TOPO_REMOTE_SERVICE, to_topo_key_category: CATEGORY_HTTP }, span.end_time);
    }
    // The asynchronous "middleware" relation of a producer does not depend on peer.service.
    if (component && span.kind === SpanKind.PRODUCER) {
      sink.emit('relation', biz, app, { from_topo_key: service, to_topo_key: `${service}-${topoKey(component, span)}`, kind, to_topo_key_kind: TOPO_COMPONENT, to_topo_key_category: component.categoryId }, span.end_time);
    }
    return;
  }
  if (!component) return;
  const comp = `${service}-${topoKey(component, span)}`;
  const row: RelationRow = span.kind === SpanKind.CLIENT || span.kind === SpanKind.PRODUCER
    ? { from_topo_key: service, to_topo_key: comp, kind, to_topo_key_kind: component.topoKind, to_topo_key_category: component.categoryId }
    : towardService(kinds, biz, app, comp, service, kind);
  sink.emit('relation', biz, app, row, span.end_time);
}

/** What a CLIENT/PRODUCER span brings to a pairing. */
export interface RelationParent {
  from: string;
  kind: RelationKind;
  /** For a PRODUCER matching a component rule: the component node `{service}-{predicate}`. */
  middleware?: string;
}

/** What a SERVER/CONSUMER span brings to a pairing. */
export interface RelationChild {
  service: string;
  /** Its node under its matched rule. */
  key: string;
  topoKind: string;
  category: string;
}

export function relationParent(c: ClassifiedSpan): RelationParent | undefined {
  const { span } = c;
  if (span.kind !== SpanKind.CLIENT && span.kind !== SpanKind.PRODUCER) return undefined;
  if (span.kind === SpanKind.CLIENT) return { from: c.service, kind: 'sync' };
  const component = c.component;
  return component ? { from: c.service, kind: 'async', middleware: `${c.service}-${topoKey(component, span)}` } : { from: c.service, kind: 'async' };
}

export function relationChild(c: ClassifiedSpan): RelationChild | undefined {
  const { span } = c;
  if ((span.kind !== SpanKind.SERVER && span.kind !== SpanKind.CONSUMER) || span.parent_span_id === '') return undefined;
  return { service: c.service, key: nodeKey(c.rule, span, c.service), topoKind: c.rule.topoKind, category: c.rule.categoryId };
}

/** The relation a parent and one of its children make (part B). */
export function pairRelation(parent: RelationParent, child: RelationChild, kinds: NodeKindLookup, biz: number, app: string): RelationRow {
  if (parent.middleware !== undefined) {
    if (child.key === parent.middleware) return towardService(kinds, biz, app, child.key, child.service, parent.kind);
    return { from_topo_key: parent.middleware, to_topo_key: child.key, kind: parent.kind, to_topo_key_kind: child.topoKind, to_topo_key_category: child.category };
  }
  return { from_topo_key: parent.from, to_topo_key: child.key, kind: parent.kind, to_topo_key_kind: child.topoKind, to_topo_key_category: child.category };
}
