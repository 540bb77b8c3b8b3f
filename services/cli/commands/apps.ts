/**
 * `bkstream apps`: the application registry the OTLP receiver checks tokens against, and the switches of
 * each application's BKData flows (tail sampling, virtual metrics).
 *
 *   bkstream apps create --biz <id> --app <name> [options]   register; prints the token once
 *   bkstream apps update --biz <id> --app <name> [options]   change the options given
 *   bkstream apps show --biz <id> --app <name> [--json]      one application
 *   bkstream apps list [--biz <id>] [--json]                 registered applications (token hints only)
 *   bkstream apps rotate-token --biz <id> --app <name>       issue a new token; the old one stops working
 *   bkstream apps delete --biz <id> --app <name> --yes       delete it: its token stops working, its flows are deleted
 *
 * The token is printed once and stored only as its SHA-256 hash: it cannot be shown again, only rotated.
 * create, update and delete queue the flow commands the change calls for (services/collector/app-flows.ts)
 * in the same transaction; the collector publishes them on flow.commands (services/collector/README.md,
 * "Applications drive their flows"). Both ways to the registry — the store, or a running collector's
 * admin API — run the same code.
 */
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
import { printJson } from '../api.ts';
import { defineCommand, defineGroup, type Command, type OptionSpec } from '../command.ts';
import { adminApiCall } from '../credentials.ts';
import { withStoreOrAdminApi } from '../local-store.ts';

const NOTES = [
  'The registry is the store (DATABASE_URL, or the embedded one under DATA_DIR), or — while a running `bkstream up` holds the',
  'embedded store — its collector admin API (COLLECTOR_ADMIN_URL) with the admin token of the environment.',
].join('\n');

const SETTINGS_NOTES = [
  'update changes only the options given; "default" as --qps, --burst or a --tail-* number goes back to the',
  'default (both rate limits "default": the one bucket shared by the applications without limits).',
  '--tail-conditions is a JSON list of {"condition": "and"|"or", "key", "method":',
  'gt|gte|lt|lte|eq|neq|reg|nreg, "value": [strings]}. Tail sampling needs --traces-data-id, virtual',
  'metrics --metrics-data-id (and a business id > 0).',
  NOTES,
].join('\n');

/** Throws the subcommand's usage error (command.ts). */
type Usage = (message: string) => never;

/** An integer, or `default` (null: back to the default). */
function integerOrDefault(name: string, value: string | undefined, usage: Usage): number | null | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === 'default') return null;
  if (!/^-?\d+$/.test(value.trim())) usage(`--${name} must be an integer or default (got ${JSON.stringify(value)})`);
  return Number(value);
}

function onOff(name: string, value: string | undefined, usage: Usage): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'true') return true;
  if (value === 'off' || value === 'false') return false;
  return usage(`--${name} must be on or off (got ${JSON.stringify(value)})`);
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
    a.rateLimitQps === undefined && a.rateLimitBurst === undefined ? 'default' : `${a.rateLimitQps ?? 'default'}/s burst ${a.rateLimitBurst ?? 'default'}`,
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
    ['rate limit', a.rateLimitQps === undefined && a.rateLimitBurst === undefined ? 'the shared bucket (COLLECTOR_RATE_LIMIT_QPS/_BURST)' : `own bucket: ${a.rateLimitQps ?? 'default'}/s, burst ${a.rateLimitBurst ?? 'default'}`],
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

const IDENTITY_OPTIONS = {
  biz: { type: 'integer', value: 'id', required: true, help: 'the business id (bk_biz_id)' },
  app: { type: 'string', value: 'name', required: true, help: 'the application name' },
} as const satisfies Record<string, OptionSpec>;

