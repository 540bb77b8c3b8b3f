/**
 * Tail sampling (ApmFlow / TailSamplingFlow, reference bkmonitor-apm.md §6.3–6.5): the BKData requests
 * its steps send and its node graph. Pure functions of the flow's identity, config and settings.
 */
import { DEFAULT_ES_RETENTION_DAYS, esClusterOf, type EsCluster, type FlowSettings, type TailSamplingConfig } from './flow-config.ts';
import { cleanParamsOf, etlAccess, etlAssign, etlBranch, etlConf, etlFromJson, etlIterate } from './clean.ts';
import type { NodeDef } from './nodes.ts';

/** `strip`, `-`/`.` → `_`, lower case (reference `normalize_app_name`). */
export function normalizeAppName(app: string): string {
  return app.trim().replace(/[-.]/g, '_').toLowerCase();
}

/** The business BKData resources live in: the app's, or the default one for apps in spaces (biz <= 0). */
export function bkdataBizId(bkBizId: number, settings: Pick<FlowSettings, 'defaultBkBizId'>): number {
  return bkBizId > 0 ? bkBizId : settings.defaultBkBizId;
}

/**
 * Maintainers: operator + configured maintainers + app creator, unique, comma-joined. Sorted, unlike the
 * reference whose set order is random and can trigger needless `update_deploy_plan` calls.
 */
export function maintainers(settings: Pick<FlowSettings, 'operator' | 'maintainers'>, creator: string | undefined): string {
  return [...new Set([settings.operator, ...settings.maintainers, ...(creator ? [creator] : [])])].sort().join(',');
}

export interface FlowIdentity {
  bkBizId: number;
  appName: string;
}

export const TAIL_CLEAN_NAME = 'bkapm_tail';

export function deployName(id: FlowIdentity): string {
  return `bkapm_trace_${id.bkBizId}_${normalizeAppName(id.appName)}`;
}

/** "dataId mutual recognition": the raw data reuses the trace data id (`preassigned_data_id`). */
export function deployParams(id: FlowIdentity, config: TailSamplingConfig, settings: FlowSettings): Record<string, unknown> {
  const name = deployName(id);
  const description = `APM应用: ${id.appName} 业务ID: ${id.bkBizId}Trace数据源`;
  return {
    operator: settings.operator,
    bk_username: settings.operator,
    data_scenario: 'custom',
    data_scenario_id: 47,
    permission: 'permission',
    bk_biz_id: bkdataBizId(id.bkBizId, settings),
    description,
    access_raw_data: {
      tags: [],
      raw_data_name: name,
      maintainer: maintainers(settings, config.app_creator),
      raw_data_alias: name,
      data_source_tags: ['server'],
      data_region: 'inland',
      data_source: 'data_source',
      data_encoding: 'UTF-8',
      sensitivity: 'private',
      description,
      preassigned_data_id: config.data_id,
    },
  };
}

export function cleanTableName(id: FlowIdentity): string {
  return `${TAIL_CLEAN_NAME}_${normalizeAppName(id.appName)}`.slice(0, 50);
}

export const TAIL_CLEAN_FIELDS = [
  { field_name: 'span_id', field_type: 'string', field_alias: 'span id', is_dimension: false, field_index: 1 },
  { field_name: 'trace_id', field_type: 'string', field_alias: 'trace id', is_dimension: false, field_index: 2 },
  { field_name: 'span_info', field_type: 'text', field_alias: 'span info', is_dimension: false, field_index: 3 },
  { field_name: 'datetime', field_type: 'string', field_alias: 'datetime', is_dimension: false, field_index: 4 },
];

/**
 * The clean's ETL tree: parse JSON; branch A reads `items`, iterates, takes `span_id`/`trace_id` as
 * strings and the whole item as `span_info` text; branch B takes `datetime`.
 */
export function tailCleanJsonConfig(): Record<string, unknown> {
  return {
    extract: etlFromJson(
      etlBranch([
        etlAccess('items', 'label_items', etlIterate(etlBranch([
          etlAssign('assign_obj', 'label_ids', [['string', 'span_id', 'span_id'], ['string', 'trace_id', 'trace_id']]),
          etlAssign('assign_json', 'label_span', [['text', 'span_info', '__all_keys__']]),
        ]))),
        etlAssign('assign_obj', 'label_datetime', [['string', 'datetime', 'datetime']]),
      ]),
    ),
    conf: etlConf('yyyy-MM-dd HH:mm:ss', 'datetime', 0),
  };
}

