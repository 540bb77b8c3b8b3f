/** Creating the topics of the README's table when missing (`bkstream up`, `npm run topics`). */
import { Bus } from '../common/bus/index.ts';
import { createLogger } from '../common/log.ts';
import { topicPlan } from '../common/topics.ts';

/** Creates the topics that do not exist yet (partitions and retention from `config`); returns the names created. */
export async function ensureTopics(brokers: string[], prefix: string, config?: Record<string, unknown>): Promise<string[]> {
  const bus = new Bus({ brokers, clientId: 'bkstream-topics', logger: createLogger({ level: 'warn' }) });
  const admin = bus.admin();
  await admin.start();
  try {
    return await admin.ensureTopics(topicPlan(prefix, config));
  } finally {
    await admin.stop();
  }
}
