/**
 * Configuration of the orchestrator (README, Configuration). Reference settings (bk-monitor) are named in
 * brackets; their defaults are the reference's. {@link validateOrchestrator} checks what no single field
 * can: settings that contradict each other, and the Flink job file.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { bool, int, list, optionalSecret, optionalStr, str, url, type commonSpec, type Config, type Spec } from '../common/config.ts';
import { ConfigError, errorMessage, type ConfigProblem } from '../common/errors.ts';
import { secretKeySpec, validateSecretKey } from '../common/secrets.ts';

export const orchestratorSpec = {
  host: str({ env: 'ORCH_HOST', default: '127.0.0.1', doc: 'interface the HTTP and gRPC APIs listen on' }),
  httpPort: int({ env: 'ORCH_HTTP_PORT', default: 8082, min: 0, max: 65535, doc: 'HTTP API (`/api/v1/flows`, `/metrics`, `/healthz`) port (0 = any free port)' }),
  grpcPort: int({ env: 'ORCH_GRPC_PORT', default: 50051, min: 0, max: 65535, doc: 'gRPC command API port (0 = any free port)' }),
  instanceId: optionalStr({ env: 'ORCH_INSTANCE_ID', doc: 'lease owner name of this instance; unset = `<hostname>-<pid>`. Set a stable one (e.g. the pod name) to take back its own leases at once after a crash' }),
  consumerGroup: str({ env: 'ORCH_CONSUMER_GROUP', default: 'bkstream-orchestrator', doc: 'Kafka consumer group of the flow.commands consumer' }),
  consumerSessionTimeoutMs: int({ env: 'ORCH_CONSUMER_SESSION_TIMEOUT_MS', default: 30_000, min: 6_000, doc: 'Kafka consumer session timeout, ms' }),

  bkdataApiUrl: url({ env: 'BKDATA_API_URL', protocols: ['http', 'https'], doc: 'BKData API base URL [BKDATA_API_BASE_URL], e.g. `http://127.0.0.1:8090/` (bkdata-sim)' }),
  bkdataAppCode: str({ env: 'BKDATA_APP_CODE', default: 'bk_monitorv3', doc: 'sent as `bk_app_code` with every request' }),
  bkdataAppSecret: optionalSecret({ env: 'BKDATA_APP_SECRET', doc: 'when set, sent in the `X-Bkapi-Authorization` header (masked in every log line)' }),
  bkdataTenantId: str({ env: 'BKDATA_TENANT_ID', default: 'system', doc: 'tenant sent in the `X-Bk-Tenant-Id` header of every request (the reference\'s `bk_tenant_id`; `system` outside multi-tenant mode)' }),
  bkdataLanguage: str({ env: 'BKDATA_LANGUAGE', default: 'zh-hans', doc: '[LANGUAGE_CODE] language sent in the `blueking-language` header of every request (e.g. `en`)' }),
  bkdataTimeoutMs: int({ env: 'BKDATA_TIMEOUT_MS', default: 10_000, min: 1, doc: 'timeout of one BKData call, ms (the reference waits 300 s)' }),

  operator: str({ env: 'BKDATA_OPERATOR', default: 'admin', doc: '[APM_APP_BKDATA_OPERATOR] bk_username of the requests, admin of created resources' }),
  maintainers: list({ env: 'BKDATA_MAINTAINERS', default: [], doc: '[APM_APP_BKDATA_MAINTAINER] extra maintainers of created raw data' }),
  defaultBkBizId: int({ env: 'BKDATA_BK_BIZ_ID', default: 2, doc: '[BK_DATA_BK_BIZ_ID] BKData business of tail sampling for apps in spaces (bk_biz_id <= 0)' }),
  tailSamplingProjectId: int({ env: 'BKDATA_TAIL_SAMPLING_PROJECT_ID', default: 1, min: 1, doc: '[APM_APP_BKDATA_TAIL_SAMPLING_PROJECT_ID] BKData project of tail-sampling dataflows' }),
  virtualMetricProjectId: int({ env: 'BKDATA_VIRTUAL_METRIC_PROJECT_ID', default: 1, min: 1, doc: '[APM_APP_BKDATA_VIRTUAL_METRIC_PROJECT_ID] BKData project of virtual-metric dataflows' }),
  requiredTempConvertNode: bool({ env: 'BKDATA_REQUIRED_TEMP_CONVERT_NODE', default: false, doc: '[APM_APP_BKDATA_REQUIRED_TEMP_CONVERT_NODE] put the temporary realtime node before the tail-sampling Flink node' }),
  dataExpiresDays: int({ env: 'BKDATA_DATA_EXPIRES_DAYS', default: 30, min: 1, doc: '[BK_DATA_DATA_EXPIRES_DAYS] cap of the tail-sampling ES storage expiry, days' }),
  virtualMetricStorage: str({ env: 'BKDATA_VIRTUAL_METRIC_STORAGE', default: 'mysql-default', doc: '[APM_APP_BKDATA_VIRTUAL_METRIC_STORAGE] storage cluster of the virtual-metric tables' }),
  virtualMetricStorageExpireDays: int({ env: 'BKDATA_VIRTUAL_METRIC_STORAGE_EXPIRE', default: 30, min: 1, doc: '[APM_APP_BKDATA_VIRTUAL_METRIC_STORAGE_EXPIRE] expiry of the virtual-metric tables, days' }),
  mysqlStorageNodeType: str({ env: 'BKDATA_MYSQL_STORAGE_NODE_TYPE', default: 'mysql_storage', doc: '[BK_DATA_MYSQL_STORAGE_CLUSTER_TYPE] node type of the virtual-metric storage nodes' }),
  storageRegistryAreaCode: str({ env: 'BKDATA_STORAGE_REGISTRY_AREA_CODE', default: 'inland', doc: '[APM_APP_BKDATA_STORAGE_REGISTRY_AREA_CODE] geog_area_code of registered ES resource sets' }),
  flowClusterGroup: str({ env: 'BKDATA_FLOW_CLUSTER_GROUP', default: 'default_inland', doc: '[BK_DATA_FLOW_CLUSTER_GROUP] cluster group dataflows are started in' }),
  flinkCodeFile: optionalStr({ env: 'BKDATA_FLINK_CODE_FILE', doc: 'Java source of the tail-sampling Flink job; unset = services/orchestrator/tail-sampling-flink.java, the project\'s job (built and tested in flink/tail-sampling)' }),

  fetchStatusThreshold: int({ env: 'BKDATA_FETCH_STATUS_THRESHOLD', default: 10, min: 1, doc: '[APM_APP_BKDATA_FETCH_STATUS_THRESHOLD] start/read iterations of the tail-sampling clean before config_cleans_start_failed' }),
  cleanPollIntervalMs: int({ env: 'BKDATA_CLEAN_POLL_INTERVAL_MS', default: 1_000, min: 1, doc: 'pause between clean status polls, ms (reference: 1 s)' }),
  virtualMetricCleanRetries: int({ env: 'BKDATA_VIRTUAL_METRIC_CLEAN_RETRIES', default: 3, min: 0, doc: 'retries of the virtual-metric clean start (reference: 3)' }),
  stopPollIntervalMs: int({ env: 'ORCH_STOP_POLL_INTERVAL_MS', default: 1_000, min: 1, doc: 'pause between dataflow status polls while stopping, ms (reference delete helper: 1 s)' }),
  stopMaxPolls: int({ env: 'ORCH_STOP_MAX_POLLS', default: 300, min: 1, doc: 'dataflow status polls before a stop gives up (reference delete helper: 300)' }),

  breakerResetTimeoutMs: int({ env: 'ORCH_BREAKER_RESET_TIMEOUT_MS', default: 30_000, min: 1, doc: 'time a breaker stays open before a half-open probe, ms' }),
  breakerErrorThresholdPct: int({ env: 'ORCH_BREAKER_ERROR_THRESHOLD_PCT', default: 50, min: 1, max: 100, doc: 'failure percentage over the window that opens a breaker' }),
  breakerVolumeThreshold: int({ env: 'ORCH_BREAKER_VOLUME_THRESHOLD', default: 5, min: 1, doc: 'calls in the window before a breaker may open' }),
  breakerWindowMs: int({ env: 'ORCH_BREAKER_WINDOW_MS', default: 10_000, min: 10, doc: 'rolling statistics window of a breaker, ms' }),
  stepRetries: int({ env: 'ORCH_STEP_RETRIES', default: 10, min: 0, doc: 'retry budget of one step for retriable errors (breaker open does not count)' }),
  retryInitialDelayMs: int({ env: 'ORCH_RETRY_INITIAL_DELAY_MS', default: 500, min: 1, doc: 'backoff before the first retry of a step, ms (doubles, full jitter)' }),
  retryMaxDelayMs: int({ env: 'ORCH_RETRY_MAX_DELAY_MS', default: 30_000, min: 1, doc: 'longest backoff between retries of a step, ms' }),
  waitRecheckMs: int({ env: 'ORCH_WAIT_RECHECK_MS', default: 60_000, min: 10, doc: 'a flow waiting for an open breaker is looked at again after this long even without a breaker event, ms' }),

  maxConcurrentFlows: int({ env: 'ORCH_MAX_CONCURRENT_FLOWS', default: 32, min: 1, max: 10_000, doc: 'flows one instance runs at the same time' }),
  leaseMs: int({ env: 'ORCH_LEASE_MS', default: 30_000, min: 300, doc: 'lease of a running flow, renewed every third of it; a dead instance\'s flows are taken over after it, ms' }),
  pollIntervalMs: int({ env: 'ORCH_POLL_INTERVAL_MS', default: 1_000, min: 10, doc: 'longest sleep of the worker loop (flows of other instances, expired leases), ms' }),
  processInfoMaxLines: int({ env: 'ORCH_PROCESS_INFO_MAX_LINES', default: 200, min: 1, doc: 'process_info lines kept per flow (the reference keeps all)' }),
  historyRetentionHours: int({ env: 'ORCH_HISTORY_RETENTION_HOURS', default: 192, min: 1, doc: 'step-log rows and seen command ids older than this are deleted, hours' }),
  // Passwords in flow configs are sealed at rest with this key (services/common/secrets.ts, SECURITY.md).
  ...secretKeySpec,
} satisfies Spec;

/** The orchestrator's own settings. */
export type OrchestratorSettings = Config<typeof orchestratorSpec>;
/** Its own settings and the ones every service shares (what the service module loads). */
export type OrchestratorConfig = Config<typeof commonSpec & typeof orchestratorSpec>;

