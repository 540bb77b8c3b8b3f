/**
 * The `config` of a flow command (FlowCommand.config, JSON) per flow type, validated with every problem
 * reported at once, and the settings the flow builders read from the orchestrator's configuration.
 *
 * The reference reads the trace/metric data source (data id, ES storage, Kafka cluster) from its own
 * metadata tables; bkstream has no such tables, so the command carries them. Everything except the
 * data id has a default.
 */
import { ValidationError } from '../common/errors.ts';
import type { FlowAction, FlowType } from '../common/records.ts';

export const FLOW_TYPES: readonly FlowType[] = ['tail_sampling', 'virtual_metric'];
export const FLOW_ACTIONS: readonly FlowAction[] = ['create_or_update', 'stop', 'delete'];
export const CONDITION_METHODS = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq', 'reg', 'nreg'] as const;

export interface TailCondition {
  condition: 'and' | 'or';
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

export interface VirtualMetricConfig {
  /** Metric data source bk_data_id. */
  data_id: number;
  app_creator?: string;
  kafka?: Partial<KafkaSource>;
}

export type FlowConfig = TailSamplingConfig | VirtualMetricConfig;

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

type Problems = string[];

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function optionalInt(obj: Record<string, unknown>, key: string, problems: Problems, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = obj[key];
  if (v === undefined || v === null) return;
  if (!isInt(v) || v < min || v > max) problems.push(`config.${key} must be an integer in [${min}, ${max}]`);
}

function optionalString(obj: Record<string, unknown>, key: string, problems: Problems, prefix = 'config'): void {
  const v = obj[key];
  if (v !== undefined && v !== null && typeof v !== 'string') problems.push(`${prefix}.${key} must be a string`);
}

function checkConditions(v: unknown, problems: Problems): void {
  if (v === undefined || v === null) return;
  if (!Array.isArray(v)) {
    problems.push('config.tail_conditions must be a list');
    return;
  }
  v.forEach((c: unknown, i) => {
    const at = `config.tail_conditions[${i}]`;
    if (typeof c !== 'object' || c === null) {
      problems.push(`${at} must be an object {condition, key, method, value}`);
      return;
    }
    const cond = c as Record<string, unknown>;
    if (cond.condition !== 'and' && cond.condition !== 'or') problems.push(`${at}.condition must be "and" or "or"`);
    if (typeof cond.key !== 'string' || cond.key === '') problems.push(`${at}.key must be a non-empty string`);
    if (!(CONDITION_METHODS as readonly unknown[]).includes(cond.method)) problems.push(`${at}.method must be one of ${CONDITION_METHODS.join(', ')}`);
    if (!Array.isArray(cond.value) || !cond.value.every((x) => typeof x === 'string')) problems.push(`${at}.value must be a list of strings`);
  });
}

function checkObject(v: unknown, key: string, fields: Record<string, 'int' | 'string' | 'boolean'>, problems: Problems): void {
  if (v === undefined || v === null) return;
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`config.${key} must be an object`);
    return;
  }
  for (const [k, val] of Object.entries(v)) {
    const type = fields[k];
    if (!type) problems.push(`config.${key}.${k}: unknown field (${Object.keys(fields).join(', ')})`);
    else if (type === 'int' ? !isInt(val) || val < 0 : typeof val !== type) problems.push(`config.${key}.${k} must be ${type === 'int' ? 'a non-negative integer' : `a ${type}`}`);
  }
}

const TAIL_KEYS = new Set(['data_id', 'tail_percentage', 'tail_trace_session_gap_min', 'tail_trace_mark_timeout', 'tail_conditions', 'app_creator', 'trace_result_table_id', 'es_retention_days', 'es_cluster']);
const METRIC_KEYS = new Set(['data_id', 'app_creator', 'kafka']);

/**
 * Parses and checks a command's config (a JSON string or an object) for `flowType`. `action` other than
 * create_or_update needs no config (an empty object is accepted). Throws one ValidationError listing
 * every problem.
 */
export function parseFlowConfig(flowType: FlowType, action: FlowAction, raw: unknown): FlowConfig {
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = raw.trim() === '' ? {} : (JSON.parse(raw) as unknown);
    } catch {
      throw new ValidationError('config is not valid JSON');
    }
  }
  if (value === undefined || value === null) value = {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('config must be a JSON object');
  const obj = value as Record<string, unknown>;
  if (action !== 'create_or_update') return obj as unknown as FlowConfig;
  const problems: Problems = [];
  if (!isInt(obj.data_id) || obj.data_id <= 0) problems.push('config.data_id must be a positive integer (the bk_data_id of the data source)');
  optionalString(obj, 'app_creator', problems);
  const known = flowType === 'tail_sampling' ? TAIL_KEYS : METRIC_KEYS;
  for (const k of Object.keys(obj)) if (!known.has(k)) problems.push(`config.${k}: unknown key for ${flowType}`);
  if (flowType === 'tail_sampling') {
    optionalInt(obj, 'tail_percentage', problems, 0, 100);
    optionalInt(obj, 'tail_trace_session_gap_min', problems, 1);
    optionalInt(obj, 'tail_trace_mark_timeout', problems, 1);
    optionalInt(obj, 'es_retention_days', problems, -1);
    optionalString(obj, 'trace_result_table_id', problems);
    checkConditions(obj.tail_conditions, problems);
    checkObject(obj.es_cluster, 'es_cluster', { cluster_id: 'int', cluster_name: 'string', host: 'string', port: 'int', username: 'string', password: 'string', hot_warm: 'boolean' }, problems);
  } else {
    checkObject(obj.kafka, 'kafka', { host: 'string', port: 'int', topic: 'string', partitions: 'int', use_sasl: 'boolean', username: 'string', password: 'string' }, problems);
  }
  if (problems.length > 0) throw new ValidationError(`invalid ${flowType} config: ${problems.join('; ')}`, { details: { problems } });
  return obj as unknown as FlowConfig;
}

/** What the flow builders take from the orchestrator's configuration (reference settings in brackets). */
export interface FlowSettings {
  /** [APM_APP_BKDATA_OPERATOR] */
  operator: string;
  /** [APM_APP_BKDATA_MAINTAINER] */
  maintainers: readonly string[];
  /** [BK_DATA_BK_BIZ_ID] BKData business of apps in spaces (bk_biz_id <= 0). */
  defaultBkBizId: number;
  /** [APM_APP_BKDATA_TAIL_SAMPLING_PROJECT_ID] */
  tailSamplingProjectId: number;
  /** [APM_APP_BKDATA_VIRTUAL_METRIC_PROJECT_ID] */
  virtualMetricProjectId: number;
  /** [APM_APP_BKDATA_REQUIRED_TEMP_CONVERT_NODE] */
  requiredTempConvertNode: boolean;
  /** [BK_DATA_DATA_EXPIRES_DAYS] */
  dataExpiresDays: number;
  /** [APM_APP_BKDATA_VIRTUAL_METRIC_STORAGE] */
  virtualMetricStorage: string;
  /** [APM_APP_BKDATA_VIRTUAL_METRIC_STORAGE_EXPIRE] */
  virtualMetricStorageExpireDays: number;
  /** [BK_DATA_MYSQL_STORAGE_CLUSTER_TYPE] node type of the metric storage nodes. */
  mysqlStorageNodeType: string;
  /** [APM_APP_BKDATA_STORAGE_REGISTRY_AREA_CODE] */
  storageRegistryAreaCode: string;
  /** [BK_DATA_FLOW_CLUSTER_GROUP] */
  flowClusterGroup: string;
  /** Java source of the tail-sampling Flink job. */
  flinkCode: string;
}
