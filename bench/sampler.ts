/**
 * `npm run bench:sampler`: the native tail sampler's throughput beside a bare consume of the same topic.
 *
 * 1. Fills `<prefix>.spans` (12 partitions) with span batches: traces of BENCH_SPANS_PER_TRACE spans with
 *    realistic attributes, BENCH_ERROR_TRACE_PCT % of them ending in an error span; ten traces are open at
 *    a time per partition, so a trace's spans spread over consecutive records, as the receiver batches.
 * 2. Baseline: a consumer group (the bus's consumer, durable-prefix commits) that reads every record and
 *    decodes it with the full SpanBatch schema (avsc), nothing else; for detail, also one that only counts
 *    the spans of each record.
 * 3. The sampler: the same consumer machinery with the sampler's reader and stage (sampler.ts, the job's
 *    state machine), policy `tail_percentage` BENCH_TAIL_PERCENTAGE with a condition on `status.code`, kept
 *    spans produced to `<prefix>.spans.sampled` and acknowledged before offsets commit. The policy is
 *    given directly (the service reads it from the store; that is one query every 10 s).
 * Each is timed from its first batch to its last span handled (and, for the sampler, acknowledged).
 *
 * Env: KAFKA_BROKERS (set by scripts/with-broker.ts), BENCH_SPANS (1 000 000), BENCH_SPANS_PER_RECORD (100),
 * BENCH_SPANS_PER_TRACE (10), BENCH_ERROR_TRACE_PCT (2), BENCH_TAIL_PERCENTAGE (10).
 * Ends with `RESULT bench=sampler spans_per_s=… baseline_spans_per_s=… ratio=… kept_pct=…`.
 */
import { randomBytes } from 'node:crypto';
import { Bus, partitionFor, rawDecoder, type Batch, type Decoder, type HandleResult, type OutMessage } from '../services/common/bus/index.ts';
import { codecFor, HEADER_BYTES, readBlockCount, readResult } from '../services/common/avro/index.ts';
import { createLogger } from '../services/common/log.ts';
import { installWarningFilter } from '../services/common/process.ts';
import type { Span } from '../services/common/records.ts';
import { topicName } from '../services/common/topics.ts';
import { parseUserArgs, userArgsOf } from '../services/sampler/policy.ts';
import { StateBudget } from '../services/sampler/sampler.ts';
import { SampledBatchWriter, spanBatchDecoder } from '../services/sampler/span-batch.ts';
import { SamplerStage } from '../services/sampler/stage.ts';
import { result, rssMb } from './lib.ts';

installWarningFilter();

const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const TOTAL_SPANS = num('BENCH_SPANS', 1_000_000);
const SPANS_PER_RECORD = num('BENCH_SPANS_PER_RECORD', 100);
const SPANS_PER_TRACE = num('BENCH_SPANS_PER_TRACE', 10);
const ERROR_TRACE_PCT = Number(process.env.BENCH_ERROR_TRACE_PCT ?? 2);
const TAIL_PERCENTAGE = Number(process.env.BENCH_TAIL_PERCENTAGE ?? 10);
const PARTITIONS = 12;
const CONCURRENCY = 3;
const OPEN_TRACES = 10;
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const quiet = createLogger({ level: 'silent' });
const T0 = 1_763_700_000_000_000;

const SERVICES = ['order-svc', 'pay-svc', 'cart-svc', 'user-svc', 'gateway'];
const ROUTES = ['/api/orders/{id}', '/api/cart', '/api/pay', '/api/users/{id}', '/healthz'];

