/**
 * What the reference's request serializers (bk-monitor `api/bkdata/default.py`, Django REST framework)
 * make of a call's parameters before it is sent (README, Differences from the reference; errata §4): the
 * fields each API declares, in their order, with their types and defaults. Serialising drops every field
 * an API does not declare (the deploy plan's `operator` and `permission` are never sent), coerces values
 * to the declared type (`data_scenario_id` 47 → "47", a Kafka scope's `tasks` → text, `raw_data_id` of a
 * clean → text, text trimmed) and adds defaults (`appenv: "ieod"` and `bkdata_authentication_method:
 * "user"` on every API with a serializer, `pe_config: ""` on clean create/update, ...). The resource
 * center's APIs have no serializer: their parameters go as they are.
 *
 * The flow kinds build the reference's parameters (what it stores and compares, e.g. `deploy_config`);
 * the client sends them serialised, as the reference's API layer does. Values DRF would refuse (a
 * boolean for a text field, text that is no integer) are refused here as a business error of the call.
 */

type Params = Record<string, unknown>;

/** A declared field: its type, and the default used when the call leaves it out. */
type Field =
  | { type: 'int' | 'str' | 'bool' | 'list' | 'dict'; default?: unknown }
  | { type: 'object'; fields: Fields }
  | { type: 'list_of'; fields: Fields };
type Fields = Readonly<Record<string, Field>>;

/** A serializer: its declared fields; `keepUndeclared` for a call of ours that the reference does not make. */
interface Serializer {
  fields: Fields;
  keepUndeclared?: boolean;
}

const int: Field = { type: 'int' };
const str: Field = { type: 'str' };
const bool: Field = { type: 'bool' };
const list: Field = { type: 'list' };
const dict: Field = { type: 'dict' };
const withDefault = (f: Field, value: unknown): Field => ({ ...f, default: value }) as Field;

/** `CommonRequestSerializer`, the base of every BKData serializer. */
const COMMON: Fields = { bkdata_authentication_method: withDefault(str, 'user'), appenv: withDefault(str, 'ieod') };

const DEPLOY_PLAN: Fields = {
  ...COMMON,
  data_scenario: str,
  data_scenario_id: str,
  bk_biz_id: int,
  access_raw_data: {
    type: 'object',
    fields: {
      raw_data_name: str,
      raw_data_alias: str,
      maintainer: str,
      data_source: str,
      data_encoding: str,
      sensitivity: str,
      description: str,
      tags: list,
      data_source_tags: list,
      data_region: str,
      preassigned_data_id: int,
    },
  },
  access_conf_info: {
    type: 'object',
    fields: {
      collection_model: { type: 'object', fields: { collection_type: str, start_at: withDefault(int, 1), period: str } },
      resource: {
        type: 'object',
        fields: {
          type: str,
          scope: {
            type: 'list_of',
            fields: { master: str, group: str, topic: str, tasks: str, use_sasl: bool, security_protocol: str, sasl_mechanism: str, user: str, password: str },
          },
        },
      },
    },
  },
  description: str,
  bk_username: str,
};

const CLEAN_FIELD: Field = { type: 'list_of', fields: { field_name: str, field_type: str, field_alias: str, is_dimension: bool, field_index: int } };

const CLEAN: Fields = {
  ...COMMON,
  raw_data_id: str,
  json_config: str,
  pe_config: withDefault(str, ''),
  bk_biz_id: int,
  clean_config_name: str,
  result_table_name: str,
  result_table_name_alias: str,
  fields: CLEAN_FIELD,
  description: withDefault(str, ''),
  bk_username: str,
};

const NODE: Fields = {
  ...COMMON,
  flow_id: int,
  from_links: {
    type: 'list_of',
    fields: {
      source: { type: 'object', fields: { node_id: int, id: str, arrow: str } },
      target: { type: 'object', fields: { id: str, arrow: str } },
    },
  },
  node_type: str,
  // A DictField: the node's config goes as it is.
  config: dict,
  frontend_info: { type: 'object', fields: { x: withDefault(int, 0), y: withDefault(int, 0) } },
};

const FLOW: Fields = { ...COMMON, flow_id: int };

/**
 * Each API's serializer by client name (null: none, the parameters go as they are). Every API of the
 * client's table is listed (test/orchestrator/bkdata-client.test.ts).
 */
