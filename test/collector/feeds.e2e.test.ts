/**
 * The GSE feeds end to end against the real broker (the collector README, "Feeds"): SDK spans exported over
 * OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON for an application with tail sampling and virtual
 * metrics on reach `0bkmonitor_{traces data id}0` as GSE trace envelopes and `0bkmonitor_{metrics data id}0`
 * as derived metrics, checked field by field; the spans topic still gets every span; switching the
 * features on and off through the admin API applies to the next Export of the running collector.
 */
import test, { type ExecutionContext } from 'ava';
import { context, SpanKind, SpanStatusCode, trace, type HrTime } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Bus, FollowedRecord } from '../../services/common/bus/index.ts';
import { dataIdTopic } from '../../services/collector/feeds/bus-sender.ts';
import type { DerivedMetric } from '../../services/collector/feeds/deriver.ts';
import { testBus, uniqueName, waitFor } from '../helpers/kafka.ts';
import { exporterFor, exportSpans, hrMicros, memoryTracer, metricValue, readSpans, startReceiver, type ExporterKind, type ReceiverKit } from './helpers.ts';

const RESOURCE = { 'service.name': 'order-svc', 'net.host.name': 'order-7d9f', 'net.host.ip': '10.0.1.5', 'net.host.port': 8080 };

/** Nanoseconds that are not a multiple of 1000, so flooring to µs shows. */
function at(offsetMs: number, subUs: number): HrTime {
  return [1_763_700_000 + Math.floor(offsetMs / 1000), (offsetMs % 1000) * 1_000_000 + subUs];
}

/** Per trace: an HTTP server span, a DB client child (error, event, link) and an internal grandchild. */
function makeSpans(label: string, traces: number): ReadableSpan[] {
  const { tracer, finished } = memoryTracer(RESOURCE);
  for (let i = 0; i < traces; i++) {
    const root = tracer.startSpan(`${label} GET /orders/{id}`, {
      kind: SpanKind.SERVER,
      startTime: at(i * 10, 999),
      attributes: { 'http.method': 'GET', 'http.status_code': 200, 'http.flavor': '1.1', 'big.int': 2 ** 40, ratio: 0.5, tags: ['a', 'b'] },
    });
    const ctx = trace.setSpan(context.active(), root);
    const child = tracer.startSpan(`${label} SELECT orders`, { kind: SpanKind.CLIENT, startTime: at(i * 10 + 1, 1), attributes: { 'db.system': 'mysql', 'db.name': 'orders' }, links: [{ context: root.spanContext(), attributes: { 'link.reason': 'batch' } }] }, ctx);
    child.addEvent('retry', { attempt: 2 }, at(i * 10 + 2, 500));
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
    const internal = tracer.startSpan(`${label} render`, { kind: SpanKind.INTERNAL, startTime: at(i * 10 + 3, 0) }, trace.setSpan(context.active(), child));
    internal.end(at(i * 10 + 4, 0));
    child.end(at(i * 10 + 5, 0));
    root.end(at(i * 10 + 4_007, 1)); // 4 s: frustrated
  }
  return finished();
}

const ns = (hr: HrTime): bigint => BigInt(hr[0]) * 1_000_000_000n + BigInt(hr[1]);

interface Envelope {
  datetime: string;
  utctime: string;
  time: number;
  dataid: number;
  items: Record<string, unknown>[];
}

interface MetricsMessage {
  dataid: number;
  version: string;
  data: DerivedMetric[];
}

/** Creates the data id topics (1 partition), follows them from the beginning, deletes them after the test. */
async function followDataIds(t: ExecutionContext, bus: Bus, dataIds: number[]): Promise<Map<number, FollowedRecord[]>> {
  const admin = bus.admin();
  await admin.start();
  const topics = dataIds.map(dataIdTopic);
  await admin.ensureTopics(topics.map((topic) => ({ topic, numPartitions: 1, retentionMs: 3_600_000 })));
  await admin.stop();
  const out = new Map<number, FollowedRecord[]>();
  const reader = testBus({ clientId: uniqueName('feeds-read') });
  for (const dataId of dataIds) {
    const records: FollowedRecord[] = [];
    out.set(dataId, records);
    const follower = reader.follower({ topic: dataIdTopic(dataId), onRecords: (rs) => void records.push(...rs), groupPrefix: uniqueName('feeds-follow'), maxWaitTimeMs: 100 });
    await follower.start();
    t.teardown(() => follower.stop());
  }
  t.teardown(async () => {
    const a = bus.admin();
    await a.start().catch(() => undefined);
    await a.deleteTopics(topics).catch(() => undefined);
    await a.stop().catch(() => undefined);
  });
  return out;
}

