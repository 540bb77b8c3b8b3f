/**
 * Virtual metric (reference VirtualMetricFlow; README, How it works): the flow kind that deploys the
 * metric data id's Kafka topic as raw data (created once, never updated), cleans it into
 * `{biz}_bkapm_virtual_metric_{app}` and runs two aggregations into MySQL storage. It uses the app's
 * business directly (no BKData business resolution) and only runs for bk_biz_id > 0. Its config, the
 * BKData requests of its steps and its node graph are pure functions of the flow's identity, config and
 * settings.
 */
import type { Params } from '../bkdata-client.ts';
import { cleanParamsOf, etlAccess, etlAssign, etlBranch, etlConf, etlFromJson, etlIterate } from '../clean.ts';
import { deepEqual } from '../compare.ts';
import type { FlowSettings } from '../config.ts';
import type { Flow } from '../model.ts';
import type { NodeDef } from '../nodes.ts';
import { cleanTaskParams } from '../steps/context.ts';
import { authorizeProject, cleanConfig, deployDataSource, ensureDataflow, startClean, startCleanStartFirst, startDataflow, syncNodes } from '../steps/create.ts';
import { identityOf, maintainers, normalizeAppName, optionalObject, type FlowIdentity, type FlowKind } from './kind.ts';

// ---------------------------------------------------------------------------------------------------------
// config

/** The Kafka topic of the metric data id (reference: metadata `query_data_source(bk_data_id).mq_config`). */
export interface KafkaSource {
  host: string;
  port: number;
  topic: string;
  partitions: number;
  use_sasl: boolean;
  username: string;
  password: string;
}

/** A command's config: the metric data id and where its topic is (default: the local broker). */
export interface VirtualMetricConfig {
  /** Metric data source bk_data_id. */
  data_id: number;
  app_creator?: string;
  kafka?: Partial<KafkaSource>;
}

/** Default Kafka: the local broker, topic named like the reference's metadata topics. */
export function kafkaOf(config: VirtualMetricConfig): KafkaSource {
  return {
    host: '127.0.0.1',
    port: 9092,
    topic: `0bkmonitor_${config.data_id}0`,
    partitions: 1,
    use_sasl: false,
    username: '',
    password: '',
    ...config.kafka,
  };
}

function checkConfig(obj: Record<string, unknown>, problems: string[]): void {
  optionalObject(obj.kafka, 'kafka', { host: 'string', port: 'int', topic: 'string', partitions: 'int', use_sasl: 'boolean', username: 'string', password: 'string' }, problems);
}

const configOf = (flow: Flow): VirtualMetricConfig => flow.config as unknown as VirtualMetricConfig;

// ---------------------------------------------------------------------------------------------------------
// deploy and clean

const PREFIX = 'bkapm_virtual_metric';
export const METRIC_CLEAN_NAME = 'bkapm_metric';

/** The 28 dimensions of the aggregated APM metrics. */
export const METRIC_DIMENSIONS = [
  'apdex_type', 'bk_instance_id', 'kind', 'service_name', 'span_name', 'status_code',
  'telemetry_sdk_language', 'telemetry_sdk_name', 'telemetry_sdk_version', 'target', 'peer_service',
  'http_server_name', 'http_method', 'http_scheme', 'http_flavor', 'http_status_code',
  'rpc_method', 'rpc_service', 'rpc_system', 'rpc_grpc_status_code',
  'db_name', 'db_operation', 'db_system',
  'messaging_system', 'messaging_destination', 'messaging_destination_kind',
  'celery_action', 'celery_task_name',
] as const;

/** Raw data name: the last 50 characters of `bkapm_virtual_metric_{app}`. */
export function datasourceName(id: FlowIdentity): string {
  return `${PREFIX}_${normalizeAppName(id.appName)}`.slice(-50);
}

export function cleanTableName(id: FlowIdentity): string {
  return `${PREFIX}_${normalizeAppName(id.appName)}`;
}

/** The clean's result table id: `{biz}_bkapm_virtual_metric_{app}`. */
export function cleanResultTableId(id: FlowIdentity): string {
  return `${id.bkBizId}_${cleanTableName(id)}`;
}

