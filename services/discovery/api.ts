/**
 * The query API: `GET /api/v1/apps/{bk_biz_id}/{app_name}/{kind}` with kind one of endpoints, hosts,
 * instances, nodes, relations, remote-service-relations, root-endpoints.
 *
 * Query parameters: any column of the table as an exact-match filter (`service_name=order-svc`;
 * the value `null` matches NULL), `page` (from 1) and `page_size` (default 100). Only rows inside the
 * retention window are listed (the app's trace retention; 180 days for nodes), newest first. The
 * answer is `{ total, page, page_size, items }`.
 */
import { NotFoundError, ValidationError } from '../common/errors.ts';
import type { HttpRequest, HttpResponse, Route } from '../common/http.ts';
import type { Queryable } from '../common/store/index.ts';

interface Listing {
  table: string;
  /** Columns that may be filtered on, with their SQL type. */
  columns: Record<string, 'text' | 'int' | 'bigint' | 'bool'>;
  /** Nodes are kept for a fixed time, other tables for the app's retention. */
  fixedRetention?: 'topoNode';
}

const text = (...names: string[]): Record<string, 'text'> => Object.fromEntries(names.map((n) => [n, 'text']));

export const LISTINGS: Record<string, Listing> = {
  endpoints: { table: 'apm_endpoint', columns: { ...text('endpoint_name', 'service_name', 'category_id', 'category_kind_key', 'category_kind_value'), span_kind: 'int' } },
  hosts: { table: 'apm_host_instance', columns: { bk_cloud_id: 'int', bk_host_id: 'bigint', ...text('ip', 'topo_node_key') } },
  instances: {
    table: 'apm_topo_instance',
    columns: text('topo_node_key', 'instance_id', 'instance_topo_kind', 'component_instance_category', 'component_instance_predicate_value', 'sdk_name', 'sdk_version', 'sdk_language'),
  },
  nodes: { table: 'apm_topo_node', columns: { topo_key: 'text', is_permanent: 'bool' }, fixedRetention: 'topoNode' },
  relations: { table: 'apm_topo_relation', columns: text('from_topo_key', 'to_topo_key', 'kind', 'to_topo_key_kind', 'to_topo_key_category') },
  'remote-service-relations': { table: 'apm_remote_service_relation', columns: text('topo_node_key', 'from_endpoint_name', 'category') },
  'root-endpoints': { table: 'apm_root_endpoint', columns: text('endpoint_name', 'service_name', 'category_id') },
};

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

function filterValue(type: 'text' | 'int' | 'bigint' | 'bool', name: string, raw: string): unknown {
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
    const listing = LISTINGS[kind];
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

    let days = options.topoNodeRetentionDays;
    if (!listing.fixedRetention) {
      const { rows } = await options.db.query<{ days: number }>('SELECT trace_retention_days AS days FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2', [bkBizId, appName]);
      days = rows[0]?.days ?? options.defaultRetentionDays;
    }
    const params: unknown[] = [bkBizId, appName, new Date(now() - days * 86_400_000)];
    const where = ['bk_biz_id = $1', 'app_name = $2', 'last_seen >= $3'];
    for (const [name, raw] of req.query) {
      if (name === 'page' || name === 'page_size') continue;
      const type = listing.columns[name];
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
