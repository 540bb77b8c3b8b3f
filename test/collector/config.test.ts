/** The collector's configuration: defaults, a valid fixture, and every problem reported with its key. */
import test from 'ava';
import { ConfigError } from '../../services/common/errors.ts';
import { DEFAULT_MAX_GRPC_MESSAGE_BYTES } from '../../services/collector/config.ts';
import { collector, loadCollectorConfig } from '../../services/collector/service.ts';
import { createService } from '../helpers/service.ts';

test('defaults: reference ports, 8 MiB gRPC messages, 2000 qps / 4000 burst, answers within 5 s', (t) => {
  const c = loadCollectorConfig({});
  t.is(c.grpcPort, 4317);
  t.is(c.httpPort, 4318);
  t.is(c.adminPort, 4310);
  t.is(c.otlpHost, '127.0.0.1');
  t.is(c.maxGrpcMessageBytes, DEFAULT_MAX_GRPC_MESSAGE_BYTES);
  t.is(c.maxGrpcMessageBytes, 8 * 1024 * 1024);
  t.is(c.rateLimitQps, 2000);
  t.is(c.rateLimitBurst, 4000);
  t.is(c.exportTimeoutMs, 5000);
  t.is(c.topicPrefix, 'bkstream');
  t.true(c.batchMaxBytes < 1024 * 1024, 'records stay under the broker default message.max.bytes');
});

test('a valid fixture', (t) => {
  const c = loadCollectorConfig({
    COLLECTOR_OTLP_HOST: '0.0.0.0',
    COLLECTOR_OTLP_GRPC_PORT: '14317',
    COLLECTOR_OTLP_HTTP_ENABLED: 'false',
    COLLECTOR_MAX_GRPC_MESSAGE_BYTES: '16777216',
    COLLECTOR_RATE_LIMIT_QPS: '0',
    COLLECTOR_PRODUCER_COMPRESS: 'true',
    TOPIC_PREFIX: 'prod',
  });
  t.is(c.otlpHost, '0.0.0.0');
  t.is(c.grpcPort, 14317);
  t.false(c.httpEnabled);
  t.is(c.maxGrpcMessageBytes, 16 * 1024 * 1024);
  t.is(c.rateLimitQps, 0);
  t.true(c.producerCompress);
  t.is(c.topicPrefix, 'prod');
});

test('every invalid key is reported at once, by name', (t) => {
  const err = t.throws(
    () =>
      loadCollectorConfig({
        COLLECTOR_OTLP_GRPC_PORT: '70000',
        COLLECTOR_OTLP_HTTP_ENABLED: 'maybe',
        COLLECTOR_MAX_GRPC_MESSAGE_BYTES: '12',
        COLLECTOR_EXPORT_TIMEOUT_MS: 'soon',
        COLLECTOR_BATCH_MAX_BYTES: '2000000',
      }),
    { instanceOf: ConfigError },
  );
  const keys = err?.problems.map((p) => p.key) ?? [];
  t.deepEqual(keys.sort(), ['COLLECTOR_BATCH_MAX_BYTES', 'COLLECTOR_EXPORT_TIMEOUT_MS', 'COLLECTOR_MAX_GRPC_MESSAGE_BYTES', 'COLLECTOR_OTLP_GRPC_PORT', 'COLLECTOR_OTLP_HTTP_ENABLED']);
  t.regex(err?.message ?? '', /COLLECTOR_OTLP_GRPC_PORT: must be <= 65535, got 70000/);
});

test('cross-field problems: ports that collide, a producer queue smaller than two records', (t) => {
  const err = t.throws(
    () => loadCollectorConfig({ COLLECTOR_OTLP_GRPC_PORT: '5000', COLLECTOR_OTLP_HTTP_PORT: '5000', COLLECTOR_ADMIN_PORT: '5000', COLLECTOR_PRODUCER_QUEUE_BYTES: '1048576', COLLECTOR_BATCH_MAX_BYTES: '921600' }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(err?.problems.map((p) => p.key).sort(), ['COLLECTOR_ADMIN_PORT', 'COLLECTOR_OTLP_HTTP_PORT', 'COLLECTOR_PRODUCER_QUEUE_BYTES']);
});

test('the service module refuses to be created with a bad config, before opening anything', async (t) => {
  const deps = { env: { COLLECTOR_ADMIN_PORT: 'x' } } as unknown as Parameters<typeof collector.create>[0];
  await t.throwsAsync(createService(collector, deps), { instanceOf: ConfigError, message: /COLLECTOR_ADMIN_PORT/ });
});
