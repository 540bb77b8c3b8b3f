/**
 * The application registry over HTTP, on the collector's admin server (127.0.0.1:4310 by default):
 *
 *   GET  /api/v1/apps[?bk_biz_id=N]                      registered applications (token hints only)
 *   POST /api/v1/apps {bk_biz_id, app_name, ...}         register; the answer carries the token, once
 *   POST /api/v1/apps/{bk_biz_id}/{app_name}/rotate-token new token; the old one stops working
 *
 * It exists because embedded PGlite is single-process: while `bkstream up` holds the store, `bkstream
 * apps` reaches the registry through this API instead. Same rules as the CLI: tokens are generated
 * here, returned once, stored only as SHA-256 hashes, never logged. Every route needs an admin token
 * (SECURITY.md); bodies must be JSON.
 */
import { ValidationError } from '../common/errors.ts';
import { json, type HttpRequest, type Route } from '../common/http.ts';
import type { Store } from '../common/store/index.ts';
import { createApplication, listApplications, rotateToken, type NewApplication } from './applications.ts';

/** Body field (snake_case, as the rest of the API) → NewApplication key. */
const FIELDS: [string, keyof NewApplication, 'number' | 'string'][] = [
  ['bk_biz_id', 'bkBizId', 'number'],
  ['app_name', 'appName', 'string'],
  ['app_alias', 'appAlias', 'string'],
  ['description', 'description', 'string'],
  ['trace_retention_days', 'traceRetentionDays', 'number'],
  ['traces_data_id', 'tracesDataId', 'number'],
  ['metrics_data_id', 'metricsDataId', 'number'],
  ['logs_data_id', 'logsDataId', 'number'],
  ['profiles_data_id', 'profilesDataId', 'number'],
  ['rate_limit_qps', 'rateLimitQps', 'number'],
  ['rate_limit_burst', 'rateLimitBurst', 'number'],
];

/** Reads a registration body; throws {@link ValidationError} naming every bad or unknown field. */
export function newApplicationFrom(body: unknown): NewApplication {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('body must be a JSON object');
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  const known = new Set(FIELDS.map(([k]) => k));
  for (const key of Object.keys(body)) if (!known.has(key)) problems.push(`unknown field ${key}`);
  for (const [field, key, type] of FIELDS) {
    const v = (body as Record<string, unknown>)[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== type) problems.push(`${field} must be a ${type}`);
    else out[key] = v;
  }
  for (const field of ['bk_biz_id', 'app_name']) {
    const v = (body as Record<string, unknown>)[field];
    if (v === undefined || v === null) problems.push(`${field} is required`);
  }
  if (problems.length > 0) throw new ValidationError(problems.join('; '));
  return out as unknown as NewApplication;
}

function bizParam(req: HttpRequest): number | undefined {
  const raw = req.query.get('bk_biz_id');
  if (raw === null || raw === '') return undefined;
  if (!/^-?\d+$/.test(raw)) throw new ValidationError('bk_biz_id must be an integer');
  return Number(raw);
}

/** Routes for the admin server; `onTokenChange` runs after a rotation (clear token caches). */
export function applicationRoutes(store: Store, onTokenChange: () => void): Route[] {
  return [
    { method: 'GET', path: '/api/v1/apps', access: 'admin', handle: async (req) => json(200, { applications: await listApplications(store, bizParam(req)) }) },
    {
      method: 'POST',
      path: '/api/v1/apps',
      access: 'admin',
      handle: async (req) => json(201, await createApplication(store, newApplicationFrom(req.body))),
    },
    {
      method: 'POST',
      path: /^\/api\/v1\/apps\/(?<biz>-?\d+)\/(?<app>[A-Za-z0-9_-]{1,50})\/rotate-token$/,
      // Application management: an admin token, not the application's own.
      access: 'admin',
      handle: async (req) => {
        const rotated = await rotateToken(store, Number(req.params.biz), req.params.app ?? '');
        onTokenChange();
        return json(200, rotated);
      },
    },
  ];
}
