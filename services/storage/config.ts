/**
 * Configuration of the storage service (env keys `STORAGE_*`), validated at start-up with every problem
 * reported at once. Durations carry their unit in the name.
 */
import { bool, int, optionalUrl, str, type Config } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';

export const storageSpec = {
  httpHost: str({ env: 'STORAGE_HTTP_HOST', default: '127.0.0.1', doc: 'address the query API, /metrics and /healthz listen on' }),
  httpPort: int({ env: 'STORAGE_HTTP_PORT', default: 8083, min: 0, max: 65535, doc: 'port of the query API, /metrics and /healthz (0 = any free port)' }),
  spansGroupId: str({ env: 'STORAGE_SPANS_GROUP_ID', default: 'bkstream-storage-spans', doc: 'consumer group on `<prefix>.spans`' }),
  replayGroupId: str({ env: 'STORAGE_REPLAY_GROUP_ID', default: 'bkstream-storage-replay', doc: 'consumer group on `<prefix>.spans.replay`' }),
  metricsGroupId: str({ env: 'STORAGE_METRICS_GROUP_ID', default: 'bkstream-storage-metrics', doc: 'consumer group on `<prefix>.metrics`' }),
  eventsGroupId: str({ env: 'STORAGE_EVENTS_GROUP_ID', default: 'bkstream-storage-events', doc: 'consumer group on `<prefix>.events`' }),
  consumeReplay: bool({ env: 'STORAGE_CONSUME_REPLAY', default: true, doc: 'also consume `<prefix>.spans.replay` (backfill)' }),
  partitionsConcurrently: int({ env: 'STORAGE_PARTITIONS_CONCURRENTLY', default: 3, min: 1, max: 64, doc: 'partitions of one topic handled at the same time' }),
  maxInFlightRecords: int({ env: 'STORAGE_MAX_IN_FLIGHT_RECORDS', default: 500, min: 1, doc: 'Kafka records per partition accepted but not yet durable before the partition is paused (a SpanBatch record holds up to ~100 spans)' }),
  flushIntervalMs: int({ env: 'STORAGE_FLUSH_INTERVAL_MS', default: 200, min: 1, doc: 'longest time a row waits before its batch is written, ms' }),
  flushMaxRows: int({ env: 'STORAGE_FLUSH_MAX_ROWS', default: 10_000, min: 1, doc: 'rows (spans, samples or events) that trigger a write before the interval' }),
  flushConcurrency: int({ env: 'STORAGE_FLUSH_CONCURRENCY', default: 2, min: 1, max: 16, doc: 'span writes in flight at once (PostgreSQL; embedded PGlite runs one statement at a time anyway)' }),
  copyPoolSize: int({ env: 'STORAGE_COPY_POOL_SIZE', default: 4, min: 1, max: 64, doc: 'PostgreSQL connections used for COPY writes' }),
  defaultRetentionDays: int({ env: 'STORAGE_DEFAULT_RETENTION_DAYS', default: 7, min: 1, max: 3650, doc: 'trace retention of spans whose application has no apm_application row, days' }),
  metricRetentionDays: int({ env: 'STORAGE_METRIC_RETENTION_DAYS', default: 15, min: 1, max: 3650, doc: 'retention of agent metric samples, days (whole day partitions are dropped)' }),
  eventRetentionDays: int({ env: 'STORAGE_EVENT_RETENTION_DAYS', default: 15, min: 1, max: 3650, doc: 'retention of agent events, days (whole day partitions are dropped)' }),
  partitionsAheadDays: int({ env: 'STORAGE_PARTITIONS_AHEAD_DAYS', default: 2, min: 1, max: 30, doc: 'day partitions created ahead of today; rows further in the future than this are dropped and counted' }),
  rollupFoldIntervalMs: int({ env: 'STORAGE_ROLLUP_FOLD_INTERVAL_MS', default: 2_000, min: 100, doc: 'how often the rollup pieces PostgreSQL writes append are folded into the per-minute rollups, ms' }),
  maintenanceIntervalMs: int({ env: 'STORAGE_MAINTENANCE_INTERVAL_MS', default: 600_000, min: 1_000, doc: 'how often partitions are created ahead and expired ones dropped, ms' }),
  retentionCacheTtlMs: int({ env: 'STORAGE_RETENTION_CACHE_TTL_MS', default: 30_000, min: 0, doc: 'how long an application\'s retention (apm_application) is cached, ms' }),
  queryTimeoutMs: int({ env: 'STORAGE_QUERY_TIMEOUT_MS', default: 10_000, min: 100, doc: 'statement_timeout of every API query, ms (PostgreSQL; PGlite cannot interrupt a statement)' }),
  queryWorkMemMb: int({ env: 'STORAGE_QUERY_WORK_MEM_MB', default: 64, min: 1, max: 4096, doc: 'work_mem of the query API\'s connections, MB (PostgreSQL): aggregations hash their groups and histogram buckets in memory instead of sorting on disk' }),
  maxPageSize: int({ env: 'STORAGE_MAX_PAGE_SIZE', default: 1_000, min: 1, doc: 'largest page (limit) of the list endpoints' }),
  maxTraceSpans: int({ env: 'STORAGE_MAX_TRACE_SPANS', default: 10_000, min: 1, doc: 'most spans returned by a trace detail' }),
  maxMetricPoints: int({ env: 'STORAGE_MAX_METRIC_POINTS', default: 100_000, min: 1, doc: 'most points a metric range query returns (series × steps)' }),
  stopDrainMs: int({ env: 'STORAGE_STOP_DRAIN_MS', default: 5_000, min: 0, doc: 'on stop, how long consumers wait for in-flight work to become durable, ms' }),
  otlpEndpoint: optionalUrl({ env: 'STORAGE_OTLP_ENDPOINT', protocols: ['http', 'https'], doc: 'second sink: OTLP/HTTP JSON traces endpoint spans are exported to (e.g. http://tempo:4318/v1/traces); unset = off' }),
  otlpHeaders: str({ env: 'STORAGE_OTLP_HEADERS', default: '', allowEmpty: true, doc: 'extra headers of OTLP export requests, `name=value` comma separated (e.g. x-bk-token=…)' }),
  otlpGroupId: str({ env: 'STORAGE_OTLP_GROUP_ID', default: 'bkstream-storage-otlp', doc: 'consumer group of the OTLP sink on `<prefix>.spans`' }),
  remoteWriteUrl: optionalUrl({ env: 'STORAGE_REMOTE_WRITE_URL', protocols: ['http', 'https'], doc: 'second sink: Prometheus remote-write URL agent metrics are sent to (e.g. http://prometheus:9090/api/v1/write); unset = off' }),
  remoteWriteGroupId: str({ env: 'STORAGE_REMOTE_WRITE_GROUP_ID', default: 'bkstream-storage-remote-write', doc: 'consumer group of the remote-write sink on `<prefix>.metrics`' }),
  sinkTimeoutMs: int({ env: 'STORAGE_SINK_TIMEOUT_MS', default: 10_000, min: 100, doc: 'timeout of one sink request, ms' }),
  sinkMaxBatch: int({ env: 'STORAGE_SINK_MAX_BATCH', default: 2_000, min: 1, doc: 'most spans or samples in one sink request' }),
};

