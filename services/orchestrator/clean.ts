/**
 * What the flow kinds' cleans have in common: the request of `databus_cleans` / `update_databus_cleans`
 * (README, How it works) and the pieces of BKData's ETL tree (`json_config`).
 */

/** The root of an ETL tree: parse the record as JSON, then `next`. */
export function etlFromJson(next: Record<string, unknown>): Record<string, unknown> {
  return { type: 'fun', method: 'from_json', result: 'json_root', label: 'label_root', args: [], next };
}

/** A `branch` ETL node: every node of `next` reads the same input. */
export function etlBranch(next: Record<string, unknown>[]): Record<string, unknown> {
  return { type: 'branch', name: '', label: null, next };
}

/** An `iterate` ETL node: `next` runs for each item of the list. */
export function etlIterate(next: Record<string, unknown>): Record<string, unknown> {
  return { type: 'fun', method: 'iterate', result: 'item', label: 'label_iterate', args: [], next };
}

/** An `assign` ETL node: `[type, assign_to, key]` triples. */
export function etlAssign(subtype: 'assign_obj' | 'assign_json', label: string, fields: [string, string, string][]): Record<string, unknown> {
  return { type: 'assign', subtype, label, assign: fields.map(([type, to, key]) => ({ type, assign_to: to, key })), next: null };
}

/** An `access` ETL node reading `key` of an object. */
export function etlAccess(key: string, label: string, next: Record<string, unknown>): Record<string, unknown> {
  return { type: 'access', subtype: 'access_obj', label, key, result: key, default_type: 'null', default_value: '', next };
}

/** The ETL's time settings (`conf`): timezone 8, output field `timestamp`, UTF-8. */
export function etlConf(timeFormat: string, timeField: string, timestampLen: number): Record<string, unknown> {
  return { time_format: timeFormat, timezone: 8, time_field_name: timeField, output_field_name: 'timestamp', timestamp_len: timestampLen, encoding: 'UTF-8' };
}

export interface CleanRequest {
  bkBizId: number;
  operator: string;
  cleanName: string;
  description: string;
  fields: Record<string, unknown>[];
  jsonConfig: Record<string, unknown>;
  rawDataId: number;
  /** Result table name; the clean's table is `{bkBizId}_{table}`. */
  table: string;
}

/** The parameters of a clean create/update (`json_config` as a JSON string, alias = table name). */
export function cleanParamsOf(r: CleanRequest): Record<string, unknown> {
  return {
    bk_biz_id: r.bkBizId,
    bk_username: r.operator,
    clean_config_name: r.cleanName,
    description: r.description,
    fields: r.fields,
    json_config: JSON.stringify(r.jsonConfig),
    raw_data_id: r.rawDataId,
    result_table_name: r.table,
    result_table_name_alias: r.table,
  };
}