export function cleanParams(id: FlowIdentity, settings: FlowSettings, rawDataId: number): Record<string, unknown> {
  return cleanParamsOf({
    bkBizId: bkdataBizId(id.bkBizId, settings),
    operator: settings.operator,
    cleanName: TAIL_CLEAN_NAME,
    description: `APM应用: ${id.appName} 业务ID: ${id.bkBizId}尾部采样Trace清洗配置`,
    fields: TAIL_CLEAN_FIELDS,
    jsonConfig: tailCleanJsonConfig(),
    rawDataId,
    table: cleanTableName(id),
  });
}

// ---------------------------------------------------------------------------------------------------------
// ES storage registration

export function resourceSetId(cluster: EsCluster): string {
  return `apm_storage_id_${cluster.cluster_id}`;
}

export function resourceSetName(cluster: EsCluster): string {
  return `apm_storage_${cluster.cluster_name}`;
}

export function traceResultTableId(id: FlowIdentity, config: TailSamplingConfig): string {
  return config.trace_result_table_id ?? `${id.bkBizId}_bkapm_trace_${normalizeAppName(id.appName)}`;
}

/** ES physical table: the trace result table id with `.` → `_`. */
export function esTableName(id: FlowIdentity, config: TailSamplingConfig): string {
  return traceResultTableId(id, config).replace(/\./g, '_');
}

export function resourceSetParams(id: FlowIdentity, config: TailSamplingConfig, settings: FlowSettings): Record<string, unknown> {
  const cluster = esClusterOf(config);
  return {
    bk_username: settings.operator,
    bk_biz_id: bkdataBizId(id.bkBizId, settings),
    resource_set_id: resourceSetId(cluster),
    resource_set_name: resourceSetName(cluster),
    geog_area_code: settings.storageRegistryAreaCode,
    category: 'es',
    provider: 'user',
    purpose: '此集群由APM创建',
    share: false,
    admin: [settings.operator],
    tag: [],
    connection_info: {
      enable_auth: true,
      support_node_tag: cluster.hot_warm,
      has_cold_nodes: false,
      host: cluster.host,
      hot_node_num: 1,
      hot_save_days: 7,
      password: cluster.password,
      port: cluster.port,
      save_days: 30,
      transport: cluster.port,
      user: cluster.username,
      username: cluster.username,
    },
    version: '1',
  };
}

/** Storage expiry: values < 0 or > BK_DATA_DATA_EXPIRES_DAYS become BK_DATA_DATA_EXPIRES_DAYS. */
export function clampExpires(days: number, maxDays: number): number {
  return days < 0 || days > maxDays ? maxDays : days;
}

// ---------------------------------------------------------------------------------------------------------
// node graph

export function flowName(id: FlowIdentity, settings: FlowSettings): string {
  return `bkapm_tail_sampling_${bkdataBizId(id.bkBizId, settings)}_${id.appName}`;
}

const FLINK_OUTPUT_FIELDS: [string, string][] = [
  ['time', 'string'],
  ['span_name', 'string'],
  ['span_id', 'string'],
  ['kind', 'int'],
  ['events', 'string'],
  ['parent_span_id', 'string'],
  ['end_time', 'long'],
  ['links', 'string'],
  ['trace_id', 'string'],
  ['elapsed_time', 'long'],
  ['status', 'string'],
  ['attributes', 'string'],
  ['start_time', 'long'],
  ['trace_state', 'string'],
  ['resource', 'string'],
  ['datatime', 'long'],
];

export const FLINK_DEFAULTS = { traceSessionGapMin: 30, traceMarkTimeoutMin: 1440, maxSpanCount: 10_000, randomSamplingRatio: 100 };

/** `{biz}_{table}` → [biz, table]. */
function splitRt(rt: string): [string, string] {
  const i = rt.indexOf('_');
  return i < 0 ? [rt, ''] : [rt.slice(0, i), rt.slice(i + 1)];
}

/**
 * stream_source(clean rt) → [optional temporary realtime node] → flink_streaming `tail_sampling` →
 * elastic_storage on the registered resource set.
 */