/** Kafka deploy plan of the metric data id (data scenario `queue`). */
export function deployParams(id: FlowIdentity, config: VirtualMetricConfig, settings: FlowSettings): Params {
  const name = datasourceName(id);
  const description = `APM(${id.appName})虚拟指标`;
  const kafka = kafkaOf(config);
  return {
    data_scenario: 'queue',
    bk_biz_id: id.bkBizId,
    description,
    bk_username: settings.operator,
    access_raw_data: {
      raw_data_name: name,
      maintainer: maintainers(settings, config.app_creator),
      raw_data_alias: name,
      data_source: 'kafka',
      data_encoding: 'UTF-8',
      sensitivity: 'private',
      description,
      tags: [],
      data_source_tags: ['src_kafka'],
    },
    access_conf_info: {
      collection_model: { collection_type: 'incr', start_at: 1, period: '1' },
      resource: {
        type: 'kafka',
        scope: [
          {
            master: `${kafka.host}:${kafka.port}`,
            group: `${kafka.topic}_0000`,
            topic: kafka.topic,
            tasks: kafka.partitions,
            use_sasl: kafka.use_sasl,
            security_protocol: 'SASL_PLAINTEXT',
            sasl_mechanism: 'SCRAM-SHA-512',
            user: kafka.username,
            password: kafka.password,
          },
        ],
      },
    },
  };
}

/** 30 fields: target, time (long), bk_apm_duration (long) and the 27 other dimensions as strings. */
export function metricCleanFields(): Record<string, unknown>[] {
  const names: [string, string][] = [
    ['target', 'string'],
    ['time', 'long'],
    ['bk_apm_duration', 'long'],
    ...METRIC_DIMENSIONS.filter((d) => d !== 'target').map((d): [string, string] => [d, 'string']),
  ];
  return names.map(([name, type], i) => ({ field_name: name, field_type: type, field_alias: name, is_dimension: type === 'string', field_index: i + 1 }));
}

/**
 * The constant ETL tree: parse JSON, iterate `data`; take `target` and `timestamp` (as `time`), the
 * `metrics.bk_apm_duration` value and every `dimension.*`; time is a Unix timestamp in ms.
 */
export function metricCleanJsonConfig(): Record<string, unknown> {
  const dimensions = METRIC_DIMENSIONS.filter((d) => d !== 'target').map((d): [string, string, string] => ['string', d, d]);
  return {
    extract: etlFromJson(
      etlAccess('data', 'label_data', etlIterate(etlBranch([
        etlAssign('assign_obj', 'label_target', [['string', 'target', 'target'], ['long', 'time', 'timestamp']]),
        etlAccess('metrics', 'label_metrics', etlAssign('assign_obj', 'label_duration', [['long', 'bk_apm_duration', 'bk_apm_duration']])),
        etlAccess('dimension', 'label_dimension', etlAssign('assign_obj', 'label_dims', dimensions)),
      ]))),
    ),
    conf: etlConf('Unix Time Stamp(milliseconds)', 'time', 13),
  };
}

export function cleanParams(id: FlowIdentity, settings: FlowSettings, rawDataId: number): Params {
  return cleanParamsOf({
    bkBizId: id.bkBizId,
    operator: settings.operator,
    cleanName: METRIC_CLEAN_NAME,
    description: `APM应用${id.appName}虚拟指标清洗`,
    fields: metricCleanFields(),
    jsonConfig: metricCleanJsonConfig(),
    rawDataId,
    table: cleanTableName(id),
  });
}

// ---------------------------------------------------------------------------------------------------------
// node graph

export function flowName(id: FlowIdentity): string {
  return `bkapm_metrics_${id.bkBizId}_${id.appName}`;
}

const dims = METRIC_DIMENSIONS.join(',\n');

/**
 * The table of an aggregation (`agg`, `avg_agg`): `bkapm_metric_{app}_{suffix}` with the app name as it
 * is, not normalized — unlike the clean's table — as the reference's task builds it (errata §3). Its
 * result table is `{biz}_` + that.
 */
export function metricTableName(id: FlowIdentity, suffix: 'agg' | 'avg_agg'): string {
  return `bkapm_metric_${id.appName}_${suffix}`;
}

function aggSql(from: string): string {
  return [
    'SELECT count(*) as bk_apm_count,',
    'max(bk_apm_duration) as bk_apm_max_duration,',
    'sum(bk_apm_duration) as bk_apm_sum_duration,',
    "sum(IF(status_code='2', 1, 0)) as bk_apm_error_count,",
    "sum(IF(apdex_type='frustrated', 1, 0)) as bk_apm_frustrated_count,",
    "sum(IF(apdex_type='satisfied', 1, 0)) as bk_apm_satisfied_count,",
    "sum(IF(apdex_type='tolerating', 1, 0)) as bk_apm_tolerating_count,",
    "sum(IF(kind='2' OR kind='4', 1, 0)) as bk_apm_call_count,",
    "sum(IF(kind='3' OR kind='5', 1, 0)) as bk_apm_request_count,",
    `${dims}`,
    `from ${from}`,
    'GROUP BY',
    dims,
  ].join('\n');
}

