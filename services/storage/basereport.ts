/**
 * Host series derived from the agent's `basereport` events (design: the agent sends the reference's
 * document unchanged; derived views are computed downstream). Each report gives, at the event's time and
 * with the agent's labels (services/storage/series.ts), the reference's host metric names:
 *
 * | series | from the document's `data` | labels added |
 * | --- | --- | --- |
 * | `system.cpu_summary.usage` | `cpu.total_usage` (%) | |
 * | `system.mem.pct_used`, `system.mem.total`, `system.mem.used` | `mem.meminfo.usedPercent`, `.total`, `.used` (bytes) | |
 * | `system.load.load1`, `…load5`, `…load15` | `load.load_avg` | |
 * | `system.disk.in_use`, `system.disk.total` | `disk.usage[]`: `usedPercent`, `total` | `mount_point`, `fstype` |
 *
 * A report without a section (the agent sends `null` when it failed) gives no series for it; a body
 * that is not a basereport document gives none at all.
 */
import type { AgentEvent } from '../common/records.ts';
import { agentLabels, seriesRow, type MetricRow } from './series.ts';

type Json = Record<string, unknown>;

const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function basereportRows(event: AgentEvent): MetricRow[] {
  if (event.event_type !== 'basereport') return [];
  let doc: Json | undefined;
  try {
    doc = obj(JSON.parse(event.body));
  } catch {
    return [];
  }
  const data = obj(doc?.data);
  if (!data) return [];
  const base = agentLabels({ bk_biz_id: event.bk_biz_id, data_id: event.data_id, target: event.agent.ip ? `${event.agent.bk_cloud_id}:${event.agent.ip}` : '', agent: event.agent });
  const rows: MetricRow[] = [];
  const add = (name: string, value: number | undefined, extra: Record<string, string> = {}): void => {
    if (value === undefined) return;
    const series = seriesRow(name, { ...base, ...extra }, event.bk_biz_id);
    rows.push({ series, sample: { series_id: series.series_id, ts: event.timestamp, value } });
  };
  add('system.cpu_summary.usage', num(obj(data.cpu)?.total_usage));
  const meminfo = obj(obj(data.mem)?.meminfo);
  add('system.mem.pct_used', num(meminfo?.usedPercent));
  add('system.mem.total', num(meminfo?.total));
  add('system.mem.used', num(meminfo?.used));
  const load = obj(obj(data.load)?.load_avg);
  for (const k of ['load1', 'load5', 'load15']) add(`system.load.${k}`, num(load?.[k]));
  const usage = obj(data.disk)?.usage;
  if (Array.isArray(usage)) {
    for (const u of usage) {
      const d = obj(u);
      if (!d || typeof d.path !== 'string') continue;
      const labels = { mount_point: d.path, fstype: typeof d.fstype === 'string' ? d.fstype : '' };
      add('system.disk.in_use', num(d.usedPercent), labels);
      add('system.disk.total', num(d.total), labels);
    }
  }
  return rows;
}
