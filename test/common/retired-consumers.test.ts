/**
 * TopicFollower (services/common/bus/follower.ts), the bus's consumer (consumer.ts) and kafkajs's own
 * restarts: a consumer they have disconnected must stay disconnected. kafkajs sets its restart timer after the CRASH event and a
 * restart that is connecting is not undone by a racing disconnect, so a consumer that crashes or joins
 * its group after it was retired is disconnected again. A kafkajs stand-in drives the events; the real
 * broker outage is test/common/gse-watcher-outage.test.ts.
 */
import { EventEmitter } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import test from 'ava';
// eslint-disable-next-line no-restricted-imports -- a kafkajs stand-in needs the type it stands in for
import type { Kafka } from 'kafkajs';
import { BusConsumer } from '../../services/common/bus/consumer.ts';
import { TopicFollower } from '../../services/common/bus/follower.ts';
import type { BusProducer } from '../../services/common/bus/producer.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { silentLogger } from '../../services/common/log.ts';

const EVENTS = { CONNECT: 'consumer.connect', GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash' };

class FakeConsumer extends EventEmitter {
  readonly events = EVENTS;
  disconnects = 0;
  async connect(): Promise<void> {}
  async subscribe(): Promise<void> {}
  async run(): Promise<void> {}
  seek(): void {}
  pause(): void {}
  async disconnect(): Promise<void> {
    this.disconnects++;
  }
  fire(type: string, payload: Record<string, unknown>): void {
    this.emit(type, { id: 1, type, timestamp: Date.now(), payload });
  }
}

function fakeKafka(consumers: FakeConsumer[]): Kafka {
  const admin = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    listTopics: async () => ['t'],
    fetchTopicOffsets: async () => [{ partition: 0, offset: '0', high: '0', low: '0' }],
    deleteGroups: async () => [],
  };
  return {
    admin: () => admin,
    consumer: () => {
      const c = new FakeConsumer();
      consumers.push(c);
      return c;
    },
  } as unknown as Kafka;
}

test('a consumer that crashes, joins or connects after the follower stopped is disconnected again; a live one is left to kafkajs', async (t) => {
  const consumers: FakeConsumer[] = [];
  const follower = new TopicFollower(fakeKafka(consumers), silentLogger, { topic: 't', onRecords: () => undefined });
  await follower.start();
  const c = consumers[0] as FakeConsumer;
  t.truthy(c);

  // while it is live, a crash kafkajs restarts from is kafkajs's business
  c.fire(EVENTS.CRASH, { error: new Error('broker gone'), restart: true });
  await tick();
  t.is(c.disconnects, 0);

  await follower.stop();
  t.is(c.disconnects, 1);

  // kafkajs's restart of a crash that raced the stop: the consumer crashes again or rejoins its group
  c.fire(EVENTS.CRASH, { error: new Error('broker gone'), restart: true });
  t.is(c.disconnects, 1, 'not before the CRASH listeners (and kafkajs\'s restart timer) are done');
  await tick();
  t.is(c.disconnects, 2);
  c.fire(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
  await tick();
  t.is(c.disconnects, 3);
  c.fire(EVENTS.CONNECT, {});
  await tick();
  t.is(c.disconnects, 4);
  t.is(consumers.length, 1, 'no new consumer after the stop');
});

test('the bus consumer: one that crashes or rejoins after stop() disconnected it is disconnected again; before the stop a crash is logged only', async (t) => {
  const consumers: FakeConsumer[] = [];
  const producer = { start: async () => undefined, stop: async () => undefined } as unknown as BusProducer;
  const consumer = new BusConsumer(fakeKafka(consumers), producer, silentLogger, undefined, {
    groupId: 'g',
    topics: ['t'],
    dlqTopic: 't.dlq',
    codec: codecFor('SpanBatch'),
    handler: async () => undefined,
  });
  await consumer.start();
  const c = consumers[0] as FakeConsumer;
  c.fire(EVENTS.CRASH, { error: new Error('broker gone'), restart: true });
  c.fire(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
  await tick();
  t.is(c.disconnects, 0);
  t.deepEqual(consumer.assignment(), [{ topic: 't', partitions: [0] }]);
  await consumer.stop(0);
  t.is(c.disconnects, 1);
  c.fire(EVENTS.CRASH, { error: new Error('broker gone'), restart: true });
  await tick();
  t.is(c.disconnects, 2);
  c.fire(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0, 1] } });
  await tick();
  t.is(c.disconnects, 3);
  t.deepEqual(consumer.assignment(), [{ topic: 't', partitions: [0] }], 'a retired consumer\'s join changes nothing');
});
