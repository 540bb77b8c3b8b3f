/**
 * The store: PostgreSQL through `pg` when a URL is given, embedded PGlite (PostgreSQL in WASM,
 * in-process) otherwise. One SQL dialect and one migration set serve both.
 *
 * Both drivers return `int8` as a JS number (ids and counts here stay far below 2^53), `timestamptz` as
 * Date, `json`/`jsonb` parsed. Multi-row upserts work the same on both with array parameters:
 *   INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::int[]) ON CONFLICT ...
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { BkError, UnavailableError } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { migrate, type MigrationResult } from './migrate.ts';

export interface QueryResult<R> {
  rows: R[];
  /** Rows returned, inserted, updated or deleted. */
  rowCount: number;
}

export interface Queryable {
  /** One statement with `$1`-style parameters. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Store extends Queryable, Component {
  readonly driver: 'pg' | 'pglite';
  /** Runs `fn` in a transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Applies pending migrations (idempotent). */
  migrate(): Promise<MigrationResult>;
  /** PGlite only: a dump of the data directory, for {@link StoreOptions.pgliteSnapshot}. */
  snapshot?(): Promise<Blob>;
}

export interface StoreOptions {
  /** `postgres://…`; unset → PGlite. */
  databaseUrl?: string | undefined;
  /** PGlite directory; `memory://` keeps it in memory. Default `./data/pglite`. */
  dataDir?: string;
  logger: Logger;
  /** pg pool size. Default 10. */
  poolSize?: number;
  /** PGlite only: start from this data-directory dump instead of running initdb (seconds faster). */
  pgliteSnapshot?: Blob;
  /**
   * PGlite only: PostgreSQL's `shared_buffers` (e.g. `32MB`). Default 32MB instead of PostgreSQL's
   * 128MB: PGlite's buffer pool lives in the process's WASM memory, which never shrinks, and our tables
   * are small; 128MB cost ~170 MB of RSS under discovery's write load for no measured speed.
   */
  pgliteSharedBuffers?: string;
}

export const PGLITE_SHARED_BUFFERS_DEFAULT = '32MB';

const INT8 = 20;

export function createStore(options: StoreOptions): Store {
  return options.databaseUrl ? new PgStore(options.databaseUrl, options) : new PgliteStore(options.dataDir ?? './data/pglite', options);
}

// ---------------------------------------------------------------------------------------------------------

class PgStore implements Store {
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
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  migrate(): Promise<MigrationResult> {
    return migrate(this, this.#log);
  }
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Embedded PGlite runs each query synchronously in WebAssembly and, left alone, starts the next queued
 * query as soon as one ends without giving the event loop a turn: with queries arriving from several
 * components at once, timers, sockets and Kafka heartbeats starve (measured: a 10 ms interval did not
 * fire once in 4 s of 64 concurrent query loops, and a consumer group dropped its member). So every
 * statement, script and transaction here runs through one gate that yields to the event loop first.
 */
class PgliteStore implements Store {
  readonly name = 'store:pglite';
  readonly driver = 'pglite' as const;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #snapshot: Blob | undefined;
  readonly #sharedBuffers: string;
  #db: PGlite | undefined;
  #opening: Promise<PGlite> | undefined;
  #tail: Promise<void> = Promise.resolve();

  /** Runs `fn` after every earlier gated call, one at a time, after a turn of the event loop. */
  async #gate<T>(fn: (db: PGlite) => Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      await yieldToEventLoop();
      return await fn(this.#db ?? (await this.#open()));
    } finally {
      release();
    }
  }

  constructor(dir: string, options: StoreOptions) {
    this.#dir = dir;
    this.#snapshot = options.pgliteSnapshot;
    this.#sharedBuffers = options.pgliteSharedBuffers ?? PGLITE_SHARED_BUFFERS_DEFAULT;
    this.#log = options.logger.child({ component: 'store', driver: 'pglite' });
  }

  #open(): Promise<PGlite> {
    this.#opening ??= (async () => {
      if (!this.#dir.startsWith('memory://')) {
        mkdirSync(this.#dir, { recursive: true });
        lockDir(this.#dir);
      }
      const db = await PGlite.create(this.#dir, {
        parsers: { [INT8]: (v: string) => Number(v) },
        startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${this.#sharedBuffers}`],
        ...(this.#snapshot ? { loadDataDir: this.#snapshot } : {}),
      });
      this.#db = db;
      this.#log.info('opened', { dir: this.#dir });
      return db;
    })();
    return this.#opening;
  }

  async start(): Promise<void> {
    await this.#open();
  }

  /** Closes the database; PGlite keeps the event loop alive until then. */
  async stop(): Promise<void> {
    const opening = this.#opening;
    this.#opening = undefined;
    if (!opening) return;
    const db = await opening.catch(() => undefined); // an open that failed (e.g. locked) left nothing to close
    this.#db = undefined;
    if (!db) return;
    if (!db.closed) await db.close();
    if (!this.#dir.startsWith('memory://')) unlockDir(this.#dir);
  }

  query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.#gate(async (db) => {
      const res = await db.query<R>(sql, params as unknown[] | undefined);
      return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
    });
  }

  exec(sql: string): Promise<void> {
    return this.#gate(async (db) => {
      await db.exec(sql);
    });
  }

  /** The whole transaction holds the gate (its own statements run inside it). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#gate((db) =>
      db.transaction(async (t) =>
        fn({
          query: async <R>(sql: string, params?: readonly unknown[]) => {
            const res = await t.query<R>(sql, params as unknown[] | undefined);
            return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
          },
          exec: async (sql) => {
            await t.exec(sql);
          },
        }),
      ),
    );
  }

  migrate(): Promise<MigrationResult> {
    return migrate(this, this.#log);
  }

  snapshot(): Promise<Blob> {
    return this.#gate((db) => db.dumpDataDir('none'));
  }
}

/**
 * PGlite is an embedded, single-process database: two processes opening one directory corrupt it. A
 * `<dir>.lock` file holding the owner's pid keeps a second process out (a stale lock of a dead process
 * is taken over).
 */
function lockDir(dir: string): void {
  const lock = `${dir.replace(/\/+$/, '')}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lock, 'utf8').trim());
      if (owner === process.pid || !pidAlive(owner)) {
        rmSync(lock, { force: true });
        continue;
      }
      throw new BkError(
        'store_locked',
        `the embedded database ${dir} is in use by process ${owner} (bkstream up?): stop it, or use PostgreSQL with DATABASE_URL`,
        false,
      );
    }
  }
}

function unlockDir(dir: string): void {
  const lock = `${dir.replace(/\/+$/, '')}.lock`;
  try {
    if (Number(readFileSync(lock, 'utf8').trim()) === process.pid) rmSync(lock, { force: true });
  } catch {
    // already gone
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
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
