/**
 * Store test kit: one ava macro runs the same contract against embedded PGlite and the PostgreSQL server
 * (a fresh database per test, dropped in teardown). TEST_DATABASE_URL names the server's admin database
 * (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '../../services/common/log.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';

export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type Driver = 'pglite' | 'pg';
export const DRIVERS: readonly Driver[] = ['pglite', 'pg'];

// initdb inside PGlite takes seconds; every PGlite of a test process is cloned from one dump instead.
const templates = new Map<string, Promise<Blob>>();
function pgliteTemplate(migrated: boolean): Promise<Blob> {
  const key = migrated ? 'migrated' : 'empty';
  let tpl = templates.get(key);
  if (!tpl) {
    tpl = (async () => {
      const store = createStore({ dataDir: 'memory://', logger: silentLogger });
      try {
        if (migrated) await store.migrate();
        return await (store.snapshot as () => Promise<Blob>)();
      } finally {
        await store.stop();
      }
    })();
    templates.set(key, tpl);
  }
  return tpl;
}

/** An in-memory PGlite store (empty, or with every migration applied), closed in teardown. */
export async function pgliteStore(t: ExecutionContext, options: { migrated?: boolean } = {}): Promise<Store> {
  const store = createStore({ dataDir: 'memory://', logger: silentLogger, pgliteSnapshot: await pgliteTemplate(options.migrated ?? false) });
  await store.start();
  t.teardown(() => store.stop());
  return store;
}

/** A fresh, empty store of the given driver (not migrated), closed and dropped in teardown. */
export async function freshStore(t: ExecutionContext, driver: Driver): Promise<Store> {
  if (driver === 'pglite') return pgliteStore(t);
  const store = createStore({ databaseUrl: await freshDatabase(t), logger: silentLogger, poolSize: 4 });
  await store.start();
  t.teardown(() => store.stop());
  return store;
}

/** Creates an empty PostgreSQL database for one test and returns its URL; dropped in teardown. */
export async function freshDatabase(t: ExecutionContext): Promise<string> {
  const dbName = `bkstream_test_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = createStore({ databaseUrl: adminUrl, logger: silentLogger, poolSize: 1 });
  try {
    await admin.start();
    await admin.exec(`CREATE DATABASE ${dbName}`);
  } catch (err) {
    await admin.stop();
    throw new Error(`PostgreSQL at ${adminUrl} is needed for the pg half of the store contract: ${(err as Error).message}`);
  }
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  // Registered first, so it runs after the teardowns of the stores using the database.
  t.teardown(async () => {
    await admin.exec(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.stop();
  });
  return url.toString();
}

/**
 * Registers `title [pglite]` and `title [pg]`, each with a fresh migrated store. Serial: PGlite is
 * CPU-bound WASM, and running several at once only starves the event loop.
 */
export function storeContract(title: string, fn: (t: ExecutionContext, store: Store) => Promise<void>, options: { migrate?: boolean } = {}): void {
  for (const driver of DRIVERS) {
    test.serial(`${title} [${driver}]`, async (t) => {
      const store = await freshStore(t, driver);
      if (options.migrate !== false) await store.migrate();
      await fn(t, store);
    });
  }
}
