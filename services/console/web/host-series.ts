/**
 * A host's charts (cpu, memory, disk, network, load) as uPlot-ready data (pure).
 *
 * Each chart takes the first source that has data for it:
 * 1. the host series storage derives from the agents' basereport documents (the reference's names:
 *    `system.cpu_summary.usage`, `system.mem.pct_used`, `system.disk.in_use`, `system.load.load1`…),
 *    asked through its metric range query (`/metrics/query?name=…&match=bk_target_ip=…`), {@link HOST_METRICS};
 * 2. the basereport documents themselves (agent events, `event_type=basereport`), from which the same
 *    figures are read: `cpu.total_usage`, `mem.meminfo.usedPercent`, `disk.usage[].usedPercent`,
 *    `net.dev[].speedRecv/speedSent`, `load.load_avg.load1/5/15` (storage derives no network series yet).
 */

import { text } from './format.ts';

export interface ChartData {
  key: string;
  /** Where the lines come from. */
  source: 'series' | 'documents' | 'none';
  title: string;
  unit: '%' | 'B/s' | '';
  /** seconds since the epoch */
  xs: number[];
  series: { label: string; values: (number | null)[] }[];
}

export interface MetricQuery {
  chart: string;
  name: string;
  /** Label that names each line (`by`); `''` for one line per host. */
  by: string;
  agg: 'avg' | 'max';
  label: (labels: Record<string, string>) => string;
}

export const CHARTS: readonly { key: string; title: string; unit: ChartData['unit'] }[] = [
  { key: 'cpu', title: 'CPU usage', unit: '%' },
  { key: 'mem', title: 'Memory used', unit: '%' },
  { key: 'disk', title: 'Disk used', unit: '%' },
  { key: 'net', title: 'Network', unit: 'B/s' },
  { key: 'load', title: 'Load', unit: '' },
];

/** The derived series asked from storage's metric range query (the reference's host metric names). */
export const HOST_METRICS: readonly MetricQuery[] = [
  { chart: 'cpu', name: 'system.cpu_summary.usage', by: 'bk_target_ip', agg: 'avg', label: () => 'cpu' },
  { chart: 'mem', name: 'system.mem.pct_used', by: 'bk_target_ip', agg: 'avg', label: () => 'memory' },
  { chart: 'disk', name: 'system.disk.in_use', by: 'mount_point', agg: 'max', label: (l) => l.mount_point ?? 'disk' },
  { chart: 'net', name: 'system.net.speed_recv', by: 'device_name', agg: 'avg', label: (l) => `${l.device_name ?? ''} in`.trim() },
  { chart: 'net', name: 'system.net.speed_sent', by: 'device_name', agg: 'avg', label: (l) => `${l.device_name ?? ''} out`.trim() },
  { chart: 'load', name: 'system.load.load1', by: 'bk_target_ip', agg: 'avg', label: () => 'load1' },
  { chart: 'load', name: 'system.load.load5', by: 'bk_target_ip', agg: 'avg', label: () => 'load5' },
  { chart: 'load', name: 'system.load.load15', by: 'bk_target_ip', agg: 'avg', label: () => 'load15' },
];

/** One line: points as [ms, value]. */
export interface Line {
  chart: string;
  label: string;
  points: [number, number][];
}

/** The charts that have no points in `lines`. */
export function emptyCharts(lines: readonly Line[]): string[] {
  return CHARTS.map((c) => c.key).filter((k) => !lines.some((l) => l.chart === k && l.points.length > 0));
}

/**
 * Lines → one ChartData per chart (a shared x axis: the union of the lines' times): each chart from the
 * derived series when they have points for it, else from the documents' lines.
 */
export function toCharts(derived: readonly Line[], documents: readonly Line[] = []): ChartData[] {
  return CHARTS.map((c) => {
    const fromSeries = derived.filter((l) => l.chart === c.key && l.points.length > 0);
    const fromDocuments = documents.filter((l) => l.chart === c.key && l.points.length > 0);
    const mine = fromSeries.length > 0 ? fromSeries : fromDocuments;
    const source: ChartData['source'] = fromSeries.length > 0 ? 'series' : fromDocuments.length > 0 ? 'documents' : 'none';
    const xs = [...new Set(mine.flatMap((l) => l.points.map(([t]) => Math.floor(t / 1000))))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const series = mine.map((l) => {
      const values: (number | null)[] = xs.map(() => null);
      for (const [t, v] of l.points) values[index.get(Math.floor(t / 1000)) as number] = v;
      return { label: l.label, values };
    });
    return { key: c.key, source, title: c.title, unit: c.unit, xs, series };
  });
}

/** Lines from storage's metric answers, one answer per entry of {@link HOST_METRICS}. */
export function linesFromMetrics(answers: readonly { query: MetricQuery; series: { labels: Record<string, string>; points: [number, number][] }[] }[]): Line[] {
  return answers.flatMap(({ query, series }) => series.map((s) => ({ chart: query.chart, label: query.label(s.labels), points: s.points })));
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Lines read from basereport documents (`body` of each event, its time in ms). */
export function linesFromBasereport(events: readonly { timestamp: number; body: unknown }[]): Line[] {
  const lines = new Map<string, Line>();
  const add = (chart: string, label: string, t: number, v: number | undefined): void => {
    if (v === undefined) return;
    const key = `${chart}\u0000${label}`;
    let l = lines.get(key);
    if (!l) {
      l = { chart, label, points: [] };
      lines.set(key, l);
    }
    l.points.push([t, v]);
  };
  const sorted = [...events].sort((a, b) => a.timestamp - b.timestamp);
  for (const e of sorted) {
    const data = obj(obj(e.body).data);
    const t = Number(e.timestamp);
    add('cpu', 'cpu', t, num(obj(data.cpu).total_usage));
    add('mem', 'memory', t, num(obj(obj(data.mem).meminfo).usedPercent));
    for (const u of Array.isArray(obj(data.disk).usage) ? (obj(data.disk).usage as unknown[]) : []) {
      add('disk', text(obj(u).path ?? obj(u).mountpoint ?? 'disk'), t, num(obj(u).usedPercent));
    }
    for (const d of Array.isArray(obj(data.net).dev) ? (obj(data.net).dev as unknown[]) : []) {
      const name = text(obj(d).name);
      if (name === 'lo') continue;
      add('net', `${name} in`.trim(), t, num(obj(d).speedRecv));
      add('net', `${name} out`.trim(), t, num(obj(d).speedSent));
    }
    const load = obj(obj(data.load).load_avg);
    add('load', 'load1', t, num(load.load1));
    add('load', 'load5', t, num(load.load5));
    add('load', 'load15', t, num(load.load15));
  }
  return [...lines.values()];
}
