/**
 * The service map's model (pure): topo nodes and relations from discovery, with request counts and error
 * rates from storage's span aggregations.
 *
 * Discovery knows which node calls which; storage counts spans. Spans do not name the node they call, so
 * each edge takes the figures that describe it best:
 * - into a remote service (`gateway → http:payment-gw`): the source's client spans whose `peer.service`
 *   names it (exact);
 * - into a component (`order-svc → order-svc-mysql`): the source's client/producer spans of that
 *   category (shared by the source's components of one category, marked `approx`);
 * - into a service with a single caller: the target's server/consumer spans (exact);
 * - into a service with several callers: the source's client spans of the relation's kind (sync: http
 *   and rpc, async: messaging) less its calls to remote services, shared by every edge of the same kind
 *   from that source (marked `approx`).
 */

import { text } from './format.ts';

export interface TopoNode {
  topo_key: string;
  extra_data?: { category?: string; kind?: string; predicate_value?: string | null; service_language?: string } | null;
  last_seen?: string;
}

export interface TopoRelation {
  from_topo_key: string;
  to_topo_key: string;
  kind: string;
  to_topo_key_kind: string;
  to_topo_key_category: string;
}

/** Requests, error rate (0..1), and the 99th percentile of durations (µs) when known. */
export interface Red {
  count: number;
  errorRate: number;
  p99?: number | undefined;
}

/** A row of storage's `aggregate` answer. */
export type AggregateRow = Record<string, unknown>;

export interface MapNode {
  id: string;
  label: string;
  kind: string;
  category: string;
  red: Red | undefined;
}

export interface MapEdge {
  id: string;
  source: string;
  target: string;
  kind: string;
  red: Red | undefined;
  /** The figures are shared with other edges from the same source (see above). */
  approx: boolean;
}

export interface ServiceMap {
  nodes: MapNode[];
  edges: MapEdge[];
}

const SYNC_CATEGORIES = ['http', 'rpc'];
const ASYNC_CATEGORIES = ['messaging', 'async_backend'];

function num(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : 0;
}

function redOf(row: AggregateRow): Red {
  const p99 = row.p99 === null || row.p99 === undefined ? undefined : num(row.p99);
  return { count: num(row.count), errorRate: num(row.error_rate), ...(p99 !== undefined ? { p99 } : {}) };
}

/** `a` without the requests of `b` (errors too); undefined when nothing is left. p99 stays `a`'s. */
export function subtract(a: Red | undefined, b: Red | undefined): Red | undefined {
  if (!a || !b) return a;
  const count = a.count - b.count;
  if (count <= 0) return undefined;
  const errors = Math.max(0, a.errorRate * a.count - b.errorRate * b.count);
  return { count, errorRate: errors / count, ...(a.p99 !== undefined ? { p99: a.p99 } : {}) };
}

/** Figures of several groups as one: counts add up, error rates weigh by count, p99 is the largest. */
export function combine(reds: readonly (Red | undefined)[]): Red | undefined {
  const present = reds.filter((r): r is Red => r !== undefined && r.count > 0);
  if (present.length === 0) return undefined;
  const total = present.reduce((s, r) => s + r.count, 0);
  const errors = present.reduce((s, r) => s + r.errorRate * r.count, 0);
  const p99s = present.map((r) => r.p99).filter((p): p is number => p !== undefined);
  return { count: total, errorRate: total > 0 ? errors / total : 0, ...(p99s.length ? { p99: Math.max(...p99s) } : {}) };
}

/** Server/consumer span figures by service: rows grouped by `resource.service.name`. */
export function byService(rows: readonly AggregateRow[]): Map<string, Red> {
  return new Map(rows.map((r) => [text(r['resource.service.name']), redOf(r)]));
}

/** Client/producer span figures by service and category: rows grouped by `resource.service.name`, `category`. */
export function byServiceCategory(rows: readonly AggregateRow[]): Map<string, Red> {
  return new Map(rows.map((r) => [`${text(r['resource.service.name'])}\u0000${text(r.category)}`, redOf(r)]));
}

