/**
 * The GSE feeds, unit facts (the collector README, "Feeds"): reference span documents field by field as
 * bk-collector's traces converter writes them, the GSE envelope, the traces deriver's metrics as its
 * metrics converter writes them, and when an Export has a feed.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { createBreaker } from '../../services/common/breaker.ts';
import { edgeStatusOf, UnavailableError } from '../../services/common/errors.ts';
import { decodeRequest, encodeRequest, type OtlpSpan } from '../../services/common/otlp/index.ts';
import { hashToken, type Application } from '../../services/collector/applications.ts';
import { SpanBatcher } from '../../services/collector/receiver/batcher.ts';
import { isKafkaFailure } from '../../services/collector/receiver/errors.ts';
import { TracePipeline, type ExportRequest } from '../../services/collector/receiver/pipeline.ts';
import { RateLimiter } from '../../services/collector/receiver/ratelimit.ts';
import { TokenCache } from '../../services/collector/receiver/tokens.ts';
import { RecordingSender } from './doubles.ts';
import { ApdexCalculator } from '../../services/collector/feeds/apdex.ts';
import { dataIdTopic } from '../../services/collector/feeds/bus-sender.ts';
import { DefaultTopics, type TopicAdmin } from '../../services/collector/feeds/default-topics.ts';
import type { TopicPlan } from '../../services/common/topics.ts';
import { DurationDeriver, dimensionKey, type DerivedMetric } from '../../services/collector/feeds/deriver.ts';
import { formatDateTime, metricsMessages, tracesMessages } from '../../services/collector/feeds/envelope.ts';
import { Feeds, routeLookup, type FeedSender } from '../../services/collector/feeds/feeds.ts';
import { routedFeedSender } from '../../services/collector/feeds/routed-sender.ts';
import { ReceiverProducers, type PoolProducer, type TopicMessages } from '../../services/common/gse/producers.ts';
import { RoutedPublisher } from '../../services/common/gse/routed-publisher.ts';
import { RouteTable, type KafkaReceiver } from '../../services/common/gse/routes.ts';
import { silentLogger } from '../../services/common/log.ts';
import { FieldNormalizer } from '../../services/collector/feeds/field-normalizer.ts';
import { feedSpan, platformResource, rawMap, referenceSpan, spanTimes, valueString, type FeedGroupContext } from '../../services/collector/feeds/reference-span.ts';
import { METRIC_DIMENSIONS } from '../../services/orchestrator/kinds/virtual-metric.ts';
import { scanRequest } from '../../services/collector/receiver/transcode.ts';
import { kv, randomRequestBytes } from './otlp-fixtures.ts';

const TRACE = Buffer.from('0af7651916cd43dd8448eb211c80319c', 'hex');
const SPAN = Buffer.from('b7ad6b7169203331', 'hex');
const PARENT = Buffer.from('00f067aa0ba902b7', 'hex');
const START = 1_763_700_000_123_456_999n; // sub-µs part 999
const END = 1_763_700_000_223_457_001n; // sub-µs part 001: elapsed floors below end − start

/** A span as protobufjs decodes it (Longs, Buffers), through an encode/decode round trip. */
function decodedSpan(span: Record<string, unknown>): OtlpSpan {
  const req = decodeRequest(encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] }));
  const s = req.resourceSpans?.[0]?.scopeSpans?.[0]?.spans?.[0];
  if (!s) throw new Error('no span');
  return s;
}

function baseSpan(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    traceId: TRACE,
    spanId: SPAN,
    parentSpanId: PARENT,
    name: 'GET /orders/{id}',
    kind: 2,
    startTimeUnixNano: START.toString(),
    endTimeUnixNano: END.toString(),
    traceState: 'rojo=00f067aa0ba902b7',
    status: { code: 2, message: 'deadlock' },
    attributes: [
      kv('http.method', { stringValue: 'GET' }),
      kv('http.status_code', { intValue: 500 }),
      kv('http.flavor', { stringValue: '1.1' }),
      kv('http.scheme', { stringValue: 'https' }),
      kv('http.server_name', { stringValue: 'orders' }),
      kv('ratio', { doubleValue: 0.25 }),
      kv('cache.hit', { boolValue: false }),
      kv('big', { intValue: '9223372036854775807' }),
      kv('raw', { bytesValue: Buffer.from('hi') }),
      kv('tags', { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 2 }] } }),
      kv('nested', { kvlistValue: { values: [kv('inner', { stringValue: 'x' }), kv('n', { intValue: 1 })] } }),
      kv('unset', undefined),
      kv('  ', { stringValue: 'blank key' }),
    ],
    events: [{ timeUnixNano: (START + 1_500n).toString(), name: 'retry', attributes: [kv('attempt', { intValue: 2 })] }],
    links: [{ traceId: TRACE, spanId: PARENT, traceState: 'a=1', attributes: [kv('link.reason', { stringValue: 'batch' })] }],
    ...over,
  };
}

