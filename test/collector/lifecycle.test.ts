/**
 * The collector's lifecycle: stop without start, start → process a sample → stop, idempotent stop, a
 * port in use, and graceful shutdown under load (every span answered OK is in Kafka; later calls are
 * told to retry).
 */
import test from 'ava';
import { grpcStatus as status } from '../../services/common/grpc.ts';
import { createServer } from 'node:net';
import { Bus } from '../../services/common/bus/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { collector, createCollector } from '../../services/collector/service.ts';
import { brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { closeFileStore, fileStore, grpcExport, readSpans, startReceiver, type ReceiverKit } from './helpers.ts';
import { sampleRequest } from './otlp-fixtures.ts';
import { createService } from '../helpers/service.ts';

test.after.always(closeFileStore);

async function deps(env: NodeJS.ProcessEnv = {}) {
  const full = { TOPIC_PREFIX: uniqueName('lc'), COLLECTOR_OTLP_GRPC_PORT: '0', COLLECTOR_OTLP_HTTP_PORT: '0', COLLECTOR_ADMIN_PORT: '0', ...env };
  return {
    env: full,
    logger: silentLogger,
    registry: createRegistry(),
    store: await fileStore(),
    bus: new Bus({ brokers: brokers(), clientId: uniqueName('lc'), logger: silentLogger }),
    common: loadConfig(commonSpec, { env: full }),
  };
}

test('stop without start is a no-op; stop is idempotent', async (t) => {
  const service = await createService(collector, await deps());
  await service.stop();
  await service.stop();
  const collectorService = createCollector(await deps());
  await Promise.all([collectorService.stop(), collectorService.stop()]);
  t.false(collectorService.ready());
});

test('start → process a sample → stop, then the ports are closed', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const reader = await readSpans(t, kit.bus, kit.topic);
  const res = await grpcExport(kit, sampleRequest(1, 5), kit.token);
  t.is(res.code, status.OK);
  await waitFor('the sample in Kafka', () => reader.spans().length === 5);
  await kit.collector.stop();
  await kit.collector.stop();
  const after = await grpcExport(kit, sampleRequest(2, 1), kit.token);
  t.is(after.code, status.UNAVAILABLE, 'nothing listens any more');
  await t.throwsAsync(fetch(`${kit.adminUrl}/healthz`));
});

test('a port in use: start fails naming the port, and closes what it had opened', async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as { port: number }).port;
  const collectorService = createCollector(await deps({ COLLECTOR_OTLP_HTTP_PORT: String(port) }));
  t.teardown(() => collectorService.stop());
  await t.throwsAsync(collectorService.start(), { message: new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} for OTLP/HTTP`) });
  const grpcPort = collectorService.ports().grpc;
  t.truthy(grpcPort);
  const probe = await grpcExport({ grpcUrl: `http://127.0.0.1:${grpcPort}` }, Buffer.alloc(0));
  t.is(probe.code, status.UNAVAILABLE, 'the gRPC listener opened before the failure is closed again');
});

test('graceful stop under load: every span answered OK is in Kafka; calls after the stop are told to retry', async (t) => {
  const kit: ReceiverKit = await startReceiver(t, { store: await fileStore(), partitions: 3 });
  const reader = await readSpans(t, kit.bus, kit.topic);
  const okSpanNames = new Set<string>();
  const codes = new Map<status, number>();
  let stopped = false;
  let seed = 0;
  const client = async (): Promise<void> => {
    while (!stopped) {
      const s = ++seed;
      const res = await grpcExport(kit, sampleRequest(s, 20), kit.token);
      codes.set(res.code, (codes.get(res.code) ?? 0) + 1);
      if (res.code === status.OK) for (let i = 0; i < 20; i++) okSpanNames.add(`op-${s}-${i}`);
    }
  };
  const clients = Array.from({ length: 6 }, () => client());
  await waitFor('some exports accepted', () => okSpanNames.size >= 200, 60_000);
  await kit.collector.stop();
  stopped = true;
  await Promise.all(clients);
  t.true((codes.get(status.OK) ?? 0) > 0);
  for (const code of codes.keys()) t.true(code === status.OK || code === status.UNAVAILABLE, `only OK or UNAVAILABLE, got ${code}`);

  await waitFor('every accepted span in Kafka', () => {
    const names = new Set(reader.spans().map((s) => s.span_name));
    return [...okSpanNames].every((n) => names.has(n));
  }, 60_000);
  t.pass(`${okSpanNames.size} accepted spans all found`);
});
