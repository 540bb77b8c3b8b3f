/**
 * Publishing by data id against real clusters: the shared broker (the bus's own cluster, the default; also
 * a receiver) and a second broker this file starts on ports of its own (stopped and deleted after).
 * Records are read back from each cluster and decoded; every record is counted.
 */
import test from 'ava';
import { BackgroundRoutes } from '../../services/common/gse/background-routes.ts';
import { ReceiverProducers } from '../../services/common/gse/producers.ts';
import { RoutedPublisher } from '../../services/common/gse/routed-publisher.ts';
import { RouteTable, StaticRouteSource, type RouteSource } from '../../services/common/gse/routes.ts';
import { RouteWatcher } from '../../services/common/gse/watcher.ts';
import { silentLogger } from '../../services/common/log.ts';
import { topicName } from '../../services/common/topics.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { countRecords, readTopic, receiverOn, routeRecord, sharedCluster, startSecondCluster, streamToRecord, values, waitForRecords, type SecondCluster } from './gse-kit.ts';

const shared = sharedCluster();
let second: Promise<SecondCluster> | undefined;
/** The second broker, started by the first test that needs it. */
const secondCluster = (): Promise<SecondCluster> => (second ??= startSecondCluster());

test.after.always(async (t) => {
  t.timeout(60_000);
  await shared.cleanup();
  if (second) await (await second.catch(() => undefined))?.dispose();
});

function publisherOn(source: RouteSource): { publisher: RoutedPublisher; stop: () => Promise<void> } {
  const producers = new ReceiverProducers({ defaultProducer: shared.bus.producer(), logger: silentLogger, clientId: uniqueName('gse-test') });
  const publisher = new RoutedPublisher({ source, producers, logger: silentLogger });
  return { publisher, stop: () => publisher.stop() };
}

const record = (dataid: number, n: number) => ({ key: `2:${dataid}`, value: Buffer.from(JSON.stringify({ dataid, n })) });

test.serial('a data id routed to the second cluster gets its records there; one without a route the default topic; one routed to two clusters both', async (t) => {
  t.timeout(240_000);
  const b = await secondCluster();
  const [bTopic] = await b.topics(['gse-b']);
  const [bSplit] = await b.topics(['gse-b-split'], 2);
  const [defaultTopic, aTopic] = await shared.topics(['gse-default', 'gse-a']);
  const table = new RouteTable([receiverOn(1, b), receiverOn(2, shared)], [
    { channelId: 1001, name: 'to-b', targets: [{ streamToId: 1, topic: bTopic as string }] },
    { channelId: 1003, name: 'to-both', targets: [{ streamToId: 1, topic: bSplit as string, partition: 1 }, { streamToId: 2, topic: aTopic as string }] },
  ]);
  const { publisher, stop } = publisherOn(new StaticRouteSource(table));
  t.teardown(stop);
  await publisher.start();
  const n = 20;
  for (let i = 0; i < n; i++) {
    await publisher.sendAll([
      { dataId: 1001, defaultTopic: defaultTopic as string, messages: [record(1001, i)] },
      { dataId: 1002, defaultTopic: defaultTopic as string, messages: [record(1002, i)] },
      { dataId: 1003, defaultTopic: defaultTopic as string, messages: [record(1003, i)] },
    ]);
  }
  const seq = Array.from({ length: n }, (_, i) => i);
  const onB = values(await waitForRecords(b.bus, bTopic as string, n));
  t.deepEqual(onB.map((v) => [v.dataid, v.n]), seq.map((i) => [1001, i]), 'data id 1001 only, in order, on the second cluster');
  const onDefault = values(await waitForRecords(shared.bus, defaultTopic as string, n));
  t.deepEqual(onDefault.map((v) => [v.dataid, v.n]), seq.map((i) => [1002, i]), 'the unrouted data id on the default topic, nothing else');
  const split = await waitForRecords(b.bus, bSplit as string, n);
  t.deepEqual(values(split).map((v) => [v.dataid, v.n]), seq.map((i) => [1003, i]));
  t.true(split.every((r) => r.partition === 1), 'the route\'s partition');
  t.deepEqual(values(await waitForRecords(shared.bus, aTopic as string, n)).map((v) => [v.dataid, v.n]), seq.map((i) => [1003, i]), 'and the same records on the other cluster');
  t.is(split[0]?.key?.toString(), '2:1003', 'keys kept');
});