const GROUP: FeedGroupContext = {
  bkBizId: 2,
  appName: 'shop',
  clientIp: '10.0.0.9',
  resource: {
    'service.name': 'order-svc',
    'service.version': '1.4.2',
    'telemetry.sdk.name': 'opentelemetry',
    'telemetry.sdk.language': 'go',
    'telemetry.sdk.version': '1.30.0',
    'net.host.port': 8080,
    'bk.instance.id': 'go:order-svc:::8080',
    blob: Buffer.from('zz'),
  },
};

test('a span as the reference converter writes it, field by field', (t) => {
  const doc = JSON.parse(JSON.stringify(referenceSpan(feedSpan(decodedSpan(baseSpan()), GROUP)))) as Record<string, unknown>;
  t.deepEqual(doc, {
    span_name: 'GET /orders/{id}',
    span_id: 'b7ad6b7169203331',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    parent_span_id: '00f067aa0ba902b7',
    kind: 2,
    start_time: 1_763_700_000_123_456,
    end_time: 1_763_700_000_223_457,
    trace_state: 'rojo=00f067aa0ba902b7',
    // (end − start) ns = 100 000 002 → 100 000 µs: one less than end_time − start_time (100 001)
    elapsed_time: 100_000,
    links: [{ trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: '00f067aa0ba902b7', trace_state: 'a=1', attributes: { 'link.reason': 'batch' } }],
    events: [{ name: 'retry', timestamp: 1_763_700_000_123_458, attributes: { attempt: 2 } }],
    status: { code: 2, message: 'deadlock' },
    attributes: {
      'http.method': 'GET',
      'http.status_code': 500,
      'http.flavor': '1.1',
      'http.scheme': 'https',
      'http.server_name': 'orders',
      ratio: 0.25,
      'cache.hit': false,
      big: 9223372036854775807, // parsed back inexactly; the text is checked below
      raw: 'aGk=',
      tags: ['a', 2],
      nested: { inner: 'x', n: 1 },
      unset: null,
      apdex_type: 'satisfied', // 100 ms ≤ 800 ms
    },
    resource: {
      'service.name': 'order-svc',
      'service.version': '1.4.2',
      'telemetry.sdk.name': 'opentelemetry',
      'telemetry.sdk.language': 'go',
      'telemetry.sdk.version': '1.30.0',
      'net.host.port': 8080,
      'bk.instance.id': 'go:order-svc:::8080',
      blob: 'eno=',
    },
    client_ip: '10.0.0.9',
    bk_biz_id: 2,
    app_name: 'shop',
  });
  t.true(JSON.stringify(referenceSpan(feedSpan(decodedSpan(baseSpan()), GROUP))).includes('"big":9223372036854775807,'), 'int64 beyond 2^53 is an exact JSON integer');
});

test('span times: µs floored, elapsed from the nanoseconds, a span ending before it starts has 0', (t) => {
  t.deepEqual(spanTimes(decodedSpan(baseSpan())), { startUs: 1_763_700_000_123_456, endUs: 1_763_700_000_223_457, elapsedUs: 100_000, durationNs: 100_000_002 });
  t.deepEqual(spanTimes(decodedSpan(baseSpan({ startTimeUnixNano: '1999', endTimeUnixNano: '3000' }))), { startUs: 1, endUs: 3, elapsedUs: 1, durationNs: 1001 });
  t.deepEqual(spanTimes(decodedSpan(baseSpan({ startTimeUnixNano: '3001', endTimeUnixNano: '3000' }))), { startUs: 3, endUs: 3, elapsedUs: 0, durationNs: 0 });
  t.deepEqual(spanTimes(decodedSpan(baseSpan({ startTimeUnixNano: '5000', endTimeUnixNano: '3000' }))), { startUs: 5, endUs: 3, elapsedUs: 0, durationNs: 0 });
  const noParent = JSON.parse(JSON.stringify(referenceSpan(feedSpan(decodedSpan(baseSpan({ parentSpanId: Buffer.alloc(0), events: [], links: [], traceState: '' })), GROUP)))) as Record<string, unknown>;
  t.is(noParent.parent_span_id, '');
  t.deepEqual(noParent.events, []);
  t.deepEqual(noParent.links, []);
  t.is(noParent.trace_state, '');
});

