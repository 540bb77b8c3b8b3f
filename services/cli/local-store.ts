/**
 * How commands that manage the registry (`bkstream apps`, `bkstream admin`) reach it: the store itself
 * (DATABASE_URL, or the embedded PGlite under DATA_DIR), or — embedded PGlite being single-process —
 * when a running `bkstream up` holds it, that process's collector admin API (COLLECTOR_ADMIN_URL, default
 * http://127.0.0.1:${COLLECTOR_ADMIN_PORT:-4310}), which needs the admin token (credentials.ts).
 */
import { commonSpec, loadConfig } from '../common/config.ts';
import { BkError } from '../common/errors.ts';
import { silentLogger } from '../common/log.ts';
import { createStore, type Store } from '../common/store/index.ts';

export async function withStoreOrAdminApi<T>(env: NodeJS.ProcessEnv, onStore: (store: Store) => Promise<T>, onApi: (adminUrl: string) => Promise<T>): Promise<T> {
  const config = loadConfig(commonSpec, { env });
  const store = createStore({ databaseUrl: config.databaseUrl, dataDir: `${config.dataDir}/pglite`, logger: silentLogger });
  try {
    try {
      await store.start();
    } catch (err) {
      if (!(err instanceof BkError && err.code === 'store_locked')) throw err;
      const url = env.COLLECTOR_ADMIN_URL ?? `http://127.0.0.1:${env.COLLECTOR_ADMIN_PORT ?? '4310'}/`;
      console.error(`${err.message.replace(/:.*$/, '')}; using the running collector's admin API at ${url}`);
      return await onApi(url);
    }
    await store.migrate();
    return await onStore(store);
  } finally {
    await store.stop();
  }
}