function avgSql(from: string): string {
  return [
    'SELECT',
    '(sum(bk_apm_sum_duration) / sum(bk_apm_count)) as bk_apm_avg_duration,',
    '(sum(bk_apm_error_count) / sum(bk_apm_count)) as bk_apm_error_rate,',
    '(cast((sum(bk_apm_satisfied_count)+sum(bk_apm_tolerating_count) * 0.5) AS DOUBLE)/sum(bk_apm_count)) as bk_apm_apdex,',
    `${dims}`,
    `from ${from}`,
    'GROUP BY',
    dims,
  ].join('\n');
}

/**
 * stream_source({biz}_bkapm_virtual_metric_{normalized app}) → realtime "聚合指标计算"
 * (`bkapm_metric_{raw app}_agg`, 60 s scroll window) → mysql storage, and → realtime "平均值指标计算"
 * (`..._avg_agg`) → mysql storage. The SQL texts are the reference's byte for byte (lower-case `from`, its
 * spacing): a node whose SQL differs by a byte is updated and the dataflow restarted from the tail, so a
 * dataflow the reference created is adopted without either.
 */
export function virtualMetricNodes(id: FlowIdentity, settings: FlowSettings): NodeDef[] {
  const biz = id.bkBizId;
  const sourceRt = cleanResultTableId(id);
  const aggTable = metricTableName(id, 'agg');
  const avgTable = metricTableName(id, 'avg_agg');
  const realtime = (name: string, table: string, from: string, sql: string) => () => ({
    bk_biz_id: biz,
    sql,
    table_name: table,
    name,
    count_freq: 60,
    waiting_time: 10,
    window_type: 'scroll',
    counter: null,
    output_name: table,
    from_result_table_ids: [from],
  });
  const storage = (table: string) => () => {
    const rt = `${biz}_${table}`;
    return {
      name: `${table}(tspider_storage)`,
      result_table_id: rt,
      bk_biz_id: biz,
      indexed_fields: [...METRIC_DIMENSIONS],
      cluster: settings.virtualMetricStorage,
      expires: settings.virtualMetricStorageExpireDays,
      from_result_table_ids: [rt],
    };
  };
  return [
    { key: 'source', kind: 'source', nodeType: 'stream_source', parents: [], config: () => ({ from_result_table_ids: [sourceRt], result_table_id: sourceRt, name: `stream_source(${sourceRt})` }) },
    { key: 'agg', kind: 'realtime', nodeType: 'realtime', parents: ['source'], config: realtime('聚合指标计算', aggTable, sourceRt, aggSql(sourceRt)) },
    { key: 'agg_storage', kind: 'storage', nodeType: settings.mysqlStorageNodeType, parents: ['agg'], config: storage(aggTable) },
    { key: 'avg', kind: 'realtime', nodeType: 'realtime', parents: ['agg'], config: realtime('平均值指标计算', avgTable, `${biz}_${aggTable}`, avgSql(`${biz}_${aggTable}`)) },
    { key: 'avg_storage', kind: 'storage', nodeType: settings.mysqlStorageNodeType, parents: ['avg'], config: storage(avgTable) },
  ];
}

// ---------------------------------------------------------------------------------------------------------
// the kind

export const virtualMetric: FlowKind = {
  type: 'virtual_metric',
  configKeys: ['kafka'],
  checkConfig,
  checkBiz: (bkBizId) => (bkBizId > 0 ? undefined : 'bk_biz_id must be > 0 for virtual_metric (the reference runs it only for businesses)'),
  createPlan: [deployDataSource, cleanConfig, startClean, authorizeProject, ensureDataflow, syncNodes, startDataflow],
  projectId: (settings) => settings.virtualMetricProjectId,
  bkdataBizId: (id) => id.bkBizId,
  // Created once, never updated (reference).
  updatesDeployPlan: false,
  deployParams: (flow, settings) => deployParams(identityOf(flow), configOf(flow), settings),
  cleanParams,
  // Only the ETL (json_config) is compared.
  cleanDiffers(stored, wanted) {
    const etl = stored?.json_config;
    return typeof etl !== 'string' || !deepEqual(JSON.parse(etl), JSON.parse(wanted.json_config as string));
  },
  // The reference stops a virtual-metric clean before updating it.
  cleanUpdate: (_flow, rt, params, settings) => [
    { api: 'stop_databus_cleans', params: cleanTaskParams(rt, settings.operator) },
    { api: 'update_databus_cleans', params: { ...params, processing_id: rt } },
  ],
  // Known in advance.
  cleanResultTableId: (flow) => cleanResultTableId(identityOf(flow)),
  startClean: startCleanStartFirst,
  flowName,
  nodeDefs: (flow, settings) => virtualMetricNodes(identityOf(flow), settings),
};