test('apdex_type by the application\'s default rules: satisfied ≤ T < tolerating ≤ 4T < frustrated; T by kind and predicate key', (t) => {
  const calc = new ApdexCalculator();
  const attrs = (o: Record<string, string>) => (key: string): string | undefined => o[key];
  const none = attrs({});
  const ms = 1e6;
  // HTTP (server and client) 800 ms
  t.is(calc.apdexType(2, 800 * ms, attrs({ 'http.method': 'GET' })), 'satisfied');
  t.is(calc.apdexType(3, 800 * ms + 1, attrs({ 'http.method': 'GET' })), 'tolerating');
  t.is(calc.apdexType(2, 3200 * ms + 1, attrs({ 'http.method': 'GET' })), 'frustrated');
  // no predicate: 2 000 ms, every kind 0–5
  for (const kind of [0, 1, 2, 3, 4, 5]) {
    t.is(calc.apdexType(kind, 2000 * ms, none), 'satisfied', `kind ${kind}`);
    t.is(calc.apdexType(kind, 8000 * ms + 1, none), 'frustrated', `kind ${kind}`);
  }
  t.is(calc.apdexType(2, 1500 * ms, attrs({ 'http.method': '' })), 'satisfied', 'an empty predicate attribute does not match: 2 000 ms');
  // DB client 800 ms; RPC 2 000 ms and tried before HTTP (descending order)
  t.is(calc.apdexType(3, 1000 * ms, attrs({ 'db.system': 'mysql' })), 'tolerating');
  t.is(calc.apdexType(3, 1000 * ms, attrs({ 'rpc.system': 'grpc', 'http.method': 'POST' })), 'satisfied');
  t.is(calc.apdexType(2, 1000 * ms, attrs({ 'db.system': 'mysql' })), 'satisfied', 'a server span has no DB rule');
  // messaging 800 ms (the "backend" value) for producers and consumers, by system or destination
  t.is(calc.apdexType(4, 1000 * ms, attrs({ 'messaging.system': 'kafka' })), 'tolerating');
  t.is(calc.apdexType(5, 1000 * ms, attrs({ 'messaging.destination': 'orders' })), 'tolerating');
  t.is(calc.apdexType(7, 1, none), undefined, 'no rule for an unknown kind');
  const slow = referenceSpan(feedSpan(decodedSpan(baseSpan({ endTimeUnixNano: (START + 5_000_000_000n).toString() })), GROUP));
  t.is((slow.attributes as Record<string, unknown>).apdex_type, 'frustrated');
  // the calculator overwrites an apdex_type the span sent
  const sent = referenceSpan(feedSpan(decodedSpan(baseSpan({ attributes: [kv('apdex_type', { stringValue: 'mine' })] })), GROUP));
  t.is((sent.attributes as Record<string, unknown>).apdex_type, 'satisfied');
});

test('attribute string forms are pdata AsString', (t) => {
  const s = decodedSpan(baseSpan());
  const v = (key: string): string => valueString(s.attributes?.find((a) => a.key === key)?.value);
  t.is(v('http.status_code'), '500');
  t.is(v('ratio'), '0.25');
  t.is(v('cache.hit'), 'false');
  t.is(v('big'), '9223372036854775807');
  t.is(v('raw'), 'aGk=');
  t.is(v('tags'), '["a",2]');
  t.is(v('nested'), '{"inner":"x","n":1}');
  t.is(v('unset'), '');
});

test('the GSE trace envelope: datetime in UTC+8, utctime, time in s, dataid, items with iterationindex', (t) => {
  const now = Date.UTC(2026, 11, 2, 20, 5, 9, 750);
  const items = [{ span_id: 'a' }, { span_id: 'b' }];
  const { messages, dropped } = tracesMessages(1_500_001, items, now);
  t.is(dropped, 0);
  t.is(messages.length, 1);
  t.deepEqual(JSON.parse((messages[0] as Buffer).toString()), {
    datetime: '2026-12-03 04:05:09',
    utctime: '2026-12-02 20:05:09',
    time: Math.floor(now / 1000),
    dataid: 1_500_001,
    items: [{ span_id: 'a', iterationindex: 0 }, { span_id: 'b', iterationindex: 1 }],
  });
  t.is(formatDateTime(Date.UTC(2026, 0, 1, 0, 0, 0)), '2026-01-01 00:00:00');
});

test('envelopes hold at most 200 spans and the message size; an item alone over it is dropped', (t) => {
  const items = Array.from({ length: 450 }, (_, i) => ({ n: i }));
  const { messages } = tracesMessages(7, items, 0);
  const parsed = messages.map((m) => JSON.parse(m.toString()) as { items: { n: number; iterationindex: number }[] });
  t.deepEqual(parsed.map((p) => p.items.length), [200, 200, 50]);
  t.deepEqual(parsed.flatMap((p) => p.items.map((x) => x.n)), items.map((x) => x.n));
  t.deepEqual(parsed[1]?.items.slice(0, 2).map((x) => x.iterationindex), [0, 1]);
  const big = [{ s: 'x'.repeat(300) }, { s: 'y'.repeat(300) }, { s: 'z'.repeat(2000) }, { s: 'w' }];
  const sized = tracesMessages(7, big, 0, { maxBytes: 1000 });
  t.is(sized.dropped, 1);
  t.true(sized.messages.every((m) => m.length <= 1000));
  t.deepEqual(sized.messages.flatMap((m) => (JSON.parse(m.toString()) as { items: { s: string }[] }).items.map((x) => x.s[0])), ['x', 'y', 'w']);
  const metrics = metricsMessages(9, Array.from({ length: 2001 }, (_, i) => ({ i })));
  t.deepEqual(metrics.messages.map((m) => (JSON.parse(m.toString()) as { data: unknown[] }).data.length), [2000, 1]);
  t.deepEqual(Object.keys(JSON.parse((metrics.messages[1] as Buffer).toString()) as object), ['dataid', 'version', 'data']);
  t.is((JSON.parse((metrics.messages[1] as Buffer).toString()) as { version: string }).version, '1.0.0');
});

