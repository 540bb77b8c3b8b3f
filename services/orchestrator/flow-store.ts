/**
 * The orchestrator's SQL (PGlite and PostgreSQL alike): commands applied to flows, leases, progress
 * saved with its step-log row and its flow.status outbox record in one transaction, queries.
 *
 * Leases: a worker claims due flows (`next_attempt_at <= now()`, no live lease) with
 * `FOR UPDATE SKIP LOCKED`, so two instances never claim the same flow; every later write checks that
 * the lease is still ours. Times that matter across instances (lease expiry, next attempt) use the
 * database clock.
 */
import type { FlowStatus, FlowType } from '../common/records.ts';
import { SecretError, sealSecrets, type SecretBox } from '../common/secrets.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import type { Family } from './bkdata-client.ts';
import { DESIRED_OF, flowKey, isFailure, type Command, type Flow, type FlowKey, type FlowState, type StepLogEntry, type StepRecord } from './model.ts';

export type CommandOutcome = 'accepted' | 'duplicate' | 'stale';

export interface SaveOptions {
  /** Step log row of the attempt that ends with this save. */
  log?: StepLogEntry;
  /** flow.status record to publish (written to the outbox). */
  event?: FlowStatus;
  /** Delay of the next attempt, ms; `null` = none (terminal or idle). Ignored with `keepSchedule`. */
  nextDelayMs: number | null;
  /** Give the lease up (the worker is done with the flow for now). */
  release: boolean;
  /** Mid-step checkpoint: leave next_attempt_at as it is. */
  keepSchedule?: boolean;
  /** Only these columns changed since the last save (default: write all). */
  columns?: ReadonlySet<FlowColumn>;
}

/** `ok`; `lost`: the lease is not ours any more (nothing written); `superseded`: a new command arrived (only BKData ids were written). */
export type SaveResult = 'ok' | 'lost' | 'superseded';

export interface ListFilter {
  status?: string;
  flow_type?: FlowType;
  bk_biz_id?: number;
  app_name?: string;
  limit?: number;
  offset?: number;
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

/** Columns a worker writes that record the BKData side; kept even when a new command supersedes the run. */
export const DOMAIN_COLUMNS = [
  'project_id', 'deploy_bk_biz_id', 'deploy_data_id', 'deploy_config', 'databus_clean_id', 'databus_clean_config',
  'databus_clean_result_table_id', 'flow_id', 'process_info',
] as const;
/** Columns of the run itself. */
export const RUN_COLUMNS = ['status', 'step', 'attempt', 'message', 'waiting_on', 'is_finished', 'finished_time', 'state', 'last_process_time'] as const;
export type FlowColumn = (typeof DOMAIN_COLUMNS)[number] | (typeof RUN_COLUMNS)[number];
export const FLOW_COLUMNS: readonly FlowColumn[] = [...DOMAIN_COLUMNS, ...RUN_COLUMNS];

const COLUMN_TYPES: Record<FlowColumn, string> = {
  project_id: 'bigint',
  deploy_bk_biz_id: 'bigint',
  deploy_data_id: 'bigint',
  deploy_config: 'jsonb',
  databus_clean_id: 'bigint',
  databus_clean_config: 'jsonb',
  databus_clean_result_table_id: 'varchar',
  flow_id: 'bigint',
  process_info: 'jsonb',
  status: 'varchar',
  step: 'varchar',
  attempt: 'int',
  message: 'text',
  waiting_on: 'varchar',
  is_finished: 'boolean',
  finished_time: 'timestamptz',
  state: 'jsonb',
  last_process_time: 'timestamptz',
};

/** A column's value as a query parameter (jsonb as JSON text). */
export function columnValue(flow: Flow, col: FlowColumn): unknown {
  return COLUMN_TYPES[col] === 'jsonb' ? json(flow[col]) : flow[col];
}

/** What a new command keeps of the run-scoped state: pending restarts of the dataflow. */
function stateForNewCommand(old: FlowState): FlowState {
  return old.restart ? { restart: old.restart } : {};
}

export function statusRecord(flow: Flow, at: number): FlowStatus {
  return {
    flow_key: flowKey(flow),
    command_id: flow.command_id,
    bk_biz_id: flow.bk_biz_id,
    app_name: flow.app_name,
    flow_type: flow.flow_type,
    step: flow.step,
    status: flow.status,
    attempt: flow.attempt,
    message: flow.message,
    at,
  };
}

export class FlowStore {
  readonly #db: Store;

