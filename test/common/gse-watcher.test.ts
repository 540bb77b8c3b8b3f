/**
 * The GSE route watcher against the real broker: the table rebuilt from a compacted topic at start (start
 * resolves only once it has it), changes followed afterwards, tombstones removing, malformed records and
 * passwords that do not open skipped and counted, a restart rebuilding the same table.
 * (Changes made through the orchestrator's GSE API reaching a watcher: test/orchestrator/gse-publish.test.ts.)
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { SASL_PASSWD_CONTEXT, routesKey, type RouteDoc, type StreamToDoc } from '../../services/common/gse/records.ts';
import { RouteWatcher } from '../../services/common/gse/watcher.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import { SecretBox } from '../../services/common/secrets.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { brokerKit, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';

const box = new SecretBox(randomBytes(32));

function streamTo(id: number, port: number, extra: Partial<StreamToDoc['kafka']> = {}): StreamToDoc {
  return { stream_to_id: id, name: `kafka-${id}`, report_mode: 'kafka', kafka: { storage_address: [{ ip: '127.0.0.1', port }], ...extra } };
}

function route(channelId: number, ...targets: [number, string, number?][]): RouteDoc {
  return {
    channel_id: channelId,
    plat_name: 'bkmonitor',
    route: targets.map(([id, topic, partition], i) => ({ name: `r${channelId}_${i}`, stream_to: { stream_to_id: id, kafka: { topic_name: topic, ...(partition === undefined ? {} : { partition }) } } })),
  };
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

async function compacted(kit: BrokerKit): Promise<string> {
  const topic = uniqueName('gse-routes');
  await kit.admin.ensureTopics([{ topic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' }]);
  return topic;
}

function watcher(t: { teardown(fn: () => Promise<void>): void }, kit: BrokerKit, topic: string, options: { box?: SecretBox; registry?: Registry } = {}): RouteWatcher {
  const w = new RouteWatcher({ bus: kit.bus, topic, logger: kit.bus.logger, ...options });
  t.teardown(() => w.stop());
  return w;
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return Number(v?.value ?? 0);
}

test('start resolves with every receiver and route of the topic applied; later changes and tombstones follow', async (t) => {
  const kit = await brokerKit(t);
  const topic = await compacted(kit);
  t.teardown(() => kit.admin.deleteTopics([topic]));
  const sealed = box.seal('s3cret', SASL_PASSWD_CONTEXT);
  await kit.produce(topic, [
    { key: routesKey.streamTo(1), value: json(streamTo(1, 9092)) },
    { key: routesKey.streamTo(2), value: json(streamTo(2, 9093, { sasl_username: 'u', sasl_passwd: sealed, sasl_mechanisms: 'SCRAM-SHA-512', security_protocol: 'SASL_SSL' })) },
    { key: routesKey.route(1001), value: json(route(1001, [1, 'a'], [2, 'b', 3])) },
    { key: routesKey.streamTo(1), value: json(streamTo(1, 9094)) },
  ]);
  const w = watcher(t, kit, topic, { box });
  await w.start();
  const table = w.current();
  t.deepEqual(table.receiver(1)?.brokers, ['127.0.0.1:9094'], 'the latest value of a key wins');
  t.deepEqual(table.receiver(2), { streamToId: 2, name: 'kafka-2', brokers: ['127.0.0.1:9093'], ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 's3cret' } });
  t.deepEqual(table.resolve(1001)?.map((x) => [x.receiver.streamToId, x.topic, x.partition]), [[1, 'a', undefined], [2, 'b', 3]]);
  t.is(table.resolve(1002), undefined, 'a data id without a route goes to the default');

  const seen: number[] = [];
  w.onChange((tb) => seen.push(tb.version));
  await kit.produce(topic, [{ key: routesKey.route(1002), value: json(route(1002, [2, 'c'])) }]);
  await waitFor('route 1002', () => w.current().route(1002));
  // emptied (no target left): no route, the default
  await kit.produce(topic, [{ key: routesKey.route(1002), value: json(route(1002)) }]);
  await waitFor('route 1002 emptied', () => w.current().route(1002) === undefined);
  t.is(w.current().resolve(1002), undefined);
  await kit.produce(topic, [{ key: routesKey.route(1002), value: json(route(1002, [2, 'c'])) }]);
  await waitFor('route 1002 again', () => w.current().route(1002));
  await kit.produce(topic, [{ key: routesKey.route(1001), value: null }]);
  await waitFor('route 1001 removed', () => w.current().route(1001) === undefined);
  await kit.produce(topic, [{ key: routesKey.streamTo(2), value: null }]);
  await waitFor('receiver 2 removed', () => w.current().receiver(2) === undefined);
  t.deepEqual(w.current().resolve(1002), [], 'a route whose receiver is gone resolves to nowhere, not the default');
  t.true(seen.length >= 3, 'listeners hear every change');
  t.true(seen.every((v, i) => i === 0 || v > (seen[i - 1] as number)), 'versions only grow');
});

test('malformed records are skipped and counted; a password that does not open leaves the receiver without it', async (t) => {
  const kit = await brokerKit(t);
  const topic = await compacted(kit);
  t.teardown(() => kit.admin.deleteTopics([topic]));
  const other = new SecretBox(randomBytes(32));
  await kit.produce(topic, [
    { key: 'nonsense', value: json({}) },
    { key: routesKey.route(5), value: Buffer.from('{not json') },
    { key: routesKey.route(6), value: json({ channel_id: 7, plat_name: 'x', route: [] }) },
    { key: routesKey.streamTo(3), value: json({ ...streamTo(3, 9092), report_mode: 'redis' }) },
    { key: routesKey.streamTo(4), value: json(streamTo(4, 9092, { sasl_username: 'u', sasl_passwd: other.seal('p', SASL_PASSWD_CONTEXT) })) },
    { key: routesKey.route(8), value: json(route(8, [4, 't'])) },
  ]);
  const registry = createRegistry();
  const w = watcher(t, kit, topic, { box, registry });
  await w.start();
  t.deepEqual(w.current().routes.map((r) => r.channelId), [8]);
  t.deepEqual(w.current().receivers.map((r) => r.streamToId), [4]);
  t.deepEqual(w.current().receiver(4)?.sasl, { mechanism: 'plain', username: 'u', password: '' });
  t.is(await metric(registry, 'bkstream_gse_routes_skipped_total', { reason: 'malformed' }), 4);
  t.is(await metric(registry, 'bkstream_gse_routes_skipped_total', { reason: 'password' }), 1);
  // still following after the bad records
  await kit.produce(topic, [{ key: routesKey.route(9), value: json(route(9, [4, 'u'])) }]);
  await waitFor('route 9', () => w.current().route(9));
  t.pass();
});

test('an empty topic: start resolves with the empty table; a missing topic: start rejects naming it', async (t) => {
  const kit = await brokerKit(t);
  const topic = await compacted(kit);
  t.teardown(() => kit.admin.deleteTopics([topic]));
  const w = watcher(t, kit, topic, { box });
  await w.start();
  t.is(w.current().routes.length + w.current().receivers.length, 0);
  const missing = uniqueName('gse-missing');
  const m = watcher(t, kit, missing, { box });
  const err = await t.throwsAsync(() => m.start());
  t.regex(err?.message ?? '', new RegExp(missing));
});

test('a restarted watcher (and a second one) rebuild the same table from the topic', async (t) => {
  const kit = await brokerKit(t);
  const topic = await compacted(kit);
  t.teardown(() => kit.admin.deleteTopics([topic]));
  await kit.produce(topic, [
    { key: routesKey.streamTo(1), value: json(streamTo(1, 9092)) },
    { key: routesKey.route(1), value: json(route(1, [1, 'x'])) },
    { key: routesKey.route(2), value: json(route(2, [1, 'y'])) },
    { key: routesKey.route(2), value: null },
  ]);
  const w = watcher(t, kit, topic, { box });
  await w.start();
  const first = { receivers: w.current().receivers, routes: w.current().routes };
  const seen: { version: number; routes: number; receivers: number }[] = [];
  w.onChange((tb) => seen.push({ version: tb.version, routes: tb.routes.length, receivers: tb.receivers.length }));
  const before = w.current().version;
  await w.stop();
  await w.stop();
  t.is(w.current().version, before, 'a stopped watcher keeps its table');
  await w.start();
  t.deepEqual({ receivers: w.current().receivers, routes: w.current().routes }, first);
  // rebuilt aside and swapped in whole: one change, a newer version, never a partial table
  t.deepEqual(seen, [{ version: before + 1, routes: 1, receivers: 1 }]);
  const second = watcher(t, kit, topic, { box });
  await second.start();
  t.deepEqual({ receivers: second.current().receivers, routes: second.current().routes }, first);
  t.deepEqual(first.routes.map((r) => r.channelId), [1]);
});

test('stop without start is safe', async (t) => {
  const w = new RouteWatcher({ bus: { follower: () => ({ start: async () => {}, stop: async () => {} }) }, topic: 'x', logger: (await import('../../services/common/log.ts')).silentLogger });
  await w.stop();
  t.is(w.current().version, 0);
});

test('the topic plan (npm run topics, bkstream up) makes gse.routes compacted and leaves the other topics as they were', async (t) => {
  const kit = await brokerKit(t);
  const prefix = uniqueName('plan');
  const plan = topicPlan(prefix);
  t.deepEqual(plan.filter((p) => p.cleanupPolicy).map((p) => [p.topic, p.numPartitions, p.cleanupPolicy]), [[`${prefix}.gse.routes`, 1, 'compact']]);
  const picked = plan.filter((p) => p.topic.endsWith('.gse.routes') || p.topic.endsWith('.dlq'));
  await kit.admin.ensureTopics(picked);
  t.teardown(() => kit.admin.deleteTopics(picked.map((p) => p.topic)));
  t.like(await kit.admin.topicConfig(`${prefix}.gse.routes`, ['cleanup.policy']), { 'cleanup.policy': 'compact' });
  t.like(await kit.admin.topicConfig(`${prefix}.dlq`, ['cleanup.policy', 'retention.ms']), { 'cleanup.policy': 'delete', 'retention.ms': String(336 * 3_600_000) });
});

test('a topic deleted and made again while a watcher follows it is read again from its start', async (t) => {
  const kit = await brokerKit(t);
  const topic = await compacted(kit);
  t.teardown(() => kit.admin.deleteTopics([topic]));
  await kit.produce(topic, [1, 2, 3, 4, 5].map((i) => ({ key: routesKey.route(i), value: json(route(i, [1, `t${i}`])) })));
  const w = watcher(t, kit, topic, { box });
  await w.start();
  t.is(w.current().routes.length, 5);
  await kit.admin.deleteTopics([topic]);
  await waitFor('topic deleted', async () => !(await kit.admin.listTopics()).includes(topic));
  await kit.admin.ensureTopics([{ topic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' }]);
  await kit.produce(topic, [{ key: routesKey.route(7), value: json(route(7, [1, 'new'])) }, { key: routesKey.route(1), value: null }]);
  await waitFor('the new topic\'s records applied', () => w.current().route(7) && !w.current().route(1), 60_000);
  t.deepEqual(w.current().routes.map((r) => r.channelId).sort(), [2, 3, 4, 5, 7]);
});
