/**
 * TopicFollower (services/common/bus/follower.ts), the bus's consumer (consumer.ts) and kafkajs's own
 * restarts: a consumer they have disconnected must stay disconnected. kafkajs sets its restart timer after the CRASH event and a
 * restart that is connecting is not undone by a racing disconnect, so a consumer that crashes or joins
 * its group after it was retired is disconnected again; and the bus consumer runs again after a crash
 * kafkajs does not restart from. A kafkajs stand-in drives the events; real broker outages are
 * test/common/gse-watcher-outage.test.ts and test/agent/agent.durability.test.ts.
 */
import { EventEmitter } from 'node:events';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
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
  connects = 0;
  runs = 0;
  /** connect() rejects while set (the broker still away). */
  refuse = false;
  async connect(): Promise<void> {
    this.connects++;
    if (this.refuse) throw new Error('connect ECONNREFUSED');
  }
  async subscribe(): Promise<void> {}
  async run(): Promise<void> {
    this.runs++;
  }
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

/** A bus consumer on the stand-in, started; `c` is its kafkajs consumer. */
async function startedBusConsumer(): Promise<{ consumer: BusConsumer<unknown>; consumers: FakeConsumer[]; c: FakeConsumer }> {
  const consumers: FakeConsumer[] = [];
  const producer = { start: async () => undefined, stop: async () => undefined } as unknown as BusProducer;
  const consumer = new BusConsumer<unknown>(fakeKafka(consumers), producer, silentLogger, undefined, {
    groupId: 'g',
    topics: ['t'],
    dlqTopic: 't.dlq',
    codec: codecFor('SpanBatch'),
    handler: async () => undefined,
  });
  await consumer.start();
  return { consumer, consumers, c: consumers[0] as FakeConsumer };
}

test('the bus consumer: one that crashes or rejoins after stop() disconnected it is disconnected again; before the stop a crash is logged only', async (t) => {
  const { consumer, c } = await startedBusConsumer();
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

test('the bus consumer: a crash kafkajs does not restart from is followed by running the consumer again, with backoff, until it joins; not after stop()', async (t) => {
  const { consumer, consumers, c } = await startedBusConsumer();
  t.is(c.runs, 1);

  // kafkajs restarts after retriable errors itself
  c.fire(EVENTS.CRASH, { error: new Error('broker gone'), restart: true });
  await sleep(900);
  t.is(c.runs, 1, 'a crash kafkajs restarts from is left to it');

  // "Failed to find group coordinator" during an outage: kafkajs gives up (and has disconnected)
  c.refuse = true;
  c.fire(EVENTS.CRASH, { error: new Error('Failed to find group coordinator'), restart: false });
  c.fire(EVENTS.CRASH, { error: new Error('Failed to find group coordinator'), restart: false });
  await waitUntil(() => c.connects >= 3, 5_000);
  t.is(c.runs, 1, 'connect refused: not run, tried again later');
  c.refuse = false;
  await waitUntil(() => c.runs === 2, 10_000);
  const connects = c.connects;
  c.fire(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
  t.deepEqual(consumer.assignment(), [{ topic: 't', partitions: [0] }]);
  await sleep(1_500);
  t.is(c.connects, connects, 'one run again per crash (two crashes at once made one)');

  // the backoff starts over after a join; a stop cancels a pending run
  c.fire(EVENTS.CRASH, { error: new Error('Failed to find group coordinator'), restart: false });
  await consumer.stop(0);
  await sleep(1_500);
  t.is(c.runs, 2, 'no run again after stop()');
  t.is(consumers.length, 1);
});

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`not done within ${timeoutMs} ms`);
    await sleep(20);
  }
}
