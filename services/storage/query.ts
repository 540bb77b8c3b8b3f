/**
 * The queries behind the API (BaseQuery semantics; reference `apm/core/handlers/query/`): span list,
 * trace list, trace detail, field top values and aggregations over spans. Every query is scoped to one
 * application and a time range already clamped by {@link retentionTimeRange}; lists page with keyset
 * cursors (no gaps or repeats while rows arrive), and every statement runs under `statement_timeout`.
 */
import { BkError, ValidationError } from '../common/errors.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import { compileFilters, fieldExpression, Params, spanCatalog, traceCatalog, type Catalog, type Field, type FilterNode } from './filters.ts';
import { histogramQuantile, MINUTE_US } from './rollup.ts';

/** A query ran past `STORAGE_QUERY_TIMEOUT_MS` (503: narrow the range or the filters and try again). */
export class QueryTimeoutError extends BkError {
  constructor(ms: number, options?: { cause?: unknown }) {
    super('overloaded', `the query took longer than ${ms} ms (STORAGE_QUERY_TIMEOUT_MS): narrow the time range or add filters`, false, options);
  }
}

export interface QueryContext {
  store: Store;
  timeoutMs: number;
  /**
   * PostgreSQL: a pool whose connections run under `statement_timeout` (services/common/store/copy.ts),
   * so each statement is one round trip. Without it (PGlite, which cannot interrupt a statement anyway)
   * queries go to the store.
   */
  reader?: Queryable | undefined;
}

/** Runs `fn` on the reader (or the store); a statement past the timeout becomes a {@link QueryTimeoutError}. */
export async function withTimeout<T>(ctx: QueryContext, fn: (db: Queryable) => Promise<T>): Promise<T> {
  try {
    return await fn(ctx.reader ?? ctx.store);
  } catch (err) {
    if ((err as { code?: unknown }).code === '57014') throw new QueryTimeoutError(ctx.timeoutMs, { cause: err });
    throw err;
  }
}

export interface Scope {
  bkBizId: number;
  appName: string;
  /** ms, inclusive */
  startMs: number;
  /** ms, inclusive */
  endMs: number;
}

export interface Sort {
  field: string;
  desc: boolean;
}

/** `"end_time desc"`, `"-elapsed_time"`, `"span_name"` → a sort on a typed field of the catalog. */
export function parseSort(raw: unknown, catalog: Catalog, fallback: Sort): Sort {
  if (raw === undefined || raw === null || raw === '') return fallback;
  const text: unknown = Array.isArray(raw) ? (raw as unknown[])[0] : raw;
  if (typeof text !== 'string') throw new ValidationError('sort must be a string such as "end_time desc"');
  let s = text.trim();
  let desc = false;
  if (s.startsWith('-')) {
    desc = true;
    s = s.slice(1);
  }
  const m = /^([\w.]+)(?:\s+(asc|desc))?$/i.exec(s);
  if (!m) throw new ValidationError(`sort ${JSON.stringify(text)}: expected "<field> [asc|desc]"`);
  const name = m[1] ?? '';
  const field = catalog.aliases[name] ?? name;
  if (!catalog.fields[field]) throw new ValidationError(`sort ${JSON.stringify(text)}: unknown field ${JSON.stringify(m[1])}`);
  if (m[2]) desc = m[2].toLowerCase() === 'desc';
  return { field, desc };
}

/** Opaque cursor: the last row's sort value and tie-breakers. */
export function encodeCursor(values: unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

export function decodeCursor(raw: unknown, length: number): unknown[] | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string') throw new ValidationError('cursor must be a string from an earlier page');
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === length) return v as unknown[];
  } catch {
    // reported below
  }
  throw new ValidationError('cursor is not one this listing returned (the sort must stay the same between pages)');
}

/**
 * Keyset condition `(sort, tiebreakers…) </> (cursor…)`. A nullable sort field lists NULLs last whatever
 * the direction; a NOT NULL one is ordered plainly, so an index on it can give the order.
 */