function makeSpan(traceId: string, i: number, error: boolean): Span {
  const svc = SERVICES[i % SERVICES.length] as string;
  const route = ROUTES[(i * 7) % ROUTES.length] as string;
  const start = T0 + i * 1_000;
  return {
    bk_biz_id: 2,
    app_name: 'shop',
    trace_id: traceId,
    span_id: randomBytes(8).toString('hex'),
    parent_span_id: i === 0 ? '' : randomBytes(8).toString('hex'),
    span_name: `GET ${route}`,
    kind: i === 0 ? 2 : 3,
    start_time: start,
    end_time: start + 5_000 + i,
    elapsed_time: 5_000 + i,
    status: { code: error ? 2 : 0, message: error ? 'upstream failed' : '' },
    trace_state: '',
    attributes: { 'http.method': 'GET', 'http.route': route, 'http.status_code': error ? 500 : 200, 'http.scheme': 'https', 'net.peer.ip': `10.0.${i % 250}.7`, 'net.peer.port': 51_234, 'http.request_content_length': 0 },
    resource: { 'service.name': svc, 'service.version': '1.4.2', 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.language': 'go', 'telemetry.sdk.version': '1.28.0', 'net.host.ip': '10.0.1.5', 'bk.instance.id': `go:${svc}:10.0.1.5:8080` },
    events: [],
    links: [],
    client_ip: '10.0.1.5',
  };
}

/** Fills the topic; returns spans, records and bytes produced. */
async function fill(bus: Bus, topic: string): Promise<{ spans: number; records: number; bytes: number }> {
  const codec = codecFor('SpanBatch');
  const producer = bus.producer();
  await producer.start();
  const pending = Array.from({ length: PARTITIONS }, () => [] as Span[]);
  const open = Array.from({ length: PARTITIONS }, () => [] as { id: string; next: number; error: boolean }[]);
  let out: OutMessage[] = [];
  let spans = 0;
  let records = 0;
  let bytes = 0;
  const sends = new Set<Promise<void>>();
  const send = async (): Promise<void> => {
    const messages = out;
    out = [];
    const p = producer.send(topic, messages);
    sends.add(p);
    void p.finally(() => sends.delete(p));
    if (sends.size >= 8) await Promise.race(sends);
  };
  const emit = async (p: number): Promise<void> => {
    const list = pending[p] as Span[];
    if (list.length === 0) return;
    const value = codec.encode({ spans: list });
    out.push({ key: list[0]?.trace_id ?? null, value, partition: p });
    records++;
    bytes += value.length;
    pending[p] = [];
    if (out.length >= 50) await send();
  };
  let traces = 0;
  while (spans < TOTAL_SPANS) {
    const id = randomBytes(16).toString('hex');
    const p = partitionFor(id, PARTITIONS);
    const error = (traces++ * 9_973) % 10_000 < ERROR_TRACE_PCT * 100;
    (open[p] as { id: string; next: number; error: boolean }[]).push({ id, next: 0, error });
    // Once ten traces are open in a partition, one span of each goes out per round.
    while ((open[p] as unknown[]).length >= OPEN_TRACES && spans < TOTAL_SPANS) {
      const live = open[p] as { id: string; next: number; error: boolean }[];
      for (const tr of live) {
        const last = tr.next === SPANS_PER_TRACE - 1;
        (pending[p] as Span[]).push(makeSpan(tr.id, tr.next++, last && tr.error));
        spans++;
        if ((pending[p] as Span[]).length >= SPANS_PER_RECORD) await emit(p);
      }
      open[p] = live.filter((tr) => tr.next < SPANS_PER_TRACE);
    }
  }
  for (let p = 0; p < PARTITIONS; p++) await emit(p);
  if (out.length > 0) await send();
  await Promise.all(sends);
  await producer.stop();
  return { spans, records, bytes };
}

/** Runs a consumer group until `expected` spans were handled and their work is durable; spans/s from the first batch. */
async function timed<T>(
  bus: Bus,
  where: { topic: string; dlq: string; groupId: string },
  expected: number,
  codec: Decoder<T>,
  handle: (batch: Batch<T>, count: (spans: number) => void) => Promise<HandleResult>,
): Promise<number> {
  let handled = 0;
  let first = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const count = (n: number): void => {
    handled += n;
  };
  const consumer = bus.consumer<T>({
    groupId: where.groupId,
    topics: [where.topic],
    codec,
    dlqTopic: where.dlq,
    partitionsConsumedConcurrently: CONCURRENCY,
    handler: async (batch) => {
      first ||= performance.now();
      const r = await handle(batch, count);
      if (handled >= expected) void Promise.resolve(r?.durable).then(() => done());
      return r;
    },
  });
  await consumer.start();
  await finished;
  const seconds = (performance.now() - first) / 1000;
  await consumer.stop(10_000);
  return expected / seconds;
}

function cpuUsPerSpan(since: NodeJS.CpuUsage, spans: number): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / spans;
}

