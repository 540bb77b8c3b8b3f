/**
 * `npm run migrate`: applies pending migrations to the store the environment names (DATABASE_URL, or
 * the embedded PGlite under DATA_DIR) and says what it applied. Idempotent.
 */
import { commonSpec, loadConfig } from '../services/common/config.ts';
import { ConfigError } from '../services/common/errors.ts';
import { createLogger } from '../services/common/log.ts';
import { createStore, redact } from '../services/common/store/index.ts';

async function main(): Promise<void> {
  const config = loadConfig(commonSpec);
  const logger = createLogger({ level: 'warn' });
  const store = createStore({ databaseUrl: config.databaseUrl, dataDir: `${config.dataDir}/pglite`, pgliteSharedBuffers: config.pgliteSharedBuffers, logger });
  await store.start();
  try {
    const result = await store.migrate();
    const where = config.databaseUrl ? redact(config.databaseUrl) : `${config.dataDir}/pglite`;
    console.log(result.applied.length > 0 ? `applied ${result.applied.join(', ')} to ${where}` : `${where} is up to date (${result.skipped.length} migrations)`);
  } finally {
    await store.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`migrate: ${err instanceof ConfigError || err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
