/**
 * Tail sampling (reference ApmFlow / TailSamplingFlow; README, How it works): the flow kind that deploys
 * the trace data id as raw data, cleans it into `bkapm_tail_<app>`, registers the ES cluster as a
 * resource set (its own step, register_storage) and runs stream_source → Flink `tail_sampling` → ES.
 * Its config (a command's `config`), the BKData requests of its steps and its node graph are pure
 * functions of the flow's identity, config and settings.
 */
import type { Params } from '../bkdata-client.ts';
import { cleanParamsOf, etlAccess, etlAssign, etlBranch, etlConf, etlFromJson, etlIterate } from '../clean.ts';
import { configDiffers } from '../compare.ts';
import { pythonJsonDumps } from '../python-json.ts';
import type { FlowSettings } from '../config.ts';
import type { Flow } from '../model.ts';
import type { NodeDef } from '../nodes.ts';
import { authorizeProject, cleanConfig, deployDataSource, ensureDataflow, startClean, startCleanReadFirst, startDataflow, syncNodes } from '../steps/create.ts';
import { advance, fail } from '../steps/context.ts';
import { identityOf, maintainers, normalizeAppName, optionalInt, optionalObject, optionalString, type FlowIdentity, type FlowKind, type StepDef } from './kind.ts';

// ---------------------------------------------------------------------------------------------------------
// config

export const CONDITION_METHODS = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq', 'reg', 'nreg'] as const;

export interface TailCondition {
  /**
   * How the condition joins the one before: `or` starts a new AND group. Optional, as in the reference, on
   * the first condition (whose connector is ignored); required on the others (README, Differences, 10).
   */
  condition?: 'and' | 'or';
  key: string;
  method: (typeof CONDITION_METHODS)[number];
  value: string[];
}

/** The ES cluster the sampled spans are written to (reference: the trace data source's storage). */
export interface EsCluster {
  cluster_id: number;
  cluster_name: string;
  host: string;
  port: number;
  username: string;
  password: string;
  /** `hot_warm_config.is_enabled` of the cluster's custom options. */
  hot_warm: boolean;
}

/**
 * A command's config (the reference reads the data source from its metadata tables; here the command
 * carries it). Everything except the data id has a default.
 */
export interface TailSamplingConfig {
  /** Trace data source bk_data_id (preassigned raw data id). */
  data_id: number;
  tail_percentage?: number;
  tail_trace_session_gap_min?: number;
  tail_trace_mark_timeout?: number;
  tail_conditions?: TailCondition[];
  /** The app's creator, one of the raw data's maintainers. */
  app_creator?: string;
  /** Trace result table id (its `.` become `_` in the ES physical table name). Default `{biz}_bkapm_trace_{app}`. */
  trace_result_table_id?: string;
  /** Retention of the trace ES storage, days. Default 7. */
  es_retention_days?: number;
  es_cluster?: Partial<EsCluster>;
}

export const DEFAULT_ES_CLUSTER: EsCluster = {
  cluster_id: 1,
  cluster_name: 'es_default',
  host: '127.0.0.1',
  port: 9200,
  username: '',
  password: '',
  hot_warm: false,
};

export const DEFAULT_ES_RETENTION_DAYS = 7;

export function esClusterOf(config: TailSamplingConfig): EsCluster {
  return { ...DEFAULT_ES_CLUSTER, ...config.es_cluster };
}

function checkConditions(v: unknown, problems: string[]): void {
  if (v === undefined || v === null) return;
  if (!Array.isArray(v)) {
    problems.push('config.tail_conditions must be a list');
    return;
  }
  v.forEach((c: unknown, i) => {
    const at = `config.tail_conditions[${i}]`;
    if (typeof c !== 'object' || c === null) {
      problems.push(`${at} must be an object {condition?, key, method, value}`);
      return;
    }
    const cond = c as Record<string, unknown>;
    if (cond.condition === undefined) {
      // The reference accepts it missing anywhere; its Flink job then fails to start on a later one.
      if (i > 0) problems.push(`${at}.condition is required after the first condition ("and" or "or"): the Flink job refuses to start without it`);
    } else if (cond.condition !== 'and' && cond.condition !== 'or') problems.push(`${at}.condition must be "and" or "or"`);
    if (typeof cond.key !== 'string' || cond.key === '') problems.push(`${at}.key must be a non-empty string`);
    if (!(CONDITION_METHODS as readonly unknown[]).includes(cond.method)) problems.push(`${at}.method must be one of ${CONDITION_METHODS.join(', ')}`);
    if (!Array.isArray(cond.value) || !cond.value.every((x) => typeof x === 'string')) problems.push(`${at}.value must be a list of strings`);
  });
}

function checkConfig(obj: Record<string, unknown>, problems: string[]): void {
  optionalInt(obj, 'tail_percentage', problems, 0, 100);
  optionalInt(obj, 'tail_trace_session_gap_min', problems, 1);
  optionalInt(obj, 'tail_trace_mark_timeout', problems, 1);
  optionalInt(obj, 'es_retention_days', problems, -1);
  optionalString(obj, 'trace_result_table_id', problems);
  checkConditions(obj.tail_conditions, problems);
  optionalObject(obj.es_cluster, 'es_cluster', { cluster_id: 'int', cluster_name: 'string', host: 'string', port: 'int', username: 'string', password: 'string', hot_warm: 'boolean' }, problems);
}

