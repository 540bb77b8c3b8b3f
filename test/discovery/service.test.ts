/**
 * The discovery service against the real broker and store: spans in → rows out, the query API, dead
 * letters, cmdb hosts from agent events, replay, several instances in one group, and a crash before
 * the commit (a real process killed with SIGKILL, PostgreSQL as the shared store).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { DLQ_HEADERS, rawDecoder, type ConsumedRecord } from '../../services/common/bus/index.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import type { Span } from '../../services/common/records.ts';
import { createStore } from '../../services/common/store/index.ts';
import { traces } from '../../bench/discovery-mix.ts';
import { brokerKit, brokers, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { sampleAgentEvent } from '../helpers/records.ts';
import { freshDatabase, pgliteStore } from '../helpers/store.ts';
import { count, discoveryTopics, produceSpans, span, startDiscovery, tableRows, T0, type Running } from './helpers.ts';
import { TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';

const TABLES = ['apm_endpoint', 'apm_host_instance', 'apm_topo_instance', 'apm_topo_node', 'apm_topo_relation', 'apm_remote_service_relation', 'apm_root_endpoint'];

/** One trace touching every discoverer: http entry → http call → server with a DB call, a kafka hop and a call to an external service. */
function shopTrace(trace: string, at: number): Span[] {
  const res = (svc: string, host: string): Span['resource'] => ({ 'service.name': svc, 'net.host.ip': host, 'bk.instance.id': `go:${svc}:${host}`, 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.language': 'go', 'telemetry.sdk.version': '1.28.0' });
  const t = (offsetUs: number): Pick<Span, 'start_time' | 'end_time' | 'elapsed_time'> => ({ start_time: at + offsetUs, end_time: at + offsetUs + 1_000, elapsed_time: 1_000 });
  const entry = span({ trace_id: trace, kind: 2, span_name: 'GET /checkout', attributes: { 'http.method': 'GET' }, resource: res('gateway', '10.0.0.1'), ...t(0) });
  const call = span({ trace_id: trace, kind: 3, parent_span_id: entry.span_id, span_name: 'POST /orders', attributes: { 'http.method': 'POST' }, resource: res('gateway', '10.0.0.1'), ...t(10) });
  const server = span({ trace_id: trace, kind: 2, parent_span_id: call.span_id, span_name: 'POST /orders', attributes: { 'http.method': 'POST' }, resource: res('order-svc', '10.0.0.2'), ...t(20) });
  const db = span({ trace_id: trace, kind: 3, parent_span_id: server.span_id, span_name: 'INSERT orders', attributes: { 'db.system': 'mysql', 'net.peer.name': 'db.local', 'net.peer.port': 3306 }, resource: res('order-svc', '10.0.0.2'), ...t(30) });
  const produce = span({ trace_id: trace, kind: 4, parent_span_id: server.span_id, span_name: 'orders publish', attributes: { 'messaging.system': 'kafka', 'messaging.destination': 'orders' }, resource: res('order-svc', '10.0.0.2'), ...t(40) });
  const consume = span({ trace_id: trace, kind: 5, parent_span_id: produce.span_id, span_name: 'orders process', attributes: { 'messaging.destination': 'orders' }, resource: res('billing', '10.0.0.3'), ...t(50) });
  const external = span({ trace_id: trace, kind: 3, parent_span_id: entry.span_id, span_name: 'POST /charge', attributes: { 'http.method': 'POST', 'peer.service': 'payment-gw' }, resource: res('gateway', '10.0.0.1'), ...t(60) });
  return [entry, call, server, db, produce, consume, external];
}

/** Every record of the topic is committed by the group (so flushed, with its window entries settled). */
async function lagIs0(kit: BrokerKit, group: string, topic: string): Promise<boolean> {
  return (await kit.admin.groupLag(group, topic)) === 0;
}

async function get(run: Running, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  // The query API needs credentials (SECURITY.md): the admin token the kit configures.
  const res = await fetch(run.url(path), { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text } };
}

test.serial('spans produced to `spans` become rows in every table, and the query API lists them', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit);
  const run = await startDiscovery(t, kit, store, where);
  const at = Date.now() * 1000 - 3_600_000_000; // an hour ago: inside every retention window
  await produceSpans(kit, where.topics.spans, [...shopTrace('a1'.repeat(16), at), ...shopTrace('a2'.repeat(16), at + 5_000)]);
  await waitFor('every offset committed', () => lagIs0(kit, `${where.prefix}-g`, where.topics.spans), 60_000);
  for (const table of TABLES) t.true((await count(store, table)) > 0, table);

  const relations = await tableRows(store, 'apm_topo_relation', ['bk_biz_id', 'app_name', 'first_seen', 'last_seen']);
  for (const r of [
    { from_topo_key: 'gateway', to_topo_key: 'order-svc', kind: 'sync', to_topo_key_kind: 'service', to_topo_key_category: 'http' },
    { from_topo_key: 'order-svc', to_topo_key: 'order-svc-mysql', kind: 'sync', to_topo_key_kind: 'component', to_topo_key_category: 'db' },
    { from_topo_key: 'order-svc', to_topo_key: 'order-svc-kafka', kind: 'async', to_topo_key_kind: 'component', to_topo_key_category: 'messaging' },
    { from_topo_key: 'order-svc-kafka', to_topo_key: 'billing', kind: 'async', to_topo_key_kind: 'service', to_topo_key_category: 'async_backend' },
    { from_topo_key: 'gateway', to_topo_key: 'http:payment-gw', kind: 'sync', to_topo_key_kind: 'remote_service', to_topo_key_category: 'http' },
  ]) t.true(relations.some((x) => JSON.stringify(x) === JSON.stringify(r)), JSON.stringify(r));
  t.deepEqual(await tableRows(store, 'apm_root_endpoint', ['bk_biz_id', 'app_name', 'first_seen', 'last_seen']), [{ endpoint_name: 'GET /checkout', service_name: 'gateway', category_id: 'http' }]);
  t.deepEqual(await tableRows(store, 'apm_remote_service_relation', ['bk_biz_id', 'app_name', 'first_seen', 'last_seen']), [{ topo_node_key: 'http:payment-gw', from_endpoint_name: 'GET /checkout', category: 'http' }]);
  const { rows: last } = await store.query<{ last_seen: Date }>("SELECT last_seen FROM apm_root_endpoint");
  // The two traces' roots are 5 ms apart, inside the touch interval: whichever came first was written.
  t.true([at + 1_000, at + 6_000].map((us) => Math.floor(us / 1000)).includes(last[0]?.last_seen.getTime() ?? 0), 'last_seen is an event time (span end_time), not the wall clock');

  // Query API (of a registered application; the app's trace retention, 7 days here).
  await store.query("INSERT INTO apm_application (bk_biz_id, app_name, trace_retention_days) VALUES (2, 'shop', 7)");
  const endpoints = await get(run, '/api/v1/apps/2/shop/endpoints?service_name=gateway&page_size=2');
  t.is(endpoints.status, 200);
  t.is(endpoints.body.total, 3);
  t.is((endpoints.body.items as unknown[]).length, 2);
  t.is((await get(run, '/api/v1/apps/2/shop/endpoints?service_name=gateway&page_size=2&page=2')).body.items instanceof Array, true);
  t.is((await get(run, '/api/v1/apps/2/shop/nodes?topo_key=billing')).body.total, 1);
  t.is((await get(run, '/api/v1/apps/2/shop/hosts?bk_host_id=null')).body.total, 3);
  const unknown = await get(run, '/api/v1/apps/2/other/endpoints');
  t.is(unknown.status, 404, 'an application that is not registered');
  t.deepEqual(unknown.body, { error: 'no application other in business 2', code: 'not_found' });
  t.is((await get(run, '/api/v1/apps/2/shop/endpoints?color=red')).status, 400);
  t.is((await get(run, '/api/v1/apps/2/shop/colors')).status, 404);
  await store.query("UPDATE apm_endpoint SET last_seen = last_seen - interval '8 days' WHERE service_name = 'gateway'");
  t.is((await get(run, '/api/v1/apps/2/shop/endpoints?service_name=gateway')).body.total, 0, 'rows older than the retention (default 7 days) are not listed');
  await store.query("UPDATE apm_application SET trace_retention_days = 30 WHERE bk_biz_id = 2 AND app_name = 'shop'");
  t.is((await get(run, '/api/v1/apps/2/shop/endpoints?service_name=gateway')).body.total, 3, 'the app\'s own retention applies');
  t.is((await get(run, '/healthz')).status, 200);
  const metrics = (await get(run, '/metrics')).body.text as string;
  for (const name of ['bkstream_discovery_spans_total', 'bkstream_discovery_records_written_total', 'bkstream_discovery_cache_hit_ratio', 'bkstream_discovery_flush_seconds', 'bkstream_consumer_lag']) t.true(metrics.includes(name), name);
});

