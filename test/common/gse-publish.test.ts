/**
 * Publishing by data id without a broker: the routed publisher over recording producers (which producer,
 * which topic and partition, all targets or an error), the producer pool's lifecycle (lazy, replaced on
 * new settings, closed when the receiver leaves, a failed connect forgotten), and BackgroundRoutes
 * (waits while the broker is away, no routes topic = no routes). The same against real clusters:
 * gse-publish.broker.test.ts.
 */
import test from 'ava';
import { BackgroundRoutes, type WatchedSource } from '../../services/common/gse/background-routes.ts';
import { ReceiverProducers } from '../../services/common/gse/producers.ts';
import { NoRouteTargetError, RoutedPublisher, RoutedSendError } from '../../services/common/gse/routed-publisher.ts';
import { RouteTable, StaticRouteSource, type KafkaReceiver } from '../../services/common/gse/routes.ts';
import { MissingTopicsError, UnavailableError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import { RecordingProducer } from './gse-kit.ts';

const receiver = (id: number, brokers = [`10.0.0.${id}:9092`]): KafkaReceiver => ({ streamToId: id, name: `cluster-${id}`, brokers, ssl: false });

function setup(table: RouteTable = RouteTable.EMPTY): { source: StaticRouteSource; publisher: RoutedPublisher; pool: ReceiverProducers; def: RecordingProducer; made: RecordingProducer[]; registry: Registry } {
  const source = new StaticRouteSource(table);
  const def = new RecordingProducer('default');
  const made: RecordingProducer[] = [];
  const pool = new ReceiverProducers({
    defaultProducer: def,
    logger: silentLogger,
    createProducer: (r) => {
      const p = new RecordingProducer(`${r.streamToId}@${r.brokers.join(',')}`);
      made.push(p);
      return p;
    },
  });
  const registry = createRegistry();
  const publisher = new RoutedPublisher({ source, producers: pool, logger: silentLogger, registry });
  return { source, publisher, pool, def, made, registry };
}

const msg = (key: string, value: string) => ({ key, value: Buffer.from(value) });

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

test('no route: the default topic on the default producer; nothing else is made', async (t) => {
  const { publisher, def, made, registry } = setup(new RouteTable([receiver(1)], [{ channelId: 7, name: 'r', targets: [{ streamToId: 1, topic: 'x' }] }]));
  await publisher.start();
  await publisher.send(1001, 'bk.events', [msg('2:1001', 'a'), msg('2:1001', 'b')]);
  t.deepEqual(def.sent.map((s) => [s.topic, s.value]), [['bk.events', 'a'], ['bk.events', 'b']]);
  t.is(def.starts, 1);
  t.is(made.length, 0, 'a receiver\'s producer is made on the first send that needs it');
  t.is(await metricValue(registry, 'bkstream_gse_records_sent_total', { receiver: 'default', topic: 'bk.events' }), 2);
  await publisher.stop();
  t.is(def.stops, 1);
});

test('a route: every target gets the records, with its topic and partition; the default none', async (t) => {
  const table = new RouteTable([receiver(1), receiver(2)], [
    { channelId: 1001, name: 'two', targets: [{ streamToId: 1, topic: 'raw_1001' }, { streamToId: 2, topic: 'copy_1001', partition: 2 }] },
  ]);
  const { publisher, def, made, registry } = setup(table);
  await publisher.start();
  await publisher.sendAll([
    { dataId: 1001, defaultTopic: 'bk.metrics', messages: [msg('2:1001:a', 'm1')] },
    { dataId: 1002, defaultTopic: 'bk.metrics', messages: [msg('2:1002:a', 'other')] },
    { dataId: 1001, defaultTopic: 'bk.metrics', messages: [msg('2:1001:a', 'm2')] },
  ]);
  t.is(made.length, 2);
  const [one, two] = made as [RecordingProducer, RecordingProducer];
  t.deepEqual(one.sent.map((s) => [s.topic, s.value, s.partition]), [['raw_1001', 'm1', undefined], ['raw_1001', 'm2', undefined]], 'in order');
  t.deepEqual(two.sent.map((s) => [s.topic, s.value, s.partition]), [['copy_1001', 'm1', 2], ['copy_1001', 'm2', 2]]);
  t.deepEqual(def.sent.map((s) => [s.topic, s.value]), [['bk.metrics', 'other']]);
  t.is(await metricValue(registry, 'bkstream_gse_records_sent_total', { receiver: '2', topic: 'copy_1001' }), 2);
  await publisher.stop();
  t.is(one.stops + two.stops, 2, 'stop closes every receiver\'s producer');
});

test('one target failing fails the send (retriable); the others had it; the retry sends again (at-least-once)', async (t) => {
  const table = new RouteTable([receiver(1), receiver(2)], [{ channelId: 5, name: 'two', targets: [{ streamToId: 1, topic: 'a' }, { streamToId: 2, topic: 'b' }] }]);
  const { publisher, made, registry } = setup(table);
  await publisher.start();
  await publisher.send(5, 'd', [msg('1:5', 'x')]);
  const [one, two] = made as [RecordingProducer, RecordingProducer];
  two.failSend = true;
  const err = await t.throwsAsync(publisher.send(5, 'd', [msg('1:5', 'y')]), { instanceOf: RoutedSendError });
  t.true(err.retriable);
  t.deepEqual(err.failed, ['2/b']);
  t.is(await metricValue(registry, 'bkstream_gse_records_failed_total', { receiver: '2', topic: 'b' }), 1);
  two.failSend = false;
  await publisher.send(5, 'd', [msg('1:5', 'y')]);
  t.deepEqual(one.sent.map((s) => s.value), ['x', 'y', 'y'], 'the target that had acknowledged gets the retry too');
  t.deepEqual(two.sent.map((s) => s.value), ['x', 'y']);
  await publisher.stop();
});

test('progress: a retry skips the targets that acknowledged, still sends to a target the records resolve to only now', async (t) => {
  const table = new RouteTable([receiver(1), receiver(2)], [{ channelId: 5, name: 'two', targets: [{ streamToId: 1, topic: 'a' }, { streamToId: 2, topic: 'b' }] }]);
  const { source, publisher, def, made } = setup(table);
  await publisher.start();
  const items = [
    { dataId: 5, defaultTopic: 'd', messages: [msg('1:5', 'x')], id: '11' },
    { dataId: 6, defaultTopic: 'd', messages: [msg('1:6', 'y')], id: '12' },
  ];
  const progress = new Set<string>();
  await publisher.sendAll(items.slice(0, 1));
  const [one, two] = made as [RecordingProducer, RecordingProducer];
  one.sent.length = 0;
  two.sent.length = 0;
  two.failSend = true;
  for (let i = 0; i < 3; i++) await t.throwsAsync(publisher.sendAll(items, progress), { instanceOf: RoutedSendError });
  t.deepEqual(one.sent.map((s) => s.value), ['x'], 'once, not at every attempt');
  t.deepEqual(def.sent.map((s) => s.value), ['y']);
  // Between attempts data id 6 gets a route to receiver 2: it has not had `y`, so it gets it.
  source.set(source.current().withRoute({ channelId: 6, name: 'late', targets: [{ streamToId: 2, topic: 'b' }] }));
  two.failSend = false;
  await publisher.sendAll(items, progress);
  t.deepEqual(two.sent.map((s) => s.value), ['x', 'y']);
  t.deepEqual(one.sent.map((s) => s.value), ['x']);
  t.deepEqual(def.sent.map((s) => s.value), ['y']);
  await publisher.stop();
});

test('a route whose receivers are all unknown is an error, and nothing of the send goes anywhere', async (t) => {
  const table = new RouteTable([], [{ channelId: 9, name: 'dangling', targets: [{ streamToId: 3, topic: 'z' }] }]);
  const { publisher, def, made, registry } = setup(table);
  await publisher.start();
  const err = await t.throwsAsync(publisher.sendAll([
    { dataId: 1, defaultTopic: 'd', messages: [msg('1:1', 'fine')] },
    { dataId: 9, defaultTopic: 'd', messages: [msg('1:9', 'nowhere')] },
  ]), { instanceOf: NoRouteTargetError });
  t.true(err.retriable);
  t.is(def.sent.length, 0, 'not to the default either');
  t.is(made.length, 0);
  t.is(await metricValue(registry, 'bkstream_gse_unroutable_total', { data_id: '9' }), 1);
  await publisher.stop();
});

test('a route change applies to the next send; a receiver whose settings change gets a new producer, one that leaves is closed', async (t) => {
  const { source, publisher, def, made } = setup();
  await publisher.start();
  await publisher.send(42, 'd', [msg('1:42', '1')]);
  source.set(new RouteTable([receiver(1)], [{ channelId: 42, name: 'r', targets: [{ streamToId: 1, topic: 't1' }] }]));
  await publisher.send(42, 'd', [msg('1:42', '2')]);
  t.deepEqual(def.sent.map((s) => s.value), ['1']);
  t.is(made.length, 1);
  const first = made[0] as RecordingProducer;
  t.deepEqual(first.sent.map((s) => s.value), ['2']);

  // Same receiver, new address: the old producer is closed (on the change), a new one made on the next send.
  source.set(source.current().withReceiver(receiver(1, ['10.9.9.9:9093'])));
  t.is(first.stops, 1);
  await publisher.send(42, 'd', [msg('1:42', '3')]);
  t.is(made.length, 2);
  const second = made[1] as RecordingProducer;
  t.deepEqual(second.sent.map((s) => s.value), ['3']);

  // A rename is not a new setting: same producer.
  source.set(source.current().withReceiver({ ...receiver(1, ['10.9.9.9:9093']), name: 'renamed' }));
  await publisher.send(42, 'd', [msg('1:42', '4')]);
  t.is(made.length, 2);

  // The route goes away: back to the default; the receiver goes away: its producer is closed.
  source.set(source.current().withoutRoute(42));
  await publisher.send(42, 'd', [msg('1:42', '5')]);
  t.deepEqual(def.sent.map((s) => s.value), ['1', '5']);
  t.is(second.stops, 0);
  source.set(source.current().withoutReceiver(1));
  t.is(second.stops, 1);
  await publisher.stop();
});

test('pool: concurrent sends share one connection; a failed connect is forgotten and closed, the next send reconnects; disconnect closes all; stopped refuses', async (t) => {
  const { publisher, pool, def, made } = setup(new RouteTable([receiver(1)], [{ channelId: 1, name: 'r', targets: [{ streamToId: 1, topic: 't' }] }]));
  await publisher.start();
  def.failStart = true;
  await t.throwsAsync(publisher.send(7, 'd', [msg('1:7', 'x')]), { instanceOf: RoutedSendError, message: /default: connection refused/ });
  t.is(def.stops, 1, 'the failed attempt\'s sockets are closed');
  def.failStart = false;
  await publisher.send(7, 'd', [msg('1:7', 'x')]);
  t.is(def.starts, 2, 'the next send connects again');

  await Promise.all([publisher.send(1, 'd', [msg('1:1', 'a')]), publisher.send(1, 'd', [msg('1:1', 'b')])]);
  const p = made[0] as RecordingProducer;
  t.is(p.starts, 1);
  t.is(pool.size, 1);
  await pool.disconnect();
  t.is(p.stops, 1);
  t.is(def.stops, 2);
  t.is(pool.size, 0);
  await publisher.send(1, 'd', [msg('1:1', 'c')]);
  t.is(made.length, 2, 'reconnected with a new producer');
  t.deepEqual([...p.sent, ...(made[1] as RecordingProducer).sent].map((s) => s.value), ['a', 'b', 'c']);
  await publisher.stop();
  await t.throwsAsync(publisher.send(1, 'd', [msg('1:1', 'd')]), { instanceOf: RoutedSendError, message: /stopped/ });
});

/** A watched source whose start fails with the queued errors, then succeeds. */
class FlakySource extends StaticRouteSource implements WatchedSource {
  starts = 0;
  stops = 0;
  readonly failures: Error[];
  constructor(failures: Error[]) {
    super();
    this.failures = failures;
  }
  async start(): Promise<void> {
    this.starts++;
    const err = this.failures.shift();
    if (err) throw err;
  }
  async stop(): Promise<void> {
    this.stops++;
  }
}

test('background routes: ready waits while the broker is away, then resolves; a missing topic means no routes (ready) and is retried', async (t) => {
  const away = new FlakySource([new UnavailableError('broker down'), new UnavailableError('broker down')]);
  const routes = new BackgroundRoutes({ source: away, logger: silentLogger, retryInitialMs: 1, retryMaxMs: 5 });
  await routes.start();
  await routes.ready();
  t.is(away.starts, 3);
  t.deepEqual(routes.state(), { state: 'ready' });
  await routes.stop();
  t.is(away.stops, 1);

  const missing = new FlakySource([new MissingTopicsError(['p.gse.routes']), new MissingTopicsError(['p.gse.routes'])]);
  const later = new BackgroundRoutes({ source: missing, logger: silentLogger, retryInitialMs: 1, retryMaxMs: 5, missingTopicRetryMs: 5 });
  await later.start();
  await later.ready();
  t.true(missing.starts >= 1);
  await new Promise<void>((resolve) => {
    const poll = (): void => {
      if (later.state().state === 'ready') resolve();
      else setTimeout(poll, 2);
    };
    poll();
  });
  t.is(missing.starts, 3, 'kept trying until the topic existed');
  await later.stop();

  const never = new FlakySource(Array.from({ length: 1000 }, () => new UnavailableError('broker down')));
  const waiting = new BackgroundRoutes({ source: never, logger: silentLogger, retryInitialMs: 1, retryMaxMs: 2 });
  await waiting.start();
  const ac = new AbortController();
  const pending = waiting.ready(ac.signal);
  ac.abort(new Error('gave up'));
  await t.throwsAsync(pending, { message: 'gave up' });
  t.is(waiting.state().state, 'unavailable');
  t.regex(waiting.state().problem ?? '', /broker down/);
  await waiting.stop();
  t.is(waiting.state().state, 'stopped');
});