function keyset(field: Field, tiebreak: string[], desc: boolean, cursor: unknown[] | undefined, p: Params): { where: string; order: string } {
  const sortSql = field.sql;
  const dir = desc ? 'DESC' : 'ASC';
  const order = [`${sortSql} ${dir}${field.nullable ? ' NULLS LAST' : ''}`, ...tiebreak.map((c) => `${c} ${dir}`)].join(', ');
  if (!cursor) return { where: 'true', order };
  const [value, ...ties] = cursor;
  const cmp = desc ? '<' : '>';
  const tieParams = ties.map((v) => p.add(v));
  const tieRow = `(${tiebreak.join(', ')}) ${cmp} (${tieParams.join(', ')})`;
  if (value === null) return { where: `(${sortSql} IS NULL AND ${tieRow})`, order };
  const v = p.add(field.type === 'int' ? Number(value) : field.type === 'bool' ? Boolean(value) : typeof value === 'string' ? value : JSON.stringify(value));
  const after = `(${sortSql}, ${tiebreak.join(', ')}) ${cmp} (${v}, ${tieParams.join(', ')})`;
  return { where: field.nullable ? `(${sortSql} IS NULL OR ${after})` : after, order };
}

export interface ListRequest {
  filters: FilterNode[];
  limit: number;
  cursor: unknown;
  sort: unknown;
}

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; absent on the last. */
  next_cursor?: string;
}

/** Span list fields without attributes, events and links (the reference's default exclusions). */
const SPAN_LIST_COLUMNS = `s.trace_id, s.span_id, s.parent_span_id, s.span_name, s.kind, s.start_time, s.end_time, s.elapsed_time,
  json_build_object('code', s.status_code, 'message', s.status_message) AS status, s.trace_state, s.resource, s.bk_biz_id, s.app_name, s.category`;
const SPAN_FULL_COLUMNS = `${SPAN_LIST_COLUMNS}, s.attributes, s.events, s.links`;

function spanScope(scope: Scope, p: Params, timeColumn = 's.end_time'): string {
  return `s.bk_biz_id = ${p.add(scope.bkBizId)} AND s.app_name = ${p.add(scope.appName)} AND ${timeColumn} >= ${p.add(scope.startMs * 1000)} AND ${timeColumn} <= ${p.add(scope.endMs * 1000)}`;
}

export async function listSpans(ctx: QueryContext, scope: Scope, req: ListRequest & { full?: boolean }): Promise<Page<Record<string, unknown>>> {
  const p = new Params();
  const sort = parseSort(req.sort, spanCatalog, { field: 'end_time', desc: true });
  const field = spanCatalog.fields[sort.field] as Field;
  const cursor = decodeCursor(req.cursor, 3);
  const cond = compileFilters(req.filters, spanCatalog, p);
  const ks = keyset(field, ['s.trace_id', 's.span_id'], sort.desc, cursor, p);
  const sql = `SELECT ${req.full ? SPAN_FULL_COLUMNS : SPAN_LIST_COLUMNS}, ${field.sql} AS _sort FROM storage_span s
    WHERE ${spanScope(scope, p)} AND ${cond} AND ${ks.where} ORDER BY ${ks.order} LIMIT ${req.limit + 1}`;
  const rows = await withTimeout(ctx, async (db) => (await db.query<Record<string, unknown>>(sql, p.values)).rows);
  return page(rows, req.limit, (r) => [r._sort, r.trace_id, r.span_id]);
}

function page(rows: Record<string, unknown>[], limit: number, key: (r: Record<string, unknown>) => unknown[]): Page<Record<string, unknown>> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  const next = more && last ? encodeCursor(key(last)) : undefined;
  for (const r of items) delete r._sort;
  return next ? { items, next_cursor: next } : { items };
}

const TRACE_LIST_COLUMNS = `t.bk_biz_id AS biz_id, t.app_name, t.trace_id, t.service_count, t.span_count, t.min_start_time, t.max_end_time,
  t.trace_duration, t.span_max_duration, t.span_min_duration, t.root_service, t.root_service_span_id, t.root_service_span_name,
  t.root_service_status_code, t.root_service_category, t.root_service_kind, t.root_span_id, t.root_span_name, t.root_span_service,
  t.root_span_kind, t.error, t.error_count,
  json_build_object('http', t.cat_http, 'rpc', t.cat_rpc, 'db', t.cat_db, 'messaging', t.cat_messaging, 'async_backend', t.cat_async_backend, 'other', t.cat_other) AS category_statistics,
  json_build_object('unspecified', t.kind_unspecified, 'interval', t.kind_interval, 'sync', t.kind_sync, 'async', t.kind_async) AS kind_statistics`;

