/**
 * What the discoverers produce: one row shape per discovered table, its natural key (the reference's
 * "found key", which the table's `key_md5` hashes), and the sink the discoverers emit into.
 */

export interface EndpointRow {
  endpoint_name: string;
  service_name: string;
  category_id: string;
  category_kind_key: string;
  category_kind_value: string;
  span_kind: number;
}

export interface HostRow {
  bk_cloud_id: number;
  bk_host_id: number | null;
  ip: string;
  topo_node_key: string;
}

export interface InstanceRow {
  topo_node_key: string;
  instance_id: string;
  instance_topo_kind: string;
  component_instance_category: string | null;
  component_instance_predicate_value: string | null;
  sdk_name: string | null;
  sdk_version: string | null;
  sdk_language: string | null;
}

export interface RelationRow {
  from_topo_key: string;
  to_topo_key: string;
  kind: string;
  to_topo_key_kind: string;
  to_topo_key_category: string;
}

export interface RemoteServiceRelationRow {
  topo_node_key: string;
  from_endpoint_name: string;
  category: string;
}

export interface RootEndpointRow {
  endpoint_name: string;
  service_name: string;
  category_id: string;
}

/** One named entry of a node's `system` / `sdk` lists or its `platform`. */
export interface NamedEntry {
  name: string;
  extra_data: Record<string, string | null>;
}

/** The `extra_data` of a topo node (reference §3.4). */
export interface NodeExtra {
  category: string;
  kind: string;
  predicate_value: string | null;
  service_language: string;
}

/** What one span says about one topo node; merged commutatively (node-merge.ts). */
export interface NodeRow {
  topo_key: string;
  extra?: NodeExtra;
  system?: NamedEntry[];
  platform?: NamedEntry;
  sdk?: NamedEntry[];
}

export interface Rows {
  endpoint: EndpointRow;
  host: HostRow;
  instance: InstanceRow;
  node: NodeRow;
  relation: RelationRow;
  remote_service_relation: RemoteServiceRelationRow;
  root_endpoint: RootEndpointRow;
}

export type Table = keyof Rows;
export const TABLES: readonly Table[] = ['endpoint', 'host', 'instance', 'node', 'relation', 'remote_service_relation', 'root_endpoint'];

/** Where discoverers put what they find. `timeUs` is the sighting's event time (span end_time, µs). */
export interface Sink {
  emit<T extends Table>(table: T, bkBizId: number, appName: string, row: Rows[T], timeUs: number): void;
}

/** Separator of the parts of a map key made of several strings. */
export const SEP = '\x1f';
