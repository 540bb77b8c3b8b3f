/**
 * The application registry (`apm_application`): registering an application issues its token, which is
 * shown once and stored only as a SHA-256 hash; the receiver resolves tokens by that hash.
 *
 * An application also drives its BKData flows (app-flows.ts): registering, updating or deleting it queues
 * the flow commands its tail-sampling and virtual-metric switches call for, in the same transaction
 * (flow-outbox.ts); the collector publishes them on flow.commands.
 *
 * Tokens are `bkst_` + 32 random bytes in base64url (48 characters). The prefix makes a leaked token
 * recognisable (secret scanners, logs); the first 12 characters are kept as a hint for listings.
 */
import { randomBytes } from 'node:crypto';
import { hashToken } from '../common/auth.ts';
import { ConflictError, NotFoundError, ValidationError } from '../common/errors.ts';
import type { FlowType } from '../common/records.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import { isAvroLong } from '../common/avro/index.ts';
import { checkFlowSettings, planFlowCommands, provisionedAfter, type TailSamplingConfig } from './app-flows.ts';
import { dropQueuedCommands, enqueueFlowCommands, operatorName, type QueuedCommand } from './flow-outbox.ts';

export const TOKEN_PREFIX = 'bkst_';
const HINT_LENGTH = 12;

/** A fresh random token. */
export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** What is stored and looked up: SHA-256 of the token, lower-case hex (the same as admin tokens, common/auth.ts). */
export { hashToken };

/** What a token resolves to. */
export interface Application {
  id: number;
  bkBizId: number;
  appName: string;
  appAlias: string;
  description: string;
  traceRetentionDays: number;
  tokenHint: string;
  tracesDataId: number;
  metricsDataId: number;
  logsDataId: number;
  profilesDataId: number;
  /** Requests per second allowed for this token; undefined = the receiver's default. */
  rateLimitQps: number | undefined;
  rateLimitBurst: number | undefined;
  /** Tail sampling switched on: its flow (tail_sampling) runs with {@link tailSamplingConfig}. */
  tailSampling: boolean;
  /** The tail-sampling flow's keys (tail_percentage, tail_trace_session_gap_min, tail_trace_mark_timeout, tail_conditions). */
  tailSamplingConfig: TailSamplingConfig;
  /** Virtual metrics switched on: its flow (virtual_metric) runs on the metrics data id. */
  virtualMetric: boolean;
  /** Flow types a create_or_update was ever queued for (deleting the application deletes them). */
  provisionedFlows: FlowType[];
  isEnabled: boolean;
  createdAt: Date;
}

export interface NewApplication {
  bkBizId: number;
  appName: string;
  appAlias?: string;
  description?: string;
  traceRetentionDays?: number;
  tracesDataId?: number;
  metricsDataId?: number;
  logsDataId?: number;
  profilesDataId?: number;
  rateLimitQps?: number;
  rateLimitBurst?: number;
  tailSampling?: boolean;
  tailSamplingConfig?: TailSamplingConfig;
  virtualMetric?: boolean;
}

/**
 * A change to an application: the fields given replace the stored ones; `null` rate limits go back to the
 * receiver's defaults; `tailSamplingConfig` is merged into the stored keys (a `null` key removes it).
 */
export type ApplicationUpdate = Partial<Omit<NewApplication, 'bkBizId' | 'appName' | 'rateLimitQps' | 'rateLimitBurst' | 'tailSamplingConfig'>> & {
  rateLimitQps?: number | null;
  rateLimitBurst?: number | null;
  tailSamplingConfig?: Record<string, unknown>;
};

/** An application and the flow commands its change queued. */
export interface ApplicationChange {
  application: Application;
  flowCommands: QueuedCommand[];
}

interface Row {
  id: number;
  bk_biz_id: number;
  app_name: string;
  app_alias: string;
  description: string;
  trace_retention_days: number;
  token_hint: string;
  traces_data_id: number;
  metrics_data_id: number;
  logs_data_id: number;
  profiles_data_id: number;
  rate_limit_qps: number | null;
  rate_limit_burst: number | null;
  tail_sampling_enabled: boolean;
  tail_sampling_config: TailSamplingConfig | null;
  virtual_metric_enabled: boolean;
  provisioned_flows: FlowType[] | null;
  is_enabled: boolean;
  created_at: Date;
}