/**
 * The trace list: one row per trace with the reference's trace-list fields (`PrecalculateStorageConfig`),
 * time field `min_start_time`, newest first by default. `hierarchy_count` is computed for the page's
 * traces from their spans (it needs the whole span tree).
 */
export async function listTraces(ctx: QueryContext, scope: Scope, req: ListRequest): Promise<Page<Record<string, unknown>>> {
  const p = new Params();
  const sort = parseSort(req.sort, traceCatalog, { field: 'min_start_time', desc: true });
  const field = traceCatalog.fields[sort.field] as Field;
  const cursor = decodeCursor(req.cursor, 2);
  const scopeSql = `t.bk_biz_id = ${p.add(scope.bkBizId)} AND t.app_name = ${p.add(scope.appName)} AND t.min_start_time >= ${p.add(scope.startMs * 1000)} AND t.min_start_time <= ${p.add(scope.endMs * 1000)}`;
  const cond = compileFilters(req.filters, traceCatalog, p);
  const ks = keyset(field, ['t.trace_id'], sort.desc, cursor, p);
  const sql = `SELECT ${TRACE_LIST_COLUMNS}, ${field.sql} AS _sort FROM storage_trace t WHERE ${scopeSql} AND ${cond} AND ${ks.where} ORDER BY ${ks.order} LIMIT ${req.limit + 1}`;
  return withTimeout(ctx, async (db) => {
    const rows = (await db.query<Record<string, unknown>>(sql, p.values)).rows;
    const result = page(rows, req.limit, (r) => [r._sort, r.trace_id]);
    const depths = await hierarchyCounts(db, scope, result.items);
    for (const item of result.items) item.hierarchy_count = depths.get(item.trace_id as string) ?? 1;
    return result;
  });
}

/** Longest root-to-leaf path (in spans) of each trace, from its stored spans. */
async function hierarchyCounts(db: Queryable, scope: Scope, traces: Record<string, unknown>[]): Promise<Map<string, number>> {
  if (traces.length === 0) return new Map();
  const ids = traces.map((t) => t.trace_id as string);
  const lo = Math.min(...traces.map((t) => Number(t.min_start_time)));
  const hi = Math.max(...traces.map((t) => Number(t.max_end_time)));
  const { rows } = await db.query<{ trace_id: string; depth: number }>(
    `WITH RECURSIVE s AS (
       SELECT trace_id, span_id, parent_span_id FROM storage_span
       WHERE trace_id = ANY($1::text[]) AND bk_biz_id = $2 AND app_name = $3 AND end_time >= $4 AND end_time <= $5
     ), d AS (
       SELECT trace_id, span_id, 1 AS depth FROM s
       WHERE parent_span_id = '' OR NOT EXISTS (SELECT 1 FROM s q WHERE q.trace_id = s.trace_id AND q.span_id = s.parent_span_id)
       UNION ALL
       SELECT c.trace_id, c.span_id, d.depth + 1 FROM s c JOIN d ON c.trace_id = d.trace_id AND c.parent_span_id = d.span_id WHERE d.depth < 1000
     )
     SELECT trace_id, max(depth)::int AS depth FROM d GROUP BY trace_id`,
    [ids, scope.bkBizId, scope.appName, lo, hi],
  );
  return new Map(rows.map((r) => [r.trace_id, r.depth]));
}

export interface TraceDetail {
  trace_id: string;
  bk_biz_id: number;
  app_name: string;
  summary: Record<string, unknown> | undefined;
  /** Every span, in waterfall order (depth-first from the roots, children by start time), with its `depth`. */
  spans: Record<string, unknown>[];
  /** More spans than `STORAGE_MAX_TRACE_SPANS`: the rest were left out. */
  truncated: boolean;
}

/** The application(s) a trace id was stored for (any retained day). */
export async function findTraceApps(ctx: QueryContext, traceId: string): Promise<{ bk_biz_id: number; app_name: string }[]> {
  return withTimeout(ctx, async (db) =>
    (await db.query<{ bk_biz_id: number; app_name: string }>('SELECT DISTINCT bk_biz_id, app_name FROM storage_span WHERE trace_id = $1 ORDER BY bk_biz_id, app_name', [traceId])).rows,
  );
}

