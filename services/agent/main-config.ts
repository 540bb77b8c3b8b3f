/**
 * The main file (`bkmonitorbeat.conf`, reference §A3.1–A3.2): the `bkmonitorbeat:` section with the
 * reference's code defaults and validation. Settings the reference has and bkstream does not need
 * (`output.bkpipe`, `path.*`, `logging.*`, `resource_limit`, `admin_addr`, multi-tenant, ...) are accepted
 * and each gives one warning; nothing in them is an error.
 *
 * Top-level keys are libbeat paths: `output.bkpipe:` and `output: {bkpipe: ...}` mean the same, as do
 * `bkmonitorbeat.mode: daemon` and `bkmonitorbeat: {mode: daemon}`.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ConfigProblem } from '../common/errors.ts';
import { fields, isMap, type RawMap } from './config-fields.ts';

export type Mode = 'daemon' | 'check' | 'cron';

/** `concurrency_limit.task.<type>` (§A2.6). */
export interface ConcurrencyLimit {
  perInstance: number;
  perTask: number;
}

/** Reference defaults of a concurrency limit (define.DefaultTaskConcurrencyLimitPerInstance / PerTask). */
export const DEFAULT_LIMIT_PER_INSTANCE = 100_000;
export const DEFAULT_LIMIT_PER_TASK = 1_000;

export interface HeartBeatConfig {
  globalDataId: number;
  /** Defined by the reference but never emitted. */
  childDataId: number;
  /** The legacy uptimecheckbeat heartbeat id (unreachable in bkmonitorbeat). */
  dataId: number;
  periodMs: number;
  publishImmediately: boolean;
}

/** The `bkmonitorbeat:` section after defaults and validation. */
export interface MainConfig {
  /** Absolute path of the main file. */
  readonly file: string;
  readonly nodeId: string;
  readonly ip: string;
  readonly bkCloudId: number;
  readonly bkBizId: number;
  readonly mode: Mode;
  readonly checkIntervalMs: number;
  readonly cleanUpTimeoutMs: number;
  readonly eventBufferSize: number;
  readonly keepOneDimension: boolean;
  readonly metricsBatchSize: number;
  readonly maxMetricBatches: number;
  readonly concurrencyLimits: Readonly<Record<string, ConcurrencyLimit>>;
  readonly hostIdPath: string;
  readonly cmdbLevelMaxLength: number;
  readonly ignoreCmdbLevel: boolean;
  readonly mustHostIdExist: boolean;
  readonly disableNetlink: boolean;
  readonly heartBeat: HeartBeatConfig;
  readonly gatherUpDataId: number;
  /** Absolute child directory ('' = not configured). A relative `include` is resolved against the main file's directory. */
  readonly include: string;
  readonly multiChildDir: boolean;
  /** Host identity of `output.bkpipe` (`hostip`, `cloudid`, `hostid`): the reference's GSE output stamps these on events. */
  readonly bkpipe: { readonly ip?: string; readonly cloudId?: number; readonly hostId?: number };
  /** The whole section as parsed (task sections included). */
  readonly raw: RawMap;
}

/** Reference default of `host_id_path` (pkg/utils/host DefaultPath on Unix). */
export const DEFAULT_HOST_ID_PATH = '/var/lib/gse/host/hostid';

/** Keys of `bkmonitorbeat:` the agent reads (besides the task sections, which the engine routes). */
const KNOWN_KEYS = new Set([
  'node_id', 'ip', 'bk_cloud_id', 'bk_biz_id', 'mode', 'check_interval', 'clean_up_timeout', 'event_buffer_size',
  'keep_one_dimension', 'metrics_batch_size', 'max_metric_batches', 'metricbeat_workers', 'metricbeat_spread_workload',
  'metricbeat_align_ts', 'concurrency_limit', 'host_id_path', 'cmdb_level_max_length', 'ignore_cmdb_level',
  'must_host_id_exist', 'disable_netlink', 'heart_beat', 'gather_up_beat', 'include', 'multi_child_dir',
]);

