/**
 * The bus against the real broker: round trips of every schema, consumer groups (split, take-over, no
 * loss and no re-processing after a commit), dead letters, poison records, back-pressure, failed
 * durability, retries, the batching producer, and the Java-compatible partitioner.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Bus, DLQ_HEADERS, partitionFor, rawDecoder, type Batch, type BusConsumer, type ConsumerOptions, type HandleResult } from '../../services/common/bus/index.ts';
import { Codec, codecFor, SCHEMAS_DIR, SchemaRegistry } from '../../services/common/avro/index.ts';
import { createLogger } from '../../services/common/log.ts';
import { UnavailableError, ValidationError } from '../../services/common/errors.ts';
import type { FlowStatus, RecordName, SpanBatch } from '../../services/common/records.ts';
import { brokerKit, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { SAMPLES, sampleFlowStatus } from '../helpers/records.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const fastGroup = { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 500, maxWaitTimeMs: 100 };

function startConsumer<T>(t: { teardown(fn: () => Promise<void>): void }, kit: BrokerKit, options: Omit<ConsumerOptions<T>, 'dlqTopic'> & { dlqTopic?: string }): Promise<BusConsumer<T>> {
  const consumer = kit.bus.consumer<T>({ ...fastGroup, dlqTopic: options.dlqTopic ?? 'unused-dlq', ...options });
  t.teardown(async () => {
    await consumer.stop(0);
    const admin = kit.admin;
    await admin.deleteGroup(options.groupId);
  });
  return consumer.start().then(() => consumer);
}

/** Collects every record the handler sees as `partition:offset` → value. */
function collector<T>() {
  const seen: { partition: number; offset: string; value: T }[] = [];
  const handler = async (batch: Batch<T>): Promise<HandleResult> => {
    for (const r of batch.records) seen.push({ partition: r.partition, offset: r.offset, value: r.value });
  };
  return { seen, handler };
}

const status = (i: number): FlowStatus => ({ ...sampleFlowStatus(), attempt: i, message: `m${i}` });

test('partitionFor agrees with the Java client (Utils.murmur2, 12 partitions)', (t) => {
  // Vectors computed with org.apache.kafka.common.utils.Utils from kafka-clients 3.9.2.
  const vectors: [string, number][] = [
    ['4bf92f3577b34da6a3ce929d0e0e4736', 2],
    ['a', 4],
    ['2:shop:tail_sampling', 8],
    ['trace-00000001', 8],
    ['', 9],
    ['0af7651916cd43dd8448eb211c80319c', 7],
  ];
  for (const [key, partition] of vectors) t.is(partitionFor(key, 12), partition, key);
});

test('keyed records land on the partition partitionFor predicts', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('keyed', 12);
  const keys = Array.from({ length: 40 }, (_, i) => `trace-${i}`);
  await kit.produce(topic, keys.map((key) => ({ key, value: Buffer.from(key) })));
  const { seen, handler } = collector<Buffer>();
  await startConsumer(t, kit, { groupId: uniqueName('g'), topics: [topic], codec: rawDecoder, handler, partitionsConsumedConcurrently: 12 });
  await waitFor('all keyed records', () => seen.length === keys.length);
  for (const r of seen) t.is(r.partition, partitionFor(r.value.toString(), 12));
});

for (const name of Object.keys(SAMPLES) as RecordName[]) {
  test(`${name} round-trips through the broker`, async (t) => {
    const kit = await brokerKit(t);
    const topic = await kit.topic(`rt-${name}`);
    const codec: Codec<unknown> = codecFor(name);
    const value = SAMPLES[name]();
    await kit.produce(topic, [{ key: 'k', value: codec.encode(value) }]);
    const { seen, handler } = collector<unknown>();
    await startConsumer(t, kit, { groupId: uniqueName('g'), topics: [topic], codec, handler });
    await waitFor('the record', () => seen.length === 1);
    t.deepEqual(structuredClone(seen[0]?.value), structuredClone(value));
  });
}

