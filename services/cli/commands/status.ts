/** `bkstream status`: is the broker up, do the topics exist, is the store reachable and migrated. */
import { Bus } from '../../common/bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig } from '../../common/config.ts';
import { BkError, errorMessage } from '../../common/errors.ts';
import { silentLogger } from '../../common/log.ts';
import { createStore } from '../../common/store/index.ts';
import { loadMigrations } from '../../common/store/migrate.ts';
import { topicPlan } from '../../common/topics.ts';
import type { Command } from '../command.ts';

export const command: Command = {
  summary: 'show whether the broker, topics and store are ready',
  usage: 'bkstream status',
  async run(_args, env) {
    const config = loadConfig(commonSpec, { env });
    const brokers = brokersOrLocal(config.kafkaBrokers, env);
    let ok = true;
    const admin = new Bus({ brokers, clientId: 'bkstream-status', logger: silentLogger, retries: 1, connectionTimeoutMs: 1_000 }).admin();
    try {
      await admin.start();
      const existing = new Set(await admin.listTopics());
      console.log(`kafka     up at ${brokers.join(',')}`);
      for (const p of topicPlan(config.topicPrefix)) {
        const has = existing.has(p.topic);
        ok &&= has;
        console.log(`topic     ${p.topic.padEnd(32)} ${has ? 'ok' : 'MISSING'}`);
      }
    } catch (err) {
      ok = false;
      console.log(`kafka     DOWN at ${brokers.join(',')}: ${errorMessage(err)}`);
    } finally {
      await admin.stop().catch(() => undefined);
    }
    const store = createStore({ databaseUrl: config.databaseUrl, dataDir: `${config.dataDir}/pglite`, logger: silentLogger });
    try {
      await store.start();
      const { rows } = await store.query<{ version: number }>('SELECT version FROM schema_migrations').catch(() => ({ rows: [] as { version: number }[] }));
      const pending = loadMigrations().filter((m) => !rows.some((r) => Number(r.version) === m.version));
      console.log(`store     ${store.driver} ${pending.length === 0 ? 'migrated' : `${pending.length} migration(s) pending`}`);
    } catch (err) {
      if (err instanceof BkError && err.code === 'store_locked') {
        // embedded PGlite is single-process: a running `bkstream up` holds it, which is the healthy case
        console.log(`store     pglite ${err.message.replace(/^the embedded database /, '').replace(/:.*$/, '')}`);
      } else {
        ok = false;
        console.log(`store     DOWN: ${errorMessage(err)}`);
      }
    } finally {
      await store.stop();
    }
    return ok ? 0 : 1;
  },
};