export function tailSamplingNodes(
  id: FlowIdentity,
  config: TailSamplingConfig,
  settings: FlowSettings,
  cleanRt: string,
  esResourceSetId: string,
): NodeDef[] {
  const biz = bkdataBizId(id.bkBizId, settings);
  const norm = normalizeAppName(id.appName);
  const nodes: NodeDef[] = [
    {
      key: 'source',
      kind: 'source',
      nodeType: 'stream_source',
      parents: [],
      config: () => ({ from_result_table_ids: [cleanRt], result_table_id: cleanRt, name: `stream_source(${cleanRt})` }),
    },
  ];
  let flinkInput = cleanRt;
  let flinkParent = 'source';
  if (settings.requiredTempConvertNode) {
    const table = `tail_${norm}_output`;
    nodes.push({
      key: 'convert',
      kind: 'realtime',
      nodeType: 'realtime',
      parents: ['source'],
      config: () => ({
        bk_biz_id: biz,
        sql: `SELECT span_id, trace_id, span_info, datetime FROM ${cleanRt}`,
        table_name: table,
        name: '[临时]空计算节点',
        window_type: 'none',
        output_name: table,
        from_result_table_ids: [cleanRt],
      }),
    });
    flinkInput = `${biz}_${table}`;
    flinkParent = 'convert';
  }
  const [inputBiz, inputTable] = splitRt(flinkInput);
  const flinkTable = `${inputTable}_output`;
  const flinkRt = `${inputBiz}_${flinkTable}`;
  const userArgs = {
    input_table_id: flinkInput,
    output_table_id: flinkRt,
    trace_session_gap_min: config.tail_trace_session_gap_min ?? FLINK_DEFAULTS.traceSessionGapMin,
    trace_mark_timeout_min: config.tail_trace_mark_timeout ?? FLINK_DEFAULTS.traceMarkTimeoutMin,
    sampling_conditions: config.tail_conditions ?? [],
    max_span_count: FLINK_DEFAULTS.maxSpanCount,
    random_sampling_ratio: config.tail_percentage ?? FLINK_DEFAULTS.randomSamplingRatio,
  };
  nodes.push({
    key: 'flink',
    kind: 'flink',
    nodeType: 'flink_streaming',
    parents: [flinkParent],
    config: (ids) => ({
      bk_biz_id: Number(inputBiz),
      name: 'tail_sampling',
      code: settings.flinkCode.trim(),
      processing_name: flinkTable,
      user_args: JSON.stringify(userArgs),
      programming_language: 'java',
      outputs: [
        {
          bk_biz_id: inputBiz,
          fields: FLINK_OUTPUT_FIELDS.map(([name, type]) => ({
            field_name: name,
            field_alias: name,
            event_time: false,
            field_type: type,
            validate: { name: { status: false, errorMsg: 'HOME:必填项不可为空' }, alias: { status: false, errorMsg: 'HOME:必填项不可为空' } },
          })),
          output_name: flinkTable,
          table_name: flinkTable,
        },
      ],
      advanced: { use_savepoint: true },
      from_nodes: [{ from_result_table_ids: [flinkInput], id: ids[flinkParent] ?? null }],
    }),
  });
  const [esBiz] = splitRt(flinkRt);
  nodes.push({
    key: 'es',
    kind: 'elastic',
    nodeType: 'elastic_storage',
    parents: ['flink'],
    config: () => ({
      bk_biz_id: Number(esBiz),
      result_table_id: flinkRt,
      name: `elastic_storage(${flinkRt})`,
      cluster: esResourceSetId,
      date_fields: [],
      expires: clampExpires(config.es_retention_days ?? DEFAULT_ES_RETENTION_DAYS, settings.dataExpiresDays),
      has_replica: false,
      has_unique_key: true,
      storage_keys: ['trace_id', 'span_id'],
      analyzed_fields: [],
      doc_values_fields: ['dtEventTimeStamp', 'timestamp'],
      json_fields: ['status', 'events', 'links', 'attributes', 'resource'],
      from_result_table_ids: [flinkRt],
      physical_table_name: `write_{yyyyMMdd}_${esTableName(id, config)}`,
    }),
  });
  return nodes;
}
