/**
 * `bkstream apps`: the application registry the OTLP receiver checks tokens against.
 *
 *   bkstream apps create --biz <id> --app <name> [options]   register; prints the token once
 *   bkstream apps list [--biz <id>]                          registered applications (token hints only)
 *   bkstream apps rotate-token --biz <id> --app <name>       issue a new token; the old one stops working
 *
 * The token is printed once and stored only as its SHA-256 hash: it cannot be shown again, only rotated.
 */
import { parseArgs } from 'node:util';
import { BkError, errorMessage } from '../../common/errors.ts';
import type { Store } from '../../common/store/index.ts';
import { createApplication, listApplications, rotateToken, type Application, type NewApplication } from '../../collector/applications.ts';
import type { Command } from '../command.ts';
import { adminApiCall } from '../credentials.ts';
import { withStoreOrAdminApi } from '../local-store.ts';

const USAGE = `bkstream apps create --biz <id> --app <name> [--alias <text>] [--description <text>] [--retention-days <n>]
                      [--traces-data-id <n>] [--metrics-data-id <n>] [--logs-data-id <n>] [--profiles-data-id <n>]
                      [--qps <n>] [--burst <n>]
bkstream apps list [--biz <id>]
bkstream apps rotate-token --biz <id> --app <name>`;

class UsageError extends Error {}

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function tokenHelp(token: string): string {
  return [
    `token (shown once, it cannot be displayed again; keep it now): ${token}`,
    'clients send it as the x-bk-token header (HTTP) or metadata (gRPC), as "Authorization: Bearer <token>",',
    'or as the bk.data.token resource attribute.',
  ].join('\n');
}

function table(apps: readonly Application[]): string {
  const rows = apps.map((a) => [
    String(a.bkBizId),
    a.appName,
    `${a.tokenHint}…`,
    String(a.tracesDataId),
    a.rateLimitQps === undefined ? 'default' : `${a.rateLimitQps}/s burst ${a.rateLimitBurst ?? 'default'}`,
    `${a.traceRetentionDays}d`,
    a.isEnabled ? 'yes' : 'no',
    a.appAlias,
  ]);
  const head = ['BIZ', 'APP', 'TOKEN', 'TRACES_DATA_ID', 'RATE_LIMIT', 'RETENTION', 'ENABLED', 'ALIAS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** Where `bkstream apps` reads and writes the registry: the store itself, or a running collector's API. */
interface AppsRegistry {
  create(app: NewApplication): Promise<{ application: Application; token: string }>;
  list(bkBizId?: number): Promise<Application[]>;
  rotate(bkBizId: number, appName: string): Promise<{ application: Application; token: string }>;
}

function storeRegistry(store: Store): AppsRegistry {
  return {
    create: (app) => createApplication(store, app),
    list: (biz) => listApplications(store, biz),
    rotate: (biz, app) => rotateToken(store, biz, app),
  };
}

/** The collector's admin API (services/collector/apps-api.ts), with the admin token of the environment. */
function httpRegistry(baseUrl: string, env: NodeJS.ProcessEnv): AppsRegistry {
  const call = <T>(method: string, path: string, body?: unknown): Promise<T> => adminApiCall<T>(baseUrl, env, method, path, body, "the collector's admin API");
  return {
    create: (app) =>
      call('POST', '/api/v1/apps', {
        bk_biz_id: app.bkBizId,
        app_name: app.appName,
        app_alias: app.appAlias,
        description: app.description,
        trace_retention_days: app.traceRetentionDays,
        traces_data_id: app.tracesDataId,
        metrics_data_id: app.metricsDataId,
        logs_data_id: app.logsDataId,
        profiles_data_id: app.profilesDataId,
        rate_limit_qps: app.rateLimitQps,
        rate_limit_burst: app.rateLimitBurst,
      }),
    list: async (biz) => (await call<{ applications: Application[] }>('GET', `/api/v1/apps${biz === undefined ? '' : `?bk_biz_id=${biz}`}`)).applications,
    rotate: (biz, app) => call('POST', `/api/v1/apps/${biz}/${encodeURIComponent(app)}/rotate-token`),
  };
}

/**
 * Runs `fn` on the registry. Embedded PGlite is single-process: when a running `bkstream up` holds it,
 * the registry is reached through that process's collector admin API (COLLECTOR_ADMIN_URL, default
 * http://127.0.0.1:${COLLECTOR_ADMIN_PORT:-4310}) with the admin token of the environment.
 */
function withRegistry<T>(env: NodeJS.ProcessEnv, fn: (registry: AppsRegistry) => Promise<T>): Promise<T> {
  return withStoreOrAdminApi(env, (store) => fn(storeRegistry(store)), (url) => fn(httpRegistry(url, env)));
}

async function create(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      biz: { type: 'string' },
      app: { type: 'string' },
      alias: { type: 'string' },
      description: { type: 'string' },
      'retention-days': { type: 'string' },
      'traces-data-id': { type: 'string' },
      'metrics-data-id': { type: 'string' },
      'logs-data-id': { type: 'string' },
      'profiles-data-id': { type: 'string' },
      qps: { type: 'string' },
      burst: { type: 'string' },
    },
  });
  const app: NewApplication = { bkBizId: integer('biz', required('biz', values.biz)) as number, appName: required('app', values.app) };
  const optional: [keyof NewApplication, number | string | undefined][] = [
    ['appAlias', values.alias],
    ['description', values.description],
    ['traceRetentionDays', integer('retention-days', values['retention-days'])],
    ['tracesDataId', integer('traces-data-id', values['traces-data-id'])],
    ['metricsDataId', integer('metrics-data-id', values['metrics-data-id'])],
    ['logsDataId', integer('logs-data-id', values['logs-data-id'])],
    ['profilesDataId', integer('profiles-data-id', values['profiles-data-id'])],
    ['rateLimitQps', integer('qps', values.qps)],
    ['rateLimitBurst', integer('burst', values.burst)],
  ];
  for (const [key, value] of optional) if (value !== undefined) Object.assign(app, { [key]: value });
  const { application, token } = await withRegistry(env, (registry) => registry.create(app));
  console.log(`registered application ${application.bkBizId}/${application.appName} (id ${application.id})`);
  console.log(tokenHelp(token));
  return 0;
}

