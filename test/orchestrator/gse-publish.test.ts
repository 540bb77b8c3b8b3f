/**
 * The GSE registry's changes reaching publishers through `<prefix>.gse.routes` (real broker; PGlite and
 * PostgreSQL): every API change shows in a RouteWatcher's table (passwords opened there, sealed on the
 * topic), deletes are tombstones, and an orchestrator's start re-publishes the whole registry (a lost topic
 * is rebuilt) and tombstones keys the store no longer has.
 */
import { RouteWatcher } from '../../services/common/gse/watcher.ts';
import { silentLogger } from '../../services/common/log.ts';
import { generateKey, parseKey, SecretBox } from '../../services/common/secrets.ts';
import { SASL_PASSWD_CONTEXT } from '../../services/common/gse/records.ts';
import { flowTopics, TEST_SECRET_KEY } from './kit.ts';
import { storageAddressOf } from '../../services/orchestrator/gse/registry.ts';
import { brokerKit, brokers, waitFor } from '../helpers/kafka.ts';
import { pgliteStore, storeContract } from '../helpers/store.ts';
import test from 'ava';
import { addRouteBody, addStreamToBody, gseSetup, routesTopicOf, testBox, type GseUnderTest } from './gse-kit.ts';
import type { ExecutionContext } from 'ava';
import type { FollowedRecord } from '../../services/common/bus/index.ts';

const op = { operator_name: 'admin' };

function watcherOf(t: ExecutionContext, gse: GseUnderTest): RouteWatcher {
  const w = new RouteWatcher({ bus: gse.kit.bus, topic: gse.routesTopic, box: testBox(), logger: silentLogger });
  t.teardown(() => w.stop());
  return w;
}

async function data<T>(gse: GseUnderTest, ...args: Parameters<GseUnderTest['call']>): Promise<T> {
  const reply = await gse.call(...args);
  if (!reply.body.result) throw new Error(`${args[1]}: ${reply.body.message}`);
  return reply.body.data as T;
}

/** Every record of the topic, raw. */
async function topicRecords(gse: GseUnderTest): Promise<FollowedRecord[]> {
  const out: FollowedRecord[] = [];
  const f = gse.kit.bus.follower({ topic: gse.routesTopic, onRecords: (rs) => void out.push(...rs) });
  await f.start();
  await f.stop();
  return out;
}

