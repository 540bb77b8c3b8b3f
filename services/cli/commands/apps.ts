/**
 * `bkstream apps`: the application registry the OTLP receiver checks tokens against, and the switches of
 * each application's BKData flows (tail sampling, virtual metrics).
 *
 *   bkstream apps create --biz <id> --app <name> [options]   register; prints the token once
 *   bkstream apps update --biz <id> --app <name> [options]   change the options given
 *   bkstream apps show --biz <id> --app <name>               one application
 *   bkstream apps list [--biz <id>]                          registered applications (token hints only)
 *   bkstream apps rotate-token --biz <id> --app <name>       issue a new token; the old one stops working
 *   bkstream apps delete --biz <id> --app <name> --yes       delete it: its token stops working, its flows are deleted
 *
 * The token is printed once and stored only as its SHA-256 hash: it cannot be shown again, only rotated.
 * create, update and delete queue the flow commands the change calls for (services/collector/app-flows.ts)
 * in the same transaction; the collector publishes them on flow.commands (services/collector/README.md,
 * "Applications drive their flows"). Both ways to the registry — the store, or a running collector's
 * admin API — run the same code.
 */
import { parseArgs } from 'node:util';
import { BkError, errorMessage } from '../../common/errors.ts';
import type { Store } from '../../common/store/index.ts';
import {
  createApplication,
  deleteApplication,
  getApplication,
  listApplications,
  rotateToken,
  updateApplication,
  type Application,
  type ApplicationChange,
  type ApplicationUpdate,
  type NewApplication,
} from '../../collector/applications.ts';
import type { QueuedCommand } from '../../collector/flow-outbox.ts';
import type { Command } from '../command.ts';
import { adminApiCall } from '../credentials.ts';
import { withStoreOrAdminApi } from '../local-store.ts';

const SETTINGS = `[--alias <text>] [--description <text>] [--retention-days <n>]
                      [--traces-data-id <n>] [--metrics-data-id <n>] [--logs-data-id <n>] [--profiles-data-id <n>]
                      [--qps <n>] [--burst <n>]
                      [--tail-sampling on|off] [--tail-percentage <0-100>] [--tail-session-gap-min <n>]
                      [--tail-mark-timeout <n>] [--tail-conditions <json list>] [--virtual-metric on|off]`;

const USAGE = `bkstream apps create --biz <id> --app <name> ${SETTINGS}
bkstream apps update --biz <id> --app <name> ${SETTINGS}
bkstream apps show --biz <id> --app <name>
bkstream apps list [--biz <id>]
bkstream apps rotate-token --biz <id> --app <name>
bkstream apps delete --biz <id> --app <name> --yes

update changes only the options given; "default" as --qps, --burst or a --tail-* number goes back to the
default. --tail-conditions is a JSON list of {"condition": "and"|"or", "key", "method":
gt|gte|lt|lte|eq|neq|reg|nreg, "value": [strings]}. Tail sampling needs --traces-data-id, virtual
metrics --metrics-data-id (and a business id > 0).`;

class UsageError extends Error {}

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** An integer, or `default` (null: back to the default). */
function integerOrDefault(name: string, value: string | undefined): number | null | undefined {
  return value?.trim() === 'default' ? null : integer(name, value);
}

function onOff(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'true') return true;
  if (value === 'off' || value === 'false') return false;
  throw new UsageError(`--${name} must be on or off, got ${JSON.stringify(value)}`);
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

function flowSwitches(a: Application): string {
  const on = [a.tailSampling ? 'tail_sampling' : '', a.virtualMetric ? 'virtual_metric' : ''].filter((s) => s !== '');
  return on.length === 0 ? '-' : on.join(',');
}

