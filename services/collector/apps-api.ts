/**
 * The application registry over HTTP, on the collector's admin server (127.0.0.1:4310 by default):
 *
 *   GET    /api/v1/apps[?bk_biz_id=N]                      registered applications (token hints only)
 *   POST   /api/v1/apps {bk_biz_id, app_name, ...}         register; the answer carries the token, once
 *   GET    /api/v1/apps/{bk_biz_id}/{app_name}             one application
 *   PATCH  /api/v1/apps/{bk_biz_id}/{app_name} {...}       change it (the fields given)
 *   DELETE /api/v1/apps/{bk_biz_id}/{app_name}             delete it: its token stops working, its flows are deleted
 *   POST   /api/v1/apps/{bk_biz_id}/{app_name}/rotate-token new token; the old one stops working
 *
 * Register, change and delete queue the flow commands of the application's tail-sampling and
 * virtual-metric switches (app-flows.ts) in the same transaction; the answers list them as `flowCommands`,
 * and the collector publishes them on flow.commands at once (`onFlowCommands`).
 *
 * It exists because embedded PGlite is single-process: while `bkstream up` holds the store, `bkstream
 * apps` reaches the registry through this API instead. Same rules as the CLI: tokens are generated
 * here, returned once, stored only as SHA-256 hashes, never logged. Every route needs an admin token
 * (SECURITY.md); bodies must be JSON.
 */
import { ValidationError } from '../common/errors.ts';
import { json, type HttpRequest, type Route } from '../common/http.ts';
import type { Store } from '../common/store/index.ts';
import { createApplication, deleteApplication, getApplication, listApplications, rotateToken, updateApplication, type ApplicationUpdate, type NewApplication } from './applications.ts';

/** Body field (snake_case, as the rest of the API) → NewApplication key. */
const FIELDS: [string, keyof NewApplication, 'number' | 'string' | 'boolean' | 'object'][] = [
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
  ['tail_sampling', 'tailSampling', 'boolean'],
  ['tail_sampling_config', 'tailSamplingConfig', 'object'],
  ['virtual_metric', 'virtualMetric', 'boolean'],
];

/** Fields a change may not carry (they name the application). */
const IDENTITY = ['bk_biz_id', 'app_name'];
/** Fields a change may set to null (back to the receiver's defaults). */
const NULLABLE = ['rate_limit_qps', 'rate_limit_burst'];

/** Checks a body's fields against {@link FIELDS}; returns the known ones by NewApplication key. */
function fieldsOf(body: unknown, problems: string[], nullable: readonly string[] = []): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('body must be a JSON object');
  const out: Record<string, unknown> = {};
  const known = new Set(FIELDS.map(([k]) => k));
  for (const key of Object.keys(body)) if (!known.has(key)) problems.push(`unknown field ${key}`);
  for (const [field, key, type] of FIELDS) {
    const v = (body as Record<string, unknown>)[field];
    if (v === undefined) continue;
    if (v === null) {
      if (nullable.includes(field)) out[key] = null;
      continue;
    }
    if (typeof v !== type || (type === 'object' && Array.isArray(v))) problems.push(`${field} must be ${type === 'object' ? 'an object' : `a ${type}`}`);
    else out[key] = v;
  }
  return out;
}

/** Reads a change body (PATCH): any field but the identity; null rate limits reset them. */
export function applicationUpdateFrom(body: unknown): ApplicationUpdate {
  const problems: string[] = [];
  const out = fieldsOf(body, problems, NULLABLE);
  for (const field of IDENTITY) if ((body as Record<string, unknown>)[field] !== undefined) problems.push(`${field} cannot be changed (delete the application and register it again)`);
  if (problems.length > 0) throw new ValidationError(problems.join('; '));
  return out;
}

/** Reads a registration body; throws {@link ValidationError} naming every bad or unknown field. */
export function newApplicationFrom(body: unknown): NewApplication {
  const problems: string[] = [];
  const out = fieldsOf(body, problems);
  for (const field of IDENTITY) {
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

/** What the registry routes tell the rest of the collector. */
export interface ApplicationRouteHooks {
  /** A token was rotated or revoked (an application deleted): clear token caches. */
  onTokenChange: () => void;
  /** Flow commands were queued: publish them now. */
  onFlowCommands: () => void;
  /**
   * An application changed (its switches, data ids, limits): forget cached applications, so the receiver
   * (its feeds, its rate limit) uses the change from the next Export on.
   */
  onApplicationChange?: () => void;
}

const APP_PATH = String.raw`^\/api\/v1\/apps\/(?<biz>-?\d+)\/(?<app>[A-Za-z0-9_-]{1,50})`;

/** Routes for the admin server. Every one needs an admin token; the principal's name is the flow commands' operator. */
export function applicationRoutes(store: Store, hooks: ApplicationRouteHooks): Route[] {
  const operator = (req: HttpRequest): string | undefined => (req.principal?.kind === 'admin' ? req.principal.name : undefined);
  const id = (req: HttpRequest): [number, string] => [Number(req.params.biz), req.params.app ?? ''];
  const queued = <T extends { flowCommands: unknown[] }>(result: T): T => {
    if (result.flowCommands.length > 0) hooks.onFlowCommands();
    return result;
  };
  return [
    { method: 'GET', path: '/api/v1/apps', access: 'admin', handle: async (req) => json(200, { applications: await listApplications(store, bizParam(req)) }) },
    {
      method: 'POST',
      path: '/api/v1/apps',
      access: 'admin',
      handle: async (req) => json(201, queued(await createApplication(store, newApplicationFrom(req.body), operator(req)))),
    },
    { method: 'GET', path: new RegExp(`${APP_PATH}$`), access: 'admin', handle: async (req) => json(200, { application: await getApplication(store, ...id(req)) }) },
    {
      method: 'PATCH',
      path: new RegExp(`${APP_PATH}$`),
      access: 'admin',
      handle: async (req) => {
        const changed = await updateApplication(store, ...id(req), applicationUpdateFrom(req.body), operator(req));
        hooks.onApplicationChange?.();
        return json(200, queued(changed));
      },
    },
    {
      method: 'DELETE',
      path: new RegExp(`${APP_PATH}$`),
      access: 'admin',
      handle: async (req) => {
        const deleted = await deleteApplication(store, ...id(req), operator(req));
        hooks.onTokenChange();
        return json(200, queued(deleted));
      },
    },
    {
      method: 'POST',
      path: new RegExp(`${APP_PATH}\\/rotate-token$`),
      // Application management: an admin token, not the application's own.
      access: 'admin',
      handle: async (req) => {
        const rotated = await rotateToken(store, ...id(req));
        hooks.onTokenChange();
        return json(200, rotated);
      },
    },
  ];
}