const deriver = new DurationDeriver();
function derive(span: Record<string, unknown>, group: FeedGroupContext = GROUP): DerivedMetric | undefined {
  return deriver.derive(feedSpan(decodedSpan(span), group));
}

const COMMON_DIMS = {
  bk_instance_id: 'go:order-svc:::8080',
  service_name: 'order-svc',
  service_version: '1.4.2',
  telemetry_sdk_name: 'opentelemetry',
  telemetry_sdk_version: '1.30.0',
  telemetry_sdk_language: 'go',
  app_name: 'shop',
  scope_name: '',
};

test('derived metric of an HTTP server span, as the deriver and metrics converter write it', (t) => {
  t.deepEqual(derive(baseSpan()), {
    metrics: { bk_apm_duration: 100_000_002 }, // ns
    target: 'bk-collector',
    timestamp: 1_763_700_000_223, // span end, ms
    dimension: {
      ...COMMON_DIMS,
      span_name: 'GET /orders/{id}',
      kind: '2',
      status_code: '2',
      apdex_type: 'satisfied',
      http_server_name: 'orders',
      http_method: 'GET',
      http_scheme: 'https',
      http_favor: '1.1', // the reference's key table maps http.flavor so
      http_status_code: '500',
    },
  });
});

test('predicate keys are tried in descending order; an empty attribute does not match; the empty key is the fallback', (t) => {
  const both = derive(baseSpan({ attributes: [kv('http.method', { stringValue: 'POST' }), kv('rpc.system', { stringValue: 'grpc' }), kv('rpc.method', { stringValue: 'Get' }), kv('peer.service', { stringValue: 'db' })] }));
  t.deepEqual(both?.dimension, { ...COMMON_DIMS, span_name: 'GET /orders/{id}', kind: '2', status_code: '2', apdex_type: 'satisfied', rpc_system: 'grpc', rpc_method: 'Get', peer_service: 'db' });
  const emptyMethod = derive(baseSpan({ attributes: [kv('http.method', { stringValue: '' }), kv('http.scheme', { stringValue: 'https' })] }));
  t.deepEqual(emptyMethod?.dimension, { ...COMMON_DIMS, span_name: 'GET /orders/{id}', kind: '2', status_code: '2', apdex_type: 'satisfied' });
  const client = derive(baseSpan({ kind: 3, status: {}, attributes: [kv('db.system', { stringValue: 'mysql' }), kv('db.name', { stringValue: 'orders' }), kv('net.peer.port', { intValue: 3306 })] }));
  t.deepEqual(client?.dimension, { ...COMMON_DIMS, span_name: 'GET /orders/{id}', kind: '3', status_code: '0', apdex_type: 'satisfied', db_system: 'mysql', db_name: 'orders', net_peer_port: '3306' });
  const producer = derive(baseSpan({ kind: 4, attributes: [kv('messaging.system', { stringValue: 'kafka' }), kv('messaging.destination', { stringValue: 'orders' }), kv('celery.task_name', { stringValue: 't' })] }));
  t.deepEqual(producer?.dimension, { ...COMMON_DIMS, span_name: 'GET /orders/{id}', kind: '4', status_code: '2', apdex_type: 'satisfied', messaging_system: 'kafka', messaging_destination: 'orders', celery_task_name: 't' });
  const consumer = derive(baseSpan({ kind: 5, attributes: [kv('messaging.system', { stringValue: 'kafka' }), kv('messaging.destination', { stringValue: 'orders' }), kv('celery.state', { stringValue: 'ok' })] }));
  t.deepEqual(consumer?.dimension, { ...COMMON_DIMS, span_name: 'GET /orders/{id}', kind: '5', status_code: '2', apdex_type: 'satisfied', messaging_system: 'kafka', celery_state: 'ok' });
  t.is(derive(baseSpan({ kind: 1 })), undefined, 'internal spans derive nothing');
  t.is(derive(baseSpan({ kind: 0 })), undefined, 'unspecified spans derive nothing');
});

test('resource dimensions only where the resource has them; a span ending before it starts has duration 0', (t) => {
  const m = derive(baseSpan({ attributes: [], startTimeUnixNano: '5000000', endTimeUnixNano: '3000000' }), { ...GROUP, resource: { 'service.name': 's' } });
  t.deepEqual(m, {
    metrics: { bk_apm_duration: 0 },
    target: 'bk-collector',
    timestamp: 3,
    dimension: { service_name: 's', app_name: 'shop', scope_name: '', span_name: 'GET /orders/{id}', kind: '2', status_code: '2', apdex_type: 'satisfied' },
  });
});

