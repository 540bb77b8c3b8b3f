/**
 * The discovery service's Prometheus series (README: Metrics). The bus adds its own on the same
 * registry (`bkstream_consumer_lag`, `bkstream_dlq_records_total`, `bkstream_consumer_*`).
 */
import { counter, gauge, histogram, type Gauge, type Registry } from '../common/metrics.ts';

/** Values read at scrape time. */
export interface DiscoveryProbes {
  cachedKeys: () => number;
  pendingRows: () => number;
  windowItems: () => number;
  /** Share of sightings the dedupe cache absorbed since start (0 before any). */
  cacheHitRatio: () => number;
}

export function discoveryMetrics(registry: Registry, probes: DiscoveryProbes) {
  /** A gauge set from `read` at every scrape. */
  const probe = (name: string, help: string, read: () => number): Gauge =>
    gauge(registry, {
      name,
      help,
      collect() {
        this.set(read());
      },
    });
  return {
    spans: counter(registry, { name: 'bkstream_discovery_spans_total', help: 'Spans processed by the discoverers' }),
    reread: counter(registry, { name: 'bkstream_discovery_reread_spans_total', help: 'Spans read again after a rebalance that this member had already processed (skipped: their work becomes durable with the first reading)' }),
    shapeMisses: counter(registry, { name: 'bkstream_discovery_shape_misses_total', help: 'Spans whose shape was not cached within the touch interval (the discoverers ran for them)' }),
    sightings: counter(registry, { name: 'bkstream_discovery_sightings_total', help: 'Discovered records by dedupe result (hit = already written, miss = queued)', labelNames: ['table', 'result'] }),
    written: counter(registry, { name: 'bkstream_discovery_records_written_total', help: 'Rows the store inserted or changed (a row sent that changed nothing is not counted)', labelNames: ['table'] }),
    rejected: counter(registry, { name: 'bkstream_discovery_records_rejected_total', help: 'Rows the store refused individually (dropped)', labelNames: ['table'] }),
    flush: histogram(registry, { name: 'bkstream_discovery_flush_seconds', help: 'Duration of a flush of pending rows' }),
    flushFailures: counter(registry, { name: 'bkstream_discovery_flush_failures_total', help: 'Flushes that failed (rows kept and retried)' }),
    pairs: counter(registry, { name: 'bkstream_discovery_pairs_total', help: 'Parent/child span pairs found in the partition windows' }),
    dropped: counter(registry, { name: 'bkstream_discovery_window_dropped_total', help: 'Window entries dropped: children that never met their parent, entries evicted by the size bound', labelNames: ['reason'] }),
    swept: counter(registry, { name: 'bkstream_discovery_swept_rows_total', help: 'Rows deleted by expiry sweeps', labelNames: ['table', 'reason'] }),
    hosts: counter(registry, { name: 'bkstream_discovery_cmdb_hosts_total', help: 'cmdb_host rows upserted from agent static events' }),
    cachedKeys: probe('bkstream_discovery_cached_keys', 'Keys in the dedupe LRU', probes.cachedKeys),
    pendingRows: probe('bkstream_discovery_pending_rows', 'Rows queued for the next flush', probes.pendingRows),
    windowItems: probe('bkstream_discovery_window_items', 'Entries held in the partition windows', probes.windowItems),
    cacheHitRatio: probe('bkstream_discovery_cache_hit_ratio', 'Share of discovered records the dedupe cache absorbed (since start)', probes.cacheHitRatio),
  };
}

export type DiscoveryMetrics = ReturnType<typeof discoveryMetrics>;
