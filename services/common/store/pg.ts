/** The store on PostgreSQL through `pg` (a pool; `int8` as JS numbers). */
import pg from 'pg';
import { UnavailableError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { migrate } from './migrate.ts';
import type { MigrationResult, Queryable, QueryResult, Store, StoreOptions } from './types.ts';

const INT8 = 20;

export class PgStore implements Store {
  readonly name = 'store:pg';
  readonly driver = 'pg' as const;
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  readonly #url: string;
  #closed = false;

  constructor(url: string, options: StoreOptions) {
    this.#url = url;
    this.#log = options.logger.child({ component: 'store', driver: 'pg' });
    const types = {
      getTypeParser: ((oid: number, format?: 'text' | 'binary'): ((v: string) => unknown) =>
        oid === INT8 ? (v: string) => Number(v) : (pg.types.getTypeParser(oid, format ?? 'text') as (v: string) => unknown)) as typeof pg.types.getTypeParser,
    };
    this.#pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, types, connectionTimeoutMillis: 5_000 });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    this.#pool.on('error', (err) => this.#log.warn('idle connection error', { err }));
  }

  async start(): Promise<void> {
    try {
      await this.#pool.query('SELECT 1');
    } catch (err) {
      throw new UnavailableError(`cannot connect to PostgreSQL at ${redact(this.#url)}: ${(err as Error).message}`, { cause: err });
    }
    this.#log.info('connected', { url: redact(this.#url) });
  }

  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const res = await this.#pool.query(sql, params as unknown[] | undefined);
    return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.#pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    // A checked-out connection cut between statements emits 'error' (the pool listens only to idle
    // ones): without a listener that is an uncaught exception. The statement fails; the pool drops it.
    const lost = (err: Error): void => {
      broken = true;
      this.#log.warn('connection lost during a transaction', { err });
    };
    client.on('error', lost);
    const tx: Queryable = {
      query: async <R>(sql: string, params?: readonly unknown[]) => {
        const res = await client.query(sql, params as unknown[] | undefined);
        return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
      },
      exec: async (sql) => {
        await client.query(sql);
      },
    };
    try {
      await client.query('BEGIN');
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.off('error', lost);
      client.release(broken);
    }
  }

  migrate(): Promise<MigrationResult> {
    return migrate(this, this.#log);
  }
}

/** The URL without its password, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