/** The env key of a setting, for problems that name it. */
const keyOf = (field: keyof typeof orchestratorSpec): string => orchestratorSpec[field].env;

/** Host names that mean "this machine" for an address we listen on. */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0', '::', '[::]']);

/** The key of this orchestrator's own port that `apiUrl` names (it would call itself, not BKData), or undefined. */
function ownPortIn(c: OrchestratorSettings, apiUrl: string): string | undefined {
  const u = new URL(apiUrl);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const host = u.hostname;
  if (host !== c.host && !(LOCAL_HOSTS.has(host) && LOCAL_HOSTS.has(c.host))) return undefined;
  if (c.httpPort !== 0 && port === c.httpPort) return keyOf('httpPort');
  if (c.grpcPort !== 0 && port === c.grpcPort) return keyOf('grpcPort');
  return undefined;
}

/** The Java source file of the tail-sampling Flink job when BKDATA_FLINK_CODE_FILE is unset: a copy of the job built and tested in flink/tail-sampling. */
export const DEFAULT_FLINK_CODE_FILE = join(import.meta.dirname, 'tail-sampling-flink.java');

const flinkCodeFile = (c: OrchestratorSettings): string => c.flinkCodeFile ?? DEFAULT_FLINK_CODE_FILE;

function unreadableFlinkCode(c: OrchestratorSettings, err: unknown): ConfigProblem {
  return { key: keyOf('flinkCodeFile'), message: `cannot read ${flinkCodeFile(c)}: ${errorMessage(err)}` };
}

