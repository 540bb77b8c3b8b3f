/**
 * Applications' trace retention (`apm_application.trace_retention_days`), cached for a short time: the
 * writers put each span in its application's retention class, the query API clamps time ranges with it.
 */
import type { Queryable } from '../common/store/index.ts';

export interface AppInfo {
  /** Whether the application is registered (has an apm_application row). */
  known: boolean;
  retentionDays: number;
}

export interface RetentionOptions {
  db: Queryable;
  /** Retention of applications without a row. */
  defaultDays: number;
  ttlMs: number;
  now?: () => number;
}

export class Retention {
  readonly #db: Queryable;
  readonly #defaultDays: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #apps = new Map<string, AppInfo>();
  #loadedAt = -Infinity;
  #loading: Promise<void> | undefined;

  constructor(options: RetentionOptions) {
    this.#db = options.db;
    this.#defaultDays = options.defaultDays;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  get defaultDays(): number {
    return this.#defaultDays;
  }

  /** Loads every application's retention again if the cache is older than the TTL (one query for all). */
  async refresh(force = false): Promise<void> {
    if (!force && this.#now() - this.#loadedAt < this.#ttlMs) return;
    this.#loading ??= (async () => {
      try {
        const { rows } = await this.#db.query<{ bk_biz_id: number; app_name: string; days: number }>(
          'SELECT bk_biz_id, app_name, trace_retention_days AS days FROM apm_application',
        );
        this.#apps = new Map(rows.map((r) => [key(r.bk_biz_id, r.app_name), { known: true, retentionDays: r.days }]));
        this.#loadedAt = this.#now();
      } finally {
        this.#loading = undefined;
      }
    })();
    await this.#loading;
  }

  /** The application's retention (cached; call {@link refresh} first). */
  days(bkBizId: number, appName: string): number {
    return this.#apps.get(key(bkBizId, appName))?.retentionDays ?? this.#defaultDays;
  }

  /**
   * The application for the query API: from the cache when it is known there (refreshed every TTL),
   * otherwise from the store (so an application registered a moment ago is found at once).
   */
  async app(bkBizId: number, appName: string): Promise<AppInfo> {
    if (this.#now() - this.#loadedAt < this.#ttlMs) {
      const cached = this.#apps.get(key(bkBizId, appName));
      if (cached) return cached;
    }
    const { rows } = await this.#db.query<{ days: number }>('SELECT trace_retention_days AS days FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2', [bkBizId, appName]);
    const row = rows[0];
    return row ? { known: true, retentionDays: row.days } : { known: false, retentionDays: this.#defaultDays };
  }

  /** The retention classes in use: every application's days and the default. */
  classes(): number[] {
    return [...new Set([this.#defaultDays, ...[...this.#apps.values()].map((a) => a.retentionDays)])];
  }
}

function key(bkBizId: number, appName: string): string {
  return `${bkBizId}\u0000${appName}`;
}
