/**
 * Prometheus remote write (protocol 1.0) of agent metrics: every sample of a `MetricBatch`, in the series
 * the store uses (metric name and labels, services/storage/series.ts) with names made Prometheus-valid
 * (`[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics, `[a-zA-Z_][a-zA-Z0-9_]*` for labels: other characters become
 * `_`), as a snappy-compressed protobuf `WriteRequest` (schemas/prometheus/). Works with Prometheus
 * (`--web.enable-remote-write-receiver`), VictoriaMetrics, Mimir, Thanos receive.
 */
import snappy from 'snappyjs';
import type { MetricBatch } from '../../common/records.ts';
import { agentLabels } from '../series.ts';
import { encodeWriteRequest, type Label, type TimeSeries } from './protobuf.ts';
import { defineSink, post, type Sink, type SinkResult } from './sink.ts';

export function metricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[a-zA-Z_:]/.test(s) ? s : `_${s}`;
}

export function labelName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[a-zA-Z_]/.test(s) ? s : `_${s}`;
}

/** The batches' samples as time series (labels sorted, samples in time order, one series per label set). */
export function toTimeSeries(batches: readonly MetricBatch[]): TimeSeries[] {
  const out = new Map<string, TimeSeries>();
  for (const batch of batches) {
    const base = agentLabels(batch);
    for (const record of batch.records) {
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries({ ...record.dimensions, ...base })) if (v !== '') labels[labelName(k)] = v;
      for (const [name, value] of Object.entries(record.metrics)) {
        if (!Number.isFinite(value)) continue;
        const all: Label[] = [{ name: '__name__', value: metricName(name) }, ...Object.entries(labels).map(([n, v]) => ({ name: n, value: v }))];
        all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        const key = JSON.stringify(all);
        let ts = out.get(key);
        if (!ts) {
          ts = { labels: all, samples: [] };
          out.set(key, ts);
        }
        ts.samples.push({ value, timestamp: record.timestamp });
      }
    }
  }
  for (const ts of out.values()) ts.samples.sort((a, b) => a.timestamp - b.timestamp);
  return [...out.values()];
}

export const remoteWriteSink = defineSink({
  name: 'prometheus-remote-write',
  topic: 'metrics',
  record: 'MetricBatch',
  enabled: (c) => c.remoteWriteUrl !== undefined,
  groupId: (c) => c.remoteWriteGroupId,
  create(config, logger): Sink<MetricBatch> {
    const url = config.remoteWriteUrl as string;
    const log = logger.child({ component: 'sink', sink: 'prometheus-remote-write' });
    const headers = { 'content-type': 'application/x-protobuf', 'content-encoding': 'snappy', 'x-prometheus-remote-write-version': '0.1.0' };
    return {
      async send(batches) {
        const series = toTimeSeries(batches);
        const result: SinkResult = { sent: 0, dropped: 0 };
        // requests of at most sinkMaxBatch samples, whole series each
        let chunk: TimeSeries[] = [];
        let samples = 0;
        const flush = async (): Promise<void> => {
          if (chunk.length === 0) return;
          const outcome = await post(url, snappy.compress(encodeWriteRequest(chunk)), headers, config.sinkTimeoutMs, log);
          if (outcome === 'ok') result.sent += samples;
          else result.dropped += samples;
          chunk = [];
          samples = 0;
        };
        for (const ts of series) {
          if (samples > 0 && samples + ts.samples.length > config.sinkMaxBatch) await flush();
          chunk.push(ts);
          samples += ts.samples.length;
        }
        await flush();
        return result;
      },
    };
  },
});
