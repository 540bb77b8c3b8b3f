/**
 * The discovered tables, declared once: SQL name, the columns of the natural key (with their SQL type
 * and varchar length), further query filters, how long rows are kept, and how they are written.
 *
 * Everything else that names these tables derives from here (test/discovery/tables.test.ts lists and
 * checks each):
 * - the row types the discoverers emit (records.ts `Rows`: one property per key column);
 * - the dedupe key of a sighting (dedupe.ts: the key columns, in order, with table, business and app);
 * - the writer's upserts (writer.ts: columns, SQL array types, values cut to the varchar length) and the
 *   topo nodes' read-merge-write (the node table's name and key length);
 * - the query API's listings and their filters (api.ts), and which retention a listing applies;
 * - the sweep's tables and their retention (sweep.ts);
 * - the per-table metric labels (service.ts).
 *
 * The tables themselves are created by migration 0001_init.sql: each has `bk_biz_id`, `app_name`
 * (varchar({@link APP_NAME_MAX})), the key columns, `first_seen` / `last_seen`, and a `<sql>_natural_key`
 * constraint over bk_biz_id, app_name and the key columns (through a generated `key_md5` for all but
 * topo nodes). A new table or key column is a migration plus one entry here.
 */

/** SQL types of the columns discovery writes and filters on. */
export type ColumnType = 'text' | 'int' | 'bigint' | 'bool';

/** A column: its name, SQL type, varchar length (text), and whether a row's value may be null. */
export interface Column<N extends string = string, T extends ColumnType = ColumnType, Nullable extends boolean = boolean> {
  readonly name: N;
  readonly type: T;
  /** varchar length, for text columns: characters (Unicode code points), as PostgreSQL and the reference's MySQL count them. */
  readonly max?: number;
  readonly nullable: Nullable;
  /**
   * The column names a topo node by its key (a service name, `{service}-{component}`, `{category}:{peer}`):
   * its value is cut to the node key's length ({@link NODE_KEY_MAX}) even where the column is longer, so
   * a node whose key was cut is named by the same cut key in every table that refers to it.
   */
  readonly nodeKey?: true;
}

const text = <N extends string>(name: N, max: number): Column<N, 'text', false> => ({ name, type: 'text', max, nullable: false });
/** The length of a topo node's key (`apm_topo_node.topo_key`), to which every column naming a node is cut. */
export const NODE_KEY_MAX = 255;
const nodeKey = <N extends string>(name: N, max = NODE_KEY_MAX): Column<N, 'text', false> => ({ name, type: 'text', max, nullable: false, nodeKey: true });
const optionalText = <N extends string>(name: N, max: number): Column<N, 'text', true> => ({ name, type: 'text', max, nullable: true });
const int = <N extends string>(name: N): Column<N, 'int', false> => ({ name, type: 'int', nullable: false });
const optionalBigint = <N extends string>(name: N): Column<N, 'bigint', true> => ({ name, type: 'bigint', nullable: true });
const bool = <N extends string>(name: N): Column<N, 'bool', false> => ({ name, type: 'bool', nullable: false });

/**
 * How long rows are kept (sweep.ts) and listed (api.ts): `app` for the app's trace retention
 * (`apm_application.trace_retention_days`, else DISCOVERY_DEFAULT_RETENTION_DAYS); `topoNode` for
 * DISCOVERY_TOPO_NODE_RETENTION_DAYS, and never when the row `is_permanent`.
 */
export type Retention = 'app' | 'topoNode';

export interface TableDecl<K extends readonly Column[] = readonly Column[]> {
  /** The SQL table. */
  readonly sql: string;
  /** The query API's listing: `GET /api/v1/apps/{bk_biz_id}/{app_name}/{listing}`. */
  readonly listing: string;
  /** The natural key's columns, in key order: the dedupe key, the upserted columns, the API's filters. */
  readonly key: K;
  /** Further columns the query API filters on. */
  readonly filters: readonly Column[];
  readonly retention: Retention;
  /**
   * `upsert`: one multi-row upsert of the key columns per flush; `merge`: topo nodes, whose JSON columns
   * are read, merged with what spans said and written back in a transaction (writer.ts).
   */
  readonly write: 'upsert' | 'merge';
}

