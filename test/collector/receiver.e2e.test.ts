/**
 * The receiver end to end with the real OpenTelemetry JS SDK and the real broker: spans exported over
 * OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON are read back from Kafka and checked field by field.
 */
import test, { type ExecutionContext } from 'ava';
import { context, SpanKind, SpanStatusCode, trace, type HrTime } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { partitionFor } from '../../services/common/bus/index.ts';
import type { Span } from '../../services/common/records.ts';
import { waitFor } from '../helpers/kafka.ts';
import { exporterFor, exportSpans, hrMicros, memoryTracer, metricValue, readSpans, startReceiver, type ExporterKind } from './helpers.ts';

const RESOURCE = {
  'service.name': 'order-svc',
  'service.version': '1.4.2',
  'net.host.name': 'order-7d9f',
  'net.host.ip': '10.0.1.5',
  'net.host.port': 8080,
};

/** Attributes of the server spans, of every type the SDK sends. */
const SERVER_ATTRIBUTES = {
  'http.method': 'GET',
  'http.status_code': 200,
  'http.route': '/api/orders/{id}',
  'sampling.ratio': 0.25,
  'cache.hit': false,
  'feature.flags': ['a', 'b'],
  'retry.delays': [1, 2, 3],
  'big.int': 2 ** 40,
};

/** Nanoseconds that are not a multiple of 1000, so flooring to µs shows. */
function at(offsetMs: number): HrTime {
  return [1_763_700_000 + Math.floor(offsetMs / 1000), (offsetMs % 1000) * 1_000_000 + 123_987];
}

/** `traces` traces of a server span, a client child (error status, event) and a link. */
function makeSpans(traces: number): ReadableSpan[] {
  const { tracer, finished } = memoryTracer(RESOURCE);
  let first: ReturnType<typeof tracer.startSpan> | undefined;
  for (let i = 0; i < traces; i++) {
    const root = tracer.startSpan(`GET /api/orders/{id}`, {
      kind: SpanKind.SERVER,
      startTime: at(i * 10),
      attributes: SERVER_ATTRIBUTES,
    });
    first ??= root;
    const child = tracer.startSpan(
      'SELECT orders',
      {
        kind: SpanKind.CLIENT,
        startTime: at(i * 10 + 1),
        attributes: { 'db.system': 'mysql', 'db.statement': 'SELECT * FROM orders WHERE id = ?' },
        links: [{ context: first.spanContext(), attributes: { 'link.reason': 'batch' } }],
      },
      trace.setSpan(context.active(), root),
    );
    child.addEvent('retry', { attempt: 2 }, at(i * 10 + 2));
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
    child.end(at(i * 10 + 5));
    root.end(at(i * 10 + 7));
  }
  return finished();
}

function checkSpan(t: ExecutionContext, got: Span, want: ReadableSpan): void {
  const ctx = want.spanContext();
  t.is(got.trace_id, ctx.traceId);
  t.is(got.span_id, ctx.spanId);
  t.is(got.parent_span_id, want.parentSpanContext?.spanId ?? '');
  t.is(got.span_name, want.name);
  t.is(got.kind, want.kind + 1, 'OTLP numbering: SDK SERVER (1) is 2');
  t.is(got.start_time, hrMicros(want.startTime));
  t.is(got.end_time, hrMicros(want.endTime));
  t.is(got.elapsed_time, got.end_time - got.start_time);
  t.is(got.bk_biz_id, 2);
  t.is(got.app_name, 'shop');
  t.is(got.client_ip, '127.0.0.1');
  t.is(got.resource['service.name'], 'order-svc');
  t.is(got.resource['net.host.port'], 8080);
  t.is(got.resource['telemetry.sdk.language'], 'nodejs');
  t.is(got.resource['bk.instance.id'], 'nodejs:order-svc:order-7d9f:10.0.1.5:8080');
  if (want.kind === SpanKind.SERVER) {
    t.deepEqual(got.attributes, SERVER_ATTRIBUTES);
    t.deepEqual(got.status, { code: 0, message: '' });
    t.deepEqual(got.events, []);
  } else {
    t.deepEqual(got.attributes, { 'db.system': 'mysql', 'db.statement': 'SELECT * FROM orders WHERE id = ?' });
    t.deepEqual(got.status, { code: 2, message: 'deadlock' });
    t.deepEqual(got.events, [{ name: 'retry', timestamp: hrMicros(want.events[0]?.time as HrTime), attributes: { attempt: 2 } }]);
    const link = want.links[0];
    if (!link) throw new Error("the client span has a link");
    t.deepEqual(got.links, [{ trace_id: link.context.traceId, span_id: link.context.spanId, trace_state: '', attributes: { 'link.reason': 'batch' } }]);
  }
}

const KINDS: ExporterKind[] = ['grpc', 'http-proto', 'http-json'];

for (const kind of KINDS) {
  test(`SDK spans over ${kind} reach Kafka complete, with µs times, typed attributes, bk.instance.id and the token's app, partitioned by trace id`, async (t) => {
    const kit = await startReceiver(t, { partitions: 4 });
    const reader = await readSpans(t, kit.bus, kit.topic);
    const sent = makeSpans(12);
    const exporter = exporterFor(kit, kind, kit.token);
    t.teardown(() => exporter.shutdown());
    const outcome = await exportSpans(exporter, sent);
    t.true(outcome.ok, outcome.error?.message);

    const got = await waitFor('every span in Kafka', () => (reader.spans().length >= sent.length ? reader.spans() : undefined), 60_000);
    t.is(got.length, sent.length, 'each span once');
    const byId = new Map(got.map((s) => [s.span_id, s]));
    for (const want of sent) {
      const span = byId.get(want.spanContext().spanId);
      if (!span) {
        t.fail(`span ${want.spanContext().spanId} missing`);
        continue;
      }
      checkSpan(t, span, want);
    }
    for (const record of reader.records) {
      t.true(record.batch.spans.length > 0);
      t.is(record.key, record.batch.spans[0]?.trace_id ?? '', 'record key: trace id of the first span');
      for (const span of record.batch.spans) t.is(record.partition, partitionFor(span.trace_id, kit.partitions), 'span on its trace id partition');
    }
    const protocol = kind === 'grpc' ? 'grpc' : 'http';
    t.is(await metricValue(kit.registry, 'bkstream_receiver_spans_accepted_total', { protocol }), sent.length);
    t.is(await metricValue(kit.registry, 'bkstream_receiver_app_spans_total', { bk_biz_id: '2', app_name: 'shop' }), sent.length);
  });
}