/** Data ids no other test uses (their topics are named after them). */
function freshDataIds(): [number, number] {
  const base = 1_800_000_000 + Math.floor(Math.random() * 100_000_000);
  return [base, base + 1];
}

const envelopes = (records: FollowedRecord[]): Envelope[] => records.map((r) => JSON.parse((r.value as Buffer).toString()) as Envelope);
const metricMessages = (records: FollowedRecord[]): MetricsMessage[] => records.map((r) => JSON.parse((r.value as Buffer).toString()) as MetricsMessage);

function checkItem(t: ExecutionContext, got: Record<string, unknown>, want: ReadableSpan): void {
  const c = want.spanContext();
  const startNs = ns(want.startTime);
  const endNs = ns(want.endTime);
  t.is(got.trace_id, c.traceId);
  t.is(got.parent_span_id, want.parentSpanContext?.spanId ?? '');
  t.is(got.span_name, want.name);
  t.is(got.kind, want.kind + 1);
  t.is(got.start_time, hrMicros(want.startTime));
  t.is(got.end_time, hrMicros(want.endTime));
  t.is(got.elapsed_time, Number((endNs - startNs) / 1000n));
  t.is(got.trace_state, '');
  t.is(got.bk_biz_id, 2);
  t.is(got.client_ip, '127.0.0.1');
  t.is(typeof got.iterationindex, 'number');
  const resource = got.resource as Record<string, unknown>;
  t.is(resource['service.name'], 'order-svc');
  t.is(resource['net.host.port'], 8080);
  t.is(resource['bk.instance.id'], 'nodejs:order-svc:order-7d9f:10.0.1.5:8080');
  t.false('bk.data.token' in resource);
  const attributes = got.attributes as Record<string, unknown>;
  if (want.kind === SpanKind.SERVER) {
    t.deepEqual(attributes, { 'http.method': 'GET', 'http.status_code': 200, 'http.flavor': '1.1', 'big.int': 2 ** 40, ratio: 0.5, tags: ['a', 'b'], apdex_type: 'frustrated' });
    t.deepEqual(got.status, { code: 0, message: '' });
    t.deepEqual(got.events, []);
    t.deepEqual(got.links, []);
  } else if (want.kind === SpanKind.CLIENT) {
    t.deepEqual(attributes, { 'db.system': 'mysql', 'db.name': 'orders', apdex_type: 'satisfied' });
    t.deepEqual(got.status, { code: 2, message: 'deadlock' });
    t.deepEqual(got.events, [{ name: 'retry', timestamp: hrMicros(want.events[0]?.time as HrTime), attributes: { attempt: 2 } }]);
    t.deepEqual(got.links, [{ trace_id: c.traceId, span_id: want.parentSpanContext?.spanId, trace_state: '', attributes: { 'link.reason': 'batch' } }]);
  } else {
    t.deepEqual(attributes, { apdex_type: 'satisfied' });
  }
}

function checkMetric(t: ExecutionContext, got: DerivedMetric, want: ReadableSpan, app: string): void {
  const durationNs = Number(ns(want.endTime) - ns(want.startTime));
  t.deepEqual(got.metrics, { bk_apm_duration: durationNs });
  t.is(got.target, 'bk-collector');
  t.is(got.timestamp, Math.floor(hrMicros(want.endTime) / 1000));
  const common = {
    app_name: app,
    scope_name: '',
    span_name: want.name,
    kind: String(want.kind + 1),
    service_name: 'order-svc',
    bk_instance_id: 'nodejs:order-svc:order-7d9f:10.0.1.5:8080',
    telemetry_sdk_language: 'nodejs',
    telemetry_sdk_name: 'opentelemetry',
    telemetry_sdk_version: want.resource.attributes['telemetry.sdk.version'] as string,
  };
  if (want.kind === SpanKind.SERVER) {
    t.deepEqual(got.dimension, { ...common, status_code: '0', apdex_type: 'frustrated', http_method: 'GET', http_status_code: '200', http_favor: '1.1' });
  } else {
    t.deepEqual(got.dimension, { ...common, status_code: '2', apdex_type: 'satisfied', db_system: 'mysql', db_name: 'orders' });
  }
}

