/**
 * Dataflow node graphs (README, How it works): what a node's config is, which graph node
 * it is (its identity fields), whether that graph node needs an update, and the request payload.
 *
 * A node names its parents by key; configs that refer to a parent's node id (flink `from_nodes`) get
 * the ids resolved so far. Identity follows the reference per node kind:
 * - source: `from_result_table_ids` + `table_name`
 * - realtime: + `bk_biz_id`
 * - storage (mysql/tspider): `from_result_table_ids`, `table_name`, `bk_biz_id`, `cluster`
 * - elastic storage: `from_result_table_ids`, `result_table_id`, `bk_biz_id`
 * - flink: `bk_biz_id`, first `from_nodes.from_result_table_ids`, first `outputs.table_name`
 * A matched node needs an update when any key of our config differs from the graph's `node_config`
 * (keys only the graph has are ignored, as in the reference).
 */
import { deepEqual } from './compare.ts';

export type NodeKind = 'source' | 'realtime' | 'storage' | 'elastic' | 'flink';

export type NodeConfig = Record<string, unknown>;

export interface NodeDef {
  /** Stable key inside one graph (`source`, `agg`, `flink`, ...). */
  key: string;
  kind: NodeKind;
  /** BKData `node_type`. */
  nodeType: string;
  /** Keys of the parent nodes, first one drives the canvas position. */
  parents: string[];
  /** The config, given the node ids of nodes already placed. */
  config(nodeIds: Readonly<Record<string, number>>): NodeConfig;
}

/** A node as `get_data_flow_graph` returns it. */
export interface GraphNode {
  node_id: number;
  node_type: string;
  node_config: NodeConfig;
}

const same = (a: NodeConfig, b: NodeConfig, key: string): boolean => deepEqual(a[key], b[key]);

function first(v: unknown): Record<string, unknown> | undefined {
  return Array.isArray(v) && typeof v[0] === 'object' && v[0] !== null ? (v[0] as Record<string, unknown>) : undefined;
}

/** Whether a graph node's config is the node `ours` (identity fields only). */
export function isSameNode(kind: NodeKind, ours: NodeConfig, theirs: NodeConfig): boolean {
  switch (kind) {
    case 'source':
      return same(ours, theirs, 'from_result_table_ids') && same(ours, theirs, 'table_name');
    case 'realtime':
      return same(ours, theirs, 'from_result_table_ids') && same(ours, theirs, 'table_name') && same(ours, theirs, 'bk_biz_id');
    case 'storage':
      return same(ours, theirs, 'from_result_table_ids') && same(ours, theirs, 'table_name') && same(ours, theirs, 'bk_biz_id') && same(ours, theirs, 'cluster');
    case 'elastic':
      return same(ours, theirs, 'from_result_table_ids') && same(ours, theirs, 'result_table_id') && same(ours, theirs, 'bk_biz_id');
    case 'flink': {
      const a = first(ours.from_nodes);
      const b = first(theirs.from_nodes);
      const oa = first(ours.outputs);
      const ob = first(theirs.outputs);
      if (!a || !b || !oa || !ob) return false;
      return same(ours, theirs, 'bk_biz_id') && deepEqual(a.from_result_table_ids, b.from_result_table_ids) && deepEqual(oa.table_name, ob.table_name);
    }
  }
}

/** Whether any key of our config differs from the graph node's config. */
export function needsUpdate(ours: NodeConfig, theirs: NodeConfig): boolean {
  return Object.keys(ours).some((k) => !deepEqual(ours[k], theirs[k]));
}

/** Whether the change should restart the flow from the tail: a new node with SQL, or changed SQL. */
export function sqlChanged(ours: NodeConfig, theirs: NodeConfig | undefined): boolean {
  if (!('sql' in ours)) return false;
  return theirs === undefined || !deepEqual(ours.sql, theirs.sql);
}

/** The first graph node that is `def` (given its config), or undefined. */
export function findNode(def: NodeDef, config: NodeConfig, graph: readonly GraphNode[]): GraphNode | undefined {
  return graph.find((g) => g.node_type === def.nodeType && isSameNode(def.kind, config, g.node_config ?? {}));
}

export interface Position {
  x: number;
  y: number;
}

const ROOT: Position = { x: 100, y: 100 };
const OFFSET = 100;

/** Canvas position: the root at (100, 100), each node 100/100 below-right of its first parent. */
export function positions(defs: readonly NodeDef[]): Record<string, Position> {
  const out: Record<string, Position> = {};
  for (const d of defs) {
    const parent = d.parents[0] === undefined ? undefined : out[d.parents[0]];
    out[d.key] = parent ? { x: parent.x + OFFSET, y: parent.y + OFFSET } : { ...ROOT };
  }
  return out;
}

/** The body of `add_data_flow_node` / `update_data_flow_node` (plus `node_id` for the latter). */
export function nodePayload(
  flowId: number,
  def: NodeDef,
  config: NodeConfig,
  nodeIds: Readonly<Record<string, number>>,
  position: Position,
  nowMs: number,
): Record<string, unknown> {
  const fromLinks = def.parents.map((p) => {
    const parentId = nodeIds[p];
    if (parentId === undefined) throw new Error(`node ${def.key}: parent ${p} has no node id yet`);
    return {
      source: { node_id: parentId, id: `ch_${parentId}`, arrow: 'Right' },
      target: { id: `bk_node_${nowMs}`, arrow: 'Left' },
    };
  });
  return { flow_id: flowId, from_links: fromLinks, node_type: def.nodeType, config, frontend_info: position };
}

/** Checks a graph definition: unique keys, parents defined before children. */
export function checkGraph(defs: readonly NodeDef[]): void {
  const seen = new Set<string>();
  for (const d of defs) {
    if (seen.has(d.key)) throw new Error(`node key ${d.key} is used twice`);
    for (const p of d.parents) if (!seen.has(p)) throw new Error(`node ${d.key}: parent ${p} must come first`);
    seen.add(d.key);
  }
}