/** Keys of `bkmonitorbeat:` the reference has and bkstream ignores, and why. */
const IGNORED_KEYS: Record<string, string> = {
  admin_addr: 'the debug server of the reference; bkstream serves /metrics, /healthz and /-/reload on AGENT_ADMIN_HOST:AGENT_ADMIN_PORT',
  jsonlib: 'the GSE output encoder; records are Avro',
  enable_multi_tenant: 'multi-tenant data ids come from the GSE agent, which bkstream does not use; configured data ids are used',
  multi_tenant_tasks: 'multi-tenant data ids are not fetched (no GSE agent)',
  gse_message_endpoint: 'no GSE agent: records go to Kafka',
};

/** Top-level libbeat settings bkstream ignores, and why. */
const IGNORED_TOP: Record<string, string> = {
  output: 'records go to Kafka (KAFKA_BROKERS), not to the GSE socket; only output.bkpipe.hostid/cloudid/hostip are read, as host identity',
  path: 'state lives under AGENT_STATE_DIR',
  logging: 'logs are JSON on stdout (LOG_LEVEL)',
  resource_limit: 'limit the process with its cgroup (the DaemonSet sets resources)',
  seccomp: 'not applicable',
  monitoring: 'self-monitoring is the selfstats task and /metrics',
  max_procs: 'not applicable to Node',
  queue: 'the agent has its own bounded channel and disk spool',
};

export interface MainConfigResult {
  /** Undefined when the file is not YAML or has no `bkmonitorbeat:` mapping; otherwise filled in even if there are problems (so task sections can be checked too). */
  config: MainConfig | undefined;
  /** One line per ignored or unknown setting. */
  warnings: string[];
}

/** Expands libbeat dotted keys (`output.bkpipe: {...}`) into nested maps, merging with nested ones. */
export function expandDotted(doc: RawMap): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    const parts = key.split('.');
    let cur = out;
    for (const part of parts.slice(0, -1)) {
      const next = cur[part];
      if (!isMap(next)) cur[part] = {};
      cur = cur[part] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1] as string;
    const existing = cur[last];
    cur[last] = isMap(existing) && isMap(value) ? { ...existing, ...value } : value;
  }
  return out;
}

