/** What the store offers every service, whichever driver is behind it. */
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';

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

export interface MigrationResult {
  applied: number[];
  skipped: number[];
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
  /**
   * PGlite only: the V8 old-generation limit of its thread's JS heap, MB (unset: V8's default). A
   * statement that needs more (e.g. a huge result) ends the thread: its statements fail as retriable and
   * the next one opens the database in a new thread.
   */
  pgliteHeapLimitMb?: number | undefined;
}