test('every dimension the virtual-metric clean reads is one the deriver writes (http_flavor excepted, as in the reference)', (t) => {
  const written = new Set<string>(['target']);
  const spans = [
    baseSpan(),
    baseSpan({ attributes: [kv('rpc.system', { stringValue: 'grpc' }), kv('rpc.method', { stringValue: 'a' }), kv('rpc.service', { stringValue: 'b' }), kv('rpc.grpc.status_code', { intValue: 0 }), kv('peer.service', { stringValue: 'p' })] }),
    baseSpan({ kind: 3, attributes: [kv('db.system', { stringValue: 'x' }), kv('db.name', { stringValue: 'x' }), kv('db.operation', { stringValue: 'x' })] }),
    baseSpan({ kind: 4, attributes: [kv('messaging.system', { stringValue: 'x' }), kv('messaging.destination', { stringValue: 'x' }), kv('messaging.destination_kind', { stringValue: 'x' }), kv('celery.action', { stringValue: 'x' }), kv('celery.task_name', { stringValue: 'x' })] }),
  ];
  for (const s of spans) for (const k of Object.keys(derive(s)?.dimension ?? {})) written.add(k);
  t.deepEqual(METRIC_DIMENSIONS.filter((d) => !written.has(d)), ['http_flavor']);
  t.is(dimensionKey('http.flavor'), 'http_favor');
  t.is(dimensionKey('my.custom.key'), 'my_custom_key');
});

function app(over: Partial<Application> = {}): Application {
  return {
    id: 1, bkBizId: 2, appName: 'shop', appAlias: '', description: '', traceRetentionDays: 7, tokenHint: '', tracesDataId: 1_500_001, metricsDataId: 1_600_001,
    logsDataId: 0, profilesDataId: 0, rateLimitQps: undefined, rateLimitBurst: undefined, tailSampling: false, tailSamplingConfig: {}, virtualMetric: false,
    provisionedFlows: [], isEnabled: true, createdAt: new Date(0), ...over,
  };
}

class RecordingFeedSender implements FeedSender {
  readonly sent: { dataId: number; messages: Buffer[] }[] = [];
  fail: Error | undefined;
  hang = false;
  async send(dataId: number, messages: readonly Buffer[]): Promise<void> {
    if (this.fail) throw this.fail;
    if (this.hang) await new Promise(() => {});
    this.sent.push({ dataId, messages: [...messages] });
  }
}

interface Envelope {
  dataid: number;
  items: Record<string, unknown>[];
}

const groupOf = (a: Application) => ({ group: { resource: GROUP.resource }, app: a });

test('an Export has a feed only when an application has a switch on (or an explicit route) and the data id is set', (t) => {
  const feeds = new Feeds({ sender: new RecordingFeedSender(), timeoutMs: 1000 });
  t.is(feeds.open('1.2.3.4', [groupOf(app())]), undefined);
  t.is(feeds.open('1.2.3.4', []), undefined);
  t.truthy(feeds.open('1.2.3.4', [groupOf(app()), groupOf(app({ tailSampling: true }))]));
  t.truthy(feeds.open('1.2.3.4', [groupOf(app({ virtualMetric: true }))]));
  t.is(feeds.open('1.2.3.4', [groupOf(app({ virtualMetric: true, metricsDataId: 0 }))]), undefined);
  t.is(feeds.tracesDataId(app({ tailSampling: true })), 1_500_001);
  t.is(feeds.metricsDataId(app({ tailSampling: true })), 0);
  const routed = new Feeds({ sender: new RecordingFeedSender(), timeoutMs: 1000, routes: { hasRoute: (id) => id === 1_600_001 } });
  t.is(routed.tracesDataId(app()), 0);
  t.is(routed.metricsDataId(app()), 1_600_001);
  t.truthy(routed.open('1.2.3.4', [groupOf(app())]));
  t.is(dataIdTopic(1_500_001), '0bkmonitor_15000010');
});

test('an Export feed sends each data id its messages: spans of the apps with tail sampling, metrics of those with virtual metrics', async (t) => {
  const sender = new RecordingFeedSender();
  const feeds = new Feeds({ sender, timeoutMs: 1000, now: () => Date.UTC(2026, 0, 1) });
  const both = app({ tailSampling: true, virtualMetric: true });
  const none = app({ appName: 'other', tracesDataId: 9, metricsDataId: 10 });
  const feed = feeds.open('10.0.0.9', [groupOf(both), groupOf(none)]);
  if (!feed) throw new Error('no feed');
  t.is(feed.group(groupOf(none)), undefined);
  const sink = feed.group(groupOf(both));
  if (!sink) throw new Error('no sink');
  sink.span(decodedSpan(baseSpan()));
  // a span of a binary request, by its message's offsets (as the pipeline hands them over)
  const body = encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [baseSpan({ kind: 1, name: 'internal' })] }] }] });
  const [start, end] = scanRequest(body)[0]?.spans ?? [];
  sink.encoded(body, start as number, end as number);
  await feed.send();
  t.deepEqual(sender.sent.map((s) => s.dataId), [1_500_001, 1_600_001]);
  const envelope = JSON.parse((sender.sent[0]?.messages[0] as Buffer).toString()) as { dataid: number; items: { span_name: string; app_name: string }[] };
  t.is(envelope.dataid, 1_500_001);
  t.deepEqual(envelope.items.map((i) => i.span_name), ['GET /orders/{id}', 'internal']);
  const metrics = JSON.parse((sender.sent[1]?.messages[0] as Buffer).toString()) as { dataid: number; data: DerivedMetric[] };
  t.is(metrics.dataid, 1_600_001);
  t.is(metrics.data.length, 1, 'the internal span derives nothing');
});

