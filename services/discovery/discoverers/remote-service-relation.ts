/**
 * Remote-service relations (README: How it works › Discoverers): a span with `peer.service` whose parent span has none
 * relates the remote-service node `{category}:{peer}` to the parent's endpoint and category. Like
 * relations, the two spans meet in the per-partition window (window.ts), which calls {@link pairRemote}.
 */
import type { ClassifiedSpan } from '../classify.ts';
import { keyString } from '../fields.ts';
import type { RemoteServiceRelationRow } from '../records.ts';

/** What a span without `peer.service` brings as a parent. */
export interface RemoteParent {
  endpoint: string;
  category: string;
}

export function remoteParent(c: ClassifiedSpan): RemoteParent | undefined {
  if (c.peerService !== undefined) return undefined;
  return { endpoint: keyString(c.rule.endpoint?.get(c.span)), category: c.rule.categoryId };
}

/** The remote-service node of a span with `peer.service` and a parent. */
export function remoteChild(c: ClassifiedSpan): string | undefined {
  if (c.peerService === undefined || c.span.parent_span_id === '') return undefined;
  return `${c.rule.categoryId}:${c.peerService}`;
}

export function pairRemote(parent: RemoteParent, node: string): RemoteServiceRelationRow {
  return { topo_node_key: node, from_endpoint_name: parent.endpoint, category: parent.category };
}