async function main(): Promise<void> {
  const prefix = `bench-sampler-${Date.now().toString(36)}`;
  const topics = { spans: topicName(prefix, 'spans'), sampled: topicName(prefix, 'spansSampled'), dlq: topicName(prefix, 'dlq') };
  const bus = new Bus({ brokers, clientId: 'bench-sampler', logger: quiet });
  const admin = bus.admin();
  await admin.start();
  await admin.ensureTopics([
    { topic: topics.spans, numPartitions: PARTITIONS, retentionMs: 3_600_000 },
    { topic: topics.sampled, numPartitions: PARTITIONS, retentionMs: 3_600_000 },
    { topic: topics.dlq, numPartitions: 1, retentionMs: 3_600_000 },
  ]);
  try {
    const started = performance.now();
    const filled = await fill(bus, topics.spans);
    console.log(`filled ${topics.spans}: ${filled.spans} spans in ${filled.records} records, ${(filled.bytes / filled.spans).toFixed(0)} bytes per span, ${((performance.now() - started) / 1000).toFixed(1)} s`);

    // (a) bare consume: every record decoded with the full SpanBatch schema (what any consumer that looks
    // at the spans does), nothing else. For detail, also a consume that only counts the spans.
    const read = readResult();
    let cpu = process.cpuUsage();
    const counted = await timed(bus, { topic: topics.spans, dlq: topics.dlq, groupId: `${prefix}-count` }, filled.spans, rawDecoder, async (batch, count) => {
      for (const r of batch.records) {
        readBlockCount(r.value, HEADER_BYTES, read);
        count(read.value);
      }
    });
    const cpuCounted = cpuUsPerSpan(cpu, filled.spans);
    cpu = process.cpuUsage();
    const baseline = await timed(bus, { topic: topics.spans, dlq: topics.dlq, groupId: `${prefix}-bare` }, filled.spans, codecFor('SpanBatch'), async (batch, count) => {
      count(batch.records.reduce((n, r) => n + r.value.spans.length, 0));
    });
    const cpuBaseline = cpuUsPerSpan(cpu, filled.spans);
    console.log(`    consume that only counts spans (detail):          ${Math.round(counted)} spans/s, ${cpuCounted.toFixed(1)} µs CPU per span`);
    console.log(`(a) bare consume, full decode:                       ${Math.round(baseline)} spans/s, ${cpuBaseline.toFixed(1)} µs CPU per span`);

    // (b) the sampler stage.
    const policy = parseUserArgs(userArgsOf({ tail_percentage: TAIL_PERCENTAGE, tail_conditions: [{ condition: 'and', key: 'status.code', method: 'eq', value: ['2'] }] }));
    const producer = bus.producer();
    await producer.start();
    const budget = new StateBudget({ maxTraces: 500_000, maxBufferedBytes: 256 * 2 ** 20 });
    const stage = new SamplerStage({
      policies: { get: () => ({ policy }) },
      budget,
      writer: new SampledBatchWriter({ maxRecordBytes: 900_000 }),
      outputPartitions: PARTITIONS,
      send: (messages) => producer.send(topics.sampled, messages),
    });
    cpu = process.cpuUsage();
    const sampler = await timed(bus, { topic: topics.spans, dlq: topics.dlq, groupId: `${prefix}-sampler` }, filled.spans, spanBatchDecoder(), async (batch, count) => {
      const r = await stage.handle(batch);
      count(batch.records.reduce((n, rec) => n + rec.value.count, 0));
      return r;
    });
    const cpuSampler = cpuUsPerSpan(cpu, filled.spans);
    await producer.stop();
    const c = stage.counts;
    const keptPct = (100 * c.spansOut) / filled.spans;
    console.log(`(b) sampler (tail_percentage ${TAIL_PERCENTAGE}, status.code eq 2): ${Math.round(sampler)} spans/s, ratio ${(sampler / baseline).toFixed(3)}, ${cpuSampler.toFixed(1)} µs CPU per span (output produced)`);
    console.log(`    outcomes ${JSON.stringify(c.outcomes)}; out ${c.spansOut} spans in ${c.recordsOut} records; state ${budget.traces} traces, ${budget.bufferedSpans} buffered spans (${(budget.bufferedBytes / 2 ** 20).toFixed(1)} MB); RSS ${rssMb().toFixed(0)} MB`);
    result('sampler', { spans_per_s: Math.round(sampler), baseline_spans_per_s: Math.round(baseline), ratio: sampler / baseline, kept_pct: keptPct });
  } finally {
    await admin.deleteTopics(Object.values(topics)).catch(() => undefined);
    for (const g of [`${prefix}-count`, `${prefix}-bare`, `${prefix}-sampler`]) await admin.deleteGroup(g).catch(() => undefined);
    await admin.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
