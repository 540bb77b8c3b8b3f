/** The batch handler's durability contract, with the real window, dedupe sink and flusher (no broker). */
import test from 'ava';
import type { Batch } from '../../services/common/bus/index.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { ValidationError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { DedupeSink, NodeKinds, type Snapshot } from '../../services/discovery/dedupe.ts';
import { Flusher } from '../../services/discovery/flusher.ts';
import type { Lookups } from '../../services/discovery/lookups.ts';
import { SpanPipeline } from '../../services/discovery/pipeline.ts';
import { spanBatchView, type SpanView } from '../../services/discovery/span-view.ts';
import { defaultRules, span, T0 } from './helpers.ts';

const codec = codecFor('SpanBatch');
const views = spanBatchView();

function batchOf(spans: ReturnType<typeof span>[], offset = 0): Batch<SpanView> {
  const raw = codec.encode({ spans });
  return {
    topic: 't',
    partition: 0,
    records: [{ topic: 't', partition: 0, offset: String(offset), key: null, value: views.decode(raw), timestamp: 0, headers: {}, raw }],
    lastOffset: String(offset),
    heartbeat: async () => {},
    isStale: () => false,
  };
}

/** A batch of one record per entry of `records`, at consecutive offsets from `offset`. */
function batchOfRecords(records: ReturnType<typeof span>[][], offset: number): Batch<SpanView> {
  const batch = batchOf([], offset);
  batch.records = records.map((spans, i) => {
    const raw = codec.encode({ spans });
    return { topic: 't', partition: 0, offset: String(offset + i), key: null, value: views.decode(raw), timestamp: 0, headers: {}, raw };
  });
  batch.lastOffset = String(offset + records.length - 1);
  return batch;
}

function setup(ensure: Lookups['ensure'] = () => undefined) {
  const written: Snapshot[] = [];
  const nodeKinds = new NodeKinds(100);
  const sink = new DedupeSink({ maxKeys: 1_000, ttlMs: 60_000, touchIntervalMs: 60_000, nodeKinds });
  const flusher = new Flusher({ pending: sink, write: async (s) => (written.push(s), { written: {}, unchanged: {}, rejected: {} }), intervalMs: 1_000_000, maxRows: 1_000_000, logger: silentLogger });
  const lookups = { rules: () => defaultRules, host: () => undefined, cmdbVersion: 0, nodeKind: nodeKinds.nodeKind.bind(nodeKinds), ensure } as unknown as Lookups;
  let clock = 0;
  const pipeline = new SpanPipeline({ lookups, sink, nodeKinds, flusher, window: { ttlMs: 100, maxItems: 1_000 }, touchIntervalMs: 60_000, maxShapes: 1_000, maxQueuedBatches: 2, logger: silentLogger, now: () => clock });
  return { pipeline, flusher, written, nodeKinds, tick: (ms: number) => (clock += ms) };
}

test('a batch becomes durable only once its window entries settled and a flush wrote what they produced', async (t) => {
  const { pipeline, flusher, written, tick } = setup();
  const client = span({ kind: 3, attributes: { 'http.method': 'GET' } });
  const result = await pipeline.handle(batchOf([client]));
  let durable = false;
  void result?.durable.then(() => (durable = true));
  await pipeline.idle();
  await flusher.flush();
  await new Promise((r) => setImmediate(r));
  t.false(durable, 'the client span still waits in the window for its children');
  tick(1_000);
  pipeline.expire();
  await flusher.flush();
  await result?.durable;
  t.true(durable);
  t.true(written.some((s) => s.endpoint.length === 1));
  t.is(pipeline.processedSpans(), 1);
});

test('a batch whose lookups cannot load is not durable: its promise rejects so the bus reads it again', async (t) => {
  const { pipeline } = setup(() => Promise.reject(new ValidationError('no rules')));
  const result = await pipeline.handle(batchOf([span({})]));
  await t.throwsAsync(() => result?.durable ?? Promise.resolve(), { instanceOf: ValidationError });
  t.is(pipeline.processedSpans(), 0);
});

test('a partition read again from an earlier offset starts a fresh window', async (t) => {
  const { pipeline, tick } = setup();
  const client = span({ kind: 3, attributes: { 'http.method': 'GET' } });
  void (await pipeline.handle(batchOf([client], 5)));
  await pipeline.idle();
  t.is(pipeline.windowItems(), 1);
  void (await pipeline.handle(batchOf([span({ kind: 1 })], 3)));
  await pipeline.idle();
  t.is(pipeline.windowItems(), 1, 'the old entry is gone; the re-read batch added its own');
  tick(1_000);
  pipeline.expire();
  t.is(pipeline.windowItems(), 0);
});