test.serial('a poison record goes to dlq with its error, and the records after it are processed', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit, 1);
  await startDiscovery(t, kit, store, where);
  await kit.produce(where.topics.spans, [{ key: 'x', value: Buffer.from('not an avro record') }]);
  await produceSpans(kit, where.topics.spans, shopTrace('b1'.repeat(16), T0));
  const dead: ConsumedRecord<Buffer>[] = [];
  const reader = kit.bus.consumer({ groupId: uniqueName('dlq-reader'), topics: [where.topics.dlq], codec: rawDecoder, dlqTopic: where.topics.dlq, handler: async (b) => void dead.push(...b.records) });
  t.teardown(() => reader.stop(0));
  await reader.start();
  await waitFor('the dead letter', () => dead.length === 1, 60_000);
  t.is(dead[0]?.raw.toString(), 'not an avro record');
  t.is(dead[0]?.headers[DLQ_HEADERS.topic]?.toString(), where.topics.spans);
  t.is(dead[0]?.headers[DLQ_HEADERS.errorClass]?.toString(), 'record_corrupt');
  await waitFor('rows of the valid spans', async () => (await count(store, 'apm_endpoint')) > 0, 60_000);
  t.pass();
});

test.serial('agent static events fill cmdb_host; a span seen after the host is known gets the proper host row', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit, 1);
  await startDiscovery(t, kit, store, where);
  const onHost = (at: number): Span => span({ end_time: at, resource: { 'service.name': 'order-svc', 'net.host.ip': '10.9.0.7' } });
  await produceSpans(kit, where.topics.spans, [onHost(T0)]);
  await waitFor('the host row with the CMDB miss', async () => (await count(store, 'apm_host_instance')) === 1, 60_000);
  const event = { ...sampleAgentEvent(), agent: { bk_cloud_id: 0, ip: '10.9.0.7', hostname: 'h7', bk_agent_id: 'agent-7', bk_host_id: 77 }, body: JSON.stringify({ net: { interface: [{ name: 'eth0', addrs: ['10.9.0.7/24'] }] } }) };
  await kit.produce(where.topics.events, [{ key: '2:1100010', value: codecFor('AgentEvent').encode(event) }, { key: '2:1100010', value: codecFor('AgentEvent').encode({ ...event, body: '{oops' }) }]);
  await waitFor('cmdb_host row', async () => (await count(store, 'cmdb_host')) === 1, 60_000);
  await produceSpans(kit, where.topics.spans, [onHost(T0 + 1_000_000)]);
  await waitFor('the proper host row', async () => (await count(store, 'apm_host_instance')) === 2, 60_000);
  t.deepEqual((await tableRows(store, 'apm_host_instance', ['bk_biz_id', 'app_name', 'first_seen', 'last_seen'])).map((r) => [r.bk_cloud_id, r.bk_host_id]), [[-1, null], [0, 77]]);
});

