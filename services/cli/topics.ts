/** Creating the topics of the README's table when missing (`bkstream up`, `npm run topics`). */
import { topicPlan } from '../common/topics.ts';
import { cliBus } from './broker.ts';

/**
 * Creates the topics that do not exist yet (partitions and retention from `config`); returns the names
 * created. A broker that does not answer is one line (UnavailableError) within seconds, without kafkajs's
 * logs.
 */
export async function ensureTopics(brokers: string[], prefix: string, config?: Record<string, unknown>): Promise<string[]> {
  const admin = (await cliBus(brokers, 'bkstream-topics')).admin();
  await admin.start();
  try {
    return await admin.ensureTopics(topicPlan(prefix, config));
  } finally {
    await admin.stop();
  }
}