const SETTING_OPTIONS = {
  alias: { type: 'string', value: 'text', help: 'a display name' },
  description: { type: 'string', value: 'text', help: 'a description' },
  'retention-days': { type: 'integer', value: 'n', help: 'how long its traces are kept, days' },
  'traces-data-id': { type: 'integer', value: 'n', help: 'the BKData data id of its traces' },
  'metrics-data-id': { type: 'integer', value: 'n', help: 'the BKData data id of its metrics' },
  'logs-data-id': { type: 'integer', value: 'n', help: 'the BKData data id of its logs' },
  'profiles-data-id': { type: 'integer', value: 'n', help: 'the BKData data id of its profiles' },
  qps: { type: 'string', value: 'n|default', help: 'export requests per second of a bucket of its own (default: it shares the receiver\'s one bucket of COLLECTOR_RATE_LIMIT_QPS/_BURST with the other applications without limits)' },
  burst: { type: 'string', value: 'n|default', help: 'the burst of its own bucket (setting --qps or --burst gives it one)' },
  'tail-sampling': { type: 'string', value: 'on|off', help: 'its tail-sampling flow' },
  'tail-percentage': { type: 'string', value: '0-100|default', help: 'the share of traces tail sampling keeps, %' },
  'tail-session-gap-min': { type: 'string', value: 'n|default', help: 'tail sampling\'s trace session gap, min' },
  'tail-mark-timeout': { type: 'string', value: 'n|default', help: 'tail sampling\'s trace mark timeout' },
  'tail-conditions': { type: 'string', value: 'json list', help: 'tail sampling\'s conditions' },
  'virtual-metric': { type: 'string', value: 'on|off', help: 'its virtual-metric flow' },
} as const satisfies Record<string, OptionSpec>;

type SettingValues = { [K in keyof typeof SETTING_OPTIONS]?: (K extends 'retention-days' | `${string}-data-id` ? number : string) | undefined };

/** The settings given on the command line, as a change (null = back to the default). */
function settingsOf(values: SettingValues, usage: Usage): ApplicationUpdate {
  const out: Record<string, unknown> = {};
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) out[key] = value;
  };
  set('appAlias', values.alias);
  set('description', values.description);
  set('traceRetentionDays', values['retention-days']);
  set('tracesDataId', values['traces-data-id']);
  set('metricsDataId', values['metrics-data-id']);
  set('logsDataId', values['logs-data-id']);
  set('profilesDataId', values['profiles-data-id']);
  set('rateLimitQps', integerOrDefault('qps', values.qps, usage));
  set('rateLimitBurst', integerOrDefault('burst', values.burst, usage));
  set('tailSampling', onOff('tail-sampling', values['tail-sampling'], usage));
  set('virtualMetric', onOff('virtual-metric', values['virtual-metric'], usage));
  const tail: Record<string, unknown> = {};
  const setTail = (key: string, value: unknown): void => {
    if (value !== undefined) tail[key] = value;
  };
  setTail('tail_percentage', integerOrDefault('tail-percentage', values['tail-percentage'], usage));
  setTail('tail_trace_session_gap_min', integerOrDefault('tail-session-gap-min', values['tail-session-gap-min'], usage));
  setTail('tail_trace_mark_timeout', integerOrDefault('tail-mark-timeout', values['tail-mark-timeout'], usage));
  const conditions = values['tail-conditions'];
  if (conditions !== undefined) {
    try {
      tail.tail_conditions = JSON.parse(conditions) as unknown;
    } catch {
      usage('--tail-conditions must be a JSON list of {"condition", "key", "method", "value"}');
    }
  }
  if (Object.keys(tail).length > 0) out.tailSamplingConfig = tail;
  return out;
}

const create = defineCommand({
  name: 'apps create',
  summary: 'register an application; prints its token once',
  options: { ...IDENTITY_OPTIONS, ...SETTING_OPTIONS },
  notes: SETTINGS_NOTES,
}, async ({ values, usage }, env, print) => {
  const { biz: bkBizId, app: appName } = values;
  const settings = settingsOf(values, usage);
  for (const key of ['rateLimitQps', 'rateLimitBurst'] as const) if (settings[key] === null) delete settings[key];
  const tail = settings.tailSamplingConfig;
  if (tail) for (const [k, v] of Object.entries(tail)) if (v === null) delete tail[k];
  const app = { ...settings, bkBizId, appName } as NewApplication;
  const { result, via } = await withRegistry(env, async (registry) => ({ result: await registry.create(app), via: registry.via }));
  print(`registered application ${result.application.bkBizId}/${result.application.appName} (id ${result.application.id})`);
  print(tokenHelp(result.token));
  print(commandsHelp(result.flowCommands, via));
  return 0;
});