test.serial('spans replayed with older event times never move last_seen back', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit, 1);
  const first = await startDiscovery(t, kit, store, where);
  const recent = T0 + 3_600_000_000;
  await produceSpans(kit, where.topics.spans, shopTrace('c1'.repeat(16), recent));
  await waitFor('committed', () => lagIs0(kit, `${where.prefix}-g`, where.topics.spans), 60_000);
  const before = await tableRows(store, 'apm_endpoint', ['first_seen']);
  await first.service.stop();
  // A fresh instance (empty caches) consumes the backfill of an hour earlier.
  await startDiscovery(t, kit, store, where);
  await produceSpans(kit, where.topics.replay, shopTrace('c1'.repeat(16), T0));
  await waitFor('replay committed', () => lagIs0(kit, `${where.prefix}-replay`, where.topics.replay), 60_000);
  t.deepEqual(await tableRows(store, 'apm_endpoint', ['first_seen']), before, 'last_seen unchanged');
  const { rows } = await store.query<{ first_seen: Date }>("SELECT min(first_seen) AS first_seen FROM apm_endpoint");
  t.is(rows[0]?.first_seen.getTime(), Math.floor((T0 + 1_000) / 1000), 'first_seen moved back to the replayed sighting');
});

test.serial('two discovery instances in one group produce exactly the same rows as one', async (t) => {
  const kit = await brokerKit(t);
  const where = await discoveryTopics(t, kit, 6);
  const spans = [...traces(3_000)].flat();
  await produceSpans(kit, where.topics.spans, spans);
  const one = await pgliteStore(t, { migrated: true });
  const two = await pgliteStore(t, { migrated: true });
  const groupOne = `${where.prefix}-one`;
  const groupTwo = `${where.prefix}-two`;
  await startDiscovery(t, kit, one, where, { DISCOVERY_GROUP_ID: groupOne });
  await waitFor('one instance done', () => lagIs0(kit, groupOne, where.topics.spans), 90_000);
  await startDiscovery(t, kit, two, where, { DISCOVERY_GROUP_ID: groupTwo, DISCOVERY_REPLAY_GROUP_ID: `${groupTwo}-r`, DISCOVERY_EVENTS_GROUP_ID: `${groupTwo}-e` });
  await startDiscovery(t, kit, two, where, { DISCOVERY_GROUP_ID: groupTwo, DISCOVERY_REPLAY_GROUP_ID: `${groupTwo}-r`, DISCOVERY_EVENTS_GROUP_ID: `${groupTwo}-e` });
  await waitFor('two instances done', () => lagIs0(kit, groupTwo, where.topics.spans), 90_000);
  for (const table of TABLES) {
    // first_seen / last_seen are the event times of the sightings each instance happened to write first.
    t.deepEqual(await tableRows(two, table, ['first_seen', 'last_seen']), await tableRows(one, table, ['first_seen', 'last_seen']), table);
  }
  t.true((await count(one, 'apm_topo_relation')) > 10);
});