function table(apps: readonly Application[]): string {
  const rows = apps.map((a) => [
    String(a.bkBizId),
    a.appName,
    `${a.tokenHint}…`,
    String(a.tracesDataId),
    a.rateLimitQps === undefined ? 'default' : `${a.rateLimitQps}/s burst ${a.rateLimitBurst ?? 'default'}`,
    `${a.traceRetentionDays}d`,
    flowSwitches(a),
    a.isEnabled ? 'yes' : 'no',
    a.appAlias,
  ]);
  const head = ['BIZ', 'APP', 'TOKEN', 'TRACES_DATA_ID', 'RATE_LIMIT', 'RETENTION', 'FLOWS', 'ENABLED', 'ALIAS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function details(a: Application): string {
  const lines: [string, string][] = [
    ['application', `${a.bkBizId}/${a.appName}${a.appAlias ? ` (${a.appAlias})` : ''}`],
    ['description', a.description || '-'],
    ['token', `${a.tokenHint}… (only the hint is kept)`],
    ['enabled', a.isEnabled ? 'yes' : 'no'],
    ['trace retention', `${a.traceRetentionDays} days`],
    ['data ids', `traces ${a.tracesDataId}, metrics ${a.metricsDataId}, logs ${a.logsDataId}, profiles ${a.profilesDataId}`],
    ['rate limit', a.rateLimitQps === undefined ? 'the receiver default' : `${a.rateLimitQps}/s, burst ${a.rateLimitBurst ?? 'default'}`],
    ['tail sampling', a.tailSampling ? `on ${JSON.stringify(a.tailSamplingConfig)}` : `off${Object.keys(a.tailSamplingConfig).length > 0 ? ` (kept: ${JSON.stringify(a.tailSamplingConfig)})` : ''}`],
    ['virtual metrics', a.virtualMetric ? 'on' : 'off'],
    ['flows provisioned', a.provisionedFlows.length === 0 ? '-' : a.provisionedFlows.join(', ')],
    ['created', new Date(a.createdAt).toISOString()],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** What the commands of a change were, and who sends them. */
function commandsHelp(commands: readonly QueuedCommand[], via: 'store' | 'api'): string {
  if (commands.length === 0) return 'flow commands: none (no flow switch or flow config changed)';
  const list = commands.map((c) => `  ${c.action} ${c.flow_type} (command ${c.command_id})`);
  const who = via === 'api'
    ? 'sent by the collector on flow.commands now'
    : 'queued in the store; a collector on this database sends them on flow.commands (within COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS, or when one starts)';
  return [`flow commands (${who}):`, ...list, 'follow them with: bkstream flows list --app <name>'].join('\n');
}

/** Where `bkstream apps` reads and writes the registry: the store itself, or a running collector's API. */
interface AppsRegistry {
  readonly via: 'store' | 'api';
  create(app: NewApplication): Promise<{ application: Application; token: string; flowCommands: QueuedCommand[] }>;
  show(bkBizId: number, appName: string): Promise<Application>;
  update(bkBizId: number, appName: string, change: ApplicationUpdate): Promise<ApplicationChange>;
  delete(bkBizId: number, appName: string): Promise<ApplicationChange>;
  list(bkBizId?: number): Promise<Application[]>;
  rotate(bkBizId: number, appName: string): Promise<{ application: Application; token: string }>;
}

/** The operator of flow commands made against the store: the OS user. */
function cliOperator(env: NodeJS.ProcessEnv): string {
  return `cli:${env.USER ?? env.LOGNAME ?? 'unknown'}`;
}

function storeRegistry(store: Store, env: NodeJS.ProcessEnv): AppsRegistry {
  const operator = cliOperator(env);
  return {
    via: 'store',
    create: (app) => createApplication(store, app, operator),
    show: (biz, app) => getApplication(store, biz, app),
    update: (biz, app, change) => updateApplication(store, biz, app, change, operator),
    delete: (biz, app) => deleteApplication(store, biz, app, operator),
    list: (biz) => listApplications(store, biz),
    rotate: (biz, app) => rotateToken(store, biz, app),
  };
}

/** Body fields of the admin API (services/collector/apps-api.ts) for a registration or a change. */
function bodyOf(app: Partial<NewApplication> | ApplicationUpdate): Record<string, unknown> {
  return {
    app_alias: app.appAlias,
    description: app.description,
    trace_retention_days: app.traceRetentionDays,
    traces_data_id: app.tracesDataId,
    metrics_data_id: app.metricsDataId,
    logs_data_id: app.logsDataId,
    profiles_data_id: app.profilesDataId,
    rate_limit_qps: app.rateLimitQps,
    rate_limit_burst: app.rateLimitBurst,
    tail_sampling: app.tailSampling,
    tail_sampling_config: app.tailSamplingConfig,
    virtual_metric: app.virtualMetric,
  };
}

/** The collector's admin API (services/collector/apps-api.ts), with the admin token of the environment. */
function httpRegistry(baseUrl: string, env: NodeJS.ProcessEnv): AppsRegistry {
  const call = <T>(method: string, path: string, body?: unknown): Promise<T> => adminApiCall<T>(baseUrl, env, method, path, body, "the collector's admin API");
  const appPath = (biz: number, app: string): string => `/api/v1/apps/${biz}/${encodeURIComponent(app)}`;
  return {
    via: 'api',
    create: (app) => call('POST', '/api/v1/apps', { bk_biz_id: app.bkBizId, app_name: app.appName, ...bodyOf(app) }),
    show: async (biz, app) => (await call<{ application: Application }>('GET', appPath(biz, app))).application,
    update: (biz, app, change) => call('PATCH', appPath(biz, app), bodyOf(change)),
    delete: (biz, app) => call('DELETE', appPath(biz, app)),
    list: async (biz) => (await call<{ applications: Application[] }>('GET', `/api/v1/apps${biz === undefined ? '' : `?bk_biz_id=${biz}`}`)).applications,
    rotate: (biz, app) => call('POST', `${appPath(biz, app)}/rotate-token`),
  };
}

/**
 * Runs `fn` on the registry. Embedded PGlite is single-process: when a running `bkstream up` holds it,
 * the registry is reached through that process's collector admin API (COLLECTOR_ADMIN_URL, default
 * http://127.0.0.1:${COLLECTOR_ADMIN_PORT:-4310}) with the admin token of the environment.
 */
function withRegistry<T>(env: NodeJS.ProcessEnv, fn: (registry: AppsRegistry) => Promise<T>): Promise<T> {
  return withStoreOrAdminApi(env, (store) => fn(storeRegistry(store, env)), (url) => fn(httpRegistry(url, env)));
}

const IDENTITY_OPTIONS = { biz: { type: 'string' }, app: { type: 'string' } } as const;

const SETTING_OPTIONS = {
  alias: { type: 'string' },
  description: { type: 'string' },
  'retention-days': { type: 'string' },
  'traces-data-id': { type: 'string' },
  'metrics-data-id': { type: 'string' },
  'logs-data-id': { type: 'string' },
  'profiles-data-id': { type: 'string' },
  qps: { type: 'string' },
  burst: { type: 'string' },
  'tail-sampling': { type: 'string' },
  'tail-percentage': { type: 'string' },
  'tail-session-gap-min': { type: 'string' },
  'tail-mark-timeout': { type: 'string' },
  'tail-conditions': { type: 'string' },
  'virtual-metric': { type: 'string' },
} as const;

type SettingValues = { [K in keyof typeof SETTING_OPTIONS]?: string | undefined };

function identity(values: { biz?: string | undefined; app?: string | undefined }): [number, string] {
  return [integer('biz', required('biz', values.biz)) as number, required('app', values.app)];
}

/** The settings given on the command line, as a change (null = back to the default). */
function settingsOf(values: SettingValues): ApplicationUpdate {
  const out: Record<string, unknown> = {};
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) out[key] = value;
  };
  set('appAlias', values.alias);
  set('description', values.description);
  set('traceRetentionDays', integer('retention-days', values['retention-days']));
  set('tracesDataId', integer('traces-data-id', values['traces-data-id']));
  set('metricsDataId', integer('metrics-data-id', values['metrics-data-id']));
  set('logsDataId', integer('logs-data-id', values['logs-data-id']));
  set('profilesDataId', integer('profiles-data-id', values['profiles-data-id']));
  set('rateLimitQps', integerOrDefault('qps', values.qps));
  set('rateLimitBurst', integerOrDefault('burst', values.burst));
  set('tailSampling', onOff('tail-sampling', values['tail-sampling']));
  set('virtualMetric', onOff('virtual-metric', values['virtual-metric']));
  const tail: Record<string, unknown> = {};
  const setTail = (key: string, value: unknown): void => {
    if (value !== undefined) tail[key] = value;
  };
  setTail('tail_percentage', integerOrDefault('tail-percentage', values['tail-percentage']));
  setTail('tail_trace_session_gap_min', integerOrDefault('tail-session-gap-min', values['tail-session-gap-min']));
  setTail('tail_trace_mark_timeout', integerOrDefault('tail-mark-timeout', values['tail-mark-timeout']));
  const conditions = values['tail-conditions'];
  if (conditions !== undefined) {
    try {
      tail.tail_conditions = JSON.parse(conditions) as unknown;
    } catch {
      throw new UsageError('--tail-conditions must be a JSON list of {"condition", "key", "method", "value"}');
    }
  }
  if (Object.keys(tail).length > 0) out.tailSamplingConfig = tail;
  return out;
}

async function create(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { ...IDENTITY_OPTIONS, ...SETTING_OPTIONS } });
  const [bkBizId, appName] = identity(values);
  const settings = settingsOf(values);
  for (const key of ['rateLimitQps', 'rateLimitBurst'] as const) if (settings[key] === null) delete settings[key];
  const tail = settings.tailSamplingConfig;
  if (tail) for (const [k, v] of Object.entries(tail)) if (v === null) delete tail[k];
  const app = { ...settings, bkBizId, appName } as NewApplication;
  const { result, via } = await withRegistry(env, async (registry) => ({ result: await registry.create(app), via: registry.via }));
  console.log(`registered application ${result.application.bkBizId}/${result.application.appName} (id ${result.application.id})`);
  console.log(tokenHelp(result.token));
  console.log(commandsHelp(result.flowCommands, via));
  return 0;
}

