/**
 * The collector's own Prometheus series (the collector README, "Metrics"): the OTLP receiver's
 * `bkstream_receiver_*`, bk-collector's `bk_collector_receiver_*` renamed, labelled by application, never
 * by token. Beside them on `/metrics`: the publishing breaker's `bkstream_breaker_*{breaker="kafka-spans"}`
 * (services/common/breaker.ts) and the process metrics of the registry.
 */
import { counter, gauge, histogram, type Registry } from '../common/metrics.ts';

/** Byte-size buckets: 1 KiB … 16 MiB. */
const BYTES_BUCKETS = [1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216];
const SPANS_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2500];

/** Values read at scrape time. */
export interface CollectorProbes {
  queuedBytes: () => number;
  inFlightSends: () => number;
}

export function collectorMetrics(registry: Registry, probes: CollectorProbes) {
  return {
    requests: counter(registry, {
      name: 'bkstream_receiver_requests_total',
      help: 'Export requests by protocol and outcome (ok, partial, empty, invalid_argument, unauthenticated, rate_limited, too_large, unsupported_media_type, overloaded, unavailable, internal)',
      labelNames: ['protocol', 'outcome'],
    }),
    received: counter(registry, { name: 'bkstream_receiver_spans_received_total', help: 'Spans in Export requests that parsed', labelNames: ['protocol'] }),
    accepted: counter(registry, { name: 'bkstream_receiver_spans_accepted_total', help: 'Spans acknowledged by Kafka and answered OK', labelNames: ['protocol'] }),
    rejected: counter(registry, {
      name: 'bkstream_receiver_spans_rejected_total',
      help: 'Spans not accepted, by reason (no_token, invalid_token, rate_limited, invalid_span, span_too_large, overloaded, unavailable)',
      labelNames: ['protocol', 'reason'],
    }),
    appSpans: counter(registry, { name: 'bkstream_receiver_app_spans_total', help: 'Spans accepted per application', labelNames: ['bk_biz_id', 'app_name'] }),
    bytes: counter(registry, { name: 'bkstream_receiver_received_bytes_total', help: 'Request bytes received (as sent, before decompression)', labelNames: ['protocol'] }),
    requestBytes: histogram(registry, { name: 'bkstream_receiver_request_bytes', help: 'Size of Export requests (as sent)', labelNames: ['protocol'], buckets: BYTES_BUCKETS }),
    latency: histogram(registry, { name: 'bkstream_receiver_export_seconds', help: 'Export handling time, from the body read to the answer (Kafka acknowledgement included)', labelNames: ['protocol'] }),
    inFlightBytes: gauge(registry, { name: 'bkstream_receiver_inflight_bytes', help: 'Request bytes being handled' }),
    evicted: counter(registry, { name: 'bkstream_receiver_connections_evicted_total', help: 'OTLP/HTTP connections closed because too many had not shown a valid token in their headers (COLLECTOR_HTTP_MAX_UNAUTHENTICATED_CONNECTIONS)' }),
    records: counter(registry, { name: 'bkstream_receiver_records_total', help: 'SpanBatch records sent to Kafka by result (ok, failed)', labelNames: ['result'] }),
    recordSpans: histogram(registry, { name: 'bkstream_receiver_record_spans', help: 'Spans per SpanBatch record', buckets: SPANS_BUCKETS }),
    recordBytes: histogram(registry, { name: 'bkstream_receiver_record_bytes', help: 'Size of SpanBatch records', buckets: BYTES_BUCKETS }),
    tokenCache: counter(registry, { name: 'bkstream_receiver_token_cache_total', help: 'Token resolutions by result (hit, unknown = cached miss, miss = store query)', labelNames: ['result'] }),
    queuedBytes: gauge(registry, {
      name: 'bkstream_receiver_queue_bytes',
      help: 'Span bytes accepted and not yet acknowledged by Kafka (open, closed and in-flight records): the producer queue depth',
      collect() {
        this.set(probes.queuedBytes());
      },
    }),
    inFlightSends: gauge(registry, {
      name: 'bkstream_receiver_inflight_sends',
      help: 'Produce requests to Kafka in flight',
      collect() {
        this.set(probes.inFlightSends());
      },
    }),
    kafkaReady: gauge(registry, { name: 'bkstream_receiver_kafka_ready', help: '1 once the spans topic is known and the producer connected' }),
    flowCommands: counter(registry, { name: 'bkstream_collector_flow_commands_total', help: 'Flow commands of application changes sent to flow.commands, by result (published, failed: left queued and retried)', labelNames: ['result'] }),
  };
}

export type CollectorMetrics = ReturnType<typeof collectorMetrics>;