  constructor(db: Store) {
    this.#db = db;
  }

  /**
   * Secrets at rest, the data migration of issue 16: every plain `password` / `secret` value of the stored
   * configs and stored deploy requests is sealed, and values of a previous key are resealed with the
   * current one. Rows changed meanwhile (a new command, a worker's save) are left alone: they are
   * sealed already. Returns the rows sealed and those whose values this instance's keys cannot open.
   */
  async resealSecrets(box: SecretBox): Promise<{ sealed: number; unreadable: number }> {
    const { rows } = await this.#db.query<{ id: number; config: Record<string, unknown>; deploy_config: Record<string, unknown> | null }>('SELECT id, config, deploy_config FROM bkdata_flow ORDER BY id');
    let sealed = 0;
    let unreadable = 0;
    for (const r of rows) {
      let config: Record<string, unknown>;
      let deploy: Record<string, unknown> | null;
      try {
        config = sealSecrets(r.config, box, 'config');
        deploy = r.deploy_config === null ? null : sealSecrets(r.deploy_config, box, 'deploy_config');
      } catch (err) {
        if (!(err instanceof SecretError)) throw err;
        unreadable++;
        continue;
      }
      if (config === r.config && deploy === r.deploy_config) continue;
      const res = await this.#db.query(
        `UPDATE bkdata_flow SET config = $2::jsonb, deploy_config = $3::jsonb
         WHERE id = $1 AND config = $4::jsonb AND deploy_config IS NOT DISTINCT FROM $5::jsonb`,
        [r.id, JSON.stringify(config), json(deploy), JSON.stringify(r.config), json(r.deploy_config)],
      );
      sealed += res.rowCount;
    }
    return { sealed, unreadable };
  }

