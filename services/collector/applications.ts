/**
 * The application registry (`apm_application`): registering an application issues its token, which is
 * shown once and stored only as a SHA-256 hash; the receiver resolves tokens by that hash.
 *
 * Tokens are `bkst_` + 32 random bytes in base64url (48 characters). The prefix makes a leaked token
 * recognisable (secret scanners, logs); the first 12 characters are kept as a hint for listings.
 */
import { randomBytes } from 'node:crypto';
import { hashToken } from '../common/auth.ts';
import { ConflictError, NotFoundError, ValidationError } from '../common/errors.ts';
import type { Queryable } from '../common/store/index.ts';
import { isAvroLong } from '../common/avro/index.ts';

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
  is_enabled: boolean;
  created_at: Date;
}

const COLUMNS = `id, bk_biz_id, app_name, app_alias, description, trace_retention_days, token_hint, traces_data_id,
  metrics_data_id, logs_data_id, profiles_data_id, rate_limit_qps, rate_limit_burst, is_enabled, created_at`;

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
  if (problems.length > 0) throw new ValidationError(problems.join('; '));
}

/**
 * Registers an application and issues its token. The token is returned here and nowhere else: only its
 * hash is stored. Throws a `conflict` error when (bk_biz_id, app_name) is taken.
 */
export async function createApplication(db: Queryable, app: NewApplication): Promise<{ application: Application; token: string }> {
  validateApplication(app);
  const token = generateToken();
  const { rows } = await db.query<Row>(
    `INSERT INTO apm_application (bk_biz_id, app_name, app_alias, description, trace_retention_days, token_hash, token_hint,
       traces_data_id, metrics_data_id, logs_data_id, profiles_data_id, rate_limit_qps, rate_limit_burst)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT ON CONSTRAINT apm_application_natural_key DO NOTHING
     RETURNING ${COLUMNS}`,
    [
      app.bkBizId,
      app.appName,
      app.appAlias ?? '',
      app.description ?? '',
      app.traceRetentionDays ?? 7,
      hashToken(token),
      token.slice(0, HINT_LENGTH),
      app.tracesDataId ?? 0,
      app.metricsDataId ?? 0,
      app.logsDataId ?? 0,
      app.profilesDataId ?? 0,
      app.rateLimitQps ?? null,
      app.rateLimitBurst ?? null,
    ],
  );
  const row = rows[0];
  if (!row) throw new ConflictError(`application ${app.appName} of business ${app.bkBizId} already exists`);
  return { application: fromRow(row), token };
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
  if (!row) throw new NotFoundError(`no application ${appName} in business ${bkBizId}`);
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
