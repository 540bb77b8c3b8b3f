/**
 * Creates the topics of the README's "Topics and records" table that do not exist yet, with partitions and retention from config
 * (TOPIC_PREFIX, TOPIC_<NAME>_PARTITIONS, TOPIC_<NAME>_RETENTION_HOURS), on KAFKA_BROKERS or the local broker.
 *
 *   node scripts/topics.ts            create missing topics
 *   node scripts/topics.ts --check    exit 1 naming every missing topic
 */
import { Bus } from '../services/common/bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig } from '../services/common/config.ts';
import { ConfigError } from '../services/common/errors.ts';
import { createLogger } from '../services/common/log.ts';
import { topicPlan, topicsSpec } from '../services/common/topics.ts';
import { ensureTopics } from '../services/cli/topics.ts';
import { installWarningFilter } from '../services/common/process.ts';

async function main(): Promise<void> {
  const config = loadConfig({ ...commonSpec, ...topicsSpec });
  const brokers = brokersOrLocal(config.kafkaBrokers);
  if (process.argv.includes('--check')) {
    const bus = new Bus({ brokers, clientId: 'bkstream-topics', logger: createLogger({ level: 'warn' }) });
    const admin = bus.admin();
    await admin.start();
    try {
      await admin.checkTopics(topicPlan(config.topicPrefix).map((p) => p.topic));
    } finally {
      await admin.stop();
    }
    return;
  }
  const created = await ensureTopics(brokers, config.topicPrefix, config);
  if (created.length > 0) console.log(`created ${created.join(', ')}`);
}

if (import.meta.main) {
  installWarningFilter();
  main().catch((err: unknown) => {
    console.error(`topics: ${err instanceof ConfigError || err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