/** Client span figures by service and `peer.service`: rows grouped by `resource.service.name`, `attributes.peer.service`. */
export function byServicePeer(rows: readonly AggregateRow[]): Map<string, Red> {
  return new Map(rows.map((r) => [`${text(r['resource.service.name'])}\u0000${text(r['attributes.peer.service'])}`, redOf(r)]));
}

function nodeLabel(n: TopoNode): string {
  return n.topo_key;
}

export function buildServiceMap(nodes: readonly TopoNode[], relations: readonly TopoRelation[], server: Map<string, Red>, client: Map<string, Red>, peers: Map<string, Red> = new Map()): ServiceMap {
  const out = new Map<string, MapNode>();
  for (const n of nodes) {
    out.set(n.topo_key, { id: n.topo_key, label: nodeLabel(n), kind: n.extra_data?.kind ?? 'service', category: n.extra_data?.category ?? 'other', red: undefined });
  }
  // A relation may name a node the node listing no longer has (older, or past its page).
  for (const r of relations) {
    if (!out.has(r.from_topo_key)) out.set(r.from_topo_key, { id: r.from_topo_key, label: r.from_topo_key, kind: 'service', category: 'other', red: undefined });
    if (!out.has(r.to_topo_key)) out.set(r.to_topo_key, { id: r.to_topo_key, label: r.to_topo_key, kind: r.to_topo_key_kind, category: r.to_topo_key_category, red: undefined });
  }
  const clientOf = (service: string, categories: readonly string[]): Red | undefined => combine(categories.map((c) => client.get(`${service}\u0000${c}`)));
  // One edge per (from, to): discovery may keep several relation rows that differ only in kind/category.
  const unique = new Map<string, TopoRelation>();
  for (const r of relations) if (!unique.has(`${r.from_topo_key}\u0000${r.to_topo_key}`)) unique.set(`${r.from_topo_key}\u0000${r.to_topo_key}`, r);
  const rels = [...unique.values()];
  const inbound = new Map<string, number>();
  for (const r of rels) inbound.set(r.to_topo_key, (inbound.get(r.to_topo_key) ?? 0) + 1);
  const categoriesOf = (r: TopoRelation): string[] => {
    if (r.to_topo_key_kind === 'component' || r.to_topo_key_kind === 'remote_service') return [r.to_topo_key_category];
    return r.kind === 'async' ? ASYNC_CATEGORIES : SYNC_CATEGORIES;
  };
  /** A remote service node `<prefix>:<peer.service>` → the peer. */
  const peerOf = (key: string): string => key.slice(key.indexOf(':') + 1);
  /** The source's calls to remote services (its client spans with peer.service). */
  const peerCalls = (from: string): Red | undefined => combine([...peers].filter(([k]) => k.startsWith(`${from}\u0000`)).map(([, red]) => red));
  const sharing = new Map<string, number>();
  for (const r of rels) {
    const key = `${r.from_topo_key}\u0000${categoriesOf(r).join(',')}`;
    sharing.set(key, (sharing.get(key) ?? 0) + 1);
  }
  const edges: MapEdge[] = rels.map((r) => {
    const cats = categoriesOf(r);
    const shared = (sharing.get(`${r.from_topo_key}\u0000${cats.join(',')}`) ?? 0) > 1;
    const toService = r.to_topo_key_kind !== 'component' && r.to_topo_key_kind !== 'remote_service';
    let red: Red | undefined;
    let approx = false;
    const peer = r.to_topo_key_kind === 'remote_service' ? peers.get(`${r.from_topo_key}\u0000${peerOf(r.to_topo_key)}`) : undefined;
    if (peer) {
      red = peer;
    } else if (toService && inbound.get(r.to_topo_key) === 1 && server.has(r.to_topo_key)) {
      red = server.get(r.to_topo_key);
    } else {
      red = clientOf(r.from_topo_key, cats);
      if (toService && r.kind !== 'async') red = subtract(red, peerCalls(r.from_topo_key));
      approx = red !== undefined && shared;
      if (red === undefined && toService) {
        red = server.get(r.to_topo_key);
        approx = red !== undefined && (inbound.get(r.to_topo_key) ?? 0) > 1;
      }
    }
    return { id: `${r.from_topo_key}->${r.to_topo_key}`, source: r.from_topo_key, target: r.to_topo_key, kind: r.kind, red, approx };
  });
  for (const n of out.values()) {
    n.red = server.get(n.id) ?? combine(edges.filter((e) => e.target === n.id).map((e) => e.red));
  }
  return { nodes: [...out.values()], edges };
}

