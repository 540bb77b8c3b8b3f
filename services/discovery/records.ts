/**
 * What the discoverers produce: one row shape per discovered table (for all but topo nodes, the
 * table's natural key as tables.ts declares it), and the sink the discoverers emit into.
 */
import type { KeyRow, Table } from './tables.ts';

/** The rows of the tables written by upsert: one property per key column (tables.ts). */
export type EndpointRow = KeyRow<'endpoint'>;
export type HostRow = KeyRow<'host'>;
export type InstanceRow = KeyRow<'instance'>;
export type RelationRow = KeyRow<'relation'>;
export type RemoteServiceRelationRow = KeyRow<'remote_service_relation'>;
export type RootEndpointRow = KeyRow<'root_endpoint'>;

/** A JSON value as the node's JSON columns hold it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * One named entry of a node's `system` / `sdk` lists or its `platform`. `extra_data` maps the rule's
 * dotted field keys to the span's raw typed values (fields.ts `jsonValue`: a JSON boolean or number
 * stays one, as the reference stores them), or null when the field is absent.
 */
export interface NamedEntry {
  name: string;
  extra_data: Record<string, JsonValue>;
}

/** The `extra_data` of a topo node (README: How it works › Discoverers, topo nodes). */
export interface NodeExtra {
  category: string;
  kind: string;
  /** The raw typed value of the rule's first predicate field (fields.ts `jsonValue`), null when absent. */
  predicate_value: JsonValue;
  /**
   * `resource["telemetry.sdk.language"]` as text, null when the span has none (as on instances and in the
   * reference); `''` on remote-service nodes, which no SDK describes (the reference's default).
   */
  service_language: string | null;
}

/** What one span says about one topo node; merged commutatively (node-merge.ts). */
export interface NodeRow {
  topo_key: string;
  extra?: NodeExtra;
  system?: NamedEntry[];
  platform?: NamedEntry;
  sdk?: NamedEntry[];
}

/** What the discoverers emit per table: a key row, or for topo nodes a contribution (merged per node). */
export type Rows = { [T in Exclude<Table, 'node'>]: KeyRow<T> } & { node: NodeRow };

/** Where discoverers put what they find. `timeUs` is the sighting's event time (span end_time, µs). */
export interface Sink {
  emit<T extends Table>(table: T, bkBizId: number, appName: string, row: Rows[T], timeUs: number): void;
}

/** Separator of the parts of a map key made of several strings. */
export const SEP = '\x1f';
