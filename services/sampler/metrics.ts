/**
 * The sampler's Prometheus series (README: Metrics). The bus adds its own on the same registry
 * (`bkstream_consumer_lag`, `bkstream_dlq_records_total`, `bkstream_consumer_*`).
 */
import { counter, gauge, type Gauge, type Registry } from '../common/metrics.ts';

/** Values read at scrape time. */
export interface SamplerProbes {
  traces: () => number;
  bufferedSpans: () => number;
  bufferedBytes: () => number;
  policies: () => number;
  invalidPolicies: () => number;
}

export function samplerMetrics(registry: Registry, probes: SamplerProbes) {
  const probe = (name: string, help: string, read: () => number): Gauge =>
    gauge(registry, {
      name,
      help,
      collect() {
        this.set(read());
      },
    });
  return {
    spans: counter(registry, { name: 'bkstream_sampler_spans_total', help: 'Spans of configured applications by outcome: sampled, marked, matched (emitted); buffered; timeout, max_spans, rejected (dropped)', labelNames: ['outcome'] }),
    skipped: counter(registry, { name: 'bkstream_sampler_skipped_spans_total', help: 'Spans not sampled: their application has no running tail-sampling flow (unconfigured) or a config the job would not start with (config_invalid)', labelNames: ['reason'] }),
    spansOut: counter(registry, { name: 'bkstream_sampler_spans_out_total', help: 'Spans written to spans.sampled (emitted and flushed)' }),
    recordsOut: counter(registry, { name: 'bkstream_sampler_records_out_total', help: 'SpanBatch records written to spans.sampled' }),
    dropped: counter(registry, { name: 'bkstream_sampler_buffered_dropped_total', help: 'Buffered spans that never got out: expired (TTL without a match), evicted (state bounds), state_dropped (partition revoked, application unconfigured)', labelNames: ['reason'] }),
    evictedTraces: counter(registry, { name: 'bkstream_sampler_evicted_traces_total', help: 'Traces whose state was evicted before its TTLs to respect SAMPLER_MAX_TRACES / SAMPLER_MAX_BUFFERED_MB' }),
    refreshFailures: counter(registry, { name: 'bkstream_sampler_policy_refresh_failures_total', help: 'Policy refreshes that failed (the last policies stay)' }),
    traces: probe('bkstream_sampler_traces', 'Traces with state', probes.traces),
    bufferedSpans: probe('bkstream_sampler_buffered_spans', 'Spans buffered waiting for a match', probes.bufferedSpans),
    bufferedBytes: probe('bkstream_sampler_buffered_bytes', 'Bytes of buffered spans', probes.bufferedBytes),
    policies: probe('bkstream_sampler_policies', 'Applications with a running tail-sampling flow and a valid config', probes.policies),
    invalidPolicies: probe('bkstream_sampler_invalid_policies', 'Applications whose tail-sampling config the job would not start with', probes.invalidPolicies),
  };
}