/** A declaration, with its literal types kept (column names become the row's property names). */
const table = <const D extends TableDecl>(decl: D): D => decl;

/** Every discovered table, by the name the discoverers emit under (records.ts `Sink`). */
export const DISCOVERED = {
  endpoint: table({
    sql: 'apm_endpoint',
    listing: 'endpoints',
    key: [text('endpoint_name', 2048), nodeKey('service_name', 2048), text('category_id', 128), text('category_kind_key', 255), text('category_kind_value', 255), int('span_kind')],
    filters: [],
    retention: 'app',
    write: 'upsert',
  }),
  host: table({
    sql: 'apm_host_instance',
    listing: 'hosts',
    key: [int('bk_cloud_id'), optionalBigint('bk_host_id'), text('ip', 1024), nodeKey('topo_node_key')],
    filters: [],
    retention: 'app',
    write: 'upsert',
  }),
  instance: table({
    sql: 'apm_topo_instance',
    listing: 'instances',
    key: [
      nodeKey('topo_node_key'), text('instance_id', 255), text('instance_topo_kind', 255), optionalText('component_instance_category', 255),
      optionalText('component_instance_predicate_value', 255), optionalText('sdk_name', 255), optionalText('sdk_version', 255), optionalText('sdk_language', 255),
    ],
    filters: [],
    retention: 'app',
    write: 'upsert',
  }),
  node: table({
    sql: 'apm_topo_node',
    listing: 'nodes',
    key: [nodeKey('topo_key')],
    filters: [bool('is_permanent')],
    retention: 'topoNode',
    write: 'merge',
  }),
  relation: table({
    sql: 'apm_topo_relation',
    listing: 'relations',
    key: [nodeKey('from_topo_key'), nodeKey('to_topo_key'), text('kind', 50), text('to_topo_key_kind', 255), text('to_topo_key_category', 255)],
    filters: [],
    retention: 'app',
    write: 'upsert',
  }),
  remote_service_relation: table({
    sql: 'apm_remote_service_relation',
    listing: 'remote-service-relations',
    key: [nodeKey('topo_node_key'), text('from_endpoint_name', 2048), text('category', 128)],
    filters: [],
    retention: 'app',
    write: 'upsert',
  }),
  root_endpoint: table({
    sql: 'apm_root_endpoint',
    listing: 'root-endpoints',
    key: [text('endpoint_name', 2048), nodeKey('service_name', 2048), text('category_id', 128)],
    filters: [],
    retention: 'app',
    write: 'upsert',
  }),
} as const;

export type Table = keyof typeof DISCOVERED;
/** The tables in declaration order (the order of flushes, listings and metric labels). */
export const TABLES = Object.keys(DISCOVERED) as Table[];
/** The tables written by upsert (all but topo nodes). */
export type UpsertTable = { [T in Table]: (typeof DISCOVERED)[T]['write'] extends 'upsert' ? T : never }[Table];
export const UPSERT_TABLES = TABLES.filter((t): t is UpsertTable => DISCOVERED[t].write === 'upsert');
/** The SQL names of the tables. */
export type SqlTable = (typeof DISCOVERED)[Table]['sql'];

/** Length of every table's `app_name` column. */
export const APP_NAME_MAX = 50;

/** How many characters a text column's values keep: its length, or the node key's for a column naming a node. */
export function textLength(column: Column): number {
  const max = column.max ?? Infinity;
  return column.nodeKey ? Math.min(max, NODE_KEY_MAX) : max;
}

type ValueOf<C> = C extends Column<string, infer T, infer Nullable>
  ? (T extends 'text' ? string : T extends 'bool' ? boolean : number) | (Nullable extends true ? null : never)
  : never;

/** The row a table's key columns make: one property per column, typed by its SQL type and nullability. */
export type KeyRow<T extends Table> = { -readonly [C in (typeof DISCOVERED)[T]['key'][number] as C['name']]: ValueOf<C> };
