/**
 * Agent metrics as series: a `MetricBatch` record `{timestamp, metrics: {name: value}, dimensions}` gives
 * one sample per metric name, in the series named by the metric and labelled by the record's dimensions
 * plus who sent it (`bk_biz_id`, `bk_data_id`, and when set `target`, `bk_target_ip`,
 * `bk_target_cloud_id`, `bk_host_id`, `hostname`). A series is identified by a 52-bit hash of its name
 * and sorted label set (a JS-safe integer; two of a million series collide with probability ~1e-4).
 */
import { createHash } from 'node:crypto';
import type { AgentInfo, MetricBatch } from '../common/records.ts';
import { clean } from './span-rows.ts';

export interface SeriesRow {
  series_id: number;
  name: string;
  /** JSON object of the labels, keys sorted. */
  labels: string;
  bk_biz_id: number;
}

export interface SampleRow {
  series_id: number;
  /** ms */
  ts: number;
  value: number;
}

export interface MetricRow {
  series: SeriesRow;
  sample: SampleRow;
}

/** A 52-bit non-negative integer hash of the bytes. */
export function hash52(data: string | Buffer): number {
  const d = createHash('sha256').update(data).digest();
  return d.readUIntBE(0, 6) * 16 + (d[6] as number >> 4);
}

/** The labels every sample of a batch carries (the agent's identity). */
export function agentLabels(batch: { bk_biz_id: number; data_id: number; target?: string; agent: AgentInfo }): Record<string, string> {
  const l: Record<string, string> = { bk_biz_id: String(batch.bk_biz_id), bk_data_id: String(batch.data_id) };
  if (batch.target) l.target = batch.target;
  if (batch.agent.ip) {
    l.bk_target_ip = batch.agent.ip;
    l.bk_target_cloud_id = String(batch.agent.bk_cloud_id);
  }
  if (batch.agent.bk_host_id > 0) l.bk_host_id = String(batch.agent.bk_host_id);
  if (batch.agent.hostname) l.hostname = batch.agent.hostname;
  return l;
}

export function seriesRow(name: string, labels: Record<string, string>, bkBizId: number): SeriesRow {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(labels).sort()) sorted[clean(k)] = clean(labels[k] as string);
  const json = JSON.stringify(sorted);
  const cleanName = clean(name);
  return { series_id: hash52(`${cleanName}\u0000${json}`), name: cleanName, labels: json, bk_biz_id: bkBizId };
}

/** The rows of a batch: one per (record, metric) whose value is a finite number. */
export function metricRows(batch: MetricBatch): MetricRow[] {
  const base = agentLabels(batch);
  const rows: MetricRow[] = [];
  for (const record of batch.records) {
    const labels = { ...record.dimensions, ...base };
    for (const [name, value] of Object.entries(record.metrics)) {
      if (!Number.isFinite(value)) continue;
      const series = seriesRow(name, labels, batch.bk_biz_id);
      rows.push({ series, sample: { series_id: series.series_id, ts: record.timestamp, value } });
    }
  }
  return rows;
}