const COLUMNS = `id, bk_biz_id, app_name, app_alias, description, trace_retention_days, token_hint, traces_data_id,
  metrics_data_id, logs_data_id, profiles_data_id, rate_limit_qps, rate_limit_burst, tail_sampling_enabled,
  tail_sampling_config, virtual_metric_enabled, provisioned_flows, is_enabled, created_at`;

function fromRow(r: Row): Application {
  return {
    id: Number(r.id),
    bkBizId: Number(r.bk_biz_id),
    appName: r.app_name,
    appAlias: r.app_alias,
    description: r.description,
    traceRetentionDays: Number(r.trace_retention_days),
    tokenHint: r.token_hint.trim(),
    tracesDataId: Number(r.traces_data_id),
    metricsDataId: Number(r.metrics_data_id),
    logsDataId: Number(r.logs_data_id),
    profilesDataId: Number(r.profiles_data_id),
    rateLimitQps: r.rate_limit_qps ?? undefined,
    rateLimitBurst: r.rate_limit_burst ?? undefined,
    tailSampling: r.tail_sampling_enabled,
    tailSamplingConfig: r.tail_sampling_config ?? {},
    virtualMetric: r.virtual_metric_enabled,
    provisionedFlows: r.provisioned_flows ?? [],
    isEnabled: r.is_enabled,
    createdAt: r.created_at,
  };
}

const APP_NAME = /^[A-Za-z0-9_-]{1,50}$/;

/** Checks a new application; throws {@link ValidationError} listing every problem. */
export function validateApplication(app: NewApplication): void {
  const problems: string[] = [];
  if (!isAvroLong(app.bkBizId)) problems.push('bk_biz_id must be an integer (negative for non-CMDB spaces)');
  if (!APP_NAME.test(app.appName)) problems.push('app_name must be 1-50 letters, digits, "_" or "-"');
  if (app.traceRetentionDays !== undefined && !(Number.isInteger(app.traceRetentionDays) && app.traceRetentionDays > 0)) {
    problems.push('trace retention must be a positive number of days');
  }
  for (const [name, v] of [
    ['traces data id', app.tracesDataId],
    ['metrics data id', app.metricsDataId],
    ['logs data id', app.logsDataId],
    ['profiles data id', app.profilesDataId],
  ] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) problems.push(`${name} must be a non-negative integer`);
  }
  if (app.rateLimitQps !== undefined && !Number.isInteger(app.rateLimitQps)) problems.push('rate limit qps must be an integer');
  if (app.rateLimitBurst !== undefined && !(Number.isInteger(app.rateLimitBurst) && app.rateLimitBurst >= 0)) {
    problems.push('rate limit burst must be a non-negative integer');
  }
  for (const [name, v] of [['tail_sampling', app.tailSampling], ['virtual_metric', app.virtualMetric]] as const) {
    if (v !== undefined && typeof v !== 'boolean') problems.push(`${name} must be true or false`);
  }
  checkFlowSettings(
    {
      bkBizId: app.bkBizId,
      traceRetentionDays: app.traceRetentionDays ?? DEFAULT_RETENTION_DAYS,
      tracesDataId: app.tracesDataId ?? 0,
      metricsDataId: app.metricsDataId ?? 0,
      tailSampling: app.tailSampling ?? false,
      tailSamplingConfig: app.tailSamplingConfig ?? {},
      virtualMetric: app.virtualMetric ?? false,
    },
    problems,
  );
  if (problems.length > 0) throw new ValidationError(problems.join('; '));
}

const DEFAULT_RETENTION_DAYS = 7;

const notFound = (bkBizId: number, appName: string): NotFoundError => new NotFoundError(`no application ${appName} in business ${bkBizId}`);

/**
 * Registers an application, issues its token and queues the create_or_update of each flow it switches
 * on, in one transaction. The token is returned here and nowhere else: only its hash is stored. Throws a
 * `conflict` error when (bk_biz_id, app_name) is taken. `operator` names who asked (the commands' operator).
 */
