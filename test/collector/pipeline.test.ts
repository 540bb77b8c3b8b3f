/**
 * Back-pressure and Kafka failures at the pipeline, without a network: a bounded queue refuses at once
 * when full, an Export gives up waiting for acknowledgements after the timeout, and the breaker fails
 * fast while Kafka keeps failing — every one of them a retriable error (UNAVAILABLE / 503).
 */
import test from 'ava';
import { BreakerOpenError, CallTimeoutError, createBreaker, type Breaker } from '../../services/common/breaker.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { edgeStatusOf, isRetriable, UnavailableError } from '../../services/common/errors.ts';
import { hashToken, type Application } from '../../services/collector/applications.ts';
import { SpanBatcher } from '../../services/collector/receiver/batcher.ts';
import { isKafkaFailure, OverloadedError } from '../../services/collector/receiver/errors.ts';
import { encodeRequest } from '../../services/common/otlp/index.ts';
import { TracePipeline, type ExportRequest } from '../../services/collector/receiver/pipeline.ts';
import { RateLimiter } from '../../services/collector/receiver/ratelimit.ts';
import { TokenCache } from '../../services/collector/receiver/tokens.ts';
import { RecordingSender } from './doubles.ts';
import { randomRequestBytes } from './otlp-fixtures.ts';
import { waitFor } from '../helpers/kafka.ts';

const TOKEN = 'bkst_pipeline-test-token';
const APP: Application = {
  id: 1, bkBizId: 2, appName: 'shop', appAlias: '', description: '', traceRetentionDays: 7, tokenHint: 'bkst_pipelin', tracesDataId: 0,
  metricsDataId: 0, logsDataId: 0, profilesDataId: 0, rateLimitQps: 0, rateLimitBurst: 0,
  tailSampling: false, tailSamplingConfig: {}, virtualMetric: false, provisionedFlows: [], isEnabled: true, createdAt: new Date(0),
};

function setup(t: { teardown(fn: () => void): void }, options: { maxQueuedBytes?: number; timeoutMs?: number } = {}) {
  const sender = new RecordingSender();
  const batcher = new SpanBatcher({
    topic: 'spans',
    header: codecFor('SpanBatch').schema.header,
    sender,
    maxBatchBytes: 256 * 1024,
    maxQueuedBytes: options.maxQueuedBytes ?? 1 << 20,
    maxInFlightSends: 2,
  });
  const breaker: Breaker = createBreaker({ name: 'test-kafka', timeoutMs: options.timeoutMs ?? 30_000, resetTimeoutMs: 60_000, volumeThreshold: 3, isFailure: isKafkaFailure });
  t.teardown(() => breaker.shutdown());
  const tokens = new TokenCache({ lookup: async (hash) => (hash === hashToken(TOKEN) ? APP : undefined), ttlMs: 60_000, missTtlMs: 60_000, maxEntries: 10 });
  const pipeline = new TracePipeline({ tokens, limiter: new RateLimiter(), defaultRateLimit: { qps: 0, burst: 0 }, batcher, partitions: () => 6, breaker });
  return { sender, batcher, breaker, pipeline };
}

function req(seed: number): ExportRequest {
  return { protocol: 'grpc', format: 'protobuf', body: randomRequestBytes(seed, 1, 10), token: TOKEN, clientIp: '127.0.0.1' };
}

/** A request of `n` identical-sized spans. */
function fixedRequest(n: number): ExportRequest {
  const spans = Array.from({ length: n }, (_, i) => ({
    traceId: Buffer.from(i.toString(16).padStart(32, '1'), 'hex'),
    spanId: Buffer.from(i.toString(16).padStart(16, '2'), 'hex'),
    name: 'GET /api/orders/{id}',
    startTimeUnixNano: '1763700000000000000',
    endTimeUnixNano: '1763700000100000000',
    attributes: [{ key: 'http.url', value: { stringValue: 'https://shop.example/api/orders/42?expand=items' } }],
  }));
  return { ...req(0), body: encodeRequest({ resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ spans }] }] }) };
}

test('a full queue refuses at once with a retriable OverloadedError (UNAVAILABLE / 503), and does not trip the breaker', async (t) => {
  const { sender, batcher, breaker, pipeline } = setup(t, { maxQueuedBytes: 16 * 1024 });
  sender.manual = true; // Kafka is slow: nothing is acknowledged
  const first = pipeline.export(fixedRequest(50));
  first.catch(() => undefined); // awaited below; must not go unhandled if an assertion fails first
  await new Promise((r) => setImmediate(r));
  const queued = batcher.queuedBytes();
  t.true(queued > 8 * 1024 && queued <= 16 * 1024, `one request (${queued} bytes) fits the queue, two do not`);
  const refusals = [];
  for (let i = 0; i < 5; i++) refusals.push(await t.throwsAsync(pipeline.export(fixedRequest(50)), { instanceOf: OverloadedError }));
  t.true(isRetriable(refusals[0]));
  t.is(edgeStatusOf(refusals[0]).grpc, 14, 'UNAVAILABLE');
  t.is(edgeStatusOf(refusals[0]).http, 503);
  t.is(breaker.state(), 'closed');
  await waitFor('the first request to be sent', () => sender.pending() > 0);
  sender.release();
  const result = await first;
  t.true(result.acceptedSpans > 0);
  t.true(batcher.hasRoom(1024));
});

test('an Export stops waiting for Kafka after the timeout: a retriable error, counted against Kafka', async (t) => {
  const { sender, pipeline } = setup(t, { timeoutMs: 100 });
  sender.manual = true;
  const err = await t.throwsAsync(pipeline.export(req(10)), { instanceOf: CallTimeoutError });
  t.is(edgeStatusOf(err).grpc, 14);
  t.true(isKafkaFailure(err));
  t.is(err?.details.receivedSpans, 10, 'the receiver can count what it did not accept');
  t.true((err?.details.spans as number) > 0);
  sender.release();
});

test('while Kafka keeps failing the breaker opens and Exports fail fast without reaching the producer', async (t) => {
  const { sender, breaker, pipeline } = setup(t);
  sender.failWith = new Error('KafkaJSNumberOfRetriesExceeded: connect ECONNREFUSED 127.0.0.1:1');
  for (let i = 0; i < 3; i++) await t.throwsAsync(pipeline.export(req(20 + i)), { instanceOf: UnavailableError, message: 'the Kafka broker is unavailable' });
  await new Promise((r) => setImmediate(r));
  t.is(breaker.state(), 'open');
  const sends = sender.requests.length;
  const fast = await t.throwsAsync(pipeline.export(req(30)), { instanceOf: BreakerOpenError });
  t.is(edgeStatusOf(fast).grpc, 14);
  t.is(sender.requests.length, sends, 'nothing was sent while open');
});

test('the spans of a request are published whole: a malformed request leaves nothing in the batches', async (t) => {
  const { sender, batcher, pipeline } = setup(t);
  const good = encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'ok' }] }] }] });
  // a second group whose span is cut short: the scan accepts the framing, the transcoder refuses the inside
  const broken = Buffer.concat([good, Buffer.from([0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x2f, 0x00])]);
  await t.throwsAsync(pipeline.export({ ...req(0), body: broken }), { message: /malformed OTLP protobuf/ });
  await new Promise((r) => setImmediate(r));
  t.is(batcher.queuedBytes(), 0);
  t.is(sender.requests.length, 0);
});