test('a feed that fails or is not acknowledged in time is UNAVAILABLE (the client retries)', async (t) => {
  const sender = new RecordingFeedSender();
  const feeds = new Feeds({ sender, timeoutMs: 50 });
  const open = () => {
    const feed = feeds.open('1.1.1.1', [groupOf(app({ tailSampling: true }))]);
    feed?.group(groupOf(app({ tailSampling: true })))?.span(decodedSpan(baseSpan()));
    return feed;
  };
  sender.fail = new Error('broker away');
  const failed = await t.throwsAsync(open()?.send() ?? Promise.resolve());
  t.true(failed instanceof UnavailableError);
  sender.fail = undefined;
  sender.hang = true;
  const slow = await t.throwsAsync(open()?.send() ?? Promise.resolve());
  t.true(slow instanceof UnavailableError);
  t.regex(slow?.message ?? '', /within 50 ms/);
});

class RecordingPoolProducer implements PoolProducer {
  readonly sent: { topic: string; messages: Buffer[]; partitions: (number | undefined)[] }[] = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async sendBatch(batches: readonly TopicMessages[]): Promise<void> {
    for (const b of batches) this.sent.push({ topic: b.topic, messages: b.messages.map((m) => m.value), partitions: b.messages.map((m) => m.partition) });
  }
}

test('through the GSE routed publisher: a routed data id goes to its route\'s cluster and topic, another to 0bkmonitor_{dataid}0; a route change applies to the next send', async (t) => {
  const local = new RecordingPoolProducer();
  const remote = new RecordingPoolProducer();
  const receiver: KafkaReceiver = { streamToId: 7, name: 'bkdata', brokers: ['127.0.0.1:1'], ssl: false };
  let table = new RouteTable([receiver], [{ channelId: 1_500_001, name: 'traces', targets: [{ streamToId: 7, topic: 'bkdata_traces', partition: 0 }] }]);
  const source = { current: () => table, onChange: () => () => {} };
  const producers = new ReceiverProducers({ defaultProducer: local, logger: silentLogger, createProducer: () => remote });
  const publisher = new RoutedPublisher({ source, producers, logger: silentLogger });
  await publisher.start();
  t.teardown(() => publisher.stop());
  let ready = 0;
  const sender = routedFeedSender(publisher, { ready: async () => void ready++ });
  const feeds = new Feeds({ sender, timeoutMs: 5_000, routes: routeLookup(source) });
  // tail sampling off: the explicit route alone makes the traces feed; virtual metrics on, no route
  const a = app({ virtualMetric: true });
  const feed = feeds.open('1.1.1.1', [groupOf(a)]);
  feed?.group(groupOf(a))?.span(decodedSpan(baseSpan()));
  await feed?.send();
  t.deepEqual(remote.sent.map((s) => [s.topic, s.messages.length, s.partitions]), [['bkdata_traces', 1, [0]]]);
  t.deepEqual(local.sent.map((s) => [s.topic, s.messages.length]), [['0bkmonitor_16000010', 1]]);
  t.is((JSON.parse((remote.sent[0]?.messages[0] as Buffer).toString()) as { dataid: number }).dataid, 1_500_001);
  t.is(ready, 2, 'each send waits for the routes');
  // the route is removed: the traces feed stops (tail sampling is off), the metrics go on
  table = table.withoutRoute(1_500_001);
  const next = feeds.open('1.1.1.1', [groupOf(a)]);
  next?.group(groupOf(a))?.span(decodedSpan(baseSpan()));
  await next?.send();
  t.is(remote.sent.length, 1);
  t.deepEqual(local.sent.map((s) => s.topic), ['0bkmonitor_16000010', '0bkmonitor_16000010']);
});

