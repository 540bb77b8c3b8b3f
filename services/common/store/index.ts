/**
 * The store: PostgreSQL through `pg` when a URL is given, embedded PGlite (PostgreSQL in WASM, in a
 * worker thread of this process) otherwise. One SQL dialect and one migration set serve both.
 *
 * Both drivers return `int8` as a JS number (ids and counts here stay far below 2^53), `timestamptz` as
 * Date, `json`/`jsonb` parsed. Multi-row upserts work the same on both with array parameters:
 *   INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::int[]) ON CONFLICT ...
 */
import { PgStore } from './pg.ts';
import { PgliteStore } from './pglite.ts';
import type { Store, StoreOptions } from './types.ts';

export { redact } from './pg.ts';
export { PGLITE_SHARED_BUFFERS_DEFAULT } from './pglite.ts';
export type { MigrationResult, Queryable, QueryResult, Store, StoreOptions } from './types.ts';

export function createStore(options: StoreOptions): Store {
  return options.databaseUrl ? new PgStore(options.databaseUrl, options) : new PgliteStore(options.dataDir ?? './data/pglite', options);
}