test('a partition read again from inside its current reading (kept across a rebalance): the records processed already are skipped, and the batch is durable only with the first reading', async (t) => {
  const { pipeline, flusher, tick } = setup();
  const client = (_n: number) => span({ kind: 3, attributes: { 'http.method': 'GET' } });
  // First reading: offsets 10..12, three client spans waiting in the window for their children.
  const first = await pipeline.handle(batchOfRecords([[client(1)], [client(2)], [client(3)]], 10));
  let firstDurable = false;
  void first?.durable.then(() => (firstDurable = true));
  await pipeline.idle();
  t.is(pipeline.processedSpans(), 3);
  t.is(pipeline.windowItems(), 3);
  t.deepEqual(pipeline.positions(), { 't:0': '13' });
  pipeline.stats();

  // The bus read the partition again from its last commit (11): 11 and 12 were processed, 13 is new.
  const again = await pipeline.handle(batchOfRecords([[client(2)], [client(3)], [client(4), client(5)]], 11));
  let againDurable = false;
  void again?.durable.then(() => (againDurable = true));
  await pipeline.idle();
  t.is(pipeline.processedSpans(), 5, 'only the two spans of offset 13 were processed');
  t.is(pipeline.stats().reread, 2);
  t.is(pipeline.windowItems(), 5, 'the window of the first reading is kept');
  t.deepEqual(pipeline.positions(), { 't:0': '14' });
  await flusher.flush();
  await new Promise((r) => setImmediate(r));
  t.false(againDurable, 'the first reading of 11 and 12 still waits in the window');
  tick(1_000);
  pipeline.expire();
  await flusher.flush();
  await first?.durable;
  await new Promise((r) => setImmediate(r));
  t.false(againDurable, 'released once the first reading is durable, it waits for the next flush');
  await flusher.flush();
  await again?.durable;
  t.true(firstDurable && againDurable);
});

test('a partition read again after a batch failed is processed anew from there (nothing skipped)', async (t) => {
  let fail = false;
  const { pipeline } = setup(() => (fail ? Promise.reject(new ValidationError('no rules')) : undefined));
  void (await pipeline.handle(batchOfRecords([[span({})], [span({})]], 0)));
  await pipeline.idle();
  fail = true;
  const failed = await pipeline.handle(batchOfRecords([[span({})]], 2));
  await t.throwsAsync(() => failed?.durable ?? Promise.resolve(), { instanceOf: ValidationError });
  fail = false;
  void (await pipeline.handle(batchOfRecords([[span({})]], 3)));
  await pipeline.idle();
  t.is(pipeline.processedSpans(), 3);
  pipeline.stats();
  // The bus reads again from the failed batch: 2 was never processed, and 3 is read again with it.
  void (await pipeline.handle(batchOfRecords([[span({})], [span({})]], 2)));
  await pipeline.idle();
  t.is(pipeline.processedSpans(), 5);
  t.is(pipeline.stats().reread, 0);
});

test('a shape is discovered again when a lookup its discovery read has changed, and only then', async (t) => {
  const { pipeline, nodeKinds } = setup();
  // A SERVER span matching a component rule reads its service node's kind (relation toward the service);
  // an http CLIENT span reads no node kind.
  const spans = (at: number): ReturnType<typeof span>[] => [
    span({ kind: 2, parent_span_id: 'aa', end_time: T0 + at, attributes: { 'db.system': 'mysql' } }),
    span({ kind: 3, end_time: T0 + at, attributes: { 'http.method': 'GET' } }),
  ];
  const misses = async (at: number): Promise<number> => {
    void (await pipeline.handle(batchOf(spans(at), at)));
    await pipeline.idle();
    return pipeline.stats().shapeMisses;
  };
  t.is(await misses(1), 2);
  await misses(2); // the first batch taught node kinds, which the server span's shape may have read before
  t.is(await misses(3), 0);
  nodeKinds.merge(2, 'shop', 'some-other-node', { category: 'db', kind: 'component', predicate_value: 'mysql', service_language: '' });
  t.is(await misses(4), 1, 'only the shape that read node kinds is void');
  t.is(await misses(5), 0);
});