const SERIALIZERS: Readonly<Record<string, Serializer | null>> = {
  access_deploy_plan: { fields: DEPLOY_PLAN },
  update_deploy_plan: { fields: { ...DEPLOY_PLAN, raw_data_id: str } },
  // Ours (README, Differences, 16): the common fields, the filters as they are.
  list_raw_data: { fields: COMMON, keepUndeclared: true },
  databus_cleans: { fields: { ...CLEAN, result_table_id: str, processing_id: str } },
  get_databus_cleans: { fields: { ...COMMON, raw_data_id: str, bk_username: str } },
  update_databus_cleans: { fields: { ...COMMON, processing_id: str, ...CLEAN } },
  start_databus_cleans: { fields: { ...COMMON, result_table_id: str, storages: withDefault(list, ['kafka']), bk_username: str, processing_id: str } },
  stop_databus_cleans: { fields: { ...COMMON, result_table_id: str, storages: withDefault(list, ['kafka']), bk_username: str } },
  auth_projects_data_check: { fields: { ...COMMON, project_id: int, result_table_id: str, action_id: withDefault(str, 'result_table.query_data') } },
  auth_result_table: { fields: { ...COMMON, project_id: int, object_id: str, bk_biz_id: int } },
  get_data_flow_list: { fields: { ...COMMON, project_id: int } },
  get_data_flow: { fields: FLOW },
  get_data_flow_graph: { fields: FLOW },
  create_data_flow: { fields: { ...COMMON, project_id: int, flow_name: str, nodes: list } },
  add_data_flow_node: { fields: NODE },
  update_data_flow_node: { fields: { ...NODE, node_id: int } },
  delete_data_flow_node: { fields: { ...FLOW, node_id: int, confirm: withDefault(bool, true) } },
  start_data_flow: { fields: { ...FLOW, consuming_mode: withDefault(str, 'continue'), cluster_group: withDefault(str, 'default'), check_and_start_clean_task: withDefault(bool, true) } },
  stop_data_flow: { fields: FLOW },
  restart_data_flow: { fields: { ...FLOW, consuming_mode: withDefault(str, 'continue'), cluster_group: withDefault(str, 'default') } },
  delete_data_flow: { fields: FLOW },
  get_latest_deploy_data_flow: { fields: FLOW },
  query_resource_list: null,
  get_or_create_resource_set: null,
  update_resource_set: null,
  get_resource_set: null,
};

/** The client names that have an entry above. */
export const SERIALIZER_APIS: readonly string[] = Object.keys(SERIALIZERS);

/** A value DRF would refuse; the client turns it into a business error of the call. */
export class SerializerError extends Error {
  override readonly name = 'SerializerError';
}

const TRUE_TEXT = new Set(['true', 'True', 'TRUE', 'yes', 'Yes', 'YES', 'on', 'On', 'ON', '1', 'y', 'Y']);
const FALSE_TEXT = new Set(['false', 'False', 'FALSE', 'no', 'No', 'NO', 'off', 'Off', 'OFF', '0', 'n', 'N']);

function coerce(field: Field, value: unknown, at: string): unknown {
  // Null goes as it is (whether a field allows it is BKData's business).
  if (value === null) return null;
  switch (field.type) {
    case 'str':
      // CharField: text or a number, as text, trimmed.
      if (typeof value === 'string') return value.trim();
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      throw new SerializerError(`${at}: not a valid string`);
    case 'int': {
      // IntegerField: an integer, or text of one.
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+(\.0*)?\s*$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n)) throw new SerializerError(`${at}: a valid integer is required`);
      return n;
    }
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 1 || (typeof value === 'string' && TRUE_TEXT.has(value))) return true;
      if (value === 0 || (typeof value === 'string' && FALSE_TEXT.has(value))) return false;
      throw new SerializerError(`${at}: must be a valid boolean`);
    case 'list':
      if (!Array.isArray(value)) throw new SerializerError(`${at}: expected a list of items`);
      return value;
    case 'dict':
      if (typeof value !== 'object' || Array.isArray(value)) throw new SerializerError(`${at}: expected a dictionary of items`);
      return value;
    case 'object':
      if (typeof value !== 'object' || Array.isArray(value)) throw new SerializerError(`${at}: expected a dictionary`);
      return serializeFields(field.fields, value as Params, false, `${at}.`);
    case 'list_of':
      if (!Array.isArray(value)) throw new SerializerError(`${at}: expected a list of items`);
      return value.map((item: unknown, i) => {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new SerializerError(`${at}[${i}]: expected a dictionary`);
        return serializeFields(field.fields, item as Params, false, `${at}[${i}].`);
      });
  }
}

function serializeFields(fields: Fields, params: Params, keepUndeclared: boolean, prefix: string): Params {
  const out: Params = {};
  for (const [name, field] of Object.entries(fields)) {
    const value = params[name];
    if (value !== undefined) out[name] = coerce(field, value, `${prefix}${name}`);
    else if ('default' in field && field.default !== undefined) out[name] = structuredClone(field.default);
  }
  if (keepUndeclared) for (const [name, value] of Object.entries(params)) if (!(name in fields) && value !== undefined) out[name] = value;
  return out;
}

/**
 * A call's parameters as the reference's serializer of that API hands them to its API layer: declared
 * fields only, coerced, defaults added; unchanged for an API without one. Throws {@link SerializerError}.
 */
export function serializeRequest(api: string, params: Params): Params {
  const serializer = SERIALIZERS[api];
  if (serializer === undefined) throw new Error(`no serializer entry for BKData API ${api}`);
  if (serializer === null) return { ...params };
  return serializeFields(serializer.fields, params, serializer.keepUndeclared ?? false, '');
}
