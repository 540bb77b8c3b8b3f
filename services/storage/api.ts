/**
 * The query API (port 8083). Every endpoint takes its parameters from the query string or, for POST, a
 * JSON body (the same names; `filters` is JSON in a query string, lists are comma separated there).
 *
 * Per application (`/api/v1/apps/{bk_biz_id}/{app_name}/…`; 404 when the application is not registered):
 * - `traces` — trace list; `spans` — span list (`full=true` adds attributes, events, links). Both take
 *   `start_time`/`end_time` (seconds, clamped as the reference's `get_retention_time_range`), `filters`,
 *   `sort` (`"<field> [asc|desc]"`), `limit`, `cursor`; they answer `{ items, next_cursor?, start_time, end_time }`.
 * - `traces/{trace_id}` — every span of the trace in waterfall order, and its summary.
 * - `options` — top values: `fields`, `limit`, `mode` (`span`|`trace`), `filters`.
 * - `aggregate` — `metrics` (count, avg, min, max, p50, p90, p99, error_count, error_rate of
 *   elapsed_time), `group_by` fields, `interval` (seconds), `filters`, `limit`, `exact` (read every span
 *   even when the per-minute rollups could answer; `source` in the answer says which was read).
 * Across applications:
 * - `GET /api/v1/apps` — the registered applications (`app_name` filters): `{ items: [{ bk_biz_id, app_name, trace_retention_days }] }`.
 * - `GET /api/v1/traces/{trace_id}` — the trace detail, finding the application by the trace id.
 * - `GET /api/v1/metrics/query` — `name`, `match` (repeatable `label=value`, `!=`, `=~`, `!~`),
 *   `start`/`end` (seconds; default the last hour), `step` (seconds), `agg`, `by`.
 * - `GET /api/v1/events` — `event_type`, `bk_biz_id`, `data_id`, `ip`, `start`/`end`, `limit`, `cursor`.
 * Every bad parameter is a 400 naming it.
 */
import { NotFoundError, ValidationError } from '../common/errors.ts';
import type { HttpRequest, HttpResponse, Route } from '../common/http.ts';
import { parseFilters, type FilterNode } from './filters.ts';
import { listEvents, METRIC_AGGS, parseMatcher, rangeQuery, type MetricAgg } from './metric-query.ts';
import { aggregate, AGG_METRICS, fieldOptions, findTraceApps, listSpans, listTraces, traceDetail, type AggMetric, type QueryContext, type Scope } from './query.ts';
import type { Retention } from './retention.ts';
import { retentionTimeRange } from './time-range.ts';

export interface ApiOptions extends QueryContext {
  retention: Retention;
  maxPageSize: number;
  maxTraceSpans: number;
  maxMetricPoints: number;
  now?: () => number;
}

const DEFAULT_LIMIT = 50;
const APP = String.raw`^\/api\/v1\/apps\/(?<biz>-?\d+)\/(?<app>[^/]+)`;

/** The request's parameters: the JSON body's fields over the query string's. */
function params(req: HttpRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of new Set(req.query.keys())) {
    const all = req.query.getAll(key);
    out[key] = all.length > 1 ? all : all[0];
  }
  if (req.body !== undefined) {
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) throw new ValidationError('the request body must be a JSON object');
    Object.assign(out, req.body);
  }
  return out;
}

function intParam(p: Record<string, unknown>, name: string, fallback: number | undefined, min: number, max: number): number | undefined {
  const raw = p[name];
  if (raw === undefined || raw === null || raw === '') return fallback;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ValidationError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function listParam(p: Record<string, unknown>, name: string): string[] {
  const raw = p[name];
  if (raw === undefined || raw === null || raw === '') return [];
  const items: unknown[] = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : [raw];
  return items.map((v) => {
    if (typeof v !== 'string' || v.trim() === '') throw new ValidationError(`${name} must be a list of names`);
    return v.trim();
  });
}

function filtersParam(p: Record<string, unknown>): FilterNode[] {
  let raw = p.filters;
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw) as unknown;
    } catch {
      throw new ValidationError('filters must be JSON (a list of {key, operator, value})');
    }
  }
  return parseFilters(raw);
}