  /**
   * Applies a command: a repeated command id is ignored (`duplicate`), one requested before the command
   * the flow already follows is ignored (`stale`); otherwise the flow (created if new) starts the plan of
   * the desired state at `firstStep`, due now.
   */
  async applyCommand(cmd: Command, firstStep: string, nowMs: number = Date.now()): Promise<{ outcome: CommandOutcome; flow: Flow | undefined }> {
    const key = flowKey(cmd);
    return this.#db.transaction(async (tx) => {
      const seen = await tx.query('INSERT INTO bkdata_flow_command (command_id, flow_key, outcome) VALUES ($1, $2, $3) ON CONFLICT (command_id) DO NOTHING', [cmd.command_id, key, 'accepted']);
      if (seen.rowCount === 0) return { outcome: 'duplicate' as const, flow: await getFlow(tx, cmd) };
      const current = await getFlow(tx, cmd, true);
      if (current && cmd.requested_at < current.command_requested_at) {
        await tx.query('UPDATE bkdata_flow_command SET outcome = $2 WHERE command_id = $1', [cmd.command_id, 'stale']);
        return { outcome: 'stale' as const, flow: current };
      }
      const desired = DESIRED_OF[cmd.action];
      const state = current ? stateForNewCommand(current.state) : {};
      const { rows } = await tx.query<Flow>(
        `INSERT INTO bkdata_flow (bk_biz_id, app_name, flow_type, desired, config, command_id, command_requested_at, operator,
                                  status, step, attempt, next_attempt_at, message, waiting_on, state, process_info)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, 'pending', $9, 0, now(), '', NULL, $10::jsonb, '[]'::jsonb)
         ON CONFLICT (bk_biz_id, app_name, flow_type) DO UPDATE SET
           desired = EXCLUDED.desired, config = EXCLUDED.config, command_id = EXCLUDED.command_id,
           command_requested_at = EXCLUDED.command_requested_at, operator = EXCLUDED.operator,
           status = 'pending', step = EXCLUDED.step, attempt = 0, next_attempt_at = now(), message = '',
           waiting_on = NULL, state = EXCLUDED.state, updated_at = now()
         RETURNING *`,
        [cmd.bk_biz_id, cmd.app_name, cmd.flow_type, desired, JSON.stringify(cmd.config), cmd.command_id, cmd.requested_at, cmd.operator, firstStep, JSON.stringify(state)],
      );
      const flow = rows[0] as Flow;
      await insertOutbox(tx, statusRecord(flow, nowMs));
      return { outcome: 'accepted' as const, flow };
    });
  }

  /** Claims up to `limit` due flows for `owner` for `leaseMs`. */
  async claim(owner: string, limit: number, leaseMs: number): Promise<Flow[]> {
    if (limit <= 0) return [];
    const { rows } = await this.#db.query<Flow>(
      `UPDATE bkdata_flow SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::float8 / 1000)
       WHERE id IN (
         SELECT id FROM bkdata_flow
         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= now()
           AND (lease_owner IS NULL OR lease_expires_at < now())
         ORDER BY next_attempt_at, id
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [owner, leaseMs, limit],
    );
    return rows.sort((a, b) => (a.next_attempt_at?.getTime() ?? 0) - (b.next_attempt_at?.getTime() ?? 0));
  }

  /** Extends the leases `owner` holds on `ids`; returns the ids still held. */
  async renew(owner: string, ids: readonly number[], leaseMs: number): Promise<number[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.#db.query<{ id: number }>(
      `UPDATE bkdata_flow SET lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
       WHERE lease_owner = $1 AND id = ANY($2::bigint[]) RETURNING id`,
      [owner, ids, leaseMs],
    );
    return rows.map((r) => Number(r.id));
  }

  /** Gives up every lease of `owner` (at stop, or at start after a crash of the same instance id). */
  async releaseAll(owner: string): Promise<number> {
    const { rowCount } = await this.#db.query('UPDATE bkdata_flow SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1', [owner]);
    return rowCount;
  }

  /**
   * Saves a worker's copy of a flow, if `owner` still holds its lease — in one statement, with its
   * step-log row and its flow.status record. When a new command arrived in the meantime only the BKData
   * side (ids, stored configs, process info) is kept, so nothing the step created is forgotten, and the
   * lease is released. `options.columns` limits the write to the columns that changed.
   */
  async save(owner: string, flow: Flow, options: SaveOptions): Promise<SaveResult> {
    const params: unknown[] = [flow.id, owner, flow.command_id];
    const p = (value: unknown, type: string): string => {
      params.push(value);
      return `$${params.length}::${type}`;
    };
    const wanted = (col: FlowColumn): boolean => options.columns === undefined || options.columns.has(col);
    const domain = DOMAIN_COLUMNS.filter(wanted).map((col) => `${col} = ${p(columnValue(flow, col), COLUMN_TYPES[col])}`);
    const run = RUN_COLUMNS.filter(wanted).map((col) => `${col} = ${p(columnValue(flow, col), COLUMN_TYPES[col])}`);
    if (!options.keepSchedule) {
      run.push(options.nextDelayMs === null ? 'next_attempt_at = NULL' : `next_attempt_at = now() + make_interval(secs => ${p(options.nextDelayMs, 'float8')} / 1000)`);
    }
    if (options.release) run.push('lease_owner = NULL', 'lease_expires_at = NULL');
    const ctes = [
      `upd AS (UPDATE bkdata_flow SET ${[...domain, ...run, 'updated_at = now()'].join(', ')}
               WHERE id = $1 AND lease_owner = $2 AND command_id = $3 RETURNING id)`,
      `dom AS (UPDATE bkdata_flow SET ${[...domain, 'lease_owner = NULL', 'lease_expires_at = NULL', 'updated_at = now()'].join(', ')}
               WHERE id = $1 AND lease_owner = $2 AND command_id <> $3 RETURNING id)`,
    ];
    if (options.log) {
      const l = options.log;
      ctes.push(`log AS (INSERT INTO bkdata_flow_step (flow_id, step, status, attempt, message, api_calls, started_at, finished_at, owner, command_id)
                 SELECT id, ${p(l.step, 'varchar')}, ${p(l.status, 'varchar')}, ${p(l.attempt, 'int')}, ${p(l.message, 'text')}, ${p(l.api_calls, 'int')},
                        ${p(l.started_at, 'timestamptz')}, now(), $2, $3 FROM upd)`);
    }
    if (options.event) {
      ctes.push(`ob AS (INSERT INTO bkdata_flow_outbox (flow_key, payload) SELECT ${p(options.event.flow_key, 'varchar')}, ${p(JSON.stringify(options.event), 'jsonb')} FROM upd)`);
    }
    const { rows } = await this.#db.query<{ saved: number; superseded: number }>(
      `WITH ${ctes.join(',\n')} SELECT (SELECT count(*) FROM upd)::int AS saved, (SELECT count(*) FROM dom)::int AS superseded`,
      params,
    );
    const r = rows[0];
    if (Number(r?.saved) === 1) return 'ok';
    return Number(r?.superseded) === 1 ? 'superseded' : 'lost';
  }

  /**
   * Re-runs a failed flow from the step that failed (or wakes a waiting one now). Returns the flow, or
   * undefined when there is none; throws nothing for flows in other statuses — the caller decides.
   */
  async retry(key: FlowKey, nowMs: number = Date.now()): Promise<{ flow: Flow | undefined; retried: boolean }> {
    return this.#db.transaction(async (tx) => {
      const flow = await getFlow(tx, key, true);
      if (!flow) return { flow: undefined, retried: false };
      if (!isFailure(flow.status) && flow.status !== 'waiting_dependency') return { flow, retried: false };
      const state: FlowState = { ...flow.state };
      delete state.clean;
      delete state.stop_polls;
      const { rows } = await tx.query<Flow>(
        `UPDATE bkdata_flow SET status = 'pending', attempt = 0, message = 'retry requested', waiting_on = NULL,
           next_attempt_at = now(), state = $2::jsonb, updated_at = now()
         WHERE id = $1 RETURNING *`,
        [flow.id, JSON.stringify(state)],
      );
      const updated = rows[0] as Flow;
      await insertOutbox(tx, statusRecord(updated, nowMs));
      return { flow: updated, retried: true };
    });
  }

  /**
   * Makes flows waiting for `family` (or backing off after its errors) due now: the one waiting longest
   * (a half-open probe) or all of them.
   */
  async wakeWaiting(family: Family, all: boolean): Promise<number> {
    const { rowCount } = await this.#db.query(
      all
        ? `UPDATE bkdata_flow SET next_attempt_at = now() WHERE waiting_on = $1 AND next_attempt_at > now()`
        : `UPDATE bkdata_flow SET next_attempt_at = now() WHERE id = (
             SELECT id FROM bkdata_flow WHERE waiting_on = $1 AND next_attempt_at > now() ORDER BY updated_at, id LIMIT 1)`,
      [family],
    );
    return rowCount;
  }

  /**
   * ms until the earliest scheduled attempt of a flow nobody holds (0 if one is due), or undefined when
   * there is none. Flows leased by others come back through the poll interval once their lease lapses.
   */
  async msUntilNextDue(): Promise<number | undefined> {
    const { rows } = await this.#db.query<{ ms: number | null }>(
      `SELECT GREATEST(0, EXTRACT(EPOCH FROM (min(next_attempt_at) - now())) * 1000)::float8 AS ms
       FROM bkdata_flow WHERE next_attempt_at IS NOT NULL AND (lease_owner IS NULL OR lease_expires_at < now())`,
    );
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? undefined : Number(ms);
  }

  async get(key: FlowKey): Promise<Flow | undefined> {
    return getFlow(this.#db, key);
  }

  async list(filter: ListFilter = {}): Promise<Flow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown): void => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.status !== undefined) add('status = ?', filter.status);
    if (filter.flow_type !== undefined) add('flow_type = ?', filter.flow_type);
    if (filter.bk_biz_id !== undefined) add('bk_biz_id = ?', filter.bk_biz_id);
    if (filter.app_name !== undefined) add('app_name = ?', filter.app_name);
    params.push(Math.min(Math.max(filter.limit ?? 100, 1), 1000), Math.max(filter.offset ?? 0, 0));
    const { rows } = await this.#db.query<Flow>(
      `SELECT * FROM bkdata_flow ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY bk_biz_id, app_name, flow_type LIMIT $${params.length - 1} OFFSET $${params.length}`,
      params,
    );
    return rows;
  }

  /** The most recent step-log rows of a flow, newest first. */
  async steps(flowId: number, limit = 50): Promise<StepRecord[]> {
    const { rows } = await this.#db.query<StepRecord>(
      `SELECT step, status, attempt, message, api_calls, owner, command_id, started_at, finished_at
       FROM bkdata_flow_step WHERE flow_id = $1 ORDER BY id DESC LIMIT $2`,
      [flowId, limit],
    );
    return rows;
  }

  async countByStatus(): Promise<Record<string, number>> {
    const { rows } = await this.#db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM bkdata_flow GROUP BY status');
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  /** Deletes step-log rows and seen command ids older than the retention. */
  async prune(retentionMs: number): Promise<{ steps: number; commands: number }> {
    const steps = await this.#db.query(`DELETE FROM bkdata_flow_step WHERE finished_at < now() - make_interval(secs => $1::float8 / 1000)`, [retentionMs]);
    const commands = await this.#db.query(`DELETE FROM bkdata_flow_command WHERE received_at < now() - make_interval(secs => $1::float8 / 1000)`, [retentionMs]);
    return { steps: steps.rowCount, commands: commands.rowCount };
  }

  // -------------------------------------------------------------------------------------------------------
  // outbox

  /** Claims up to `limit` unsent flow.status records (oldest first) for `claimMs`. */
  async claimOutbox(owner: string, limit: number, claimMs: number): Promise<{ id: number; flow_key: string; payload: FlowStatus }[]> {
    const { rows } = await this.#db.query<{ id: number; flow_key: string; payload: FlowStatus }>(
      `UPDATE bkdata_flow_outbox SET claimed_by = $1, claimed_until = now() + make_interval(secs => $2::float8 / 1000)
       WHERE id IN (
         SELECT id FROM bkdata_flow_outbox WHERE claimed_until IS NULL OR claimed_until < now()
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING id, flow_key, payload`,
      [owner, claimMs, limit],
    );
    return rows.map((r) => ({ ...r, id: Number(r.id) })).sort((a, b) => a.id - b.id);
  }

  async deleteOutbox(ids: readonly number[]): Promise<void> {
    if (ids.length > 0) await this.#db.query('DELETE FROM bkdata_flow_outbox WHERE id = ANY($1::bigint[])', [ids]);
  }

  /** Hands claimed records back (a failed send) so they go out with the next batch. */
  async unclaimOutbox(ids: readonly number[]): Promise<void> {
    if (ids.length > 0) await this.#db.query('UPDATE bkdata_flow_outbox SET claimed_by = NULL, claimed_until = NULL WHERE id = ANY($1::bigint[])', [ids]);
  }

  async outboxSize(): Promise<number> {
    const { rows } = await this.#db.query<{ n: number }>('SELECT count(*)::int AS n FROM bkdata_flow_outbox');
    return Number(rows[0]?.n ?? 0);
  }
}

async function getFlow(db: Queryable, key: FlowKey, forUpdate = false): Promise<Flow | undefined> {
  const { rows } = await db.query<Flow>(
    `SELECT * FROM bkdata_flow WHERE bk_biz_id = $1 AND app_name = $2 AND flow_type = $3${forUpdate ? ' FOR UPDATE' : ''}`,
    [key.bk_biz_id, key.app_name, key.flow_type],
  );
  return rows[0];
}

async function insertOutbox(tx: Queryable, record: FlowStatus): Promise<void> {
  await tx.query('INSERT INTO bkdata_flow_outbox (flow_key, payload) VALUES ($1, $2::jsonb)', [record.flow_key, JSON.stringify(record)]);
}