storeContract('every change made through the API reaches a watcher: receivers with their passwords opened, routes, tombstones on delete', async (t, store) => {
  const gse = await gseSetup(t, store);
  const w = watcherOf(t, gse);
  await w.start();
  // the default install: the bkstream receiver (the bus's brokers), no routes
  const bkstream = await waitFor('the default receiver', () => w.current().receivers.find((r) => r.name === 'bkstream'));
  t.deepEqual(bkstream.brokers, brokers().map((b) => { const a = storageAddressOf(b); return `${a.ip}:${a.port}`; }));
  t.is(w.current().resolve(1_500_001), undefined, 'a data id without a route: the publisher\'s default');

  const s = (await data<{ stream_to_id: number }>(gse, 'esb', 'add_streamto', addStreamToBody('second', { port: 29092, username: 'writer', password: 'pw-1' }))).stream_to_id;
  await waitFor('receiver with its password', () => w.current().receiver(s)?.sasl?.password === 'pw-1');
  t.deepEqual(w.current().receiver(s), { streamToId: s, name: 'second', brokers: ['127.0.0.1:29092'], ssl: false, sasl: { mechanism: 'scram-sha-512', username: 'writer', password: 'pw-1' } });

  await data(gse, 'apigw', 'add_route', addRouteBody(1_500_001, s, 'routed'));
  await waitFor('route 1500001', () => w.current().route(1_500_001));
  t.deepEqual(w.current().resolve(1_500_001)?.map((x) => [x.receiver.name, x.topic, x.partition]), [['second', 'routed', undefined]]);

  // a second target on the default receiver, with a partition: both clusters at once
  await data(gse, 'esb', 'update_route', { condition: { channel_id: 1_500_001, plat_name: 'bkmonitor' }, operation: op, specification: { route: [{ name: 'copy', stream_to: { stream_to_id: bkstream.streamToId, kafka: { topic_name: 'copy', partition: 1 } } }] } });
  await waitFor('two targets', () => w.current().route(1_500_001)?.targets.length === 2);
  t.deepEqual(w.current().resolve(1_500_001)?.map((x) => [x.receiver.name, x.topic, x.partition]), [['second', 'routed', undefined], ['bkstream', 'copy', 1]]);

  await data(gse, 'apigw', 'update_streamto', { condition: { stream_to_id: s, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: { name: 'second', report_mode: 'kafka', kafka: { storage_address: [{ ip: '127.0.0.1', port: 29093 }], sasl_username: 'writer', sasl_passwd: 'pw-2' } } } });
  await waitFor('new address and password', () => w.current().receiver(s)?.brokers[0] === '127.0.0.1:29093' && w.current().receiver(s)?.sasl?.password === 'pw-2');

  await data(gse, 'esb', 'delete_route', { condition: { channel_id: 1_500_001, plat_name: 'bkmonitor' }, operation: { operator_name: 'admin', method: 'all' } });
  await waitFor('route removed', () => w.current().route(1_500_001) === undefined);
  await data(gse, 'apigw', 'delete_streamto', { condition: { stream_to_id: s, plat_name: 'bkmonitor' }, operation: op });
  await waitFor('receiver removed', () => w.current().receiver(s) === undefined);

  // on the topic: passwords only sealed; the deletes are tombstones
  const records = await topicRecords(gse);
  const text = records.map((r) => r.value?.toString('utf8') ?? '').join('\n');
  t.false(text.includes('pw-1') || text.includes('pw-2'), 'no plain password on the topic');
  t.regex(text, /"sasl_passwd":"enc:v1:/);
  t.deepEqual(records.filter((r) => r.value === null).map((r) => r.key?.toString()), ['route:1500001', `stream_to:${s}`]);
  t.is(await gse.orch.gse.ensureDefault(brokers(), 'admin'), bkstream.streamToId, 'the default receiver is not made twice');
});

storeContract('an orchestrator start re-publishes the whole registry onto a lost topic and tombstones keys the store no longer has', async (t, store) => {
  const first = await gseSetup(t, store);
  const s = (await data<{ stream_to_id: number }>(first, 'esb', 'add_streamto', addStreamToBody('kept', { username: 'u', password: 'secret-pw' }))).stream_to_id;
  await data(first, 'esb', 'add_route', addRouteBody(1_500_010, s, 'kept-topic'));
  await first.orch.stop();

  // the topic is lost (deleted and made again, empty), and holds a route the store never had
  await first.kit.admin.deleteTopics([first.routesTopic]);
  await waitFor('topic deleted', async () => !(await first.kit.admin.listTopics()).includes(first.routesTopic));
  await routesTopicOf(t, first.kit, first.prefix);
  await first.kit.produce(first.routesTopic, [{ key: 'route:4242', value: Buffer.from(JSON.stringify({ channel_id: 4242, plat_name: 'bkmonitor', route: [{ name: 'x', stream_to: { stream_to_id: s, kafka: { topic_name: 'gone' } } }] })) }]);

  const second = await gseSetup(t, store, { kit: first.kit, prefix: first.prefix });
  const w = watcherOf(t, second);
  await w.start();
  await waitFor('the registry re-published', () => w.current().route(1_500_010) && w.current().receiver(s)?.sasl?.password === 'secret-pw' && w.current().route(4242) === undefined);
  t.deepEqual(w.current().resolve(1_500_010)?.map((x) => [x.receiver.name, x.topic]), [['kept', 'kept-topic']]);
  t.deepEqual(w.current().receivers.map((r) => r.name).sort(), ['bkstream', 'kept']);
  const tombstones = (await topicRecords(second)).filter((r) => r.value === null).map((r) => r.key?.toString());
  t.deepEqual(tombstones, ['route:4242']);
  // a restarted watcher rebuilds the same table from the topic
  const again = watcherOf(t, second);
  await again.start();
  t.deepEqual(again.current().routes, w.current().routes);
  t.deepEqual(again.current().receivers, w.current().receivers);
});

storeContract('a key rotation: the next start reseals receiver passwords with the new key and re-publishes them', async (t, store) => {
  const first = await gseSetup(t, store);
  const s = (await data<{ stream_to_id: number }>(first, 'esb', 'add_streamto', addStreamToBody('rotated', { username: 'u', password: 'rot-pw' }))).stream_to_id;
  await first.orch.stop();
  const newKey = generateKey();
  const second = await gseSetup(t, store, { kit: first.kit, prefix: first.prefix, env: { BKSTREAM_SECRET_KEY: newKey, BKSTREAM_SECRET_KEY_PREVIOUS: TEST_SECRET_KEY } });
  const newBox = new SecretBox(parseKey(newKey));
  const sealed = (await store.query<{ sasl_passwd: string }>('SELECT sasl_passwd FROM gse_stream_to WHERE stream_to_id = $1', [s])).rows[0]?.sasl_passwd ?? '';
  t.true(newBox.current(sealed), 'sealed with the new key');
  t.is(newBox.open(sealed, SASL_PASSWD_CONTEXT), 'rot-pw');
  // a watcher with only the new key opens what is on the topic now
  const w = new RouteWatcher({ bus: second.kit.bus, topic: second.routesTopic, box: newBox, logger: silentLogger });
  t.teardown(() => w.stop());
  await w.start();
  await waitFor('the resealed password on the topic', () => w.current().receiver(s)?.sasl?.password === 'rot-pw');
  t.pass();
});

test.serial('without its topic the GSE publisher waits in the background: readiness is the flows\' alone, /healthz names the missing topic, changes wait in the store', async (t) => {
  const kit = await brokerKit(t);
  const prefix = await flowTopics(t, kit); // the flow topics only
  const store = await pgliteStore(t, { migrated: true });
  const gse = await gseSetup(t, store, { kit, prefix });
  const healthz = `http://127.0.0.1:${gse.orch.httpPort()}/healthz`;
  const body = await waitFor('ready', async () => {
    const res = await fetch(healthz);
    const b = (await res.json()) as { checks: { gse_routes: string; kafka: string } };
    return res.status === 200 && /gse\.routes/.test(b.checks.gse_routes) ? b : undefined;
  });
  t.regex(body.checks.gse_routes, new RegExp(`${prefix}\\.gse\\.routes`));
  const added = await gse.call('esb', 'add_streamto', addStreamToBody('waiting'));
  t.true(added.body.result, 'the API answers');
  const pending = await store.query<{ key: string }>('SELECT key FROM gse_routes_pending ORDER BY key');
  t.true(pending.rows.some((r) => r.key === `stream_to:${(added.body.data as { stream_to_id: number }).stream_to_id}`), 'the change waits to be published');
  // the topic appears: everything goes out
  await routesTopicOf(t, kit, prefix);
  const w = watcherOf(t, gse);
  await waitFor('the publisher started', async () => ((await (await fetch(healthz)).json()) as { checks: { gse_routes: string } }).checks.gse_routes === 'publishing', 60_000);
  await w.start();
  await waitFor('the waiting change on the topic', () => w.current().receivers.some((r) => r.name === 'waiting'), 30_000);
  // the pending mark is cleared after the produce is acknowledged, so the watcher may see the record first
  await waitFor('the pending mark cleared', async () => (await store.query('SELECT key FROM gse_routes_pending')).rows.length === 0, 30_000);
  t.pass();
});
