import test from 'ava';
// eslint-disable-next-line no-restricted-imports -- deleting records (what retention does) has no bus API
import { Kafka, logLevel } from 'kafkajs';
import { ValidationError } from '../../services/common/errors.ts';
import { parseTime, replay, type ReplayProgress } from '../../services/cli/replay.ts';
import { brokerKit, uniqueName, waitFor } from '../helpers/kafka.ts';
import { rawDecoder } from '../../services/common/bus/index.ts';

test('times: ISO, epoch ms, now, relative; bad input names itself', (t) => {
  const now = 1_800_000_000_000;
  t.is(parseTime('now', now), now);
  t.is(parseTime('-2h', now), now - 7_200_000);
  t.is(parseTime('-30m', now), now - 1_800_000);
  t.is(parseTime('-7d', now), now - 7 * 86_400_000);
  t.is(parseTime('1763700000000', now), 1_763_700_000_000);
  t.is(parseTime('2026-11-21T10:00:00Z', now), Date.parse('2026-11-21T10:00:00Z'));
  t.throws(() => parseTime('yesterday', now), { instanceOf: ValidationError, message: /cannot read time "yesterday"/ });
});

test('replay copies exactly the records of the time range, bytes, keys and headers intact, partition grouping kept', async (t) => {
  t.timeout(90_000); // a reader that stops reading fails here instead of hanging the run
  const kit = await brokerKit(t);
  const source = await kit.topic('spans', 4);
  const target = await kit.topic('spans-replay', 4);
  // Recent enough that the topics' 1 h retention keeps every segment (the replayed block is 30 min old,
  // the last one 30 min ahead): with fixed 2023 times the broker's retention check, when it ran between
  // produce and replay, deleted the records and the reader waited for them until killed.
  const base = Date.now() - 90 * 60_000;
  // 3 blocks of 20 records per partition, at base, base+1h, base+2h
  for (let block = 0; block < 3; block++) {
    for (let p = 0; p < 4; p++) {
      await kit.produce(source, Array.from({ length: 20 }, (_, i) => ({
        key: `trace-${p}-${i}`,
        value: Buffer.from(`b${block}-p${p}-${i}`),
        headers: { h: `x${i}` },
        partition: p,
        timestamp: base + block * 3_600_000 + i,
      })));
    }
  }
  const progress: ReplayProgress[] = [];
  const result = await replay({ bus: kit.bus, fromTopic: source, toTopic: target, fromMs: base + 3_600_000, toMs: base + 7_200_000, onProgress: (p) => progress.push(p) });
  t.is(result.total, 80);
  t.is(result.copied, 80);
  t.deepEqual(progress.at(-1), result);
  const readers = (await kit.admin.listGroups()).filter((g) => g.startsWith(`bkstream-reader-${process.pid}-`));
  t.deepEqual(readers, [], 'the throwaway reader group is deleted');

  const got: { partition: number; value: string; key: string; h: string; ts: number }[] = [];
  const consumer = kit.bus.consumer({
    groupId: uniqueName('g'), topics: [target], codec: rawDecoder, dlqTopic: 'unused', maxWaitTimeMs: 100,
    handler: async (b) => {
      for (const r of b.records) got.push({ partition: r.partition, value: r.value.toString(), key: r.key?.toString() ?? '', h: String(r.headers.h), ts: r.timestamp });
    },
  });
  await consumer.start();
  t.teardown(() => consumer.stop(0));
  await waitFor('replayed records', () => got.length >= 80);
  t.is(got.length, 80);
  for (const g of got) {
    const m = /^b(\d)-p(\d)-(\d+)$/.exec(g.value);
    t.truthy(m);
    t.is(m?.[1], '1', 'only the middle block');
    t.is(Number(m?.[2]), g.partition, 'same partition');
    t.is(g.key, `trace-${m?.[2]}-${m?.[3]}`);
    t.is(g.h, `x${m?.[3]}`);
    t.is(g.ts, base + 3_600_000 + Number(m?.[3]));
  }
});

test('an empty range copies nothing; a reversed range and a missing topic are clear errors', async (t) => {
  const kit = await brokerKit(t);
  const source = await kit.topic('spans', 2);
  const target = await kit.topic('spans-replay', 2);
  const r = await replay({ bus: kit.bus, fromTopic: source, toTopic: target, fromMs: 1, toMs: 2 });
  t.deepEqual(r, { copied: 0, total: 0, bytes: 0 });
  await t.throwsAsync(replay({ bus: kit.bus, fromTopic: source, toTopic: target, fromMs: 5, toMs: 2 }), { message: /must be before --to/ });
  const missing = uniqueName('nope');
  await t.throwsAsync(replay({ bus: kit.bus, fromTopic: missing, toTopic: target, fromMs: 1, toMs: 2 }), { message: new RegExp(`missing Kafka topic: ${missing}`) });
});

test('records that retention deleted before they were read are skipped, and the read still ends', async (t) => {
  t.timeout(60_000);
  const kit = await brokerKit(t);
  const source = await kit.topic('gone', 1);
  await kit.produce(source, Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition: 0 })));
  // What retention does to old segments: the log start offset moves past every record.
  const kafka = new Kafka({ clientId: uniqueName('deleter'), brokers: [...kit.bus.brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.fetchTopicMetadata({ topics: [source] });
    await admin.deleteTopicRecords({ topic: source, partitions: [{ partition: 0, offset: '20' }] });
  } finally {
    await admin.disconnect();
  }
  const read = async (start: string, end: string): Promise<string[]> => {
    const offsets: string[] = [];
    await kit.bus.readRange(source, [{ partition: 0, start, end }], async (records) => {
      for (const r of records) offsets.push(r.offset);
    });
    return offsets;
  };
  // a range wholly deleted, with nothing after it, ends at once (it used to wait for records that could
  // never come: no fetch returns anything)
  t.deepEqual(await read('0', '10'), []);
  // a range partly deleted reads what is left
  await kit.produce(source, Array.from({ length: 5 }, (_, i) => ({ key: `k${20 + i}`, value: Buffer.from(`v${20 + i}`), partition: 0 })));
  t.deepEqual(await read('15', '22'), ['20', '21']);
});