/** A trace's spans (time field `start_time`, as the reference's `query_by_trace_id`) and its summary. */
export async function traceDetail(ctx: QueryContext, scope: Scope, traceId: string, maxSpans: number): Promise<TraceDetail> {
  return withTimeout(ctx, async (db) => {
    const p = new Params();
    const sql = `SELECT ${SPAN_FULL_COLUMNS} FROM storage_span s WHERE s.trace_id = ${p.add(traceId)} AND ${spanScope(scope, p, 's.start_time')}
      ORDER BY s.start_time, s.span_id LIMIT ${maxSpans + 1}`;
    const rows = (await db.query<Record<string, unknown>>(sql, p.values)).rows;
    const truncated = rows.length > maxSpans;
    const spans = waterfall(truncated ? rows.slice(0, maxSpans) : rows);
    const summary = (await db.query<Record<string, unknown>>(`SELECT ${TRACE_LIST_COLUMNS} FROM storage_trace t WHERE t.bk_biz_id = $1 AND t.app_name = $2 AND t.trace_id = $3 ORDER BY t.anchor_time LIMIT 1`, [scope.bkBizId, scope.appName, traceId])).rows[0];
    if (summary) summary.hierarchy_count = spans.reduce((m, s) => Math.max(m, (s.depth as number) + 1), 0);
    return { trace_id: traceId, bk_biz_id: scope.bkBizId, app_name: scope.appName, summary, spans, truncated };
  });
}

/** Depth-first order from the roots (spans whose parent is absent), siblings by start time; sets `depth`. */
export function waterfall(spans: Record<string, unknown>[]): Record<string, unknown>[] {
  const byId = new Map<string, Record<string, unknown>>();
  for (const s of spans) byId.set(s.span_id as string, s);
  const children = new Map<string, Record<string, unknown>[]>();
  const roots: Record<string, unknown>[] = [];
  for (const s of spans) {
    const parent = s.parent_span_id as string;
    if (parent && byId.has(parent) && parent !== s.span_id) {
      const list = children.get(parent) ?? [];
      list.push(s);
      children.set(parent, list);
    } else {
      roots.push(s);
    }
  }
  const out: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  const visit = (s: Record<string, unknown>, depth: number): void => {
    const id = s.span_id as string;
    if (seen.has(id)) return;
    seen.add(id);
    out.push({ ...s, depth });
    for (const c of children.get(id) ?? []) visit(c, depth + 1);
  };
  for (const r of roots) visit(r, 0);
  // spans caught in a parent cycle (corrupt data) are listed at the end rather than lost
  for (const s of spans) if (!seen.has(s.span_id as string)) visit(s, 0);
  return out;
}

export interface OptionsRequest {
  fields: string[];
  limit: number;
  filters: FilterNode[];
  /** `span` (default) or `trace` fields. */
  mode: 'span' | 'trace';
}

/** Top values of each field in the range (the reference's field options / topk), most frequent first. */
export async function fieldOptions(ctx: QueryContext, scope: Scope, req: OptionsRequest): Promise<Record<string, { value: unknown; count: number }[]>> {
  return withTimeout(ctx, async (db) => {
    const out: Record<string, { value: unknown; count: number }[]> = {};
    for (const name of req.fields) {
      const p = new Params();
      const catalog = req.mode === 'trace' ? traceCatalog : spanCatalog;
      const expr = fieldExpression(name, catalog, p);
      const cond = compileFilters(req.filters, catalog, p);
      const sql =
        req.mode === 'trace'
          ? `SELECT ${expr.sql} AS value, count(*)::int AS count FROM storage_trace t
             WHERE t.bk_biz_id = ${p.add(scope.bkBizId)} AND t.app_name = ${p.add(scope.appName)} AND t.min_start_time >= ${p.add(scope.startMs * 1000)} AND t.min_start_time <= ${p.add(scope.endMs * 1000)}
             AND ${cond} AND ${expr.sql} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${req.limit}`
          : `SELECT ${expr.sql} AS value, count(*)::int AS count FROM storage_span s WHERE ${spanScope(scope, p)} AND ${cond} AND ${expr.sql} IS NOT NULL
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${req.limit}`;
      out[name] = (await db.query<{ value: unknown; count: number }>(sql, p.values)).rows;
    }
    return out;
  });
}

