/**
 * The storage service's Prometheus series (README: Metrics). The bus adds its own on the same registry
 * (`bkstream_consumer_lag`, `bkstream_dlq_records_total`, `bkstream_consumer_*`).
 */
import { counter, gauge, histogram, type Registry } from '../common/metrics.ts';

/** Values read at scrape time. */
export interface StorageProbes {
  /** Rows waiting for a write or being written, by signal. */
  pendingRows: () => Record<'spans' | 'metrics' | 'events', number>;
}

export function storageMetrics(registry: Registry, probes: StorageProbes) {
  return {
    written: counter(registry, { name: 'bkstream_storage_rows_written_total', help: 'Rows newly stored (spans, samples, events; replayed duplicates excluded)', labelNames: ['signal'] }),
    duplicates: counter(registry, { name: 'bkstream_storage_duplicates_total', help: 'Rows already stored (replays, redeliveries): written once, counted here', labelNames: ['signal'] }),
    dropped: counter(registry, { name: 'bkstream_storage_rows_dropped_total', help: 'Rows not stored: outside retention, further ahead than the partitions, or rejected by the store', labelNames: ['signal', 'reason'] }),
    traces: counter(registry, { name: 'bkstream_storage_traces_total', help: 'Trace summaries created and merged into (a trace arriving in pieces is merged)', labelNames: ['result'] }),
    series: counter(registry, { name: 'bkstream_storage_series_created_total', help: 'Metric series first written' }),
    write: histogram(registry, { name: 'bkstream_storage_write_seconds', help: 'Duration of one bulk write', labelNames: ['signal'] }),
    writeFailures: counter(registry, { name: 'bkstream_storage_write_failures_total', help: 'Bulk writes that failed (retried, or read again from Kafka)', labelNames: ['signal'] }),
    partitions: counter(registry, { name: 'bkstream_storage_partitions_total', help: 'Day partitions created and dropped', labelNames: ['action'] }),
    queries: histogram(registry, { name: 'bkstream_storage_query_seconds', help: 'Duration of API queries', labelNames: ['endpoint'] }),
    sinkSent: counter(registry, { name: 'bkstream_storage_sink_sent_total', help: 'Spans or samples a second sink accepted', labelNames: ['sink'] }),
    sinkDropped: counter(registry, { name: 'bkstream_storage_sink_dropped_total', help: 'Spans or samples a second sink refused as invalid (4xx): dropped, not retried', labelNames: ['sink'] }),
    sinkFailures: counter(registry, { name: 'bkstream_storage_sink_failures_total', help: 'Sink requests that failed and were retried', labelNames: ['sink'] }),
    pending: gauge(registry, {
      name: 'bkstream_storage_pending_rows',
      help: 'Rows waiting for a write or being written',
      labelNames: ['signal'],
      collect() {
        for (const [signal, n] of Object.entries(probes.pendingRows())) this.set({ signal }, n);
      },
    }),
  };
}

export type StorageMetrics = ReturnType<typeof storageMetrics>;