const configOf = (flow: Flow): TailSamplingConfig => flow.config as unknown as TailSamplingConfig;

// ---------------------------------------------------------------------------------------------------------
// deploy and clean

/** The business BKData resources live in: the app's, or the default one for apps in spaces (biz <= 0). */
export function bkdataBizId(bkBizId: number, settings: Pick<FlowSettings, 'defaultBkBizId'>): number {
  return bkBizId > 0 ? bkBizId : settings.defaultBkBizId;
}

export const TAIL_CLEAN_NAME = 'bkapm_tail';

export function deployName(id: FlowIdentity): string {
  return `bkapm_trace_${id.bkBizId}_${normalizeAppName(id.appName)}`;
}

/** "dataId mutual recognition": the raw data reuses the trace data id (`preassigned_data_id`). */
export function deployParams(id: FlowIdentity, config: TailSamplingConfig, settings: FlowSettings): Params {
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

export function cleanParams(id: FlowIdentity, settings: FlowSettings, rawDataId: number): Params {
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
// ES storage registration (the step register_storage)

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

export function resourceSetParams(id: FlowIdentity, config: TailSamplingConfig, settings: FlowSettings): Params {
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

/**
 * register_storage: makes the ES cluster a BKData resource set (unless one of that id is listed, or
 * get-or-create finds one of the same host) and authorizes the tail-sampling project on it. The
 * reference does this while it builds the flow instance (README, Differences from the reference).
 */
export const registerStorage: StepDef = {
  name: 'register_storage',
  failure: 'config_flow_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const params = resourceSetParams(identityOf(flow), configOf(flow), ctx.settings);
    let setId = params.resource_set_id as string;
    const resources = await ctx.call<{ resource_group_id?: string }[] | null>('query_resource_list', {});
    if (!(resources ?? []).some((r) => r.resource_group_id === setId)) {
      ctx.log(`resource_set_id: ${setId} not in resource list, start check if registry`);
      const res = await ctx.call<{ resource_set_id?: unknown; resource_set_name?: unknown }>('get_or_create_resource_set', params);
      if (typeof res?.resource_set_id !== 'string' || res.resource_set_id === '') return fail(`[get_or_create_resource_set] response abnormal, response: ${JSON.stringify(res)}`);
      if (res.resource_set_id !== setId) ctx.log(`ES ${String((params.connection_info as Params).host)} is registered already, will use resource set ${res.resource_set_id}`);
      setId = res.resource_set_id;
    }
    const info = await ctx.call<{ authorized_projects?: { id?: unknown }[] }>('get_resource_set', { resource_set_id: setId });
    const authorized = (info?.authorized_projects ?? []).map((p) => p.id);
    const project = projectId(ctx.settings);
    if (!authorized.includes(project)) {
      await ctx.call('update_resource_set', { resource_set_id: setId, bk_username: ctx.settings.operator, authorized_projects: [...authorized, project] });
      ctx.log(`${project} <-------> ${setId} auth successfully`);
    }
    flow.state.es_cluster = setId;
    return advance;
  },
};

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

/**
 * A tail condition as the reference's request serializer hands it on (its declared fields in their
 * order: `condition` when given, `key`, `method`, `value`; other keys dropped), so that `user_args` is
 * the reference's text byte for byte.
 */
function samplingCondition(c: TailCondition): Record<string, unknown> {
  return { ...(c.condition === undefined ? {} : { condition: c.condition }), key: c.key, method: c.method, value: c.value };
}

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
    sampling_conditions: (config.tail_conditions ?? []).map(samplingCondition),
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
      user_args: pythonJsonDumps(userArgs),
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

// ---------------------------------------------------------------------------------------------------------
// the kind

function projectId(settings: FlowSettings): number {
  return settings.tailSamplingProjectId;
}

export const tailSampling: FlowKind = {
  type: 'tail_sampling',
  configKeys: ['tail_percentage', 'tail_trace_session_gap_min', 'tail_trace_mark_timeout', 'tail_conditions', 'trace_result_table_id', 'es_retention_days', 'es_cluster'],
  checkConfig,
  checkBiz: () => undefined,
  createPlan: [deployDataSource, cleanConfig, startClean, authorizeProject, registerStorage, ensureDataflow, syncNodes, startDataflow],
  projectId,
  bkdataBizId: (id, settings) => bkdataBizId(id.bkBizId, settings),
  updatesDeployPlan: true,
  deployParams: (flow, settings) => deployParams(identityOf(flow), configOf(flow), settings),
  cleanParams,
  // As the reference: the stored config is compared without its result table name.
  cleanDiffers: (stored, wanted) => configDiffers(stored, wanted, ['result_table_name']),
  cleanUpdate: (flow, rt, params) => [{ api: 'update_databus_cleans', params: { processing_id: flow.databus_clean_id ?? rt, ...params } }],
  // Returned by the create (and stored on the flow).
  cleanResultTableId: (flow) => flow.databus_clean_result_table_id,
  startClean: startCleanReadFirst,
  flowName,
  nodeDefs(flow, settings) {
    const rt = flow.databus_clean_result_table_id;
    const es = flow.state.es_cluster;
    if (!rt) return 'failed to create flow instance, cleans result table id not found';
    if (!es) return 'ES resource set not registered (register_storage did not run)';
    return tailSamplingNodes(identityOf(flow), configOf(flow), settings, rt, es);
  },
};