/** Cross-field checks, run once every field parsed: every contradiction named by the key to change. */
export function validateOrchestrator(c: OrchestratorSettings): ConfigProblem[] {
  const problems: ConfigProblem[] = [...validateSecretKey(c)];
  if (c.retryInitialDelayMs > c.retryMaxDelayMs) {
    problems.push({ key: keyOf('retryInitialDelayMs'), message: `must be <= ${keyOf('retryMaxDelayMs')} (${c.retryMaxDelayMs}), got ${c.retryInitialDelayMs}` });
  }
  if (c.httpPort !== 0 && c.httpPort === c.grpcPort) {
    problems.push({ key: keyOf('grpcPort'), message: `must differ from ${keyOf('httpPort')} (${c.httpPort})` });
  }
  if (c.pollIntervalMs > c.leaseMs) {
    problems.push({ key: keyOf('pollIntervalMs'), message: `must be <= ${keyOf('leaseMs')} (${c.leaseMs}): expired leases are looked for at least once per lease, got ${c.pollIntervalMs}` });
  }
  const own = ownPortIn(c, c.bkdataApiUrl);
  if (own) problems.push({ key: keyOf('bkdataApiUrl'), message: `points at this orchestrator's own port (${own}), not at BKData: ${c.bkdataApiUrl}` });
  try {
    accessSync(flinkCodeFile(c), constants.R_OK);
  } catch (err) {
    problems.push(unreadableFlinkCode(c, err));
  }
  return problems;
}

/** The lease owner of this process. */
export function instanceIdOf(config: OrchestratorSettings): string {
  return config.instanceId ?? `${hostname()}-${process.pid}`;
}

/** What the flow kinds and steps take from the orchestrator's configuration (reference settings in brackets). */
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

/** The flow settings of a configuration; reads the Flink job's file (ConfigError naming BKDATA_FLINK_CODE_FILE). */
export function flowSettings(config: OrchestratorSettings): FlowSettings {
  let flinkCode: string;
  try {
    flinkCode = readFileSync(flinkCodeFile(config), 'utf8');
  } catch (err) {
    throw new ConfigError([unreadableFlinkCode(config, err)]);
  }
  return {
    operator: config.operator,
    maintainers: config.maintainers,
    defaultBkBizId: config.defaultBkBizId,
    tailSamplingProjectId: config.tailSamplingProjectId,
    virtualMetricProjectId: config.virtualMetricProjectId,
    requiredTempConvertNode: config.requiredTempConvertNode,
    dataExpiresDays: config.dataExpiresDays,
    virtualMetricStorage: config.virtualMetricStorage,
    virtualMetricStorageExpireDays: config.virtualMetricStorageExpireDays,
    mysqlStorageNodeType: config.mysqlStorageNodeType,
    storageRegistryAreaCode: config.storageRegistryAreaCode,
    flowClusterGroup: config.flowClusterGroup,
    flinkCode,
  };
}
