/**
 * Bulk loading on PostgreSQL: `COPY … FROM STDIN` through pg-copy-streams, inside a transaction, on a
 * small pool of its own (the {@link Store} interface hands out no client, and COPY needs one for the
 * whole stream). The same pool serves bounded reads: with `statementTimeoutMs` every connection runs
 * under that `statement_timeout`, so a query API needs no transaction (and its extra round trips) to cap
 * each statement. Embedded PGlite has no such path here: its COPY reads a blob (`COPY … FROM
 * '/dev/blob'`), which the store's worker protocol does not carry; bulk writers use `unnest` there.
 *
 * Rows are sent in COPY's text format (`copyText` escapes one value), so a writer builds one string (or
 * Buffer) per batch; the usual pattern for idempotent loads is COPY into a temporary staging table, then
 * `INSERT … SELECT … ON CONFLICT DO NOTHING` in the same transaction.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { UnavailableError } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { redact } from './pg.ts';
import type { Queryable, QueryResult } from './types.ts';

const INT8 = 20;

/** A transaction's statements, plus COPY FROM STDIN. */
export interface CopySession extends Queryable {
  /** Runs `sql` (a `COPY … FROM STDIN` statement) with `data` in COPY's text format; resolves to rows copied. */
  copyFrom(sql: string, data: string | Buffer): Promise<number>;
}

export interface CopyPoolOptions {
  logger: Logger;
  /** Connections. Default 2. */
  poolSize?: number;
  /** `statement_timeout` of every connection, ms (default: the server's). */
  statementTimeoutMs?: number;
  /** Other settings of every connection (`-c name=value` at connect), e.g. `{ work_mem: '64MB', jit: 'off' }`. */
  settings?: Readonly<Record<string, string>>;
}

/** The `options` startup parameter giving each connection these settings. */
export function connectionOptions(settings: Readonly<Record<string, string>>): string | undefined {
  const parts = Object.entries(settings).map(([name, value]) => {
    if (!/^[a-z_]+$/.test(name) || !/^[A-Za-z0-9_.]+$/.test(value)) throw new Error(`connection setting ${name}=${value} is not a plain name and value`);
    return `-c ${name}=${value}`;
  });
  return parts.length ? parts.join(' ') : undefined;
}

function optionsParam(options: CopyPoolOptions): { options?: string } {
  const settings = { ...(options.statementTimeoutMs === undefined ? {} : { statement_timeout: String(Math.floor(options.statementTimeoutMs)) }), ...options.settings };
  const param = connectionOptions(settings);
  return param === undefined ? {} : { options: param };
}

/** A pool of PostgreSQL connections for bulk loads. */
export class CopyPool implements Component, Queryable {
  readonly name = 'store:copy';
  readonly #pool: pg.Pool;
  readonly #url: string;
  readonly #log: Logger;
  #closed = false;

  constructor(url: string, options: CopyPoolOptions) {
    this.#url = url;
    this.#log = options.logger.child({ component: 'store-copy' });
    const types = {
      getTypeParser: ((oid: number, format?: 'text' | 'binary'): ((v: string) => unknown) =>
        oid === INT8 ? (v: string) => Number(v) : (pg.types.getTypeParser(oid, format ?? 'text') as (v: string) => unknown)) as typeof pg.types.getTypeParser,
    };
    this.#pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 2,
      types,
      connectionTimeoutMillis: 5_000,
      ...optionsParam(options),
    });
    this.#pool.on('error', (err) => this.#log.warn('idle connection error', { err }));
  }

  async start(): Promise<void> {
    try {
      await this.#pool.query('SELECT 1');
    } catch (err) {
      throw new UnavailableError(`cannot connect to PostgreSQL at ${redact(this.#url)}: ${(err as Error).message}`, { cause: err });
    }
  }

  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  /** One statement on any connection of the pool (no transaction). */
  async query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const res = await this.#pool.query(sql, params as unknown[] | undefined);
    return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.#pool.query(sql);
  }

  /** Runs `fn` in a transaction on one connection: committed when it resolves, rolled back when it throws. */
  async transaction<T>(fn: (tx: CopySession) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    // A checked-out connection that is cut between statements emits 'error' (the pool listens only to
    // idle ones): without a listener that is an uncaught exception. The statement in progress fails, the
    // caller retries, and the pool drops the connection.
    const lost = (err: Error): void => {
      broken = true;
      this.#log.warn('connection lost during a transaction', { err });
    };
    client.on('error', lost);
    const session: CopySession = {
      query: async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
        const res = await client.query(sql, params as unknown[] | undefined);
        return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
      },
      exec: async (sql) => {
        await client.query(sql);
      },
      copyFrom: async (sql, data) => {
        const stream = client.query(copyFrom(sql));
        await pipeline(Readable.from([typeof data === 'string' ? Buffer.from(data) : data]), stream);
        return Number(stream.rowCount ?? 0);
      },
    };
    try {
      await client.query('BEGIN');
      const out = await fn(session);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: the pool drops it.
      client.off('error', lost);
      client.release(broken);
    }
  }
}

/** One value in COPY's text format: backslash, tab, newline and carriage return escaped. */
export function copyText(value: string): string {
  // Fast path: most values need no escaping.
  if (!/[\\\t\n\r]/.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}