export const AGG_METRICS = ['count', 'avg', 'min', 'max', 'p50', 'p90', 'p99', 'error_count', 'error_rate'] as const;
export type AggMetric = (typeof AGG_METRICS)[number];
const AGG_SQL: Record<AggMetric, string> = {
  count: 'count(*)::int',
  avg: 'avg(s.elapsed_time)::float8',
  min: 'min(s.elapsed_time)',
  max: 'max(s.elapsed_time)',
  p50: 'percentile_cont(0.5) WITHIN GROUP (ORDER BY s.elapsed_time)',
  p90: 'percentile_cont(0.9) WITHIN GROUP (ORDER BY s.elapsed_time)',
  p99: 'percentile_cont(0.99) WITHIN GROUP (ORDER BY s.elapsed_time)',
  error_count: '(count(*) FILTER (WHERE s.status_code = 2))::int',
  error_rate: 'avg((s.status_code = 2)::int)::float8',
};

export interface AggregateRequest {
  metrics: AggMetric[];
  groupBy: string[];
  /** Time bucket, seconds (0 = none). Buckets are of `end_time`, returned as `time` in ms. */
  intervalS: number;
  filters: FilterNode[];
  /** Most groups returned. */
  limit: number;
  /** Read every span (exact percentiles) even when the per-minute rollups could answer. */
  exact?: boolean;
}

export interface AggregateResult {
  groups: Record<string, unknown>[];
  truncated: boolean;
  /** `rollup`: whole minutes from the per-minute rollups (percentiles within 2.2 %), the partial minutes at the ends from spans; `spans`: every span read. */
  source: 'rollup' | 'spans';
}

/** Span fields the per-minute rollups keep (rollup.ts): a RED view grouped or filtered by these can use them. */
const ROLLUP_FIELDS = new Set(['resource.service.name', 'span_name', 'kind']);

function rollupField(key: string): boolean {
  return ROLLUP_FIELDS.has(spanCatalog.aliases[key] ?? key);
}

function rollupFilters(nodes: readonly FilterNode[]): boolean {
  return nodes.every((n) => ('and' in n ? rollupFilters(n.and) : 'or' in n ? rollupFilters(n.or) : n.operator === 'logic' || rollupField(n.key)));
}

/**
 * The whole minutes of the range when the rollups can answer the request: every group and filter field
 * one they keep, the time bucket whole minutes, and at least one whole minute in the range.
 */
function rollupMinutes(scope: Scope, req: AggregateRequest): { from: number; to: number } | undefined {
  if (req.exact) return undefined;
  if (req.intervalS > 0 && req.intervalS % 60 !== 0) return undefined;
  if (!req.groupBy.every(rollupField) || !rollupFilters(req.filters)) return undefined;
  const lo = scope.startMs * 1000;
  const hi = scope.endMs * 1000;
  const from = Math.ceil(lo / MINUTE_US) * MINUTE_US;
  const to = Math.floor((hi + 1) / MINUTE_US) * MINUTE_US;
  return from < to ? { from, to } : undefined;
}

/**
 * Span aggregations: count, avg/min/max and percentiles of `elapsed_time` (µs), error count and rate,
 * grouped by fields and by time bucket — the RED view per service and endpoint is
 * `group_by: ["resource.service.name", "span_name"]` with `count`, `error_rate`, `p99`.
 *
 * A request the per-minute rollups can answer (groups and filters on service, span name and kind only,
 * a time bucket of whole minutes, not `exact`) reads the range's whole minutes from them and the spans
 * of the partial minutes at its ends: count, error count and rate, avg, min and max are the exact values;
 * p50/p90/p99 come from the merged log-bucket histograms, within 2.2 % of `percentile_cont` over the spans
 * (rollup.ts). Any other request reads every span of the range.
 */