async function update(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { ...IDENTITY_OPTIONS, ...SETTING_OPTIONS } });
  const [bkBizId, appName] = identity(values);
  const change = settingsOf(values);
  if (Object.keys(change).length === 0) throw new UsageError('nothing to change: give at least one option');
  const { result, via } = await withRegistry(env, async (registry) => ({ result: await registry.update(bkBizId, appName, change), via: registry.via }));
  console.log(`updated application ${bkBizId}/${appName}`);
  console.log(details(result.application));
  console.log(commandsHelp(result.flowCommands, via));
  return 0;
}

async function show(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: IDENTITY_OPTIONS });
  const [bkBizId, appName] = identity(values);
  console.log(details(await withRegistry(env, (registry) => registry.show(bkBizId, appName))));
  return 0;
}

async function remove(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { ...IDENTITY_OPTIONS, yes: { type: 'boolean' } } });
  const [bkBizId, appName] = identity(values);
  if (!values.yes) throw new UsageError(`deleting ${bkBizId}/${appName} revokes its token and deletes its BKData flows: add --yes to go ahead`);
  const { result, via } = await withRegistry(env, async (registry) => ({ result: await registry.delete(bkBizId, appName), via: registry.via }));
  console.log(`deleted application ${bkBizId}/${appName}; its token is refused once receivers' token caches expire (at once on the collector that made the change)`);
  console.log(commandsHelp(result.flowCommands, via));
  return 0;
}

async function list(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { biz: { type: 'string' } } });
  const apps = await withRegistry(env, (registry) => registry.list(integer('biz', values.biz)));
  console.log(apps.length === 0 ? 'no applications registered (bkstream apps create --biz <id> --app <name>)' : table(apps));
  return 0;
}

async function rotate(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: IDENTITY_OPTIONS });
  const [biz, name] = identity(values);
  const { application, token } = await withRegistry(env, (registry) => registry.rotate(biz, name));
  console.log(`new token for ${application.bkBizId}/${application.appName}; the previous one is refused once receivers' token caches expire (or after POST /-/reload)`);
  console.log(tokenHelp(token));
  return 0;
}

const SUBCOMMANDS: Record<string, (args: string[], env: NodeJS.ProcessEnv) => Promise<number>> = {
  create,
  update,
  show,
  list,
  'rotate-token': rotate,
  delete: remove,
};

export const command: Command = {
  summary: 'register OTLP applications, issue their tokens and switch their BKData flows',
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