test('a group of two splits the partitions; when one leaves the other takes over; nothing committed is lost or processed twice', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('group', 4);
  const codec = codecFor('FlowStatus');
  const groupId = uniqueName('g');
  const a = collector<FlowStatus>();
  const b = collector<FlowStatus>();
  const ca = await startConsumer(t, kit, { groupId, topics: [topic], codec, handler: a.handler, partitionsConsumedConcurrently: 4 });
  await waitFor('first member joined', () => ca.joined());
  const cb = await startConsumer(t, kit, { groupId, topics: [topic], codec, handler: b.handler, partitionsConsumedConcurrently: 4 });
  await waitFor('partitions split between both members', () => {
    const pa = ca.assignment()[0]?.partitions ?? [];
    const pb = cb.assignment()[0]?.partitions ?? [];
    return pa.length === 2 && pb.length === 2 && new Set([...pa, ...pb]).size === 4;
  });

  const produce = (from: number, n: number) =>
    kit.produce(topic, Array.from({ length: n }, (_, i) => ({ key: `k${from + i}`, value: codec.encode(status(from + i)) })));
  await produce(0, 200);
  await waitFor('first 200 processed', () => a.seen.length + b.seen.length === 200);
  t.true(a.seen.length > 0 && b.seen.length > 0, 'both members did work');
  await waitFor('offsets committed', async () => (await kit.admin.groupLag(groupId, topic)) === 0);

  await cb.stop();
  await waitFor('the remaining member owns all partitions', () => (ca.assignment()[0]?.partitions.length ?? 0) === 4);
  await produce(200, 200);
  await waitFor('next 200 processed', () => a.seen.length + b.seen.length === 400, 30_000);
  await waitFor('offsets committed', async () => (await kit.admin.groupLag(groupId, topic)) === 0);

  const all = [...a.seen, ...b.seen];
  const keys = all.map((r) => `${r.partition}:${r.offset}`);
  t.is(new Set(keys).size, keys.length, 'no record processed twice');
  t.deepEqual(all.map((r) => r.value.attempt).sort((x, y) => x - y), Array.from({ length: 400 }, (_, i) => i), 'no record lost');
});

test('a member that dies before its work is durable loses nothing: only uncommitted records are processed again', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('crash', 2);
  const codec = codecFor('FlowStatus');
  const groupId = uniqueName('g');
  // The doomed member accepts records but never makes them durable, so never commits.
  const doomedSeen: string[] = [];
  const doomed = await startConsumer(t, kit, {
    groupId,
    topics: [topic],
    codec,
    partitionsConsumedConcurrently: 2,
    handler: async (batch) => {
      for (const r of batch.records) doomedSeen.push(`${r.partition}:${r.offset}`);
      return { durable: new Promise<void>(() => undefined) };
    },
  });
  await waitFor('doomed member joined', () => doomed.joined());
  await kit.produce(topic, Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: codec.encode(status(i)) })));
  await waitFor('doomed member saw everything', () => doomedSeen.length === 50);
  t.is(await kit.admin.groupLag(groupId, topic), 50, 'nothing was committed');
  await doomed.stop(0); // dies without draining

  const survivor = collector<FlowStatus>();
  await startConsumer(t, kit, { groupId, topics: [topic], codec, handler: survivor.handler, partitionsConsumedConcurrently: 2 });
  await waitFor('survivor processed everything', () => survivor.seen.length === 50);
  await waitFor('committed', async () => (await kit.admin.groupLag(groupId, topic)) === 0);
  t.deepEqual(survivor.seen.map((r) => r.value.attempt).sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
});

test('corrupt and unknown records go to the dead-letter topic with headers; the consumer keeps going', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('dlqsrc');
  const dlq = await kit.topic('dlq');
  const codec = codecFor('FlowStatus');
  const unknown = codec.encode(status(99));
  unknown.writeBigUInt64LE(1n, 2);
  await kit.produce(topic, [
    { key: 'good-1', value: codec.encode(status(1)) },
    { key: 'garbage', value: Buffer.from('not avro at all'), headers: { origin: 'test' } },
    { key: 'unknown', value: unknown },
    { key: 'truncated', value: codec.encode(status(3)).subarray(0, 14) },
    { key: 'good-2', value: codec.encode(status(2)) },
  ]);
  const { seen, handler } = collector<FlowStatus>();
  const groupId = uniqueName('g');
  await startConsumer(t, kit, { groupId, topics: [topic], codec, handler, dlqTopic: dlq });
  await waitFor('good records', () => seen.length === 2);
  t.deepEqual(seen.map((r) => r.value.attempt), [1, 2]);

  const dead = collector<Buffer>();
  const deadHeaders: Record<string, string>[] = [];
  await startConsumer(t, kit, {
    groupId: uniqueName('dlq-reader'),
    topics: [dlq],
    codec: rawDecoder,
    handler: async (batch) => {
      await dead.handler(batch);
      for (const r of batch.records) {
        deadHeaders.push(Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)])));
      }
    },
  });
  await waitFor('three dead letters', () => dead.seen.length === 3);
  t.deepEqual(dead.seen[0]?.value, Buffer.from('not avro at all'), 'original bytes');
  t.deepEqual(deadHeaders.map((h) => h[DLQ_HEADERS.errorClass]), ['record_corrupt', 'schema_unknown', 'record_corrupt']);
  t.deepEqual(deadHeaders.map((h) => h[DLQ_HEADERS.offset]), ['1', '2', '3']);
  for (const h of deadHeaders) {
    t.is(h[DLQ_HEADERS.topic], topic);
    t.is(h[DLQ_HEADERS.partition], '0');
    t.is(h[DLQ_HEADERS.group], groupId);
    t.truthy(h[DLQ_HEADERS.errorMessage]);
  }
  t.is(deadHeaders[0]?.origin, 'test', 'original headers are kept');
  await waitFor('source offsets committed past the dead letters', async () => (await kit.admin.groupLag(groupId, topic)) === 0);
});

