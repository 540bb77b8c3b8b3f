/**
 * A RouteWatcher through a broker outage (how the agent and the collector read their routes): after the
 * broker has been stopped and started again, the watcher follows a record written after the restart, and
 * its stop is prompt. Found by the fault suite: with kafkajs's default 30 s session, the follower's rejoin
 * after the restart waited for the member the broker remembered, and a stop during it took ~22 s.
 */
import test from 'ava';
import { Bus } from '../../services/common/bus/index.ts';
import { routesKey, type StreamToDoc } from '../../services/common/gse/records.ts';
import { RouteWatcher } from '../../services/common/gse/watcher.ts';
import { silentLogger } from '../../services/common/log.ts';
import { waitFor } from '../helpers/kafka.ts';
import { ownBroker } from './fault-kit.ts';

const streamTo = (id: number): StreamToDoc => ({ stream_to_id: id, name: `kafka-${id}`, report_mode: 'kafka', kafka: { storage_address: [{ ip: '127.0.0.1', port: 9092 }] } });

test('after the broker is stopped and started again the watcher follows new records, and stops promptly', async (t) => {
  const broker = await ownBroker(t);
  const topic = `wo-${Date.now().toString(36)}.gse.routes`;
  const bus = new Bus({ brokers: broker.brokers, clientId: 'watcher-outage', logger: silentLogger });
  const admin = bus.admin();
  await admin.start();
  await admin.ensureTopics([{ topic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' }]);
  await admin.stop();
  const producer = bus.producer({ idempotent: false });
  t.teardown(() => producer.stop());
  await producer.start();
  await producer.send(topic, [{ key: routesKey.streamTo(1), value: Buffer.from(JSON.stringify(streamTo(1))) }]);
  const watcher = new RouteWatcher({ bus, topic, logger: silentLogger });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await watcher.stop();
  });
  await watcher.start();
  t.truthy(watcher.current().receiver(1));

  await broker.stop();
  await new Promise((r) => setTimeout(r, 10_000));
  await broker.start();
  await producer.send(topic, [{ key: routesKey.streamTo(2), value: Buffer.from(JSON.stringify(streamTo(2))) }]);
  await waitFor('the record written after the restart', () => watcher.current().receiver(2), 60_000);

  const started = Date.now();
  await watcher.stop();
  stopped = true;
  const tookMs = Date.now() - started;
  t.log(`stop took ${tookMs} ms`);
  // Not a timing assertion of speed: a stop that waits out a 30 s session is the bug (the lifecycle's stop
  // deadline is 8 s); one follower session (6 s) is the most a rejoin may hold it.
  t.true(tookMs < 8_000, `stop took ${tookMs} ms`);
});
