/**
 * Across services: the agent's static host event, published to `<prefix>.events`, makes a cmdb_host row
 * appear through the running discovery service (its events consumer group).
 */
import test from 'ava';
import { brokerKit, brokers, waitFor } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { discoveryTopics, startDiscovery } from '../discovery/helpers.ts';
import { tempDir } from './kit.ts';
import { exampleConfig, startAgent } from './service-kit.ts';

test('a static event of the agent becomes a cmdb_host row in discovery', async (t) => {
  t.timeout(180_000);
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit, 1);
  const metricsTopic = `${where.prefix}.metrics`;
  await kit.admin.ensureTopics([{ topic: metricsTopic, numPartitions: 1, retentionMs: 3_600_000 }]);
  t.teardown(() => kit.admin.deleteTopics([metricsTopic]));
  await startDiscovery(t, kit, store, where);
  const { main } = exampleConfig(t, { periodSeconds: 10 });
  await startAgent(t, { main, brokers: brokers(), prefix: where.prefix, stateDir: tempDir(t), env: { AGENT_HOST_IP: '10.9.8.7' } });
  const row = await waitFor('the cmdb_host row', async () => {
    const { rows } = await store.query<{ bk_biz_id: number; bk_cloud_id: number; ip: string; hostname: string }>("SELECT bk_biz_id, bk_cloud_id, ip, hostname FROM cmdb_host WHERE ip = '10.9.8.7'");
    return rows[0];
  }, 120_000, 200);
  t.is(Number(row.bk_biz_id), 2);
  t.is(Number(row.bk_cloud_id), 0);
  t.truthy(row.hostname);
});