test('a record the handler rejects as invalid is isolated and dead-lettered; the rest of its batch is processed', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('poison');
  const dlq = await kit.topic('dlq');
  const codec = codecFor('FlowStatus');
  await kit.produce(topic, [1, 2, 3, 4].map((i) => ({ key: `k${i}`, value: codec.encode(status(i)) })));
  const processed: number[] = [];
  await startConsumer(t, kit, {
    groupId: uniqueName('g'),
    topics: [topic],
    codec,
    dlqTopic: dlq,
    handler: async (batch) => {
      if (batch.records.some((r) => r.value.attempt === 3)) throw new ValidationError('attempt 3 is poison');
      for (const r of batch.records) processed.push(r.value.attempt);
    },
  });
  const dead = collector<Buffer>();
  await startConsumer(t, kit, { groupId: uniqueName('dlq-reader'), topics: [dlq], codec: rawDecoder, handler: dead.handler });
  await waitFor('dead letter', () => dead.seen.length === 1);
  await waitFor('others processed', () => processed.length === 3);
  t.deepEqual(processed.sort(), [1, 2, 4]);
  t.is(codec.decode(dead.seen[0]?.value as Buffer).attempt, 3);
});

test('retriable handler errors are retried without dead-lettering', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('flaky');
  const codec = codecFor('FlowStatus');
  await kit.produce(topic, [{ key: 'k', value: codec.encode(status(7)) }]);
  let calls = 0;
  const groupId = uniqueName('g');
  await startConsumer(t, kit, {
    groupId,
    topics: [topic],
    codec,
    handler: async () => {
      if (++calls < 3) throw new UnavailableError('store down');
    },
  });
  await waitFor('committed after retries', async () => calls >= 3 && (await kit.admin.groupLag(groupId, topic)) === 0);
  t.is(calls, 3);
});

test('back-pressure: a partition with too much non-durable work is paused, then resumed and committed', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('bp');
  const codec = codecFor('FlowStatus');
  const groupId = uniqueName('g');
  const gates: PromiseWithResolvers<void>[] = [];
  let delivered = 0;
  const consumer = await startConsumer(t, kit, {
    groupId,
    topics: [topic],
    codec,
    maxInFlightRecords: 5,
    handler: async (batch) => {
      delivered += batch.records.length;
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      return { durable: gate.promise };
    },
  });
  await waitFor('joined', () => consumer.joined());
  await kit.produce(topic, Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: codec.encode(status(i)) })));
  await waitFor('paused', () => consumer.pausedPartitions().some((p) => p.topic === topic && p.partitions.includes(0)));
  const before = delivered;
  await kit.produce(topic, Array.from({ length: 10 }, (_, i) => ({ key: `k${20 + i}`, value: codec.encode(status(20 + i)) })));
  await sleep(1_000);
  t.is(delivered, before, 'nothing is delivered while paused');
  t.is(await kit.admin.groupLag(groupId, topic), 30, 'nothing is committed before it is durable');

  for (const g of gates.splice(0)) g.resolve();
  await waitFor('resumed and delivered the rest', () => {
    for (const g of gates.splice(0)) g.resolve();
    return delivered === 30 && consumer.pausedPartitions().length === 0;
  });
  await waitFor('committed', async () => {
    for (const g of gates.splice(0)) g.resolve();
    return (await kit.admin.groupLag(groupId, topic)) === 0;
  });
  t.pass();
});

test('a batch waiting to become durable does not keep the fetched bytes alive', async (t) => {
  // Record values are slices of kafkajs's whole fetch response; a batch can wait seconds for its flush.
  const kit = await brokerKit(t);
  const topic = await kit.topic('retain');
  const groupId = uniqueName('g');
  const responses: WeakRef<ArrayBufferLike>[] = [];
  const gates: PromiseWithResolvers<void>[] = [];
  let delivered = 0;
  await startConsumer(t, kit, {
    groupId,
    topics: [topic],
    codec: rawDecoder,
    handler: async (batch) => {
      for (const r of batch.records) if (!responses.some((w) => w.deref() === r.value.buffer)) responses.push(new WeakRef(r.value.buffer));
      delivered += batch.records.length;
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      return { durable: gate.promise };
    },
  });
  await kit.produce(topic, Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: Buffer.alloc(50_000, i) })));
  await waitFor('delivered', () => delivered === 20);
  t.true(responses.length > 0);
  await waitFor('every fetch response collected while its batches wait', async () => {
    await sleep(50);
    gc();
    return responses.every((w) => w.deref() === undefined);
  });
  t.is(await kit.admin.groupLag(groupId, topic), 20, 'nothing committed yet');
  for (const g of gates.splice(0)) g.resolve();
  await waitFor('committed', async () => (await kit.admin.groupLag(groupId, topic)) === 0);
});

