/**
 * Agent metrics in the store on both drivers: series identified by name + label set (stored once),
 * samples stored once however often they arrive (replays), range queries with matchers, steps and
 * aggregations, and host series derived from a basereport document.
 */
import { silentLogger } from '../../services/common/log.ts';
import type { AgentEvent } from '../../services/common/records.ts';
import { basereportRows } from '../../services/storage/basereport.ts';
import { Flusher } from '../../services/storage/flusher.ts';
import { MetricWriter, type MetricWriteResult } from '../../services/storage/metric-writer.ts';
import { parseMatcher, rangeQuery } from '../../services/storage/metric-query.ts';
import { PartitionManager } from '../../services/storage/partitions.ts';
import type { MetricRow } from '../../services/storage/series.ts';
import test from 'ava';
import { storeContract } from '../helpers/store.ts';
import { hostMetrics } from './kit.ts';

const NOW = Date.now();

storeContract('samples written twice are stored once; series once per label set; range queries', async (t, store) => {
  const dropped: Record<string, number> = {};
  const writer = new MetricWriter({ store, partitions: new PartitionManager(store), retentionDays: 15, aheadDays: 2, onDropped: (r, n) => (dropped[r] = (dropped[r] ?? 0) + n) });
  const flusher = new Flusher<MetricRow, MetricWriteResult>({ name: 'metrics', write: writer.write, maxRows: 50, intervalMs: 5, logger: silentLogger });
  writer.flusher = flusher;
  const batches = [hostMetrics('10.0.0.1', 'a', 20, NOW), hostMetrics('10.0.0.2', 'b', 20, NOW)];
  const first = await writer.write(writer.rows(batches));
  t.like(first, { samples: 120, inserted: 120, newSeries: 6 });
  const again = await writer.write(writer.rows(batches));
  t.like(again, { samples: 120, inserted: 0, newSeries: 0 }, 'a replay stores nothing new');
  await flusher.add(writer.rows([hostMetrics('10.0.0.1', 'a', 20, NOW)]));
  const { rows } = await store.query<{ s: number; n: number }>('SELECT (SELECT count(*) FROM storage_metric_series)::int AS s, (SELECT count(*) FROM storage_metric_sample)::int AS n');
  t.deepEqual(rows[0], { s: 6, n: 120 });
  t.deepEqual(writer.rows([hostMetrics('10.0.0.3', 'c', 1, NOW - 30 * 86_400_000)]), []);
  t.deepEqual(dropped, { expired: 3 });

  const ctx = { store, timeoutMs: 5_000 };
  const range = { startMs: NOW - 3_600_000, endMs: NOW, maxPoints: 10_000 };
  const perSeries = await rangeQuery(ctx, { ...range, name: 'cpu_usage_pct', matchers: [parseMatcher('hostname=~a|b')], stepS: 60, agg: 'avg', by: [] });
  t.is(perSeries.series.length, 2);
  t.deepEqual(perSeries.series[0]?.points.map(([, v]) => v), Array.from({ length: 20 }, (_, i) => 10 + i));
  const summed = await rangeQuery(ctx, { ...range, name: 'cpu_usage_pct', matchers: [], stepS: 3600, agg: 'sum', by: ['device_name'] });
  t.deepEqual(summed.series.map((s) => s.labels), [{ device_name: 'total' }]);
  t.is(summed.series[0]?.points.reduce((n, [, v]) => n + v, 0), 2 * (20 * 10 + 190));
  const last = await rangeQuery(ctx, { ...range, name: 'load1', matchers: [parseMatcher('bk_target_ip!=10.0.0.1')], stepS: 86_400, agg: 'last', by: ['hostname'] });
  t.deepEqual(last.series.map((s) => [s.labels.hostname, s.points.at(-1)?.[1]]), [['b', 1.9]]);
  const count = await rangeQuery(ctx, { ...range, name: 'mem_used_pct', matchers: [parseMatcher('hostname!~a'), parseMatcher('nope=')], stepS: 600, agg: 'count', by: [] });
  t.is(count.series[0]?.points.reduce((n, [, v]) => n + v, 0), 20);
  await t.throwsAsync(rangeQuery(ctx, { ...range, name: 'x', matchers: [], stepS: 1, agg: 'avg', by: [], maxPoints: 100 }), { message: /step: 3601 steps in the range exceed STORAGE_MAX_METRIC_POINTS \(100\)/ });
});

test('basereport documents become host series; other events and broken bodies none', (t) => {
  const agent = { bk_cloud_id: 0, ip: '10.0.0.5', hostname: 'h5', bk_agent_id: 'x', bk_host_id: 0 };
  const event = (body: string, type = 'basereport'): AgentEvent => ({ event_type: type, data_id: 1001, bk_biz_id: 2, task_id: 1, timestamp: NOW, agent, status: 0, dimensions: {}, metrics: {}, body });
  const doc = { data: { cpu: { total_usage: 12.5 }, mem: null, load: { load_avg: { load1: 1, load5: 2, load15: 3 } }, disk: { usage: [{ path: '/data', fstype: 'xfs', total: 10, usedPercent: 40 }, { fstype: 'x' }] } }, dataid: 1001, type: 'basereport' };
  const rows = basereportRows(event(JSON.stringify(doc)));
  t.deepEqual(rows.map((r) => [r.series.name, r.sample.value]), [
    ['system.cpu_summary.usage', 12.5], ['system.load.load1', 1], ['system.load.load5', 2], ['system.load.load15', 3], ['system.disk.in_use', 40], ['system.disk.total', 10],
  ]);
  t.like(JSON.parse(rows[4]?.series.labels ?? '{}'), { mount_point: '/data', fstype: 'xfs', bk_target_ip: '10.0.0.5', target: '0:10.0.0.5' });
  t.deepEqual(basereportRows(event('{')), []);
  t.deepEqual(basereportRows(event(JSON.stringify(doc), 'heartbeat')), []);
  t.deepEqual(basereportRows(event('[1]')), []);
});
