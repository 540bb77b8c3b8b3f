/** The batch handler's durability contract, with the real window, dedupe sink and flusher (no broker). */
import test from 'ava';
import type { Batch } from '../../services/common/bus.ts';
import { ValidationError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { DedupeSink, NodeKinds, type Snapshot } from '../../services/discovery/dedupe.ts';
import { Flusher } from '../../services/discovery/flusher.ts';
import type { Lookups } from '../../services/discovery/lookups.ts';
import { SpanPipeline } from '../../services/discovery/pipeline.ts';
import type { DiscoverySpanBatch } from '../../services/discovery/span-codec.ts';
import { defaultRules, span } from './helpers.ts';

function batchOf(spans: ReturnType<typeof span>[], offset = 0): Batch<DiscoverySpanBatch> {
  return {
    topic: 't',
    partition: 0,
    records: [{ topic: 't', partition: 0, offset: String(offset), key: null, value: { spans }, timestamp: 0, headers: {}, raw: Buffer.alloc(0) }],
    lastOffset: String(offset),
    heartbeat: async () => {},
    isStale: () => false,
  };
}

function setup(ensure: Lookups['ensure'] = () => undefined) {
  const written: Snapshot[] = [];
  const nodeKinds = new NodeKinds(100);
  const sink = new DedupeSink({ maxKeys: 1_000, ttlMs: 60_000, touchIntervalMs: 60_000, nodeKinds });
  const flusher = new Flusher({ pending: sink, write: async (s) => (written.push(s), { written: {}, rejected: {} }), intervalMs: 1_000_000, maxRows: 1_000_000, logger: silentLogger });
  const lookups = { rules: () => defaultRules, host: () => undefined, cmdbVersion: 0, nodeKind: () => undefined, ensure } as unknown as Lookups;
  let clock = 0;
  const pipeline = new SpanPipeline({ lookups, sink, nodeKinds, flusher, window: { ttlMs: 100, maxItems: 1_000 }, touchIntervalMs: 60_000, maxShapes: 1_000, maxQueuedBatches: 2, logger: silentLogger, now: () => clock });
  return { pipeline, flusher, written, tick: (ms: number) => (clock += ms) };
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
