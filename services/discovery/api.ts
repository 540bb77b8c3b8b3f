/**
 * The query API: `GET /api/v1/apps/{bk_biz_id}/{app_name}/{kind}` with kind the listing of a discovered
 * table (tables.ts: endpoints, hosts, instances, nodes, relations, remote-service-relations,
 * root-endpoints).
 *
 * Query parameters: any key column of the table (or a further filter column it declares) as an
 * exact-match filter (`service_name=order-svc`; the value `null` matches NULL), `page` (from 1) and
 * `page_size` (default 100). Only rows inside the table's retention are listed (the app's trace
 * retention; 180 days for nodes), newest first. The answer is `{ total, page, page_size, items }`; an
 * application that is not registered (apm_application) is a 404 `{error: "no application <app> in
 * business <biz>"}`, as an unknown listing is.
 */
import { NotFoundError, ValidationError } from '../common/errors.ts';
import type { HttpRequest, HttpResponse, Route } from '../common/http.ts';
import type { Queryable } from '../common/store/index.ts';
import { DISCOVERED, TABLES, type ColumnType, type Retention } from './tables.ts';

export interface Listing {
  table: string;
  /** Columns that may be filtered on, with their SQL type. */
  columns: Record<string, ColumnType>;
  retention: Retention;
}

/** Listing name → what it lists, from the table declarations. */
export const LISTINGS: Readonly<Record<string, Listing>> = Object.fromEntries(TABLES.map((t) => {
  const d = DISCOVERED[t];
  return [d.listing, { table: d.sql, columns: Object.fromEntries([...d.key, ...d.filters].map((c) => [c.name, c.type])), retention: d.retention }];
}));

export interface ApiOptions {
  db: Queryable;
  defaultRetentionDays: number;
  topoNodeRetentionDays: number;
  maxPageSize: number;
  now?: () => number;
}

const DEFAULT_PAGE_SIZE = 100;
const PATH = /^\/api\/v1\/apps\/(?<biz>-?\d+)\/(?<app>[^/]+)\/(?<kind>[a-z-]+)$/;

function positiveInt(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new ValidationError(`${name} must be an integer from 1 to ${max}`);
  return Number(raw);
}

function filterValue(type: ColumnType, name: string, raw: string): unknown {
  if (type === 'text') return raw;
  if (type === 'bool') {
    if (raw !== 'true' && raw !== 'false') throw new ValidationError(`${name} must be true or false`);
    return raw === 'true';
  }
  if (!/^-?\d+$/.test(raw)) throw new ValidationError(`${name} must be an integer`);
  return Number(raw);
}

export function queryRoutes(options: ApiOptions): Route[] {
  const now = options.now ?? Date.now;
  const handle = async (req: HttpRequest): Promise<HttpResponse> => {
    const { biz, app, kind } = req.params as { biz: string; app: string; kind: string };
    const listing = Object.hasOwn(LISTINGS, kind) ? LISTINGS[kind] : undefined;
    if (!listing) throw new NotFoundError(`unknown listing ${kind} (one of ${Object.keys(LISTINGS).join(', ')})`);
    const bkBizId = Number(biz);
    let appName: string;
    try {
      appName = decodeURIComponent(app);
    } catch {
      throw new ValidationError('app_name is not valid URL encoding');
    }
    const page = positiveInt(req.query, 'page', 1, 1_000_000);
    const pageSize = positiveInt(req.query, 'page_size', Math.min(DEFAULT_PAGE_SIZE, options.maxPageSize), options.maxPageSize);

    // An application that is not registered has nothing to list: 404 naming it, not an empty page.
    const { rows: apps } = await options.db.query<{ days: number }>('SELECT trace_retention_days AS days FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2', [bkBizId, appName]);
    const registered = apps[0];
    if (!registered) throw new NotFoundError(`no application ${appName} in business ${bkBizId}`);
    const days = listing.retention === 'app' ? registered.days : options.topoNodeRetentionDays;
    const params: unknown[] = [bkBizId, appName, new Date(now() - days * 86_400_000)];
    const where = ['bk_biz_id = $1', 'app_name = $2', 'last_seen >= $3'];
    for (const [name, raw] of req.query) {
      if (name === 'page' || name === 'page_size') continue;
      const type = Object.hasOwn(listing.columns, name) ? listing.columns[name] : undefined;
      if (!type) throw new ValidationError(`unknown filter ${name} (filters: ${Object.keys(listing.columns).join(', ')})`);
      if (raw === 'null') {
        where.push(`${name} IS NULL`);
        continue;
      }
      params.push(filterValue(type, name, raw));
      where.push(`${name} = $${params.length}`);
    }
    const cond = where.join(' AND ');
    const { rows: count } = await options.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${listing.table} WHERE ${cond}`, params);
    const { rows } = await options.db.query<Record<string, unknown>>(
      `SELECT * FROM ${listing.table} WHERE ${cond} ORDER BY last_seen DESC, id DESC LIMIT ${pageSize} OFFSET ${(page - 1) * pageSize}`,
      params,
    );
    for (const r of rows) delete r.key_md5;
    return { status: 200, body: { total: count[0]?.n ?? 0, page, page_size: pageSize, items: rows } };
  };
  return [{ method: 'GET', path: PATH, handle }];
}