function decode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ValidationError(`${what} is not valid URL encoding`);
  }
}

export function storageRoutes(o: ApiOptions): Route[] {
  const now = o.now ?? Date.now;

  /** The application and the clamped time range of a request; 404 for an unknown application. */
  const scopeOf = async (req: HttpRequest, p: Record<string, unknown>): Promise<Scope> => {
    const bkBizId = Number(req.params.biz);
    const appName = decode(req.params.app as string, 'app_name');
    const app = await o.retention.app(bkBizId, appName);
    if (!app.known) throw new NotFoundError(`no application ${appName} in business ${bkBizId}`);
    const start = intParam(p, 'start_time', undefined, 0, 1e11);
    const end = intParam(p, 'end_time', undefined, 0, 1e11);
    const { startMs, endMs } = retentionTimeRange(app.retentionDays, start, end, now());
    return { bkBizId, appName, startMs, endMs };
  };
  const limitOf = (p: Record<string, unknown>, fallback = DEFAULT_LIMIT): number => intParam(p, 'limit', Math.min(fallback, o.maxPageSize), 1, o.maxPageSize) as number;
  const range = (scope: Scope): { start_time: number; end_time: number } => ({ start_time: scope.startMs, end_time: scope.endMs });

  const traces = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const scope = await scopeOf(req, p);
    const page = await listTraces(o, scope, { filters: filtersParam(p), limit: limitOf(p), cursor: p.cursor, sort: p.sort });
    return { status: 200, body: { ...page, ...range(scope) } };
  };
  const spans = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const scope = await scopeOf(req, p);
    const full = p.full === true || p.full === 'true';
    const page = await listSpans(o, scope, { filters: filtersParam(p), limit: limitOf(p), cursor: p.cursor, sort: p.sort, full });
    return { status: 200, body: { ...page, ...range(scope) } };
  };
  const detail = async (req: HttpRequest, scope: Scope): Promise<HttpResponse> => {
    const traceId = decode(req.params.trace as string, 'trace_id');
    const d = await traceDetail(o, scope, traceId, o.maxTraceSpans);
    if (d.spans.length === 0) throw new NotFoundError(`no spans of trace ${traceId} in ${scope.appName} between ${new Date(scope.startMs).toISOString()} and ${new Date(scope.endMs).toISOString()}`);
    return { status: 200, body: { ...d, ...range(scope) } };
  };
  const appTrace = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    return detail(req, await scopeOf(req, p));
  };
  const anyTrace = async (req: HttpRequest): Promise<HttpResponse> => {
    const traceId = decode(req.params.trace as string, 'trace_id');
    const apps = await findTraceApps(o, traceId);
    const first = apps[0];
    if (!first) throw new NotFoundError(`no spans of trace ${traceId}`);
    const p = params(req);
    const app = await o.retention.app(first.bk_biz_id, first.app_name);
    const { startMs, endMs } = retentionTimeRange(app.retentionDays, intParam(p, 'start_time', undefined, 0, 1e11), intParam(p, 'end_time', undefined, 0, 1e11), now());
    return detail(req, { bkBizId: first.bk_biz_id, appName: first.app_name, startMs, endMs });
  };
  const options = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const scope = await scopeOf(req, p);
    const fields = listParam(p, 'fields');
    if (fields.length === 0) throw new ValidationError('fields: name at least one field');
    const mode = p.mode ?? 'span';
    if (mode !== 'span' && mode !== 'trace') throw new ValidationError('mode must be span or trace');
    const values = await fieldOptions(o, scope, { fields, limit: intParam(p, 'limit', 100, 1, 500) as number, filters: filtersParam(p), mode });
    return { status: 200, body: { options: values, ...range(scope) } };
  };
  const agg = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const scope = await scopeOf(req, p);
    const metrics = listParam(p, 'metrics');
    if (metrics.length === 0) metrics.push('count');
    for (const m of metrics) if (!(AGG_METRICS as readonly string[]).includes(m)) throw new ValidationError(`metrics: unknown ${JSON.stringify(m)} (one of ${AGG_METRICS.join(', ')})`);
    const result = await aggregate(o, scope, {
      metrics: metrics as AggMetric[],
      groupBy: listParam(p, 'group_by'),
      intervalS: intParam(p, 'interval', 0, 0, 86_400 * 31) as number,
      filters: filtersParam(p),
      limit: intParam(p, 'limit', 10_000, 1, 100_000) as number,
      exact: p.exact === true || p.exact === 'true',
    });
    return { status: 200, body: { ...result, ...range(scope) } };
  };
  const metricsQuery = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const name = p.name;
    if (typeof name !== 'string' || name === '') throw new ValidationError('name: the metric name is required');
    const nowS = Math.floor(now() / 1000);
    const end = intParam(p, 'end', nowS, 0, 1e11) as number;
    const start = intParam(p, 'start', end - 3600, 0, end) as number;
    const agg = (p.agg ?? 'avg') as string;
    if (!(METRIC_AGGS as readonly string[]).includes(agg)) throw new ValidationError(`agg: unknown ${JSON.stringify(agg)} (one of ${METRIC_AGGS.join(', ')})`);
    const match = p.match === undefined ? [] : Array.isArray(p.match) ? p.match : [p.match];
    const result = await rangeQuery(o, {
      name,
      matchers: match.map((m) => parseMatcher(String(m as string))),
      startMs: start * 1000,
      endMs: end * 1000,
      stepS: intParam(p, 'step', 60, 1, 86_400) as number,
      agg: agg as MetricAgg,
      by: listParam(p, 'by'),
      maxPoints: o.maxMetricPoints,
    });
    return { status: 200, body: { ...result, start: start * 1000, end: end * 1000 } };
  };
  const events = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const nowS = Math.floor(now() / 1000);
    const end = intParam(p, 'end', nowS, 0, 1e11) as number;
    const start = intParam(p, 'start', end - 3600, 0, end) as number;
    const page = await listEvents(o, {
      startMs: start * 1000,
      endMs: end * 1000,
      eventType: typeof p.event_type === 'string' ? p.event_type : undefined,
      bkBizId: intParam(p, 'bk_biz_id', undefined, -1e15, 1e15),
      dataId: intParam(p, 'data_id', undefined, 0, 1e15),
      ip: typeof p.ip === 'string' ? p.ip : undefined,
      limit: limitOf(p),
      cursor: p.cursor,
    });
    return { status: 200, body: page };
  };

  const apps = async (req: HttpRequest): Promise<HttpResponse> => {
    const p = params(req);
    const name = typeof p.app_name === 'string' && p.app_name !== '' ? p.app_name : undefined;
    const { rows } = await o.store.query(
      `SELECT bk_biz_id, app_name, trace_retention_days FROM apm_application ${name ? 'WHERE app_name = $1' : ''} ORDER BY bk_biz_id, app_name LIMIT ${o.maxPageSize}`,
      name ? [name] : [],
    );
    return { status: 200, body: { items: rows } };
  };

  const both = (path: RegExp, handle: Route['handle']): Route[] => [
    { method: 'GET', path, handle },
    { method: 'POST', path, handle },
  ];
  return [
    ...both(new RegExp(`${APP}\\/traces$`), traces),
    ...both(new RegExp(`${APP}\\/spans$`), spans),
    { method: 'GET', path: new RegExp(`${APP}\\/traces\\/(?<trace>[^/]+)$`), handle: appTrace },
    ...both(new RegExp(`${APP}\\/options$`), options),
    ...both(new RegExp(`${APP}\\/aggregate$`), agg),
    { method: 'GET', path: '/api/v1/apps', handle: apps },
    { method: 'GET', path: /^\/api\/v1\/traces\/(?<trace>[^/]+)$/, handle: anyTrace },
    { method: 'GET', path: '/api/v1/metrics/query', handle: metricsQuery },
    { method: 'GET', path: '/api/v1/events', handle: events },
  ];
}
