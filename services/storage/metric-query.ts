/**
 * Agent metrics and events out of the store: range queries over series (name + label matchers, a step,
 * an aggregation per step) and filtered, paged event lists.
 */
import { ValidationError } from '../common/errors.ts';
import { Params } from './filters.ts';
import { decodeCursor, encodeCursor, withTimeout, type Page, type QueryContext } from './query.ts';

export const METRIC_AGGS = ['avg', 'min', 'max', 'sum', 'count', 'last'] as const;
export type MetricAgg = (typeof METRIC_AGGS)[number];
const AGG_SQL: Record<MetricAgg, string> = {
  avg: 'avg(x.value)',
  min: 'min(x.value)',
  max: 'max(x.value)',
  sum: 'sum(x.value)',
  count: 'count(*)::float8',
  last: '(array_agg(x.value ORDER BY x.ts DESC))[1]',
};

/** A Prometheus-style label matcher: `name=value`, `name!=value`, `name=~regex`, `name!~regex`. */
export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export function parseMatcher(text: string): Matcher {
  const m = /^([A-Za-z_][\w.]*)\s*(=~|!~|!=|=)\s*(.*)$/.exec(text.trim());
  if (!m) throw new ValidationError(`match ${JSON.stringify(text)}: expected label=value, label!=value, label=~regex or label!~regex`);
  return { label: m[1] as string, op: m[2] as Matcher['op'], value: m[3] as string };
}

export interface RangeRequest {
  name: string;
  matchers: Matcher[];
  /** ms, inclusive */
  startMs: number;
  endMs: number;
  stepS: number;
  agg: MetricAgg;
  /** Labels to group by; empty = each series on its own. */
  by: string[];
  maxPoints: number;
}

export interface SeriesResult {
  labels: Record<string, string>;
  /** [time in ms (start of the step), value] */
  points: [number, number][];
}

export async function rangeQuery(ctx: QueryContext, req: RangeRequest): Promise<{ series: SeriesResult[] }> {
  const steps = Math.floor((req.endMs - req.startMs) / (req.stepS * 1000)) + 1;
  if (steps > req.maxPoints) throw new ValidationError(`step: ${steps} steps in the range exceed STORAGE_MAX_METRIC_POINTS (${req.maxPoints}); raise step or narrow the range`);
  const p = new Params();
  const where = [`s.name = ${p.add(req.name)}`];
  for (const m of req.matchers) {
    if (m.op === '=') where.push(m.value === '' ? `NOT (s.labels ? ${p.add(m.label)})` : `s.labels @> ${p.add(JSON.stringify({ [m.label]: m.value }))}::jsonb`);
    else if (m.op === '!=') where.push(`(s.labels ->> ${p.add(m.label)}) IS DISTINCT FROM ${p.add(m.value)}`);
    else {
      try {
        new RegExp(m.value);
      } catch {
        throw new ValidationError(`match ${m.label}${m.op}: ${JSON.stringify(m.value)} is not a regular expression`);
      }
      where.push(`COALESCE(s.labels ->> ${p.add(m.label)}, '') ${m.op === '=~' ? '~' : '!~'} ${p.add(`^(?:${m.value})$`)}`);
    }
  }
  const stepMs = req.stepS * 1000;
  const key = req.by.length === 0 ? 's.labels' : `jsonb_build_object(${req.by.map((l) => `${p.add(l)}::text, s.labels ->> ${p.add(l)}`).join(', ')})`;
  const sql = `SELECT ${key} AS labels, (x.ts / ${stepMs}) * ${stepMs} AS t, ${AGG_SQL[req.agg]} AS v
    FROM storage_metric_sample x JOIN storage_metric_series s ON s.series_id = x.series_id
    WHERE ${where.join(' AND ')} AND x.ts >= ${p.add(req.startMs)} AND x.ts <= ${p.add(req.endMs)}
    GROUP BY 1, 2 ORDER BY 1, 2 LIMIT ${req.maxPoints + 1}`;
  const rows = await withTimeout(ctx, async (db) => (await db.query<{ labels: Record<string, string>; t: number; v: number }>(sql, p.values)).rows);
  if (rows.length > req.maxPoints) throw new ValidationError(`the query returns more than STORAGE_MAX_METRIC_POINTS (${req.maxPoints}) points; add matchers, raise step or narrow the range`);
  const out = new Map<string, SeriesResult>();
  for (const r of rows) {
    const k = JSON.stringify(r.labels);
    let s = out.get(k);
    if (!s) {
      s = { labels: r.labels, points: [] };
      out.set(k, s);
    }
    s.points.push([Number(r.t), Number(r.v)]);
  }
  return { series: [...out.values()] };
}

export interface EventsRequest {
  startMs: number;
  endMs: number;
  eventType?: string | undefined;
  bkBizId?: number | undefined;
  dataId?: number | undefined;
  ip?: string | undefined;
  limit: number;
  cursor: unknown;
}

/** Events newest first, filtered by type, business, data id and agent IP. */
export async function listEvents(ctx: QueryContext, req: EventsRequest): Promise<Page<Record<string, unknown>>> {
  const p = new Params();
  const where = [`e.ts >= ${p.add(req.startMs)}`, `e.ts <= ${p.add(req.endMs)}`];
  if (req.eventType !== undefined) where.push(`e.event_type = ${p.add(req.eventType)}`);
  if (req.bkBizId !== undefined) where.push(`e.bk_biz_id = ${p.add(req.bkBizId)}`);
  if (req.dataId !== undefined) where.push(`e.data_id = ${p.add(req.dataId)}`);
  if (req.ip !== undefined) where.push(`e.ip = ${p.add(req.ip)}`);
  const cursor = decodeCursor(req.cursor, 2);
  if (cursor) where.push(`(e.ts, e.event_id) < (${p.add(Number(cursor[0]))}, ${p.add(Number(cursor[1]))})`);
  const sql = `SELECT e.event_id, e.ts AS timestamp, e.event_type, e.data_id, e.bk_biz_id, e.task_id, e.status, e.ip, e.bk_cloud_id, e.bk_host_id,
      e.hostname, e.dimensions, e.metrics, e.body
    FROM storage_event e WHERE ${where.join(' AND ')} ORDER BY e.ts DESC, e.event_id DESC LIMIT ${req.limit + 1}`;
  const rows = await withTimeout(ctx, async (db) => (await db.query<Record<string, unknown>>(sql, p.values)).rows);
  const more = rows.length > req.limit;
  const items = more ? rows.slice(0, req.limit) : rows;
  const last = items[items.length - 1];
  return more && last ? { items, next_cursor: encodeCursor([last.timestamp, last.event_id]) } : { items };
}
