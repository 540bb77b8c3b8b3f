/**
 * The collector's publishing by data id (the service's GSE wiring: RouteWatcher → BackgroundRoutes →
 * RoutedPublisher → feeds/routed-sender.ts), end to end against the shared broker and a second broker this
 * test starts: an application's
 * traces data id routed (by records on `<prefix>.gse.routes`) to the second cluster gets its GSE trace
 * envelopes there, its unrouted metrics data id its default topic, the spans topic every span as before;
 * the route deleted, the next Exports' envelopes go to the default topic — no restart, every span once.
 */
import test from 'ava';
import { SpanKind, type HrTime } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { dataIdTopic } from '../../services/collector/feeds/bus-sender.ts';
import { topicName } from '../../services/common/topics.ts';
import { countRecords, readTopic, routeRecord, sharedCluster, startSecondCluster, streamToRecord, waitForRecords } from '../common/gse-kit.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { exporterFor, exportSpans, memoryTracer, readSpans, startReceiver } from './helpers.ts';

/** Spans of `traces` traces: a server span with a client child each (both derive a metric). */
function makeSpans(label: string, traces: number): ReadableSpan[] {
  const { tracer, finished } = memoryTracer({ 'service.name': 'order-svc' });
  const at = (ms: number): HrTime => [1_763_700_000 + Math.floor(ms / 1000), (ms % 1000) * 1_000_000];
  for (let i = 0; i < traces; i++) {
    const root = tracer.startSpan(`${label} GET /orders`, { kind: SpanKind.SERVER, startTime: at(i * 10) });
    root.end(at(i * 10 + 5));
  }
  return finished();
}

interface Envelope {
  dataid: number;
  items: { span_id: string; span_name: string }[];
}

test('the running collector: a routed traces data id → envelopes on the second cluster; unrouted metrics → their default topic; spans topic unchanged; route deleted → next Exports to the default, none lost', async (t) => {
  t.timeout(300_000);
  const b = await startSecondCluster();
  t.teardown(() => b.dispose());
  const [routedTopic] = await b.topics(['collector-routed']);
  const shared = sharedCluster();
  const base = 1_800_000_000 + Math.floor(Math.random() * 100_000_000);
  const [tracesDataId, metricsDataId] = [base, base + 1];
  const prefix = uniqueName('rcv-gse');
  const routesTopic = topicName(prefix, 'gseRoutes');
  const spansTopic = topicName(prefix, 'spans');
  const admin = shared.bus.admin();
  await admin.start();
  await admin.ensureTopics([
    { topic: routesTopic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' },
    { topic: spansTopic, numPartitions: 2, retentionMs: 3_600_000 },
    { topic: dataIdTopic(tracesDataId), numPartitions: 1, retentionMs: 3_600_000 },
    { topic: dataIdTopic(metricsDataId), numPartitions: 1, retentionMs: 3_600_000 },
  ]);
  await admin.stop();
  t.teardown(async () => {
    const a = shared.bus.admin();
    await a.start();
    await a.deleteTopics([routesTopic, spansTopic, dataIdTopic(tracesDataId), dataIdTopic(metricsDataId)]).catch(() => undefined);
    await a.stop();
  });
  const registry = shared.bus.producer();
  await registry.start();
  t.teardown(() => registry.stop());
  await registry.send(routesTopic, [streamToRecord(1, b), routeRecord(tracesDataId, [{ streamToId: 1, topic: routedTopic as string }])]);

  const kit = await startReceiver(t, {
    app: { tracesDataId, metricsDataId, tailSampling: true, virtualMetric: true },
    env: { TOPIC_PREFIX: prefix, COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS: '0' },
  });
  await waitFor('routes read', () => kit.collector.health().checks.gse_routes !== undefined && (kit.collector.health().checks.gse_routes as { state: string }).state === 'ready');
  const spans = await readSpans(t, kit.bus, spansTopic);
  const exporter = exporterFor(kit, 'http-proto', kit.token);
  t.teardown(() => exporter.shutdown());

  // 1. Routed: every Export's envelope on the second cluster, answered after it was acknowledged there.
  const firstBatch = makeSpans('routed', 5);
  for (let i = 0; i < 3; i++) {
    const outcome = await exportSpans(exporter, firstBatch.slice(i, i + 1 + (i === 2 ? 2 : 0)));
    t.true(outcome.ok, outcome.error?.message);
  }
  t.is(await countRecords(b.bus, routedTopic as string), 3, 'acknowledged before the Exports were answered');
  const routed = (await readTopic(b.bus, routedTopic as string)).map((r) => JSON.parse(r.value.toString()) as Envelope);
  t.true(routed.every((e) => e.dataid === tracesDataId));
  t.deepEqual(routed.flatMap((e) => e.items.map((i) => i.span_id)).sort(), firstBatch.map((s) => s.spanContext().spanId).sort());
  t.is(await countRecords(shared.bus, dataIdTopic(tracesDataId)), 0, 'nothing on the default traces topic while routed');
  await waitForRecords(shared.bus, dataIdTopic(metricsDataId), 3);

  // 2. The route is deleted: the next Exports' envelopes go to the default topic, without a restart.
  await registry.send(routesTopic, [{ key: routeRecord(tracesDataId, []).key, value: null }]);
  const later: ReadableSpan[] = [];
  let n = 0;
  await waitFor('envelopes on the default traces topic', async () => {
    const batch = makeSpans(`after-${n++}`, 1);
    const outcome = await exportSpans(exporter, batch);
    if (!outcome.ok) throw outcome.error ?? new Error('export failed');
    later.push(...batch);
    return (await countRecords(shared.bus, dataIdTopic(tracesDataId))) > 0;
  }, 60_000, 100);
  const onB = (await readTopic(b.bus, routedTopic as string)).map((r) => JSON.parse(r.value.toString()) as Envelope);
  const onDefault = (await readTopic(shared.bus, dataIdTopic(tracesDataId))).map((r) => JSON.parse(r.value.toString()) as Envelope);
  const ids = [...onB, ...onDefault].flatMap((e) => e.items.map((i) => i.span_id));
  const all = [...firstBatch, ...later].map((s) => s.spanContext().spanId);
  t.is(ids.length, all.length, 'each span in one envelope, on one cluster');
  t.deepEqual([...ids].sort(), [...all].sort(), 'none lost');
  t.true(onB.length >= 3 && onDefault.length >= 1);

  // The spans topic is not a GSE channel: it got every span, as before.
  await waitFor('every span on the spans topic', () => spans.spans().length >= all.length);
  t.deepEqual(spans.spans().map((s) => s.span_id).sort(), [...all].sort());
});
