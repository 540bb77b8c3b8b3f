/**
 * The sampler service against the real broker and PostgreSQL-compatible store (PGlite): stop without
 * start; spans of configured applications in → the job's decisions out on spans.sampled, offsets
 * committed after the output; unconfigured, stopped and invalid applications forward nothing; a poison
 * record goes to the dead-letter topic; a changed flow config applies after a refresh.
 */
import test, { type ExecutionContext } from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { DLQ_HEADERS, rawDecoder, type ConsumedRecord } from '../../services/common/bus/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { Span, SpanBatch } from '../../services/common/records.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicName } from '../../services/common/topics.ts';
import samplerService, { createSampler, type SamplerService } from '../../services/sampler/service.ts';
import { brokerKit, brokers, testBus, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { sampleSpan } from '../helpers/records.ts';
import { pgliteStore } from '../helpers/store.ts';

const spanCodec = codecFor('SpanBatch');

interface Running {
  service: SamplerService;
  prefix: string;
  group: string;
  topics: { spans: string; sampled: string; dlq: string };
}

async function topicsFor(t: ExecutionContext, kit: BrokerKit): Promise<Running['topics'] & { prefix: string }> {
  const prefix = uniqueName('smp');
  const topics = { spans: topicName(prefix, 'spans'), sampled: topicName(prefix, 'spansSampled'), dlq: topicName(prefix, 'dlq') };
  await kit.admin.ensureTopics([
    { topic: topics.spans, numPartitions: 3, retentionMs: 3_600_000 },
    { topic: topics.sampled, numPartitions: 3, retentionMs: 3_600_000 },
    { topic: topics.dlq, numPartitions: 1, retentionMs: 3_600_000 },
  ]);
  t.teardown(() => kit.admin.deleteTopics(Object.values(topics)).catch(() => undefined));
  return { prefix, ...topics };
}

async function start(t: ExecutionContext, kit: BrokerKit, store: Store): Promise<Running> {
  const { prefix, ...topics } = await topicsFor(t, kit);
  const group = `${prefix}-g`;
  const env: NodeJS.ProcessEnv = { KAFKA_BROKERS: brokers().join(','), TOPIC_PREFIX: prefix, SAMPLER_GROUP_ID: group, SAMPLER_HTTP_PORT: '0', SAMPLER_POLICY_REFRESH_MS: '200', SAMPLER_EXPIRE_INTERVAL_MS: '100' };
  const registry = createRegistry();
  const service = await createSampler({ env, logger: silentLogger, registry, store, bus: testBus({ registry }), common: loadConfig(commonSpec, { env }) }, samplerService.config(env));
  t.teardown(async () => {
    await service.stop();
    await kit.admin.deleteGroup(group).catch(() => undefined);
  });
  await service.start();
  return { service, prefix, group, topics };
}

async function flow(store: Store, app: string, config: Record<string, unknown>, desired = 'running'): Promise<void> {
  await store.query(
    `INSERT INTO bkdata_flow (bk_biz_id, app_name, flow_type, desired, config) VALUES (2, $1, 'tail_sampling', $2, $3)
     ON CONFLICT (bk_biz_id, app_name, flow_type) DO UPDATE SET desired = EXCLUDED.desired, config = EXCLUDED.config`,
    [app, desired, JSON.stringify(config)],
  );
}

const ERROR_ONLY = { tail_percentage: 0, tail_conditions: [{ condition: 'and', key: 'status.code', method: 'eq', value: ['2'] }] };

let seq = 0;
function span(trace: string, app: string, error = false): Span {
  seq++;
  return sampleSpan({ trace_id: trace.padEnd(32, '0'), span_id: seq.toString(16).padStart(16, '0'), app_name: app, status: { code: error ? 2 : 0, message: '' } });
}

async function produce(kit: BrokerKit, topic: string, spans: Span[]): Promise<void> {
  const byTrace = new Map<string, Span[]>();
  for (const s of spans) byTrace.set(s.trace_id, [...(byTrace.get(s.trace_id) ?? []), s]);
  await kit.produce(topic, [...byTrace].map(([trace, list]) => ({ key: trace, value: spanCodec.encode({ spans: list } satisfies SpanBatch) })));
}

/** Everything written to spans.sampled, read by a consumer of its own. */
async function readSampled(t: ExecutionContext, kit: BrokerKit, run: Running): Promise<Span[]> {
  const out: Span[] = [];
  const reader = kit.bus.consumer<SpanBatch>({ groupId: uniqueName('sampled-reader'), topics: [run.topics.sampled], codec: spanCodec, dlqTopic: run.topics.dlq, handler: async (b) => void out.push(...b.records.flatMap((r) => r.value.spans)) });
  t.teardown(() => reader.stop(0));
  await reader.start();
  return out;
}

test('stop without start, and stop twice', async (t) => {
  const store = await pgliteStore(t, { migrated: true });
  const env: NodeJS.ProcessEnv = { KAFKA_BROKERS: brokers().join(','), SAMPLER_HTTP_PORT: '0' };
  const service = await createSampler({ env, logger: silentLogger, registry: createRegistry(), store, bus: testBus(), common: loadConfig(commonSpec, { env }) });
  await service.stop();
  await service.stop();
  t.pass();
});

test.serial('spans in, the job\'s decisions out; committed after the output; other applications forward nothing', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  await flow(store, 'shop', ERROR_ONLY);
  await flow(store, 'paused', { tail_percentage: 100 }, 'stopped');
  await flow(store, 'broken', { tail_trace_session_gap_min: 0 });
  const run = await start(t, kit, store);
  t.deepEqual(run.service.policies.counts(), { configured: 1, invalid: 1 });
  const sampled = await readSampled(t, kit, run);

  const a1 = span('a1', 'shop');
  const a2 = span('a1', 'shop', true);
  const b1 = span('b1', 'shop');
  await produce(kit, run.topics.spans, [a1, b1, span('c1', 'other', true), span('d1', 'paused', true), span('e1', 'broken', true)]);
  await kit.produce(run.topics.spans, [{ key: 'x', value: Buffer.from('not an avro record') }]);
  await produce(kit, run.topics.spans, [a2]);
  await waitFor('every offset of spans committed', async () => (await kit.admin.groupLag(run.group, run.topics.spans)) === 0, 60_000);
  await waitFor('the kept spans', () => sampled.length >= 2, 60_000);
  t.deepEqual(sampled.map((s) => s.span_id), [a2.span_id, a1.span_id], 'the error span marks its trace and releases the buffered one');
  t.deepEqual(spanCodec.encode({ spans: [sampled[1] as Span] }), spanCodec.encode({ spans: [a1] }), 'spans come out byte for byte');
  const c = run.service.stage.counts;
  t.is(c.outcomes.matched, 1);
  t.is(c.outcomes.buffered, 2);
  t.is(c.skipped.unconfigured, 2, 'no flow, or a stopped one');
  t.is(c.skipped.config_invalid, 1);

  const dead: ConsumedRecord<Buffer>[] = [];
  const reader = kit.bus.consumer({ groupId: uniqueName('dlq-reader'), topics: [run.topics.dlq], codec: rawDecoder, dlqTopic: run.topics.dlq, handler: async (b) => void dead.push(...b.records) });
  t.teardown(() => reader.stop(0));
  await reader.start();
  await waitFor('the dead letter', () => dead.length === 1, 60_000);
  t.is(dead[0]?.headers[DLQ_HEADERS.topic]?.toString(), run.topics.spans);

  const metrics = await (await fetch(`http://127.0.0.1:${run.service.http.port()}/metrics`)).text();
  await waitFor('metrics synced', async () => (await (await fetch(`http://127.0.0.1:${run.service.http.port()}/metrics`)).text()).includes('bkstream_sampler_spans_total{outcome="matched"} 1'), 10_000);
  for (const name of ['bkstream_sampler_traces', 'bkstream_sampler_policies', 'bkstream_consumer_lag']) t.true(metrics.includes(name), name);
  t.is((await fetch(`http://127.0.0.1:${run.service.http.port()}/healthz`)).status, 200);
});

test.serial('a changed flow config applies after the next refresh; a stopped flow drops its state', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  await flow(store, 'shop', ERROR_ONLY);
  const run = await start(t, kit, store);
  const sampled = await readSampled(t, kit, run);
  await produce(kit, run.topics.spans, [span('f1', 'shop')]);
  await waitFor('f1 buffered', () => run.service.stage.counts.outcomes.buffered === 1, 60_000);
  await flow(store, 'shop', { tail_percentage: 100 });
  await waitFor('the new policy', () => run.service.policies.get(2, 'shop')?.policy?.randomSamplingRatio === 100, 10_000);
  const g1 = span('g1', 'shop');
  await produce(kit, run.topics.spans, [g1]);
  await waitFor('g1 sampled', () => sampled.length === 1, 60_000);
  t.is(sampled[0]?.span_id, g1.span_id);
  await flow(store, 'shop', { tail_percentage: 100 }, 'stopped');
  await waitFor('the state of the stopped application dropped', () => run.service.budget.traces === 0, 10_000);
  t.is(run.service.stage.counts.droppedWithState, 1, 'f1 was still buffered');
});
