/**
 * The span batcher with a recording sender (a real implementation of the port): one record per
 * partition per produce request, records under the size limit, keys, back-pressure bounds, failures.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { UnavailableError } from '../../services/common/errors.ts';
import { SpanBatcher, type RecordSender } from '../../services/collector/receiver/batcher.ts';
import { RecordingSender } from './doubles.ts';
import { SpanWriter } from '../../services/collector/receiver/span-avro.ts';
import { sampleSpan } from '../helpers/records.ts';

const codec = codecFor('SpanBatch');

function spanBytes(i: number, nameBytes = 10): { trace: Buffer; bytes: Buffer } {
  const traceId = i.toString(16).padStart(32, '0');
  const bytes = Buffer.from(new SpanWriter().write(sampleSpan({ trace_id: traceId, span_id: (i + 1).toString(16).padStart(16, '0'), span_name: 'n'.repeat(nameBytes) })));
  return { trace: Buffer.from(traceId), bytes };
}

function batcher(sender: RecordSender, overrides: Partial<ConstructorParameters<typeof SpanBatcher>[0]> = {}): SpanBatcher {
  return new SpanBatcher({ topic: 't', header: codec.schema.header, sender, maxBatchBytes: 64 * 1024, maxQueuedBytes: 1 << 20, maxInFlightSends: 2, ...overrides });
}

test('spans of one turn become one record per partition, keyed by the first trace id, decoding to the spans', async (t) => {
  const sender = new RecordingSender();
  const b = batcher(sender);
  const done: Promise<void>[] = [];
  for (let i = 0; i < 30; i++) {
    const { trace, bytes } = spanBytes(i);
    done.push(b.add(i % 3, trace, bytes));
  }
  await Promise.all(done);
  t.is(sender.requests.length, 1);
  const records = sender.requests[0] ?? [];
  t.deepEqual(records.map((m) => m.partition).sort(), [0, 1, 2]);
  for (const m of records) {
    const spans = codec.decode(m.value).spans;
    t.is(spans.length, 10);
    t.is(m.key, spans[0]?.trace_id);
    t.true(spans.every((s) => parseInt(s.trace_id, 16) % 3 === m.partition));
  }
  t.is(b.queuedBytes(), 0);
});

test('records stay under maxBatchBytes; a produce request carries at most one record per partition', async (t) => {
  const sender = new RecordingSender();
  sender.manual = true;
  const b = batcher(sender, { maxBatchBytes: 8 * 1024, maxInFlightSends: 1 });
  const first = b.add(0, spanBytes(0).trace, spanBytes(0).bytes);
  await new Promise((r) => setImmediate(r));
  t.is(sender.requests.length, 1, 'the first span goes out at once');
  const more: Promise<void>[] = [];
  for (let i = 1; i <= 60; i++) more.push(b.add(i % 2, spanBytes(i).trace, spanBytes(i).bytes));
  await new Promise((r) => setImmediate(r));
  t.is(sender.requests.length, 1, 'nothing more while the only send is in flight');
  let settled = false;
  const all = Promise.all([first, ...more]).then(() => (settled = true));
  while (!settled) {
    sender.release();
    await new Promise((r) => setTimeout(r, 1));
  }
  await all;
  for (const request of sender.requests) {
    const partitions = request.map((m) => m.partition);
    t.is(new Set(partitions).size, partitions.length, 'one record per partition per request');
    for (const m of request) t.true(m.value.length <= 8 * 1024, `record of ${m.value.length} bytes`);
  }
  const total = sender.requests.flat().reduce((n, m) => n + codec.decode(m.value).spans.length, 0);
  t.is(total, 61);
  t.true(sender.requests.length > 2, 'the backlog went out in several requests');
});

test('hasRoom bounds what is accepted and not acknowledged', async (t) => {
  const sender = new RecordingSender();
  sender.manual = true;
  const { trace, bytes } = spanBytes(1);
  const b = batcher(sender, { maxQueuedBytes: bytes.length * 3, maxInFlightSends: 1 });
  t.true(b.hasRoom(bytes.length));
  const done = [b.add(0, trace, bytes), b.add(0, trace, bytes), b.add(1, trace, bytes)];
  t.false(b.hasRoom(bytes.length));
  await new Promise((r) => setImmediate(r));
  sender.release();
  await Promise.all(done);
  t.true(b.hasRoom(bytes.length));
  t.is(b.queuedBytes(), 0);
});

test('a failed send rejects its batches with UnavailableError; later spans still go out', async (t) => {
  const sender = new RecordingSender();
  sender.failWith = new Error('KafkaJSConnectionError: connect ECONNREFUSED');
  const records: { spans: number; err: unknown }[] = [];
  const b = batcher(sender, { onRecord: (spans, _bytes, err) => records.push({ spans, err }) });
  const { trace, bytes } = spanBytes(3);
  const err = await t.throwsAsync(b.add(0, trace, bytes), { instanceOf: UnavailableError });
  t.is(err?.message, 'the Kafka broker is unavailable', 'clients learn which part failed, not where it is');
  t.regex(String((err?.cause as Error | undefined)?.message), /ECONNREFUSED/, 'the cause, for the logs');
  t.is(b.queuedBytes(), 0);
  sender.failWith = undefined;
  await b.add(0, trace, bytes);
  t.is(records.length, 2);
  t.truthy(records[0]?.err);
  t.is(records[1]?.err, undefined);
});

test('drain sends everything and waits for the acknowledgements', async (t) => {
  const sender = new RecordingSender();
  const b = batcher(sender, { lingerMs: 60_000 });
  const acked: number[] = [];
  for (let i = 0; i < 5; i++) void b.add(i, spanBytes(i).trace, spanBytes(i).bytes).then(() => acked.push(i));
  await b.drain();
  await new Promise((r) => setImmediate(r));
  t.is(acked.length, 5);
});