/** Parses the main file's text. Problems are pushed with their key (the caller decides that any problem is fatal). */
export function parseMainConfig(text: string, file: string, problems: ConfigProblem[], isTaskSection: (key: string) => boolean = () => false): MainConfigResult {
  const warnings: string[] = [];
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    problems.push({ key: file, message: `cannot parse YAML: ${(err as Error).message}` });
    return { config: undefined, warnings };
  }
  if (!isMap(doc)) {
    problems.push({ key: file, message: 'must be a YAML mapping with a bkmonitorbeat: section' });
    return { config: undefined, warnings };
  }
  for (const key of Object.keys(doc)) {
    const top = key.split('.')[0] as string;
    if (top === 'bkmonitorbeat') continue;
    const why = IGNORED_TOP[top];
    warnings.push(why ? `${key}: not used by bkstream (${why}); ignored` : `${key}: unknown setting; ignored`);
  }
  const expanded = expandDotted(doc);
  const pipe = fields(isMap(expanded.output) && isMap(expanded.output.bkpipe) ? expanded.output.bkpipe : {}, problems, 'output.bkpipe');
  const pipeIp = pipe.str('hostip', { default: '' });
  const pipeCloud = pipe.has('cloudid') ? pipe.int('cloudid', { default: 0 }) : undefined;
  const pipeHost = pipe.has('hostid') ? pipe.int('hostid', { default: 0 }) : undefined;
  const bkpipe = { ...(pipeIp === '' ? {} : { ip: pipeIp }), ...(pipeCloud === undefined ? {} : { cloudId: pipeCloud }), ...(pipeHost === undefined ? {} : { hostId: pipeHost }) };
  const section = expanded.bkmonitorbeat;
  if (!isMap(section)) {
    problems.push({ key: 'bkmonitorbeat', message: 'is required (a mapping)' });
    return { config: undefined, warnings };
  }
  const f = fields(section, problems, 'bkmonitorbeat');
  for (const key of Object.keys(section)) {
    if (KNOWN_KEYS.has(key) || isTaskSection(key)) continue;
    const why = IGNORED_KEYS[key];
    warnings.push(why ? `bkmonitorbeat.${key}: ${why}; ignored` : `bkmonitorbeat.${key}: unknown setting; ignored`);
  }

  for (const key of ['node_id', 'bk_cloud_id', 'bk_biz_id']) if (!f.has(key)) f.problem(key, 'is required');
  const ip = f.str('ip', { default: '' });
  if (ip === '') f.problem('ip', 'must not be empty');
  const mode = f.str('mode', { default: 'check', values: ['daemon', 'check', 'cron'] }) as Mode;
  const checkIntervalMs = f.durationMs('check_interval', { default: 500 });
  if (checkIntervalMs <= 0) f.problem('check_interval', 'must be positive');
  const cleanUpTimeoutMs = f.durationMs('clean_up_timeout', { default: 1_000 });
  if (cleanUpTimeoutMs < 1_000) f.problem('clean_up_timeout', 'must be at least 1s');
  const eventBufferSize = f.int('event_buffer_size', { default: 10 });
  if (eventBufferSize <= 0) f.problem('event_buffer_size', 'must be positive');
  const metricsBatchSize = f.int('metrics_batch_size', { default: 0 });
  const maxMetricBatches = f.int('max_metric_batches', { default: 0 });

  const concurrencyLimits: Record<string, ConcurrencyLimit> = {};
  const limits = f.sub('concurrency_limit').sub('task');
  for (const [type, v] of Object.entries(limits.raw)) {
    if (!isMap(v)) {
      limits.problem(type, 'must be a mapping with per_instance and per_task');
      continue;
    }
    const l = limits.sub(type);
    const perInstance = l.int('per_instance', { default: 0, min: 0 });
    const perTask = l.int('per_task', { default: 0, min: 0 });
    concurrencyLimits[type] = {
      perInstance: perInstance === 0 ? DEFAULT_LIMIT_PER_INSTANCE : perInstance,
      // Reference quirk (errata 3): Clean sets per_instance, not per_task, when per_task is 0, leaving a
      // semaphore of size 0 that blocks http/tcp/udp forever. bkstream gives per_task its default instead.
      perTask: perTask === 0 ? DEFAULT_LIMIT_PER_TASK : perTask,
    };
    if (perTask === 0) warnings.push(`bkmonitorbeat.concurrency_limit.task.${type}.per_task: not set; using ${DEFAULT_LIMIT_PER_TASK} (the reference would block these tasks)`);
  }

  const hb = f.sub('heart_beat');
  const heartBeat: HeartBeatConfig = {
    globalDataId: hb.int('global_dataid', { default: 0 }),
    childDataId: hb.int('child_dataid', { default: 0 }),
    dataId: hb.int('dataid', { default: 0 }),
    periodMs: hb.durationMs('period', { default: 60_000, min: 1_000 }),
    publishImmediately: hb.bool('publish_immediately', true),
  };
  if (mode === 'daemon' && heartBeat.globalDataId === 0 && heartBeat.dataId === 0) {
    hb.problem('global_dataid', 'daemon mode needs heart_beat.global_dataid (or heart_beat.dataid) to be non-zero');
  }
  const includeRaw = f.str('include', { default: '' });
  const nodeId = f.str('node_id', { default: '0' });
  const config: MainConfig = {
    file,
    nodeId,
    ip,
    bkCloudId: f.int('bk_cloud_id', { default: 0 }),
    bkBizId: f.int('bk_biz_id', { default: 0 }),
    mode,
    checkIntervalMs,
    cleanUpTimeoutMs,
    eventBufferSize,
    keepOneDimension: f.bool('keep_one_dimension', false),
    metricsBatchSize: metricsBatchSize <= 0 ? 1024 : metricsBatchSize,
    maxMetricBatches: maxMetricBatches <= 0 ? 5000 : maxMetricBatches,
    concurrencyLimits,
    hostIdPath: f.str('host_id_path', { default: '' }) || DEFAULT_HOST_ID_PATH,
    cmdbLevelMaxLength: f.int('cmdb_level_max_length', { default: 0, min: 0 }) || 10,
    ignoreCmdbLevel: f.bool('ignore_cmdb_level', false),
    mustHostIdExist: f.bool('must_host_id_exist', false),
    disableNetlink: f.bool('disable_netlink', false),
    heartBeat,
    gatherUpDataId: f.sub('gather_up_beat').int('dataid', { default: 0 }),
    include: includeRaw === '' ? '' : isAbsolute(includeRaw) ? includeRaw : resolve(dirname(file), includeRaw),
    multiChildDir: f.bool('multi_child_dir', false),
    bkpipe,
    raw: section,
  };
  return { config, warnings };
}
