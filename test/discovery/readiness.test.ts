/**
 * Health that tells the truth (issue 16), for discovery: readiness turns 503 within 5 s of losing the
 * broker or the database and 200 within 5 s of their return; liveness stays 200; the query API answers
 * 503 "the database is unavailable" (no address) during a database outage; the service comes up and
 * serves its API while the broker is down.
 */
import test from 'ava';
import { Bus } from '../../services/common/bus/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { createDiscovery, type DiscoveryService } from '../../services/discovery/service.ts';
import { uniqueName } from '../helpers/kafka.ts';
import { ADMIN_ENV, bearer } from '../common/auth-kit.ts';
import { FLIP_LIMIT_MS, measureFlips, ownBroker, proxiedDatabase, readyStatus } from '../common/fault-kit.ts';
import { timeUntil } from '../common/http-kit.ts';
import { TEST_ENV } from './helpers.ts';

async function discoveryOn(t: Parameters<typeof ownBroker>[0], brokers: string[], store: Store, prefix: string): Promise<{ service: DiscoveryService; url: string }> {
  const env: NodeJS.ProcessEnv = {
    ...TEST_ENV,
    ...ADMIN_ENV,
    KAFKA_BROKERS: brokers.join(','),
    TOPIC_PREFIX: prefix,
    DISCOVERY_GROUP_ID: `${prefix}-g`,
    DISCOVERY_REPLAY_GROUP_ID: `${prefix}-replay`,
    DISCOVERY_EVENTS_GROUP_ID: `${prefix}-events`,
  };
  const registry = createRegistry();
  const bus = new Bus({ brokers, clientId: uniqueName('disc-fault'), logger: silentLogger, registry, retries: 2 });
  const service = await createDiscovery({ env, logger: silentLogger, registry, store, bus, common: loadConfig(commonSpec, { env }) });
  t.teardown(() => service.stop());
  await service.start();
  // The query API answers for registered applications only.
  await store.query("INSERT INTO apm_application (bk_biz_id, app_name) VALUES (2, 'shop') ON CONFLICT DO NOTHING");
  return { service, url: `http://127.0.0.1:${service.http.port()}` };
}

test('readiness follows the broker and the database within 5 s both ways; the API names the outage', async (t) => {
  t.timeout(300_000);
  const broker = await ownBroker(t);
  const db = await proxiedDatabase(t);
  const prefix = uniqueName('disc-ready');
  await broker.ensureTopics(topicPlan(prefix).filter((p) => /\.(spans|spans\.replay|events|dlq)$/.test(p.topic)).map((p) => ({ topic: p.topic, numPartitions: 1 })));
  const { service, url } = await discoveryOn(t, broker.brokers, db.store, prefix);
  await timeUntil('the consumers to join', async () => service.consumers.every((c) => c.joined()), 60_000);

  const kafka = await measureFlips(url, () => broker.stop(), () => broker.start());
  t.log(`broker: not ready after ${kafka.downMs} ms, ready again ${kafka.upMs} ms after it was back`);
  t.true(kafka.downMs <= FLIP_LIMIT_MS, `readiness turned 503 ${kafka.downMs} ms after the broker stopped`);
  t.true(kafka.upMs <= FLIP_LIMIT_MS, `readiness turned 200 ${kafka.upMs} ms after the broker was back`);
  // Readiness does not wait for the consumer groups; the test does, before it stops the service: kafkajs
  // cannot stop a consumer in the middle of a join (it waits for the old members' session timeout).
  const admin = new Bus({ brokers: broker.brokers, clientId: uniqueName('disc-groups'), logger: silentLogger }).admin();
  await admin.start();
  t.teardown(() => admin.stop());
  await timeUntil('the consumer groups to be stable again', async () => {
    for (const group of [`${prefix}-g`, `${prefix}-replay`, `${prefix}-events`]) if ((await admin.describeGroup(group)) !== 'Stable') return false;
    return true;
  }, 120_000);

  let during: { status: number; body: string; live: number } | undefined;
  const database = await measureFlips(url, () => db.proxy.stop(), async () => {
    const res = await fetch(`${url}/api/v1/apps/2/shop/endpoints`, { headers: bearer() });
    during = { status: res.status, body: await res.text(), live: (await fetch(`${url}/livez`)).status };
    await db.proxy.start();
  });
  t.log(`database: not ready after ${database.downMs} ms, ready again ${database.upMs} ms after it was back`);
  t.true(database.downMs <= FLIP_LIMIT_MS, `readiness turned 503 ${database.downMs} ms after the database went away`);
  t.true(database.upMs <= FLIP_LIMIT_MS, `readiness turned 200 ${database.upMs} ms after the database was back`);
  if (!during) throw new Error('no observation during the outage');
  t.is(during.live, 200);
  t.is(during.status, 503);
  t.is((JSON.parse(during.body) as { error: string }).error, 'the database is unavailable');
  t.notRegex(during.body, /127\.0\.0\.1|ECONN|\.ts:\d+/, 'no address, driver message or stack');
  t.is((await fetch(`${url}/api/v1/apps/2/shop/endpoints`, { headers: bearer() })).status, 200, 'the API answers again');
});

test('discovery comes up while the broker is down: its API answers, readiness is 503 until the broker is there', async (t) => {
  t.timeout(300_000);
  const broker = await ownBroker(t);
  const db = await proxiedDatabase(t);
  const prefix = uniqueName('disc-late');
  await broker.ensureTopics(topicPlan(prefix).filter((p) => /\.(spans|spans\.replay|events|dlq)$/.test(p.topic)).map((p) => ({ topic: p.topic, numPartitions: 1 })));
  await broker.stop();
  const started = Date.now();
  const { service, url } = await discoveryOn(t, broker.brokers, db.store, prefix);
  t.true(Date.now() - started < 10_000, `started without the broker in ${Date.now() - started} ms`);
  t.is((await fetch(`${url}/livez`)).status, 200);
  t.is(await readyStatus(url), 503);
  t.is((await fetch(`${url}/api/v1/apps/2/shop/endpoints`, { headers: bearer() })).status, 200, 'the query API needs no broker');
  await broker.start();
  await timeUntil('readiness once the broker is up', async () => (await readyStatus(url)) === 200, 30_000);
  await timeUntil('the consumers to join', async () => service.consumers.every((c) => c.joined()), 120_000);
  t.pass();
});