/**
 * Positions for the graph, left to right in layers (linear in nodes + edges, so a map of hundreds of
 * nodes lays out at once): a node's layer is one past the deepest of its callers (Kahn's order); where
 * only cycles are left, the node with the fewest unplaced callers goes next, one layer past its placed
 * callers. A map deeper than about twice the square root of its size is folded into that many layers, so
 * it stays readable at the zoom that fits it; a layer taller than about the square root of the map's size
 * wraps into side-by-side columns. Within a layer, nodes follow the mean position of their callers, which
 * keeps most edges from crossing.
 */
export function layeredLayout(map: ServiceMap, gapX = 230, gapY = 95): Map<string, { x: number; y: number }> {
  const ids = map.nodes.map((n) => n.id);
  const incoming = new Map<string, string[]>(ids.map((id) => [id, []]));
  const outgoing = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of map.edges) {
    if (e.source === e.target || !incoming.has(e.target) || !outgoing.has(e.source)) continue;
    incoming.get(e.target)?.push(e.source);
    outgoing.get(e.source)?.push(e.target);
  }
  const pending = new Map(ids.map((id) => [id, incoming.get(id)?.length ?? 0]));
  const layer = new Map<string, number>();
  const queue: string[] = [];
  const place = (id: string): void => {
    const callers = (incoming.get(id) ?? []).map((c) => layer.get(c)).filter((l): l is number => l !== undefined);
    layer.set(id, callers.length ? Math.max(...callers) + 1 : 0);
    queue.push(id);
  };
  for (const id of ids) if (pending.get(id) === 0) place(id);
  let head = 0;
  while (layer.size < ids.length || head < queue.length) {
    if (head === queue.length) {
      // only cycles are left: break one at the node with the fewest unplaced callers
      let best: string | undefined;
      for (const id of ids) if (!layer.has(id) && (best === undefined || (pending.get(id) ?? 0) < (pending.get(best) ?? 0))) best = id;
      place(best as string);
    }
    const id = queue[head++] as string;
    for (const next of outgoing.get(id) ?? []) {
      if (layer.has(next)) continue;
      const left = (pending.get(next) ?? 0) - 1;
      pending.set(next, left);
      if (left === 0) place(next);
    }
  }
  const depth = Math.max(0, ...layer.values()) + 1;
  const maxLayers = Math.max(4, Math.ceil(2 * Math.sqrt(ids.length)));
  const fold = (l: number): number => (depth > maxLayers ? Math.floor((l * maxLayers) / depth) : l);
  const layers: string[][] = [];
  for (const id of ids) (layers[fold(layer.get(id) as number)] ??= []).push(id);
  // A layer taller than about the square root of the map wraps into side-by-side columns.
  const maxRows = Math.max(8, Math.ceil(1.1 * Math.sqrt(ids.length)));
  const row = new Map<string, number>();
  const out = new Map<string, { x: number; y: number }>();
  let x = 0;
  for (const members of layers) {
    if (!members) continue;
    const weight = (id: string): number => {
      const callers = (incoming.get(id) ?? []).map((c) => row.get(c)).filter((r): r is number => r !== undefined);
      return callers.length ? callers.reduce((a, b) => a + b, 0) / callers.length : Number.POSITIVE_INFINITY;
    };
    const ordered = x === 0 ? members : [...members].sort((a, b) => weight(a) - weight(b));
    const columns = Math.ceil(ordered.length / maxRows);
    ordered.forEach((id, i) => {
      const column = Math.floor(i / maxRows);
      const inColumn = Math.min(maxRows, ordered.length - column * maxRows);
      row.set(id, i);
      out.set(id, { x: x + column * gapX * 0.6, y: ((i % maxRows) - (inColumn - 1) / 2) * gapY + (column % 2) * gapY * 0.3 });
    });
    x += (columns - 1) * gapX * 0.6 + gapX;
  }
  return out;
}