test('the pipeline feeds exactly the spans it accepted, only for applications with a feed; a failing feed fails the Export UNAVAILABLE', async (t) => {
  const bus = new RecordingSender();
  const batcher = new SpanBatcher({ topic: 'spans', header: codecFor('SpanBatch').schema.header, sender: bus, maxBatchBytes: 256 * 1024, maxQueuedBytes: 1 << 22, maxInFlightSends: 2 });
  const breaker = createBreaker({ name: 'feeds-test', timeoutMs: 30_000, resetTimeoutMs: 60_000, volumeThreshold: 100, isFailure: isKafkaFailure });
  t.teardown(() => breaker.shutdown());
  const fed = app({ tailSampling: true, virtualMetric: true });
  const plain = app({ id: 2, appName: 'plain' });
  const apps = new Map([[hashToken('bkst_fed'), fed], [hashToken('bkst_plain'), plain]]);
  const tokens = new TokenCache({ lookup: async (hash) => apps.get(hash), ttlMs: 60_000, missTtlMs: 60_000, maxEntries: 10 });
  const sender = new RecordingFeedSender();
  const feeds = new Feeds({ sender, timeoutMs: 5_000 });
  const pipeline = new TracePipeline({ tokens, limiter: new RateLimiter(), defaultRateLimit: { qps: 0, burst: 0 }, batcher, partitions: () => 3, breaker, feeds });
  const request = (token: string, seed: number): ExportRequest => ({ protocol: 'grpc', format: 'protobuf', body: randomRequestBytes(seed, 2, 40), token, clientIp: '10.0.0.9' });
  const busSpans = (): { span_id: string; kind: number }[] => bus.requests.flat().flatMap((m) => (codecFor('SpanBatch').decode(m.value) as { spans: { span_id: string; kind: number }[] }).spans);

  const plainResult = await pipeline.export(request('bkst_plain', 11));
  t.true(plainResult.acceptedSpans > 0);
  t.deepEqual(sender.sent, [], 'no feed for an application without one');

  bus.requests.length = 0;
  const result = await pipeline.export(request('bkst_fed', 12));
  t.true(result.rejected.invalid_span !== undefined && result.rejected.invalid_span > 0, 'the request holds invalid spans');
  const accepted = busSpans();
  t.is(accepted.length, result.acceptedSpans);
  const items = sender.sent.filter((s) => s.dataId === fed.tracesDataId).flatMap((s) => s.messages.flatMap((m) => (JSON.parse(m.toString()) as Envelope).items));
  t.deepEqual(items.map((i) => i.span_id).sort(), accepted.map((s) => s.span_id).sort(), 'the feed holds the accepted spans, each once');
  t.true(items.every((i) => i.client_ip === '10.0.0.9' && i.app_name === 'shop'));
  const points = sender.sent.filter((s) => s.dataId === fed.metricsDataId).flatMap((s) => s.messages.flatMap((m) => (JSON.parse(m.toString()) as { data: unknown[] }).data));
  t.is(points.length, accepted.filter((s) => s.kind >= 2 && s.kind <= 5).length, 'one point per server, client, producer and consumer span');

  sender.fail = new Error('the data id topic is missing');
  const err = await t.throwsAsync(pipeline.export(request('bkst_fed', 13)));
  t.true(err instanceof UnavailableError);
  t.is(edgeStatusOf(err).grpc, 14);
});

class RecordingTopicAdmin implements TopicAdmin {
  readonly created: TopicPlan[][] = [];
  starts = 0;
  fail = false;
  async start(): Promise<void> {
    this.starts++;
  }
  async stop(): Promise<void> {}
  async ensureTopics(plans: readonly TopicPlan[]): Promise<string[]> {
    if (this.fail) throw new Error('no broker');
    this.created.push([...plans]);
    return plans.map((p) => p.topic);
  }
}

test('a data id without a route gets its default topic made before its first feed, once; a routed one does not', async (t) => {
  const admin = new RecordingTopicAdmin();
  const topics = new DefaultTopics(admin);
  const sender = new RecordingFeedSender();
  const feeds = new Feeds({ sender, timeoutMs: 5_000, routes: { hasRoute: (id) => id === 1_600_001 }, defaultTopics: topics });
  const a = app({ tailSampling: true, virtualMetric: true });
  const send = async (): Promise<void> => {
    const feed = feeds.open('1.1.1.1', [groupOf(a)]);
    feed?.group(groupOf(a))?.span(decodedSpan(baseSpan()));
    await feed?.send();
  };
  admin.fail = true;
  await t.throwsAsync(send(), { instanceOf: UnavailableError }, 'no topic, no send: the Export is retried');
  t.deepEqual(sender.sent.map((s) => s.dataId), [1_600_001], 'the routed data id went on');
  admin.fail = false;
  await send();
  await send();
  t.deepEqual(admin.created, [[{ topic: '0bkmonitor_15000010', numPartitions: 1, retentionMs: 86_400_000 }]]);
  t.deepEqual(sender.sent.map((s) => s.dataId).sort(), [1_500_001, 1_500_001, 1_600_001, 1_600_001, 1_600_001]);
  t.is(admin.starts, 2, 'connects again after a failure');
});

test('the platform resource filter: tps.tenant.id dropped, a missing or empty service.name defaulted after bk.instance.id was assembled', (t) => {
  const same = { 'service.name': 's', 'bk.instance.id': 'go:s:::' };
  t.is(platformResource(same), same, 'nothing to change: the same object');
  const resource = { 'bk.instance.id': 'go::::', 'tps.tenant.id': 'tenant', 'service.name': '' };
  t.deepEqual(platformResource(resource), { 'bk.instance.id': 'go::::', 'service.name': 'unknown_service' });
  t.deepEqual(resource, { 'bk.instance.id': 'go::::', 'tps.tenant.id': 'tenant', 'service.name': '' }, 'the receiver\'s resource is not changed');
  // through a feed: the span item's resource and the metric's service_name
  const sender = new RecordingFeedSender();
  const feeds = new Feeds({ sender, timeoutMs: 5_000 });
  const a = app({ tailSampling: true, virtualMetric: true });
  const input = { group: { resource: { 'bk.instance.id': 'go::::', 'tps.tenant.id': 'tenant' } }, app: a };
  const feed = feeds.open('1.1.1.1', [input]);
  feed?.group(input)?.span(decodedSpan(baseSpan()));
  const built = feed?.build() ?? [];
  const item = (JSON.parse((built[0]?.packed.messages[0] as Buffer).toString()) as Envelope).items[0];
  t.deepEqual(item?.resource, { 'bk.instance.id': 'go::::', 'service.name': 'unknown_service' });
  const point = (JSON.parse((built[1]?.packed.messages[0] as Buffer).toString()) as { data: DerivedMetric[] }).data[0];
  t.is(point?.dimension.service_name, 'unknown_service');
});

