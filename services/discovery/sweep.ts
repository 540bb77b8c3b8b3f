/**
 * Expiry sweeps (README: How it works, step 9): delete discovered rows whose `last_seen` is older than
 * their table's retention (tables.ts: the app's `apm_application.trace_retention_days`, default 7 days;
 * topo nodes 180 days unless permanent), then trim each (app, table) to the newest `maxRowsPerApp` rows.
 *
 * Several discovery instances may run: a sweep runs inside a transaction that first takes a
 * transaction-level advisory lock with `pg_try_advisory_xact_lock`; an instance that does not get it
 * skips this round. Deletes are idempotent, so an overlap would be harmless anyway.
 */
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import { DISCOVERED, TABLES, type Retention, type SqlTable } from './tables.ts';

/** The swept tables in sweep order (those kept for the app's retention first) with their retention. */
export const SWEPT: readonly { table: SqlTable; retention: Retention }[] = (['app', 'topoNode'] as const).flatMap((retention) =>
  TABLES.filter((t) => DISCOVERED[t].retention === retention).map((t) => ({ table: DISCOVERED[t].sql, retention })),
);

/** Arbitrary constant naming the sweep lock (the migration lock is another). */
const SWEEP_LOCK_ID = 7_290_601;
const DAY_MS = 86_400_000;

export interface SweepOptions {
  store: Store;
  logger: Logger;
  intervalMs: number;
  defaultRetentionDays: number;
  topoNodeRetentionDays: number;
  maxRowsPerApp: number;
  now?: () => number;
  /** Called after each sweep that ran. */
  onSwept?: (deleted: SweepResult) => void;
}

export interface SweepResult {
  /** Rows deleted per table and reason. */
  expired: Partial<Record<SqlTable, number>>;
  overflow: Partial<Record<SqlTable, number>>;
}

interface App {
  bk_biz_id: number;
  app_name: string;
  retention_days: number;
}

async function appsOf(tx: Queryable, table: SqlTable, defaultDays: number): Promise<App[]> {
  const { rows } = await tx.query<App>(
    `SELECT t.bk_biz_id, t.app_name, COALESCE(a.trace_retention_days, $1) AS retention_days
     FROM (SELECT DISTINCT bk_biz_id, app_name FROM ${table}) t
     LEFT JOIN apm_application a ON a.bk_biz_id = t.bk_biz_id AND a.app_name = t.app_name`,
    [defaultDays],
  );
  return rows;
}

/** One sweep. Returns undefined when another instance holds the sweep lock. */
export async function sweepOnce(options: Omit<SweepOptions, 'intervalMs' | 'logger'>): Promise<SweepResult | undefined> {
  const now = (options.now ?? Date.now)();
  return options.store.transaction(async (tx) => {
    const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [SWEEP_LOCK_ID]);
    if (!rows[0]?.locked) return undefined;
    const result: SweepResult = { expired: {}, overflow: {} };
    for (const { table, retention } of SWEPT) {
      // Topo nodes: a fixed retention, and permanent ones are never deleted.
      const node = retention === 'topoNode';
      for (const app of await appsOf(tx, table, options.defaultRetentionDays)) {
        const days = node ? options.topoNodeRetentionDays : app.retention_days;
        const cutoff = new Date(now - days * DAY_MS);
        const expired = await tx.query(
          `DELETE FROM ${table} WHERE bk_biz_id = $1 AND app_name = $2 AND last_seen < $3${node ? ' AND NOT is_permanent' : ''}`,
          [app.bk_biz_id, app.app_name, cutoff],
        );
        const overflow = await tx.query(
          `DELETE FROM ${table} WHERE id IN (
             SELECT id FROM ${table} WHERE bk_biz_id = $1 AND app_name = $2${node ? ' AND NOT is_permanent' : ''}
             ORDER BY last_seen DESC, id DESC OFFSET $3)`,
          [app.bk_biz_id, app.app_name, options.maxRowsPerApp],
        );
        if (expired.rowCount > 0) result.expired[table] = (result.expired[table] ?? 0) + expired.rowCount;
        if (overflow.rowCount > 0) result.overflow[table] = (result.overflow[table] ?? 0) + overflow.rowCount;
      }
    }
    return result;
  });
}

/** Runs {@link sweepOnce} on an interval (first run one interval after start). */
export class Sweeper implements Component {
  readonly name = 'discovery-sweeper';
  readonly #opts: SweepOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: SweepOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'discovery.sweep' });
  }

  async start(): Promise<void> {
    this.#timer ??= setInterval(() => {
      this.#running ??= this.run().finally(() => {
        this.#running = undefined;
      });
    }, this.#opts.intervalMs);
  }

  /** One sweep now; failures are logged, never thrown. */
  async run(): Promise<void> {
    try {
      const result = await sweepOnce(this.#opts);
      if (result) {
        this.#opts.onSwept?.(result);
        if (Object.keys(result.expired).length + Object.keys(result.overflow).length > 0) this.#log.info('swept', { ...result });
      }
    } catch (err) {
      this.#log.warn('sweep failed', { err });
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