export async function createApplication(store: Store, app: NewApplication, operator?: string): Promise<{ application: Application; token: string; flowCommands: QueuedCommand[] }> {
  validateApplication(app);
  const token = generateToken();
  return store.transaction(async (tx) => {
    const { rows } = await tx.query<Row>(
      `INSERT INTO apm_application (bk_biz_id, app_name, app_alias, description, trace_retention_days, token_hash, token_hint,
         traces_data_id, metrics_data_id, logs_data_id, profiles_data_id, rate_limit_qps, rate_limit_burst,
         tail_sampling_enabled, tail_sampling_config, virtual_metric_enabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)
       ON CONFLICT ON CONSTRAINT apm_application_natural_key DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        app.bkBizId,
        app.appName,
        app.appAlias ?? '',
        app.description ?? '',
        app.traceRetentionDays ?? DEFAULT_RETENTION_DAYS,
        hashToken(token),
        token.slice(0, HINT_LENGTH),
        app.tracesDataId ?? 0,
        app.metricsDataId ?? 0,
        app.logsDataId ?? 0,
        app.profilesDataId ?? 0,
        app.rateLimitQps ?? null,
        app.rateLimitBurst ?? null,
        app.tailSampling ?? false,
        JSON.stringify(app.tailSamplingConfig ?? {}),
        app.virtualMetric ?? false,
      ],
    );
    const row = rows[0];
    if (!row) throw new ConflictError(`application ${app.appName} of business ${app.bkBizId} already exists`);
    const created = fromRow(row);
    const { application, flowCommands } = await queueCommands(tx, undefined, created, operator);
    return { application, token, flowCommands };
  });
}

/** Queues the commands from `before` to `after` and records the flow types they provision. */
async function queueCommands(tx: Queryable, before: Application | undefined, after: Application, operator: string | undefined): Promise<ApplicationChange> {
  const commands = planFlowCommands(before, after);
  if (commands.length === 0) return { application: after, flowCommands: [] };
  const flowCommands = await enqueueFlowCommands(tx, after, commands, operatorName(operator));
  const provisioned = provisionedAfter(after.provisionedFlows, commands);
  if (provisioned.length === after.provisionedFlows.length) return { application: after, flowCommands };
  await tx.query('UPDATE apm_application SET provisioned_flows = $2::text[] WHERE id = $1', [after.id, provisioned]);
  return { application: { ...after, provisionedFlows: provisioned }, flowCommands };
}

/** The application (bk_biz_id, app_name); throws `not_found`. */
export async function getApplication(db: Queryable, bkBizId: number, appName: string): Promise<Application> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2`, [bkBizId, appName]);
  const row = rows[0];
  if (!row) throw notFound(bkBizId, appName);
  return fromRow(row);
}

/**
 * Changes an application and queues the flow commands the change calls for (a switch turned on, a flow
 * config changed: `create_or_update`; a switch turned off: `stop`), in one transaction. Throws
 * `not_found`, or a ValidationError listing every problem of the result.
 */
export async function updateApplication(store: Store, bkBizId: number, appName: string, change: ApplicationUpdate, operator?: string): Promise<ApplicationChange> {
  return store.transaction(async (tx) => {
    const { rows } = await tx.query<Row>(`SELECT ${COLUMNS} FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2 FOR UPDATE`, [bkBizId, appName]);
    const row = rows[0];
    if (!row) throw notFound(bkBizId, appName);
    const before = fromRow(row);
    const tailSamplingConfig: Record<string, unknown> = { ...before.tailSamplingConfig };
    for (const [k, v] of Object.entries(change.tailSamplingConfig ?? {})) {
      if (v === null) delete tailSamplingConfig[k];
      else tailSamplingConfig[k] = v;
    }
    const merged: NewApplication = {
      bkBizId,
      appName,
      appAlias: change.appAlias ?? before.appAlias,
      description: change.description ?? before.description,
      traceRetentionDays: change.traceRetentionDays ?? before.traceRetentionDays,
      tracesDataId: change.tracesDataId ?? before.tracesDataId,
      metricsDataId: change.metricsDataId ?? before.metricsDataId,
      logsDataId: change.logsDataId ?? before.logsDataId,
      profilesDataId: change.profilesDataId ?? before.profilesDataId,
      tailSampling: change.tailSampling ?? before.tailSampling,
      tailSamplingConfig,
      virtualMetric: change.virtualMetric ?? before.virtualMetric,
    };
    const qps = change.rateLimitQps === null ? undefined : (change.rateLimitQps ?? before.rateLimitQps);
    const burst = change.rateLimitBurst === null ? undefined : (change.rateLimitBurst ?? before.rateLimitBurst);
    if (qps !== undefined) merged.rateLimitQps = qps;
    if (burst !== undefined) merged.rateLimitBurst = burst;
    validateApplication(merged);
    const { rows: updated } = await tx.query<Row>(
      `UPDATE apm_application SET app_alias = $2, description = $3, trace_retention_days = $4, traces_data_id = $5,
         metrics_data_id = $6, logs_data_id = $7, profiles_data_id = $8, rate_limit_qps = $9, rate_limit_burst = $10,
         tail_sampling_enabled = $11, tail_sampling_config = $12::jsonb, virtual_metric_enabled = $13, updated_at = now()
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        before.id,
        merged.appAlias,
        merged.description,
        merged.traceRetentionDays,
        merged.tracesDataId,
        merged.metricsDataId,
        merged.logsDataId,
        merged.profilesDataId,
        merged.rateLimitQps ?? null,
        merged.rateLimitBurst ?? null,
        merged.tailSampling,
        JSON.stringify(merged.tailSamplingConfig),
        merged.virtualMetric,
      ],
    );
    return queueCommands(tx, before, fromRow(updated[0] as Row), operator);
  });
}

/**
 * Deletes an application — its token stops resolving (after the receivers' cache TTL, or at once on a
 * collector whose admin API made the change) — and queues a `delete` of every flow it provisioned; unsent
 * commands of the application are dropped. Throws `not_found`.
 */
export async function deleteApplication(store: Store, bkBizId: number, appName: string, operator?: string): Promise<ApplicationChange> {
  return store.transaction(async (tx) => {
    const { rows } = await tx.query<Row>(`DELETE FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2 RETURNING ${COLUMNS}`, [bkBizId, appName]);
    const row = rows[0];
    if (!row) throw notFound(bkBizId, appName);
    const application = fromRow(row);
    await dropQueuedCommands(tx, bkBizId, appName);
    const commands = planFlowCommands(application, undefined);
    const flowCommands = commands.length > 0 ? await enqueueFlowCommands(tx, application, commands, operatorName(operator)) : [];
    return { application, flowCommands };
  });
}

/** Issues a new token for an application; the old one stops working (after the receivers' cache TTL). */
export async function rotateToken(db: Queryable, bkBizId: number, appName: string): Promise<{ application: Application; token: string }> {
  const token = generateToken();
  const { rows } = await db.query<Row>(
    `UPDATE apm_application SET token_hash = $3, token_hint = $4, updated_at = now()
     WHERE bk_biz_id = $1 AND app_name = $2 RETURNING ${COLUMNS}`,
    [bkBizId, appName, hashToken(token), token.slice(0, HINT_LENGTH)],
  );
  const row = rows[0];
  if (!row) throw notFound(bkBizId, appName);
  return { application: fromRow(row), token };
}

export async function listApplications(db: Queryable, bkBizId?: number): Promise<Application[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM apm_application WHERE ($1::bigint IS NULL OR bk_biz_id = $1) ORDER BY bk_biz_id, app_name`,
    [bkBizId ?? null],
  );
  return rows.map(fromRow);
}

/** The enabled application whose token hashes to `tokenHash`, if any. */
export async function findByTokenHash(db: Queryable, tokenHash: string): Promise<Application | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM apm_application WHERE token_hash = $1 AND is_enabled`, [tokenHash]);
  const row = rows[0];
  return row ? fromRow(row) : undefined;
}