async function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

test.serial('a discovery process killed before committing loses nothing when restarted', async (t) => {
  const kit = await brokerKit(t);
  const where = await discoveryTopics(t, kit, 3);
  const databaseUrl = await freshDatabase(t);
  const group = `${where.prefix}-g`;
  await produceSpans(kit, where.topics.spans, [...shopTrace('d1'.repeat(16), T0), ...shopTrace('d2'.repeat(16), T0 + 1_000)]);
  const port = await freePort();
  const child = spawn(process.execPath, [resolve(import.meta.dirname, '../../services/discovery/main.ts')], {
    stdio: 'ignore',
    env: {
      ...process.env,
      KAFKA_BROKERS: brokers().join(','),
      DATABASE_URL: databaseUrl,
      TOPIC_PREFIX: where.prefix,
      DISCOVERY_GROUP_ID: group,
      DISCOVERY_REPLAY_GROUP_ID: `${where.prefix}-replay`,
      DISCOVERY_EVENTS_GROUP_ID: `${where.prefix}-events`,
      DISCOVERY_HTTP_PORT: String(port),
      // Nothing is flushed (so nothing is committed) before the kill.
      DISCOVERY_FLUSH_INTERVAL_MS: '600000',
      LOG_LEVEL: 'silent',
    },
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await waitFor('the child processed every span', async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return /bkstream_discovery_spans_total\{[^}]*\} 14\b/.test(text);
  }, 90_000, 200);
  child.kill('SIGKILL');
  await exited;
  t.true((await kit.admin.committedOffsets(group, where.topics.spans)).every((c) => BigInt(c.offset) < 0n), 'nothing was committed');
  const store = createStore({ databaseUrl, logger: silentLogger, poolSize: 4 });
  await store.start();
  t.teardown(() => store.stop());
  t.is(await count(store, 'apm_endpoint'), 0, 'nothing was written');
  await startDiscovery(t, kit, store, where);
  await waitFor('committed after the restart', () => lagIs0(kit, group, where.topics.spans), 90_000);
  for (const table of TABLES) t.true((await count(store, table)) > 0, table);
  t.deepEqual((await tableRows(store, 'apm_root_endpoint', ['first_seen', 'last_seen'])).map((r) => r.endpoint_name), ['GET /checkout']);
});

test('the service stops cleanly without having started, and stops idempotently', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit, 1);
  const run = await startDiscovery(t, kit, store, where);
  await run.service.stop();
  await run.service.stop();
  const { createDiscovery } = await import('../../services/discovery/service.ts');
  const { commonSpec, loadConfig } = await import('../../services/common/config.ts');
  const { createRegistry } = await import('../../services/common/metrics.ts');
  const env = { KAFKA_BROKERS: brokers().join(','), TOPIC_PREFIX: where.prefix, DISCOVERY_HTTP_PORT: '0' };
  const unstarted = await createDiscovery({ env, logger: silentLogger, registry: createRegistry(), store, bus: kit.bus, common: loadConfig(commonSpec, { env }) });
  await unstarted.stop();
  t.pass();
});