const update = defineCommand({
  name: 'apps update',
  summary: 'change the options given (the flow commands the change calls for are queued)',
  options: { ...IDENTITY_OPTIONS, ...SETTING_OPTIONS },
  notes: SETTINGS_NOTES,
}, async ({ values, usage }, env, print) => {
  const { biz: bkBizId, app: appName } = values;
  const change = settingsOf(values, usage);
  if (Object.keys(change).length === 0) usage('nothing to change: give at least one option');
  const { result, via } = await withRegistry(env, async (registry) => ({ result: await registry.update(bkBizId, appName, change), via: registry.via }));
  print(`updated application ${bkBizId}/${appName}`);
  print(details(result.application));
  print(commandsHelp(result.flowCommands, via));
  return 0;
});

const show = defineCommand({
  name: 'apps show',
  summary: 'one application: settings, data ids, rate limit, flow switches',
  options: { ...IDENTITY_OPTIONS, json: { type: 'boolean', help: 'print the application as JSON on stdout' } },
  notes: NOTES,
}, async ({ values }, env, print) => {
  const application = await withRegistry(env, (registry) => registry.show(values.biz, values.app));
  if (values.json) printJson(print, { application });
  else print(details(application));
  return 0;
});

const remove = defineCommand({
  name: 'apps delete',
  summary: 'delete an application: its token stops working, its flows are deleted',
  options: { ...IDENTITY_OPTIONS, yes: { type: 'boolean', help: 'go ahead (required)' } },
  notes: NOTES,
}, async ({ values, usage }, env, print) => {
  const { biz: bkBizId, app: appName } = values;
  if (!values.yes) usage(`deleting ${bkBizId}/${appName} revokes its token and deletes its BKData flows: add --yes to go ahead`);
  const { result, via } = await withRegistry(env, async (registry) => ({ result: await registry.delete(bkBizId, appName), via: registry.via }));
  print(`deleted application ${bkBizId}/${appName}; its token is refused once receivers' token caches expire (at once on the collector that made the change)`);
  print(commandsHelp(result.flowCommands, via));
  return 0;
});

const list = defineCommand({
  name: 'apps list',
  summary: 'registered applications (token hints only)',
  options: {
    biz: { type: 'integer', value: 'id', help: 'only this business\'s applications' },
    json: { type: 'boolean', help: 'print the applications as JSON on stdout' },
  },
  notes: NOTES,
}, async ({ values }, env, print) => {
  const apps = await withRegistry(env, (registry) => registry.list(values.biz));
  if (values.json) printJson(print, { applications: apps });
  else print(apps.length === 0 ? 'no applications registered (bkstream apps create --biz <id> --app <name>)' : table(apps));
  return 0;
});

const rotate = defineCommand({
  name: 'apps rotate-token',
  summary: 'issue a new token; the old one stops working',
  options: IDENTITY_OPTIONS,
  notes: NOTES,
}, async ({ values }, env, print) => {
  const { application, token } = await withRegistry(env, (registry) => registry.rotate(values.biz, values.app));
  print(`new token for ${application.bkBizId}/${application.appName}; the previous one is refused once receivers' token caches expire (or after POST /-/reload)`);
  print(tokenHelp(token));
  return 0;
});

export const command: Command = defineGroup('apps', 'register OTLP applications, issue their tokens and switch their BKData flows', {
  create,
  update,
  show,
  list,
  'rotate-token': rotate,
  delete: remove,
}, 'The token is printed once and stored only as its SHA-256 hash: it cannot be shown again, only rotated.');