export type StorageConfig = Config<typeof storageSpec>;

/** `name=value,name=value` → headers. */
export function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`header ${JSON.stringify(part)} is not name=value`);
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** Cross-field checks. */
export function validateStorage(c: StorageConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const groups: [string, string][] = [
    ['STORAGE_SPANS_GROUP_ID', c.spansGroupId],
    ['STORAGE_REPLAY_GROUP_ID', c.replayGroupId],
    ['STORAGE_METRICS_GROUP_ID', c.metricsGroupId],
    ['STORAGE_EVENTS_GROUP_ID', c.eventsGroupId],
    ['STORAGE_OTLP_GROUP_ID', c.otlpGroupId],
    ['STORAGE_REMOTE_WRITE_GROUP_ID', c.remoteWriteGroupId],
  ];
  for (let i = 0; i < groups.length; i++) {
    const [key, id] = groups[i] as [string, string];
    const earlier = groups.slice(0, i).find(([, other]) => other === id);
    if (earlier) problems.push({ key, message: `must differ from ${earlier[0]} (each consumer needs its own group)` });
  }
  try {
    parseHeaders(c.otlpHeaders);
  } catch (err) {
    problems.push({ key: 'STORAGE_OTLP_HEADERS', message: (err as Error).message });
  }
  return problems;
}
