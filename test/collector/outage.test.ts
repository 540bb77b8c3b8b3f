/**
 * Kafka outages, on a broker of this test's own (never the shared one): the receiver starts while the
 * broker is down and answers UNAVAILABLE until it is up; later the broker is stopped mid-stream and
 * restarted. Spans are sent all along by the real OpenTelemetry SDK gRPC exporter; every span whose
 * export succeeded must be in Kafka at the end, and while the broker is down clients are told to retry.
 */
import test from 'ava';
import { grpcStatus as status } from '../../services/common/grpc.ts';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { kafkaSettings, startKafka, stopKafka, type KafkaSettings } from '../../services/cli/local-kafka.ts';
import { Bus } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { encodeRequest } from '../../services/common/otlp/index.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { exporterFor, exportSpans, grpcExport, memoryTracer, readSpans, startReceiver } from './helpers.ts';
import { freePortPair } from '../helpers/ports.ts';


function dedicatedBroker(t: { teardown(fn: () => Promise<void>): void }, port: number): KafkaSettings {
  const settings = kafkaSettings({ ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) });
  t.teardown(async () => {
    await stopKafka(settings);
    rmSync(join(settings.home, 'kafka', `run-${settings.port}`), { recursive: true, force: true });
  });
  return settings;
}

const probe = encodeRequest({
  resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 7), spanId: Buffer.alloc(8, 9), name: 'probe', startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }],
});

test('broker down at start, then stopped and restarted mid-stream: accepted spans are never lost, clients are told to retry', async (t) => {
  t.timeout(420_000);
  const port = await freePortPair();
  const settings = dedicatedBroker(t, port);
  const brokers = [`127.0.0.1:${port}`];

  // 1. The receiver starts with the broker down.
  const kit = await startReceiver(t, {
    brokers,
    createTopics: false,
    waitReady: false,
    partitions: 3,
    env: { COLLECTOR_EXPORT_TIMEOUT_MS: '2000', COLLECTOR_BREAKER_RESET_MS: '500' },
  });
  const before = await grpcExport(kit, probe, kit.token);
  t.is(before.code, status.UNAVAILABLE, 'UNAVAILABLE (retryable) while Kafka was never reached');
  t.is(before.details, 'the Kafka broker is unavailable', 'the part is named, not its address');
  const health = await fetch(`${kit.adminUrl}/healthz`);
  t.is(health.status, 503);
  const body = (await health.json()) as { dependencies: Record<string, string>; checks: Record<string, unknown> };
  t.is(body.dependencies.kafka, 'unavailable');
  t.regex(String(body.checks.kafka), /^(connecting|unavailable)$/);
  t.false(JSON.stringify(body).includes('127.0.0.1'), 'no internal address on /healthz');

  // 2. The broker comes up; the topic is created; the receiver gets there on its own.
  await startKafka(settings);
  const admin = new Bus({ brokers, clientId: uniqueName('outage-admin'), logger: silentLogger }).admin();
  await admin.start();
  t.teardown(() => admin.stop());
  await admin.ensureTopics([{ topic: kit.topic, numPartitions: 3, retentionMs: 3_600_000 }]);
  await waitFor('the receiver to reach the broker', () => kit.collector.ready(), 120_000, 200);

  // 3. A real SDK client exports batches all along.
  const { tracer, finished, reset } = memoryTracer({ 'service.name': 'outage-svc' });
  const exporter = exporterFor(kit, 'grpc', kit.token);
  t.teardown(() => exporter.shutdown());
  const accepted = new Set<string>();
  const failures: string[] = [];
  let sending = true;
  let batch = 0;
  const sender = (async () => {
    while (sending) {
      batch++;
      for (let i = 0; i < 10; i++) tracer.startSpan(`b${batch}-s${i}`).end();
      const spans = finished();
      reset();
      const outcome = await exportSpans(exporter, spans);
      if (outcome.ok) for (const s of spans) accepted.add(s.spanContext().spanId);
      else {
        failures.push(outcome.error?.message ?? 'failed');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  await waitFor('spans accepted before the outage', () => accepted.size >= 100, 120_000);

  // 4. The broker stops mid-stream: clients are told to retry.
  await stopKafka(settings);
  const downSince = accepted.size;
  const during = await grpcExport(kit, probe, kit.token);
  t.is(during.code, status.UNAVAILABLE, `while the broker is down: ${during.details}`);
  await waitFor('the SDK exporter to see failures', () => failures.length >= 2, 120_000);

  // 5. The broker is back (same data directory: the topic and its records survive).
  await startKafka(settings);
  await waitFor('exports accepted again after the restart', () => accepted.size >= downSince + 50, 180_000, 200);
  sending = false;
  await sender;
  await kit.collector.stop();

  // 6. Every span the SDK was told was exported is in Kafka.
  const reader = await readSpans(t, new Bus({ brokers, clientId: uniqueName('outage-read'), logger: silentLogger }), kit.topic);
  await waitFor('every accepted span read back', () => {
    const ids = new Set(reader.spans().map((s) => s.span_id));
    return [...accepted].every((id) => ids.has(id));
  }, 120_000, 200);
  t.true(failures.length > 0);
  t.pass(`${accepted.size} accepted spans all in Kafka; ${failures.length} exports failed during the outage`);
});