/** The switches queue flow commands; no flow.commands topic here, so this collector publishes none. */
const NO_FLOW_COMMANDS = { COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS: '0' };

const KINDS: ExporterKind[] = ['grpc', 'http-proto', 'http-json'];

test('spans over OTLP (gRPC, HTTP protobuf, HTTP JSON) of an application with both features → GSE envelopes and derived metrics on their data ids\' topics, field by field', async (t) => {
  const [tracesDataId, metricsDataId] = freshDataIds();
  const kit = await startReceiver(t, { app: { tracesDataId, metricsDataId, tailSampling: true, virtualMetric: true }, env: NO_FLOW_COMMANDS });
  const topics = await followDataIds(t, kit.bus, [tracesDataId, metricsDataId]);
  const spansTopic = await readSpans(t, kit.bus, kit.topic);
  const sent: ReadableSpan[] = [];
  for (const kind of KINDS) {
    const spans = makeSpans(kind, 3);
    const exporter = exporterFor(kit, kind, kit.token);
    t.teardown(() => exporter.shutdown());
    const outcome = await exportSpans(exporter, spans);
    t.true(outcome.ok, outcome.error?.message);
    sent.push(...spans);
  }
  const traces = topics.get(tracesDataId) as FollowedRecord[];
  const metrics = topics.get(metricsDataId) as FollowedRecord[];
  const derivable = sent.filter((s) => s.kind !== SpanKind.INTERNAL);
  // The Exports were answered after the feeds were acknowledged: every message is there to read.
  await waitFor('every span in the trace envelopes', () => envelopes(traces).reduce((n, e) => n + e.items.length, 0) >= sent.length || undefined, 60_000);
  await waitFor('every derived metric', () => metricMessages(metrics).reduce((n, m) => n + m.data.length, 0) >= derivable.length || undefined, 60_000);

  const envs = envelopes(traces);
  t.is(envs.length, KINDS.length, 'one envelope per Export');
  for (const e of envs) {
    t.is(e.dataid, tracesDataId);
    t.regex(e.datetime, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    t.regex(e.utctime, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    t.is(Date.parse(`${e.utctime.replace(' ', 'T')}Z`) / 1000, e.time);
    t.is(Date.parse(`${e.datetime.replace(' ', 'T')}Z`) / 1000, e.time + 8 * 3600, 'datetime is UTC+8');
    t.deepEqual(e.items.map((i) => i.iterationindex), e.items.map((_, i) => i));
  }
  const items = new Map(envs.flatMap((e) => e.items).map((i) => [i.span_id as string, i]));
  t.is(items.size, sent.length, 'each span once');
  for (const want of sent) {
    const got = items.get(want.spanContext().spanId);
    if (!got) t.fail(`span ${want.name} missing from the envelopes`);
    else {
      checkItem(t, got, want);
      t.is(got.app_name, kit.app.appName);
    }
  }

  const msgs = metricMessages(metrics);
  for (const m of msgs) {
    t.is(m.dataid, metricsDataId);
    t.is(m.version, '1.0.0');
  }
  const points = msgs.flatMap((m) => m.data);
  t.is(points.length, derivable.length, 'one point per server and client span, none for internal ones');
  for (const want of derivable) {
    const got = points.filter((p) => p.dimension.span_name === want.name && p.timestamp === Math.floor(hrMicros(want.endTime) / 1000));
    t.is(got.length, 1, want.name);
    if (got[0]) checkMetric(t, got[0], want, kit.app.appName);
  }

  // The spans topic is unchanged: every span there too.
  await waitFor('every span on the spans topic', () => spansTopic.spans().length >= sent.length || undefined, 60_000);
  t.is(spansTopic.spans().length, sent.length);
  t.is(await metricValue(kit.registry, 'bkstream_collector_feed_messages_total', { feed: 'traces', result: 'ok' }), KINDS.length);
  t.is(await metricValue(kit.registry, 'bkstream_collector_feed_items_total', { feed: 'metrics' }), derivable.length);
});

async function patchApp(kit: ReceiverKit, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${kit.adminUrl}/api/v1/apps/${kit.app.bkBizId}/${kit.app.appName}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${kit.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`PATCH answered ${res.status}: ${await res.text()}`);
}

test('switching tail sampling and virtual metrics on and off applies to the next Export, without a restart', async (t) => {
  const [tracesDataId, metricsDataId] = freshDataIds();
  const kit = await startReceiver(t, { app: { tracesDataId, metricsDataId }, env: NO_FLOW_COMMANDS });
  const topics = await followDataIds(t, kit.bus, [tracesDataId, metricsDataId]);
  const exporter = exporterFor(kit, 'grpc', kit.token);
  t.teardown(() => exporter.shutdown());
  const send = async (label: string): Promise<void> => {
    const outcome = await exportSpans(exporter, makeSpans(label, 1));
    t.true(outcome.ok, outcome.error?.message);
  };
  await send('A'); // both off: nothing fed (the token is cached from here on)
  await patchApp(kit, { tail_sampling: true });
  await send('B'); // traces only
  await patchApp(kit, { tail_sampling: false, virtual_metric: true });
  await send('C'); // metrics only
  await patchApp(kit, { virtual_metric: false });
  await send('D'); // nothing
  await patchApp(kit, { tail_sampling: true, virtual_metric: true });
  await send('E'); // both

  const traces = topics.get(tracesDataId) as FollowedRecord[];
  const metrics = topics.get(metricsDataId) as FollowedRecord[];
  await waitFor('the envelopes of B and E', () => envelopes(traces).length >= 2 || undefined, 60_000);
  await waitFor('the metrics of C and E', () => metricMessages(metrics).length >= 2 || undefined, 60_000);
  // One partition each, in order: what came before E is all there is besides it.
  const label = (name: unknown): string => String(name).split(' ')[0] as string;
  t.deepEqual(envelopes(traces).map((e) => [...new Set(e.items.map((i) => label(i.span_name)))]), [['B'], ['E']]);
  t.deepEqual(metricMessages(metrics).map((m) => [...new Set(m.data.map((d) => label(d.dimension.span_name)))]), [['C'], ['E']]);
});


test('a data id\'s default topic is made by the first feed that needs it', async (t) => {
  const [tracesDataId, metricsDataId] = freshDataIds();
  const kit = await startReceiver(t, { app: { tracesDataId, metricsDataId, tailSampling: true }, env: NO_FLOW_COMMANDS });
  t.teardown(async () => {
    const a = kit.bus.admin();
    await a.start().catch(() => undefined);
    await a.deleteTopics([dataIdTopic(tracesDataId)]).catch(() => undefined);
    await a.stop().catch(() => undefined);
  });
  const exporter = exporterFor(kit, 'http-proto', kit.token);
  t.teardown(() => exporter.shutdown());
  const spans = makeSpans('first', 1);
  const outcome = await exportSpans(exporter, spans);
  t.true(outcome.ok, outcome.error?.message);
  // Answered OK after the envelope was acknowledged: the topic exists and holds it.
  const records: FollowedRecord[] = [];
  const follower = testBus({ clientId: uniqueName('feeds-read') }).follower({ topic: dataIdTopic(tracesDataId), onRecords: (rs) => void records.push(...rs), groupPrefix: uniqueName('feeds-follow') });
  await follower.start();
  t.teardown(() => follower.stop());
  t.deepEqual(envelopes(records).flatMap((e) => e.items.map((i) => i.span_name)).sort(), spans.map((s) => s.name).sort());
  const admin = kit.bus.admin();
  await admin.start();
  t.teardown(() => admin.stop());
  t.false((await admin.listTopics()).includes(dataIdTopic(metricsDataId)), 'virtual metrics off: no metrics topic made');
});
