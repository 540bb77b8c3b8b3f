/**
 * The store as services see it at their edges: a connection-level failure (refused, reset, timed out,
 * the server shutting down, the embedded database's thread gone) becomes a
 * {@link DependencyUnavailableError} naming "the database" — retriable as before, so consumers retry
 * and clients get 503 / UNAVAILABLE — whose message carries no address; the driver's error stays its
 * cause, for the logs. Anything else (a constraint violation, a syntax error) passes unchanged.
 */
import { BkError, DependencyUnavailableError, isRetriable } from './errors.ts';
import type { MigrationResult, Queryable, QueryResult, Store } from './store/index.ts';

const GUARDED = Symbol('guarded store');

function translate(err: unknown): unknown {
  if (err instanceof DependencyUnavailableError) return err;
  if (!isRetriable(err)) return err;
  // Our own retriable errors about something else (a breaker, a rate limit) are not the database's.
  if (err instanceof BkError && err.code !== 'unavailable' && !err.code.startsWith('store')) return err;
  return new DependencyUnavailableError('database', { cause: err });
}

async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw translate(err);
  }
}

function guardQueryable(db: Queryable): Queryable {
  return {
    query: <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => guarded(() => db.query<R>(sql, params)),
    exec: (sql: string) => guarded(() => db.exec(sql)),
  };
}

/** The store with its outages named (see the module comment). Idempotent. */
export function guardStore(store: Store): Store {
  if ((store as Store & { [GUARDED]?: true })[GUARDED]) return store;
  const out: Store & { [GUARDED]: true } = {
    [GUARDED]: true,
    name: store.name,
    driver: store.driver,
    start: () => store.start(),
    stop: () => store.stop(),
    query: <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => guarded(() => store.query<R>(sql, params)),
    exec: (sql: string) => guarded(() => store.exec(sql)),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> => guarded(() => store.transaction((tx) => fn(guardQueryable(tx)))),
    migrate: (): Promise<MigrationResult> => store.migrate(),
    ...(store.snapshot ? { snapshot: () => (store.snapshot as () => Promise<Blob>)() } : {}),
  };
  return out;
}
