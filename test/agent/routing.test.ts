/**
 * The agent's GSE routing without a broker: the data id of a spool key, and the sender delivering the
 * spool through the routed sink (routing.ts) over recording producers — routed and unrouted records, a
 * routed cluster that fails (everything stays in the spool, in order; the cluster that had acknowledged
 * is not sent the batch again at every retry), a route without a known receiver (held, never sent to the
 * default), and route changes applying to records already in the spool. Against real clusters:
 * routing.broker.test.ts.
 */
import test from 'ava';
import { ReceiverProducers } from '../../services/common/gse/producers.ts';
import { RoutedPublisher } from '../../services/common/gse/routed-publisher.ts';
import { RouteTable, StaticRouteSource, type KafkaReceiver } from '../../services/common/gse/routes.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { BoundedChannel } from '../../services/agent/channel.ts';
import { agentMetrics } from '../../services/agent/metrics.ts';
import { Publisher } from '../../services/agent/publisher.ts';
import { dataIdOfKey, RoutedSink } from '../../services/agent/routing.ts';
import { KafkaSender } from '../../services/agent/sender.ts';
import { createAgentService, loadAgentServiceConfig } from '../../services/agent/service.ts';
import { DiskSpool } from '../../services/agent/spool/spool.ts';
import { MemoryStateStore } from '../../services/agent/state-store.ts';
import type { TaskOutput } from '../../services/agent/task.ts';
import { RecordingProducer } from '../common/gse-kit.ts';
import { waitFor } from '../helpers/kafka.ts';
import { tempDir, testHost } from './kit.ts';

test('the data id of a spool key: bk_biz_id:dataid[:target]; 0 when there is none', (t) => {
  t.is(dataIdOfKey('2:1100001'), 1100001);
  t.is(dataIdOfKey('2:1100030:10.0.0.1'), 1100030);
  t.is(dataIdOfKey('2:1500:[fe80::1]:80'), 1500, 'a target with colons');
  t.is(dataIdOfKey(Buffer.from('7:42:x')), 42);
  t.is(dataIdOfKey('2'), 0);
  t.is(dataIdOfKey('2:abc'), 0);
  t.is(dataIdOfKey('2:-5'), 0);
  t.is(dataIdOfKey(null), 0);
  t.is(dataIdOfKey(undefined), 0);
});

const receiver = (id: number): KafkaReceiver => ({ streamToId: id, name: `cluster-${id}`, brokers: [`10.0.0.${id}:9092`], ssl: false });

async function pipeline(t: Parameters<typeof tempDir>[0], table: RouteTable) {
  const metrics = agentMetrics(createRegistry());
  const spool = new DiskSpool({ dir: tempDir(t), maxBytes: 8 << 20, logger: silentLogger });
  await spool.open();
  const source = new StaticRouteSource(table);
  const def = new RecordingProducer('default');
  const made = new Map<number, RecordingProducer>();
  /** Receivers whose next producers fail to send. */
  const failing = new Set<number>();
  /** Producers made per receiver (one per connection: the sender disconnects after a failed attempt). */
  const created = new Map<number, number>();
  const producers = new ReceiverProducers({
    defaultProducer: def,
    logger: silentLogger,
    createProducer: (r) => {
      const p = new RecordingProducer(`stream_to ${r.streamToId}`);
      created.set(r.streamToId, (created.get(r.streamToId) ?? 0) + 1);
      const earlier = made.get(r.streamToId);
      if (earlier) p.sent.push(...earlier.sent); // one log per receiver across reconnects
      p.failSend = failing.has(r.streamToId);
      made.set(r.streamToId, p);
      return p;
    },
  });
  const gse = new RoutedPublisher({ source, producers, logger: silentLogger });
  await gse.start();
  const sink = new RoutedSink({ publisher: gse, producers });
  const channel = new BoundedChannel<TaskOutput>(4);
  const publisher = new Publisher({
    channel,
    spool,
    runId: 'run-1',
    metrics,
    logger: silentLogger,
    context: () => ({ host: testHost, cmdbLevel: undefined, topics: { events: 'p.events', metrics: 'p.metrics' }, state: new MemoryStateStore(), now: () => 1_700_000_000_000 }),
  });
  const sender = new KafkaSender({ sink, spool, metrics, logger: silentLogger, retryInitialMs: 5, retryMaxMs: 20, flushTimeoutMs: 500 });
  await sender.start();
  await publisher.start();
  t.teardown(async () => {
    await publisher.stop();
    await sender.stop();
    await gse.stop();
    await spool.close();
  });
  const emit = (dataId: number, i: number): Promise<void> => channel.push({ kind: 'event', eventType: 'test', dataId, taskId: i, body: { i } });
  return { spool, source, def, made, failing, created, sender, emit };
}