export async function aggregate(ctx: QueryContext, scope: Scope, req: AggregateRequest): Promise<AggregateResult> {
  const minutes = rollupMinutes(scope, req);
  if (minutes) return rollupAggregate(ctx, scope, req, minutes);
  const p = new Params();
  const select: string[] = [];
  const groups: string[] = [];
  req.groupBy.forEach((name, i) => {
    const expr = fieldExpression(name, spanCatalog, p);
    select.push(`${expr.sql} AS g${i}`);
    groups.push(`g${i}`);
  });
  if (req.intervalS > 0) {
    const us = req.intervalS * 1_000_000;
    select.push(`((s.end_time / ${us}) * ${req.intervalS * 1000})::bigint AS time`);
    groups.push('time');
  }
  for (const m of req.metrics) select.push(`${AGG_SQL[m]} AS ${m}`);
  const cond = compileFilters(req.filters, spanCatalog, p);
  const sql = `SELECT ${select.join(', ')} FROM storage_span s WHERE ${spanScope(scope, p)} AND ${cond}
    ${groups.length ? `GROUP BY ${groups.join(', ')} ORDER BY ${groups.join(', ')}` : ''} LIMIT ${req.limit + 1}`;
  const rows = await withTimeout(ctx, async (db) => (await db.query<Record<string, unknown>>(sql, p.values)).rows);
  return { ...groupsOf(rows, req, (r, m) => r[m]), source: 'spans' };
}

function groupsOf(rows: Record<string, unknown>[], req: AggregateRequest, metric: (r: Record<string, unknown>, m: AggMetric) => unknown): { groups: Record<string, unknown>[]; truncated: boolean } {
  const truncated = rows.length > req.limit;
  return {
    truncated,
    groups: (truncated ? rows.slice(0, req.limit) : rows).map((r) => {
      const out: Record<string, unknown> = {};
      req.groupBy.forEach((name, i) => (out[name] = r[`g${i}`]));
      if (req.intervalS > 0) out.time = r.time;
      for (const m of req.metrics) out[m] = metric(r, m);
      return out;
    }),
  };
}

const QUANTILES: Partial<Record<AggMetric, number>> = { p50: 0.5, p90: 0.9, p99: 0.99 };

/**
 * The aggregation over the rollups of minutes [from, to) and the spans of the range outside them, as
 * `src` rows of one shape (a span is a rollup of one), then merged per group in one pass: the sums,
 * minimum and maximum in SQL, and — when a percentile is asked for — each group's histogram pieces as
 * one text (`b,b,…:n,n,…` per piece, `;` between) that {@link mergeHistogramText} adds up here. Adding
 * ~400 000 bucket counts of an hour of 1 000 endpoints in PostgreSQL (unnest, then a hash aggregate by
 * group and bucket) took 2–3 times as long as this.
 */