test('work that fails to become durable is read again, and only then committed', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('redo');
  const codec = codecFor('FlowStatus');
  const groupId = uniqueName('g');
  await kit.produce(topic, [1, 2, 3].map((i) => ({ key: `k${i}`, value: codec.encode(status(i)) })));
  const deliveries: number[][] = [];
  await startConsumer(t, kit, {
    groupId,
    topics: [topic],
    codec,
    handler: async (batch) => {
      deliveries.push(batch.records.map((r) => r.value.attempt));
      return deliveries.length === 1 ? { durable: Promise.reject(new UnavailableError('flush failed')) } : undefined;
    },
  });
  await waitFor('delivered twice and committed', async () => deliveries.length >= 2 && (await kit.admin.groupLag(groupId, topic)) === 0);
  t.deepEqual(deliveries[0], [1, 2, 3]);
  t.deepEqual(deliveries.slice(1).flat().sort(), [1, 2, 3]);
});

test('stop without start is safe, and stop is idempotent', async (t) => {
  const kit = await brokerKit(t);
  const consumer = kit.bus.consumer({ groupId: uniqueName('g'), topics: ['x'], codec: rawDecoder, handler: async () => undefined, dlqTopic: 'x' });
  await consumer.stop();
  await consumer.stop();
  const producer = kit.bus.producer();
  await producer.stop();
  t.pass();
});

test('checkTopics names every missing topic', async (t) => {
  const kit = await brokerKit(t);
  const present = await kit.topic('present');
  const missing = [uniqueName('missing-a'), uniqueName('missing-b')];
  const err = await t.throwsAsync(kit.admin.checkTopics([present, ...missing]));
  t.is(err?.message, `missing Kafka topics: ${missing.join(', ')} (create them with \`npm run topics\`, or \`bkstream up\`)`);
});

test('a v1 record produced to the broker is read by a v2 consumer', async (t) => {
  const registry = SchemaRegistry.load([SCHEMAS_DIR, resolve(import.meta.dirname, '../fixtures/schemas')]);
  const v1 = new Codec<SpanBatch>('SpanBatch', { registry, version: 1 });
  const v2 = new Codec<SpanBatch & { source: string }>('SpanBatch', { registry });
  const kit = await brokerKit(t);
  const topic = await kit.topic('evolve');
  const original = SAMPLES.SpanBatch();
  await kit.produce(topic, [{ key: 'k', value: v1.encode(original) }]);
  const { seen, handler } = collector<SpanBatch & { source: string }>();
  await startConsumer(t, kit, { groupId: uniqueName('g'), topics: [topic], codec: v2, handler });
  await waitFor('the record', () => seen.length === 1);
  t.is(seen[0]?.value.source, 'unknown', 'the v2 field takes its default');
  t.deepEqual(structuredClone(seen[0]?.value.spans), structuredClone(original.spans).map((s) => ({ ...s, sampled: true })));
});

test('kafkajs logs are routed into the service logger', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger({ level: 'debug', stream });
  const bus = new Bus({ brokers: ['127.0.0.1:1'], clientId: 'log-test', logger, retries: 0, connectionTimeoutMs: 200 });
  const admin = bus.admin();
  await t.throwsAsync(admin.start());
  await admin.stop();
  const kafka = lines.filter((l) => l.component === 'kafkajs');
  t.true(kafka.length > 0, 'kafkajs wrote through winston');
  t.true(kafka.some((l) => l.level === 'error' && typeof l.namespace === 'string'));
});

test('an idle connection does not poll its request queue (kafkajs 2.2.4 re-armed a 1 ms timer forever)', async (t) => {
  const kit = await brokerKit(t);
  const topic = await kit.topic('idle', 1);
  const producer = kit.bus.producer();
  await producer.start();
  t.teardown(() => producer.stop());
  await producer.send(topic, [{ key: 'k', value: Buffer.from('v') }]);
  // Count timers armed while idle: with the bug, each connection's queue arms ~1 000 a second.
  const real = globalThis.setTimeout;
  let armed = 0;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    armed++;
    return real(fn, ms);
  }) as typeof setTimeout;
  try {
    await new Promise((resolve) => real(resolve, 500));
  } finally {
    globalThis.setTimeout = real;
  }
  t.true(armed < 50, `timers armed in 500 ms of idling: ${armed}`);
});
