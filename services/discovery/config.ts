/**
 * Configuration of the discovery service (env keys `DISCOVERY_*`), validated at start-up with every
 * problem reported at once. Durations carry their unit in the name.
 */
import v8 from 'node:v8';
import { bool, int, str, type Config } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';

export const discoverySpec = {
  httpHost: str({ env: 'DISCOVERY_HTTP_HOST', default: '127.0.0.1', doc: 'address the query API, /metrics and /healthz listen on' }),
  httpPort: int({ env: 'DISCOVERY_HTTP_PORT', default: 8081, min: 0, max: 65535, doc: 'port of the query API, /metrics and /healthz (0 = any free port)' }),
  groupId: str({ env: 'DISCOVERY_GROUP_ID', default: 'bkstream-discovery', doc: 'consumer group on `<prefix>.spans`' }),
  replayGroupId: str({ env: 'DISCOVERY_REPLAY_GROUP_ID', default: 'bkstream-discovery-replay', doc: 'consumer group on `<prefix>.spans.replay`' }),
  eventsGroupId: str({ env: 'DISCOVERY_EVENTS_GROUP_ID', default: 'bkstream-discovery-events', doc: 'consumer group on `<prefix>.events` (static host info → cmdb_host)' }),
  consumeReplay: bool({ env: 'DISCOVERY_CONSUME_REPLAY', default: true, doc: 'also consume `<prefix>.spans.replay` (backfill)' }),
  partitionsConcurrently: int({ env: 'DISCOVERY_PARTITIONS_CONCURRENTLY', default: 3, min: 1, max: 64, doc: 'partitions of one topic handled at the same time' }),
  heartbeatIntervalMs: int({ env: 'DISCOVERY_HEARTBEAT_INTERVAL_MS', default: 1_000, min: 100, max: 10_000, doc: 'how often the consumers heartbeat their groups, ms: a member learns of a rebalance (another member joining or leaving) at its next heartbeat' }),
  maxInFlightRecords: int({ env: 'DISCOVERY_MAX_IN_FLIGHT_RECORDS', default: 20_000, min: 1, doc: 'Kafka records per partition accepted but not yet durable before the partition is paused' }),
  flushIntervalMs: int({ env: 'DISCOVERY_FLUSH_INTERVAL_MS', default: 1_000, min: 10, doc: 'how often pending rows are upserted into the store, ms' }),
  flushMaxRows: int({ env: 'DISCOVERY_FLUSH_MAX_ROWS', default: 5_000, min: 1, doc: 'pending rows that trigger a flush before the interval' }),
  cacheMaxKeys: int({ env: 'DISCOVERY_CACHE_MAX_KEYS', default: 1_000_000, min: 1, doc: 'entries of the dedupe LRU (natural key → last_seen written)' }),
  cacheTtlMs: int({ env: 'DISCOVERY_CACHE_TTL_MS', default: 6 * 3_600_000, min: 1_000, doc: 'age after which a dedupe entry is ignored (the key is written again), ms' }),
  shapeCacheMax: int({ env: 'DISCOVERY_SHAPE_CACHE_MAX', default: 100_000, min: 1, doc: 'entries of the span-shape cache (spans whose shape was seen within the touch interval skip the discoverers)' }),
  touchIntervalMs: int({ env: 'DISCOVERY_TOUCH_INTERVAL_MS', default: 60_000, min: 0, doc: 'a known key is written again only when its event time moved past the written last_seen by more than this, ms' }),
  pairingTtlMs: int({ env: 'DISCOVERY_PAIRING_TTL_MS', default: 10_000, min: 10, doc: 'how long a span waits in the per-partition window for its parent/child or the rest of its trace, ms' }),
  pairingMaxItems: int({ env: 'DISCOVERY_PAIRING_MAX_ITEMS', default: 20_000, min: 1, doc: 'entries (parents + waiting children + traces) a per-partition window holds; beyond it the oldest are dropped and counted' }),
  ruleCacheTtlMs: int({ env: 'DISCOVERY_RULE_CACHE_TTL_MS', default: 30_000, min: 0, doc: 'how long an application\'s discover rules are cached, ms' }),
  cmdbCacheTtlMs: int({ env: 'DISCOVERY_CMDB_CACHE_TTL_MS', default: 30_000, min: 0, doc: 'how long a business\'s cmdb_host map is cached, ms' }),
  sweepIntervalMs: int({ env: 'DISCOVERY_SWEEP_INTERVAL_MS', default: 600_000, min: 1_000, doc: 'how often expired and overflowing rows are deleted, ms' }),
  defaultRetentionDays: int({ env: 'DISCOVERY_DEFAULT_RETENTION_DAYS', default: 7, min: 1, doc: 'retention of discovered rows when apm_application has no row for the app, days' }),
  topoNodeRetentionDays: int({ env: 'DISCOVERY_TOPO_NODE_RETENTION_DAYS', default: 180, min: 1, doc: 'retention of apm_topo_node rows that are not permanent, days' }),
  maxRowsPerApp: int({ env: 'DISCOVERY_MAX_ROWS_PER_APP', default: 100_000, min: 1, doc: 'rows kept per (app, table); the oldest surplus is deleted by the sweep' }),
  stopDrainMs: int({ env: 'DISCOVERY_STOP_DRAIN_MS', default: 5_000, min: 0, doc: 'on stop, how long consumers wait for in-flight work to become durable, ms' }),
  apiMaxPageSize: int({ env: 'DISCOVERY_API_MAX_PAGE_SIZE', default: 1_000, min: 1, doc: 'largest page_size the query API accepts' }),
};

export type DiscoveryConfig = Config<typeof discoverySpec>;

/**
 * V8 heap the service needs: ~90 bytes per dedupe key (lru-cache with TTL, measured with 1 M keys) and
 * ~140 MB for the rest at default settings and load (the benchmark's live heap after a compacting GC was
 * ~136 MB with 1 M keys), rounded up. Node derives the default limit from the memory it sees (the
 * machine's, or a container's limit), so a small container with a large cache fails here, not later.
 */
const HEAP_PER_CACHED_KEY = 100;
const HEAP_BESIDES_CACHE = 200 * 2 ** 20;

/** Cross-field checks; `heapLimit` is this process's V8 heap limit (`node --max-old-space-size`). */
export function validateDiscovery(c: DiscoveryConfig, heapLimit = v8.getHeapStatistics().heap_size_limit): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const needed = c.cacheMaxKeys * HEAP_PER_CACHED_KEY + HEAP_BESIDES_CACHE;
  if (needed > heapLimit) {
    const mb = (n: number): string => `${Math.round(n / 2 ** 20)} MB`;
    problems.push({
      key: 'DISCOVERY_CACHE_MAX_KEYS',
      message: `${c.cacheMaxKeys} keys need about ${mb(needed)} of V8 heap with the rest of the service, more than this process's limit of ${mb(heapLimit)}: lower it, or raise node's --max-old-space-size (or the container's memory, which sets the default)`,
    });
  }
  if (c.groupId === c.replayGroupId) problems.push({ key: 'DISCOVERY_REPLAY_GROUP_ID', message: 'must differ from DISCOVERY_GROUP_ID' });
  if (c.eventsGroupId === c.groupId || c.eventsGroupId === c.replayGroupId) {
    problems.push({ key: 'DISCOVERY_EVENTS_GROUP_ID', message: 'must differ from the span consumer groups' });
  }
  return problems;
}