test('the platform attribute filter: http.status_code as an int when its text is one, trpc.status_type/code as text', (t) => {
  const attributesOf = (attrs: Record<string, unknown>[]): Record<string, unknown> =>
    referenceSpan(feedSpan(decodedSpan(baseSpan({ attributes: attrs })), GROUP)).attributes as Record<string, unknown>;
  t.deepEqual(attributesOf([kv('http.status_code', { stringValue: '404' }), kv('trpc.status_code', { intValue: 0 }), kv('trpc.status_type', { boolValue: true })]), {
    'http.status_code': 404,
    'trpc.status_code': '0',
    'trpc.status_type': 'true',
    apdex_type: 'satisfied',
  });
  t.deepEqual(attributesOf([kv('http.status_code', { stringValue: 'OK' })]), { 'http.status_code': 'OK', apdex_type: 'satisfied' }, 'not an int: left as it is');
  t.deepEqual(attributesOf([kv('http.status_code', { doubleValue: 200 })]), { 'http.status_code': 200, apdex_type: 'satisfied' });
  t.deepEqual(attributesOf([kv('http.status_code', { stringValue: '+7' })]), { 'http.status_code': 7, apdex_type: 'satisfied' });
  t.deepEqual(attributesOf([kv('http.status_code', { stringValue: '9223372036854775808' })]), { 'http.status_code': '9223372036854775808', apdex_type: 'satisfied' }, 'out of int64: left');
});

test('the platform field normalizer fills the older keys from the newer ones, by kind and predicate key, before apdex and the deriver', (t) => {
  const n = new FieldNormalizer();
  const attrs = (span: OtlpSpan): Record<string, unknown> => rawMap(span.attributes, true);
  const server = n.normalize(decodedSpan(baseSpan({ attributes: [kv('http.request.method', { stringValue: 'GET' }), kv('http.response.status_code', { intValue: 503 }), kv('client.address', { stringValue: '10.1.1.1' }), kv('client.port', { intValue: 5555 }), kv('url.full', { stringValue: 'https://x/y' })] })));
  t.deepEqual(attrs(server), {
    'http.request.method': 'GET',
    'http.response.status_code': 503,
    'client.address': '10.1.1.1',
    'client.port': 5555,
    'url.full': 'https://x/y',
    // the server's own rules
    'net.peer.name': '10.1.1.1:5555',
    'net.peer.ip': '10.1.1.1',
    'net.peer.port': 5555,
    // then the rules of kind ""
    'http.method': 'GET',
    'http.status_code': 503,
    'http.url': 'https://x/y',
    'http.client_ip': '10.1.1.1',
  });
  const db = n.normalize(decodedSpan(baseSpan({ kind: 3, attributes: [kv('db.system.name', { stringValue: 'mysql' }), kv('db.namespace', { stringValue: 'orders' }), kv('server.address', { stringValue: 'db1' }), kv('server.port', { intValue: 3306 }), kv('db.name', { stringValue: 'kept' })] })));
  t.deepEqual(attrs(db), { 'db.system.name': 'mysql', 'db.namespace': 'orders', 'server.address': 'db1', 'server.port': 3306, 'db.name': 'kept', 'net.peer.name': 'db1:3306', 'net.peer.ip': 'db1', 'net.peer.port': 3306 }, 'an existing key is kept');
  const producer = n.normalize(decodedSpan(baseSpan({ kind: 4, attributes: [kv('messaging.system', { stringValue: 'kafka' }), kv('messaging.destination.name', { stringValue: 'orders' }), kv('server.address', { stringValue: 'k1' })] })));
  t.deepEqual(attrs(producer), { 'messaging.system': 'kafka', 'messaging.destination.name': 'orders', 'server.address': 'k1', topic: 'orders' }, 'no producer rules of its own: only those of kind ""');
  const notString = decodedSpan(baseSpan({ attributes: [kv('http.request.method', { intValue: 1 }), kv('url.full', { stringValue: 'u' })] }));
  t.is(n.normalize(notString), notString, 'a predicate attribute that is not a string matches nothing: the same span');
  // through a feed: the derived metric sees http.method
  const sender = new RecordingFeedSender();
  const feeds = new Feeds({ sender, timeoutMs: 5_000 });
  const a = app({ virtualMetric: true });
  const feed = feeds.open('1.1.1.1', [groupOf(a)]);
  feed?.group(groupOf(a))?.span(decodedSpan(baseSpan({ attributes: [kv('http.request.method', { stringValue: 'PUT' })] })));
  const point = (JSON.parse((feed?.build()[0]?.packed.messages[0] as Buffer).toString()) as { data: DerivedMetric[] }).data[0];
  t.is(point?.dimension.http_method, 'PUT');
});