test('sender over the routed sink: routed records to their cluster and topic, the others to the default; a failing cluster holds the spool and gets it in order when it returns, the default its share once', async (t) => {
  const table = new RouteTable([receiver(1)], [{ channelId: 1001, name: 'r', targets: [{ streamToId: 1, topic: 'raw_1001' }] }]);
  const p = await pipeline(t, table);
  for (let i = 0; i < 6; i++) await p.emit(i % 2 === 0 ? 1000 : 1001, i);
  await waitFor('delivered', () => p.spool.stats().pending === 0 && p.spool.stats().nextSeq === 7, 30_000, 5);
  const one = (): RecordingProducer | undefined => p.made.get(1);
  t.deepEqual(one()?.sent.map((s) => s.topic), ['raw_1001', 'raw_1001', 'raw_1001']);
  t.deepEqual(p.def.sent.map((s) => s.topic), ['p.events', 'p.events', 'p.events']);
  t.deepEqual(one()?.sent.map((s) => s.key), ['2:1001', '2:1001', '2:1001']);

  // The routed cluster fails: from its first record on, nothing more is acknowledged in the spool.
  p.failing.add(1);
  (one() as RecordingProducer).failSend = true;
  for (let i = 6; i < 12; i++) await p.emit(i % 2 === 0 ? 1000 : 1001, i);
  await waitFor('several failed attempts', () => !p.sender.state().up && (p.created.get(1) ?? 0) >= 5, 30_000, 5);
  t.regex(p.sender.state().lastError ?? '', /stream_to 1 topic raw_1001/);
  const held = p.spool.stats().pending;
  t.true(held >= 5, `the records from the failing one on stay in the spool (${held})`);

  // It returns: the held records go out, in order, and the spool empties.
  p.failing.delete(1);
  (one() as RecordingProducer).failSend = false;
  // The sender marks itself up after the spool's acknowledgement: wait for both.
  await waitFor('delivered after the outage', () => p.spool.stats().pending === 0 && p.spool.stats().nextSeq === 13 && p.sender.state().up, 30_000, 5);
  t.true(p.sender.state().up);
  const seqOf = (s: { headers: string }): number => Number(s.headers);
  const routed = (one() as RecordingProducer).sent;
  const unrouted = p.def.sent;
  t.deepEqual(routed.map((s) => s.key), Array.from({ length: 6 }, () => '2:1001'));
  t.deepEqual(unrouted.map((s) => s.key), Array.from({ length: 6 }, () => '2:1000'));
  t.deepEqual(routed.map(seqOf), [2, 4, 6, 8, 10, 12], 'each routed record once, in spool order');
  t.deepEqual(unrouted.map(seqOf), [1, 3, 5, 7, 9, 11], 'each default record once, in spool order, however many attempts');
});

test('a route whose receiver is unknown holds the spool (not sent to the default); a route change applies to records already spooled', async (t) => {
  const table = new RouteTable([], [{ channelId: 1001, name: 'dangling', targets: [{ streamToId: 9, topic: 'raw_1001' }] }]);
  const p = await pipeline(t, table);
  for (let i = 0; i < 4; i++) await p.emit(1001, i);
  // The spool numbers a record before writing it and counts it pending after: wait for both.
  await waitFor('failed attempts with all four spooled', () => p.sender.state().lastError !== undefined && p.spool.stats().nextSeq === 5 && p.spool.stats().pending === 4, 30_000, 5);
  t.regex(p.sender.state().lastError ?? '', /names no known receiver/);
  t.is(p.spool.stats().pending, 4);
  t.is(p.def.sent.length, 0, 'never the default instead');
  t.is(p.made.size, 0);

  // The receiver appears: the records in the spool go to it.
  p.source.set(p.source.current().withReceiver(receiver(9)));
  await waitFor('delivered', () => p.spool.stats().pending === 0, 30_000, 5);
  t.deepEqual(p.made.get(9)?.sent.map((s) => s.topic), ['raw_1001', 'raw_1001', 'raw_1001', 'raw_1001']);

  // Route removed: the next records go to the default topic.
  p.source.set(p.source.current().withoutRoute(1001));
  await p.emit(1001, 4);
  await waitFor('delivered to the default', () => p.def.sent.length === 1, 30_000, 5);
  t.is(p.def.sent[0]?.topic, 'p.events');
  t.is(p.made.get(9)?.sent.length, 4);
});

test('AGENT_GSE_ROUTING: on by default (routes read in the background), off reads none; a bad value is reported with its key', async (t) => {
  const base = { AGENT_CONFIG: 'services/agent/examples/bkmonitorbeat.yaml', AGENT_ADMIN_PORT: '0', LOG_LEVEL: 'silent', KAFKA_BROKERS: '127.0.0.1:1' };
  const make = async (env: NodeJS.ProcessEnv) => {
    const config = loadAgentServiceConfig(env);
    const service = await createAgentService({ env, logger: silentLogger, registry: createRegistry(), common: loadConfig(commonSpec, { env }) }, { ...config, stateDir: tempDir(t) });
    t.teardown(() => service.stop());
    return { config, service };
  };
  const on = await make({ ...base });
  t.true(on.config.gseRouting);
  t.truthy(on.service.routes, 'a route watcher in the background');
  t.is(on.service.routes?.state().state, 'reading', 'not started before start()');
  const off = await make({ ...base, AGENT_GSE_ROUTING: 'false' });
  t.false(off.config.gseRouting);
  t.is(off.service.routes, undefined);
  const err = t.throws(() => loadAgentServiceConfig({ ...base, AGENT_GSE_ROUTING: 'maybe' }), { instanceOf: ConfigError });
  t.true(err.problems.some((p) => p.key === 'AGENT_GSE_ROUTING'));
});