async function rollupAggregate(ctx: QueryContext, scope: Scope, req: AggregateRequest, minutes: { from: number; to: number }): Promise<AggregateResult> {
  const p = new Params();
  const keys = req.groupBy.map((name, i) => `${fieldExpression(name, spanCatalog, p).sql} AS g${i}`);
  const groups = req.groupBy.map((_, i) => `g${i}`);
  if (req.intervalS > 0) groups.push('time');
  const bucketTime = (col: string): string[] => (req.intervalS > 0 ? [`((${col} / ${req.intervalS * 1_000_000}) * ${req.intervalS * 1000})::bigint AS time`] : []);
  const cond = compileFilters(req.filters, spanCatalog, p);
  const biz = p.add(scope.bkBizId);
  const app = p.add(scope.appName);
  const lo = p.add(scope.startMs * 1000);
  const hi = p.add(scope.endMs * 1000);
  const from = p.add(minutes.from);
  const to = p.add(minutes.to);
  const spanCols = [...keys, ...bucketTime('s.end_time'), '1 AS c', '(s.status_code = 2)::int AS e', 's.elapsed_time::numeric AS total', 's.elapsed_time AS lo', 's.elapsed_time AS hi',
    'ARRAY[storage_latency_bucket(s.elapsed_time)::smallint] AS buckets', 'ARRAY[1] AS counts'].join(', ');
  const rollupCols = [...keys, ...bucketTime('s.minute'), 's.span_count AS c', 's.error_count AS e', 's.elapsed_sum AS total', 's.elapsed_min AS lo', 's.elapsed_max AS hi', 's.buckets', 's.counts'].join(', ');
  const minutesOf = (table: string): string => `SELECT ${rollupCols} FROM ${table} s WHERE s.bk_biz_id = ${biz} AND s.app_name = ${app} AND s.minute >= ${from} AND s.minute < ${to} AND ${cond}`;
  // the minutes, the pieces not folded into them yet, the spans of the partial minutes at the ends
  const src = `${minutesOf('storage_span_minute')}
    UNION ALL
    ${minutesOf('storage_span_minute_pending')}
    UNION ALL
    SELECT ${spanCols} FROM storage_span s WHERE s.bk_biz_id = ${biz} AND s.app_name = ${app} AND s.end_time >= ${lo} AND s.end_time < ${from} AND ${cond}
    UNION ALL
    SELECT ${spanCols} FROM storage_span s WHERE s.bk_biz_id = ${biz} AND s.app_name = ${app} AND s.end_time >= ${to} AND s.end_time <= ${hi} AND ${cond}`;
  const percentiles = req.metrics.some((m) => QUANTILES[m] !== undefined);
  const cols = [...groups, 'COALESCE(sum(c), 0)::int AS count', 'COALESCE(sum(e), 0)::int AS error_count', '(sum(total) / NULLIF(sum(c), 0))::float8 AS avg',
    '(sum(e)::numeric / NULLIF(sum(c), 0))::float8 AS error_rate', 'min(lo) AS min', 'max(hi) AS max'];
  if (percentiles) cols.push("string_agg(array_to_string(buckets, ',') || ':' || array_to_string(counts, ','), ';') AS hist");
  const sql = `SELECT ${cols.join(', ')} FROM (${src}) src
    ${groups.length ? `GROUP BY ${groups.join(', ')} ORDER BY ${groups.join(', ')}` : ''} LIMIT ${req.limit + 1}`;
  const rows = await withTimeout(ctx, async (db) => (await db.query<Record<string, unknown>>(sql, p.values)).rows);
  // each returned group's histogram, added up once for all its percentiles
  if (percentiles) for (const r of rows) r.hist = typeof r.hist === 'string' ? mergeHistogramText(r.hist) : null;
  return {
    ...groupsOf(rows, req, (r, m) => {
      const q = QUANTILES[m];
      if (q === undefined) return r[m];
      const h = r.hist as { buckets: number[]; counts: number[] } | null;
      if (!h || h.buckets.length === 0) return null;
      return histogramQuantile({ ...h, count: r.count as number, min: Number(r.min), max: Number(r.max) }, q);
    }),
    source: 'rollup',
  };
}

/**
 * Adds up histogram pieces written as `b,b,…:n,n,…` (bucket indexes, then their counts), `;` between
 * pieces: bucket indexes ascending with their summed counts. Text of another shape is an error (never a
 * loop that does not advance).
 */
export function mergeHistogramText(text: string): { buckets: number[]; counts: number[] } {
  const sums = new Map<number, number>();
  const pieceBuckets: number[] = [];
  let i = 0;
  const n = text.length;
  const int = (): number => {
    let neg = false;
    if (text.charCodeAt(i) === 45) {
      neg = true;
      i++;
    }
    const start = i;
    let v = 0;
    let c = text.charCodeAt(i);
    while (c >= 48 && c <= 57) {
      v = v * 10 + (c - 48);
      c = text.charCodeAt(++i);
    }
    if (i === start) throw new Error(`histogram text: a number expected at ${i} of ${JSON.stringify(text.slice(0, 80))}`);
    return neg ? -v : v;
  };
  while (i < n) {
    pieceBuckets.length = 0;
    // buckets up to ':'
    while (i < n && text.charCodeAt(i) !== 58) {
      pieceBuckets.push(int());
      if (text.charCodeAt(i) === 44) i++;
    }
    i++; // ':'
    for (let k = 0; i < n && text.charCodeAt(i) !== 59; k++) {
      const count = int();
      const b = pieceBuckets[k];
      if (b !== undefined) sums.set(b, (sums.get(b) ?? 0) + count);
      if (text.charCodeAt(i) === 44) i++;
    }
    i++; // ';'
  }
  const buckets = [...sums.keys()].sort((a, b) => a - b);
  return { buckets, counts: buckets.map((b) => sums.get(b) as number) };
}
