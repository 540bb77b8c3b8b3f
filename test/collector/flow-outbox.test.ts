/**
 * The flow-command outbox and its publisher (services/collector/flow-outbox.ts) on PGlite and PostgreSQL,
 * with a producer double: commands go out oldest first as Avro FlowCommand keyed by flow; a failed send
 * leaves them queued (claims released) and counted; two publishers send each command once; the
 * publisher's lifecycle (stop without start, start → drain on wake → stop).
 */
import type { ExecutionContext } from 'ava';
import { createApplication, updateApplication } from '../../services/collector/applications.ts';
import { FlowCommandPublisher, queuedCommands } from '../../services/collector/flow-outbox.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import type { OutMessage } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { counter, createRegistry } from '../../services/common/metrics.ts';
import type { Store } from '../../services/common/store/index.ts';
import { waitFor } from '../helpers/kafka.ts';
import { storeContract } from '../helpers/store.ts';

const codec = codecFor('FlowCommand');

/** A producer that records what it is asked to send, or fails while `failing`. */
class RecordingProducer {
  failing = false;
  readonly sent: { topic: string; key: string; action: string; flowType: string; config: unknown }[] = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async send(topic: string, messages: readonly OutMessage[]): Promise<void> {
    if (this.failing) throw new Error('the broker is down');
    for (const m of messages) {
      const c = codec.decode(m.value);
      this.sent.push({ topic, key: String(m.key), action: c.action, flowType: c.flow_type, config: JSON.parse(c.config) as unknown });
    }
  }
}

function publisherOn(t: ExecutionContext, store: Store, producer: RecordingProducer) {
  const registry = createRegistry();
  const results = counter(registry, { name: 'bkstream_collector_flow_commands_total', help: 'test', labelNames: ['result'] });
  const publisher = new FlowCommandPublisher({ store, producer, codec, topic: 'p.flow.commands', pollIntervalMs: 60_000, logger: silentLogger, counter: results });
  t.teardown(() => publisher.stop());
  const count = async (result: string): Promise<number> => Number((await results.get()).values.find((v) => v.labels.result === result)?.value ?? 0);
  return { publisher, count };
}

async function queueThree(store: Store): Promise<void> {
  await createApplication(store, { bkBizId: 2, appName: 'outbox', tracesDataId: 11, metricsDataId: 12, tailSampling: true, virtualMetric: true });
  await updateApplication(store, 2, 'outbox', { virtualMetric: false });
}

storeContract('queued commands go out oldest first, keyed by flow; a failed send leaves them queued and counted', async (t, store) => {
  await queueThree(store);
  const producer = new RecordingProducer();
  const { publisher, count } = publisherOn(t, store, producer);
  producer.failing = true;
  await t.throwsAsync(publisher.drainOnce(), { message: 'the broker is down' });
  await t.throwsAsync(publisher.drainOnce(), { message: 'the broker is down' }, 'the claims were released: the same commands are tried again');
  t.is(await count('failed'), 6);
  t.is((await queuedCommands(store)).length, 3, 'nothing lost');

  producer.failing = false;
  t.is(await publisher.drainOnce(), 3);
  t.deepEqual(producer.sent.map((s) => `${s.topic} ${s.key} ${s.action}`), [
    'p.flow.commands 2:outbox:tail_sampling create_or_update',
    'p.flow.commands 2:outbox:virtual_metric create_or_update',
    'p.flow.commands 2:outbox:virtual_metric stop',
  ]);
  t.deepEqual(producer.sent[0]?.config, { data_id: 11, es_retention_days: 7 });
  t.is(await count('published'), 3);
  t.deepEqual(await queuedCommands(store), [], 'deleted once sent');
  t.is(await publisher.drainOnce(), 0);
});

storeContract('two publishers on one database send each command once; start drains on wake, stop is safe without start', async (t, store) => {
  await queueThree(store);
  const a = new RecordingProducer();
  const b = new RecordingProducer();
  const first = publisherOn(t, store, a);
  const second = publisherOn(t, store, b);
  await Promise.all([first.publisher.drainOnce(), second.publisher.drainOnce()]);
  t.is(a.sent.length + b.sent.length, 3);
  t.deepEqual(await queuedCommands(store), []);

  const idle = publisherOn(t, store, new RecordingProducer());
  await idle.publisher.stop();
  await idle.publisher.stop();

  const running = publisherOn(t, store, new RecordingProducer());
  await running.publisher.start();
  await updateApplication(store, 2, 'outbox', { tailSampling: false });
  running.publisher.wake();
  await waitFor('the stop command sent on wake (the poll interval is a minute)', async () => (await running.count('published')) === 1, 10_000);
  await running.publisher.stop();
  t.deepEqual(await queuedCommands(store), []);
});