async function list(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { biz: { type: 'string' } } });
  const apps = await withRegistry(env, (registry) => registry.list(integer('biz', values.biz)));
  console.log(apps.length === 0 ? 'no applications registered (bkstream apps create --biz <id> --app <name>)' : table(apps));
  return 0;
}

async function rotate(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { biz: { type: 'string' }, app: { type: 'string' } } });
  const biz = integer('biz', required('biz', values.biz)) as number;
  const name = required('app', values.app);
  const { application, token } = await withRegistry(env, (registry) => registry.rotate(biz, name));
  console.log(`new token for ${application.bkBizId}/${application.appName}; the previous one is refused once receivers' token caches expire (or after POST /-/reload)`);
  console.log(tokenHelp(token));
  return 0;
}

const SUBCOMMANDS: Record<string, (args: string[], env: NodeJS.ProcessEnv) => Promise<number>> = {
  create,
  list,
  'rotate-token': rotate,
};

export const command: Command = {
  summary: 'register OTLP applications and issue their tokens',
  usage: USAGE.split('\n')[0] ?? USAGE,
  async run(args, env) {
    const [sub, ...rest] = args;
    const run = sub ? SUBCOMMANDS[sub] : undefined;
    if (!run) {
      console.error(`usage:\n${USAGE}`);
      return 2;
    }
    try {
      return await run(rest, env);
    } catch (err) {
      if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        console.error(`bkstream apps ${sub}: ${errorMessage(err)}\nusage:\n${USAGE}`);
        return 2;
      }
      if (err instanceof BkError && !err.retriable && err.code !== 'config_invalid') {
        console.error(`bkstream apps ${sub}: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
};