test.serial('route changes (StaticRouteSource.set) move the next records without a restart and without loss', async (t) => {
  t.timeout(240_000);
  const b = await secondCluster();
  const [bTopic] = await b.topics(['gse-move-b']);
  const [defaultTopic, aTopic] = await shared.topics(['gse-move-default', 'gse-move-a']);
  const source = new StaticRouteSource(new RouteTable([receiverOn(1, b), receiverOn(2, shared)], []));
  const { publisher, stop } = publisherOn(source);
  t.teardown(stop);
  await publisher.start();
  const toB = { channelId: 2001, name: 'b', targets: [{ streamToId: 1, topic: bTopic as string }] };
  const toBoth = { channelId: 2001, name: 'both', targets: [{ streamToId: 1, topic: bTopic as string }, { streamToId: 2, topic: aTopic as string }] };
  // 0-29 no route, 30-59 to B, 60-89 to B and A, 90-119 no route again.
  for (let i = 0; i < 120; i++) {
    if (i === 30) source.set(source.current().withRoute(toB));
    if (i === 60) source.set(source.current().withRoute(toBoth));
    if (i === 90) source.set(source.current().withoutRoute(2001));
    await publisher.send(2001, defaultTopic as string, [record(2001, i)]);
  }
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
  t.deepEqual(values(await waitForRecords(shared.bus, defaultTopic as string, 60)).map((v) => v.n), [...range(0, 30), ...range(90, 120)]);
  t.deepEqual(values(await waitForRecords(b.bus, bTopic as string, 60)).map((v) => v.n), range(30, 90));
  t.deepEqual(values(await waitForRecords(shared.bus, aTopic as string, 30)).map((v) => v.n), range(60, 90));
});

test.serial('the real watcher: routes written to <prefix>.gse.routes move a data id\'s records while they flow, each record exactly where the table said', async (t) => {
  t.timeout(240_000);
  const b = await secondCluster();
  const prefix = uniqueName('gse');
  const routesTopic = topicName(prefix, 'gseRoutes');
  const admin = shared.bus.admin();
  await admin.start();
  await admin.ensureTopics([{ topic: routesTopic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' }]);
  await admin.stop();
  const [bTopic] = await b.topics(['gse-watch-b']);
  const [defaultTopic] = await shared.topics(['gse-watch-default']);
  t.teardown(async () => {
    const a = shared.bus.admin();
    await a.start();
    await a.deleteTopics([routesTopic]).catch(() => undefined);
    await a.stop();
  });
  const registry = shared.bus.producer();
  await registry.start();
  t.teardown(() => registry.stop());
  await registry.send(routesTopic, [streamToRecord(1, b)]);

  const routes = new BackgroundRoutes({ source: new RouteWatcher({ bus: shared.bus, topic: routesTopic, logger: silentLogger }), logger: silentLogger });
  await routes.start();
  t.teardown(() => routes.stop());
  await routes.ready();
  t.truthy(routes.current().receiver(1), 'the receiver was read before the first send');
  const { publisher, stop } = publisherOn(routes);
  t.teardown(stop);
  await publisher.start();

  // Sends go on one after another; the registry's records change the route in between.
  let n = 0;
  let sending = true;
  const where: ('default' | 'b')[] = [];
  const loop = (async () => {
    while (sending) {
      where.push(routes.current().resolve(3001) ? 'b' : 'default');
      await publisher.send(3001, defaultTopic as string, [record(3001, n++)]);
    }
  })();
  await waitFor('records on the default topic', async () => (await countRecords(shared.bus, defaultTopic as string)) >= 20);
  await registry.send(routesTopic, [routeRecord(3001, [{ streamToId: 1, topic: bTopic as string }])]);
  await waitFor('records on the second cluster', async () => (await countRecords(b.bus, bTopic as string)) >= 20);
  await registry.send(routesTopic, [{ key: routeRecord(3001, []).key, value: null }]);
  const before = n;
  await waitFor('records back on the default topic', () => where.slice(before).filter((w) => w === 'default').length >= 20);
  sending = false;
  await loop;

  const total = n;
  const onDefault = values(await waitForRecords(shared.bus, defaultTopic as string, where.filter((w) => w === 'default').length)).map((v) => v.n);
  const onB = values(await waitForRecords(b.bus, bTopic as string, where.filter((w) => w === 'b').length)).map((v) => v.n);
  t.is(onDefault.length + onB.length, total, 'every record once');
  t.deepEqual([...onDefault, ...onB].sort((x, y) => x - y), Array.from({ length: total }, (_, i) => i), 'none lost');
  t.deepEqual(onDefault, [...onDefault].sort((x, y) => x - y), 'in order on the default topic');
  t.deepEqual(onB, [...onB].sort((x, y) => x - y), 'in order on the second cluster');
  t.deepEqual(onB, where.flatMap((w, i) => (w === 'b' ? [i] : [])), 'exactly the records sent while the route was there');
  const firstB = onB[0] as number;
  const lastB = onB[onB.length - 1] as number;
  t.true(onDefault.some((x) => x < firstB) && onDefault.some((x) => x > lastB), 'default, then the second cluster, then default again');
  t.is(onB.length, lastB - firstB + 1, 'one contiguous stretch');
  t.is((await readTopic(b.bus, bTopic as string)).length, onB.length);
});
