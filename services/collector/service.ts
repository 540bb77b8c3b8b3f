/**
 * The collector service and its only composition root: config → ports (store, bus, the Kafka producer)
 * → parts (token cache, batcher, breaker, pipeline, export service, OTLP listeners, admin server) → one
 * Lifecycle. It is the OTLP trace receiver (receiver/) and the application registry's admin API.
 *
 * - `start()` checks the span writer against the schema, opens the admin server and the listeners, and
 *   returns; Kafka is reached in the background (until then every Export is answered UNAVAILABLE and
 *   `/healthz` says why).
 * - `stop()` stops intake first (new calls get UNAVAILABLE, listeners close while the requests in flight
 *   finish; their batches are flushed at once and acknowledged), then stops the producer and closes the
 *   admin server. The drain has one deadline, COLLECTOR_SHUTDOWN_TIMEOUT_MS; the producer and the admin
 *   server get {@link DISCONNECT_MS} more. Idempotent, safe without start.
 *
 * The collector README ("How it works", "Failure behaviour") says what each part does.
 */
import { codecFor } from '../common/avro/index.ts';
import { createBreaker } from '../common/breaker.ts';
import { BkError } from '../common/errors.ts';
import { BackgroundRoutes, type WatchedSource } from '../common/gse/background-routes.ts';
import { ReceiverProducers } from '../common/gse/producers.ts';
import { RoutedPublisher } from '../common/gse/routed-publisher.ts';
import { routeSecretBox } from '../common/gse/secret.ts';
import { RouteWatcher } from '../common/gse/watcher.ts';
import { createHttpServer } from '../common/http.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import { defineService, edgeOptions, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { guardStore } from '../common/store-guard.ts';
import { topicName } from '../common/topics.ts';
import { adminRoutes } from './admin.ts';
import { findByTokenHash } from './applications.ts';
import { receiverSpec, validateCollector, type CollectorConfig } from './config.ts';
import { FlowCommandPublisher } from './flow-outbox.ts';
import { collectorMetrics } from './metrics.ts';
import { BusFeedSender } from './feeds/bus-sender.ts';
import { routedFeedSender } from './feeds/routed-sender.ts';
import { Feeds, routeLookup, type FeedSender } from './feeds/feeds.ts';
import { feedMetrics } from './feeds/metrics.ts';
import { DefaultTopics } from './feeds/default-topics.ts';
import { SpanBatcher } from './receiver/batcher.ts';
import { isKafkaFailure } from './receiver/errors.ts';
import { ExportService, type ExportHealth } from './receiver/export-service.ts';
import { GrpcReceiver } from './receiver/grpc.ts';
import { HttpReceiver } from './receiver/http.ts';
import { Listeners, type Listener } from './receiver/listeners.ts';
import { LogThrottle } from './receiver/log-throttle.ts';
import { TracePipeline } from './receiver/pipeline.ts';
import { RateLimiter } from './receiver/ratelimit.ts';
import { SAMPLE_SPANS } from './receiver/samples.ts';
import { checkSpanWriter } from './receiver/span-avro.ts';
import { TokenCache } from './receiver/tokens.ts';

/** After the drain, how long stopping the producer and closing the admin server may take (a 10 s stop with the default drain). */
const DISCONNECT_MS = 2_000;
/** How long a stop waits for a Kafka connection attempt in progress, at most. */
const CONNECT_SETTLE_MS = 1_000;

/** The collector as a Component, with what tests, benchmarks and operators ask of it. */
export interface CollectorService extends Component {
  /** Ports actually bound (useful when configured as 0). */
  ports(): { grpc: number | undefined; http: number | undefined; admin: number };
  /** Whether Kafka is reached and Exports are accepted. */
  ready(): boolean;
  /** What `/healthz` shows. */
  health(): ExportHealth;
}

export function loadCollectorConfig(env: NodeJS.ProcessEnv): CollectorConfig {
  return loadServiceConfig(receiverSpec, env, validateCollector);
}

/** What tests may replace. */
export interface CollectorOverrides {
  /** Instead of the routes topic (with COLLECTOR_GSE_ROUTING on): a fixed or test-driven source. */
  routeSource?: WatchedSource;
}

/** Builds the collector on `deps` (nothing connects before `start()`). */
export function createCollector(deps: ServiceDeps<'store' | 'bus'>, config: CollectorConfig = loadCollectorConfig(deps.env), overrides: CollectorOverrides = {}): CollectorService {
  const { registry, bus } = deps;
  const store = guardStore(deps.store);
  const logger = deps.logger.child({ service: 'collector' });
  const log = logger.child({ component: 'receiver' });
  const topic = topicName(config.topicPrefix, 'spans');

  // Ports. The producer is not idempotent: kafkajs would then retry forever and a dead broker would never surface.
  const producer = bus.producer({ compress: config.producerCompress });

  // Parts
  const metrics = collectorMetrics(registry, {
    queuedBytes: () => batcher.queuedBytes(),
    inFlightSends: () => batcher.inFlightSends(),
  });
  const throttle = new LogThrottle();
  const tokens = new TokenCache({
    lookup: (hash) => findByTokenHash(store, hash),
    ttlMs: config.tokenCacheTtlMs,
    missTtlMs: config.tokenMissTtlMs,
    maxEntries: config.tokenCacheMaxEntries,
    onResult: (result) => metrics.tokenCache.inc({ result }),
  });
  const batcher: SpanBatcher = new SpanBatcher({
    topic,
    header: codecFor('SpanBatch').schema.header,
    sender: producer,
    maxBatchBytes: config.batchMaxBytes,
    maxQueuedBytes: config.producerQueueBytes,
    maxInFlightSends: config.maxInFlightSends,
    lingerMs: config.batchLingerMs,
    onRecord: (spans, bytes, err) => {
      metrics.records.inc({ result: err ? 'failed' : 'ok' });
      if (err) {
        if (throttle.allow('publish')) log.warn('publishing spans to Kafka failed', { topic, err });
        return;
      }
      metrics.recordSpans.observe(spans);
      metrics.recordBytes.observe(bytes);
    },
  });
  const breaker = createBreaker({
    name: 'kafka-spans',
    timeoutMs: config.exportTimeoutMs,
    resetTimeoutMs: config.breakerResetMs,
    volumeThreshold: 5,
    errorThresholdPercentage: 50,
    isFailure: isKafkaFailure,
    registry,
    logger,
  });
  // The feeds BKData flows read (feeds/): GSE trace messages and derived metrics of the applications with
  // tail sampling or virtual metrics, by data id, on a producer of their own (connected at the first send).
  // With GSE routing on (the default) they go where each data id's route says (services/common/gse, through
  // feeds/routed-sender.ts); the routes are read in the background from start. The spans topic is not routed.
  let routes: BackgroundRoutes | undefined;
  let feedSender: FeedSender;
  /** What the feeds' sending needs started and stopped (after the intake has drained). */
  const feedParts: Component[] = [];
  if (config.gseRouting) {
    const box = routeSecretBox(config);
    routes = new BackgroundRoutes({ source: overrides.routeSource ?? new RouteWatcher({ bus, topic: topicName(config.topicPrefix, 'gseRoutes'), ...(box ? { box } : {}), logger, registry }), logger });
    const producers = new ReceiverProducers({ defaultProducer: bus.producer({ compress: config.producerCompress }), logger, clientId: 'bkstream-collector-gse', producerOptions: { compress: config.producerCompress } });
    const gse = new RoutedPublisher({ source: routes, producers, logger, registry });
    feedSender = routedFeedSender(gse, routes);
    feedParts.push(routes, gse);
  } else {
    const bySender = new BusFeedSender(bus.producer({ compress: config.producerCompress }));
    feedSender = bySender;
    feedParts.push(bySender);
  }
  // A data id without a route gets its default topic made before its first feed (as the reference's metadata does).
  const defaultTopics = new DefaultTopics(bus.admin());
  feedParts.push(defaultTopics);
  const feeds = new Feeds({ sender: feedSender, ...(routes ? { routes: routeLookup(routes) } : {}), defaultTopics, timeoutMs: config.exportTimeoutMs, metrics: feedMetrics(registry) });
  const pipeline = new TracePipeline({
    tokens,
    limiter: new RateLimiter(),
    defaultRateLimit: { qps: config.rateLimitQps, burst: config.rateLimitBurst },
    batcher,
    partitions: () => exportService.partitions(),
    breaker,
    feeds,
  });
  // Flow commands queued by application changes (the admin API's, or bkstream apps against the store), on a
  // producer of their own: the spans' one belongs to the export service.
  const flowCommands =
    config.flowCommandsPollIntervalMs > 0
      ? new FlowCommandPublisher({
          store,
          producer: bus.producer(),
          codec: codecFor('FlowCommand'),
          topic: topicName(config.topicPrefix, 'flowCommands'),
          pollIntervalMs: config.flowCommandsPollIntervalMs,
          logger,
          counter: metrics.flowCommands,
        })
      : undefined;
  const exportService: ExportService = new ExportService({ topic, bus, producer, pipeline, tokens, batcher, breaker, metrics, maxInFlightBytes: config.maxInFlightBytes, throttle, logger: log });
  const grpc = config.grpcEnabled
    ? new GrpcReceiver({ host: config.otlpHost, port: config.grpcPort, maxMessageBytes: config.maxGrpcMessageBytes, handler: exportService, logger })
    : undefined;
  const http = config.httpEnabled
    ? new HttpReceiver({
        host: config.otlpHost,
        port: config.httpPort,
        maxBodyBytes: config.maxHttpBodyBytes,
        handler: exportService,
        logger,
        headersTimeoutS: config.httpHeadersTimeoutS,
        requestTimeoutS: config.httpRequestTimeoutS,
        idleTimeoutS: config.httpIdleTimeoutS,
        maxUnauthenticatedConnections: config.httpMaxUnauthenticatedConnections,
        maxUnauthenticatedRequests: config.httpMaxUnauthenticatedRequests,
        onEvicted: () => metrics.evicted.inc(),
      })
    : undefined;
  // The GSE routes' state is shown, not judged: spans flow without them (only the feeds wait).
  const health = (): ExportHealth => {
    const h = exportService.health();
    return routes ? { ...h, checks: { ...h.checks, gse_routes: routes.state() } } : h;
  };
  // The admin API: application registry and admin tokens need an admin token; health and metrics are public.
  const edge = edgeOptions({ ...deps, store, common: config });
  const admin = createHttpServer({
    host: config.adminHost,
    port: config.adminPort,
    registry,
    logger,
    ...edge,
    health,
    routes: adminRoutes({ store, auth: edge.auth, clearTokens: () => tokens.clear(), onFlowCommands: () => flowCommands?.wake(), health, logger: log }),
  });
  const ports = (): ReturnType<CollectorService['ports']> => ({ grpc: grpc?.port(), http: http?.port(), admin: admin.port() });

  // Lifecycle: parts start in this order and stop in reverse (intake first).
  const lifecycle = new Lifecycle({ logger, stopTimeoutMs: config.shutdownTimeoutMs + DISCONNECT_MS, stopDeadlineMs: config.shutdownTimeoutMs + DISCONNECT_MS });
  lifecycle.add({
    name: 'span-writer-check',
    start: async () => {
      const mismatch = checkSpanWriter(codecFor('SpanBatch'), SAMPLE_SPANS);
      if (mismatch) throw new BkError('span_writer_mismatch', `${mismatch}: update receiver/span-avro.ts for the new schema`, false);
    },
    stop: async () => {},
  });
  lifecycle.onStop('collector', () => {
    exportService.reset();
    log.info('stopped');
  });
  lifecycle.add({ name: 'admin', start: () => admin.start(), stop: () => admin.stop() });
  if (flowCommands) lifecycle.add(flowCommands);
  lifecycle.onStop('breaker', () => breaker.shutdown());
  lifecycle.onStop(producer.name, () => producer.stop());
  for (const part of feedParts) lifecycle.add(part);
  // Intake and drain, within one deadline (COLLECTOR_SHUTDOWN_TIMEOUT_MS) shared by every part that waits
  // for work in flight. Stop order: the export service refuses new calls, the listeners close while their
  // requests finish, a connection attempt gets a moment, the batches are acknowledged.
  const intake = new Lifecycle({ logger, stopTimeoutMs: config.shutdownTimeoutMs, stopDeadlineMs: config.shutdownTimeoutMs });
  lifecycle.add({ name: 'intake', start: () => intake.start(), stop: () => intake.stop() });
  intake.onStop('batches', async () => {
    const drained = await batcher.drain(intake.remainingMs());
    if (!drained) log.warn('stopped before Kafka acknowledged every batch; their Exports were not answered OK', { queuedBytes: batcher.queuedBytes() });
  });
  intake.onStop('kafka-connect', () => exportService.settle(Math.min(intake.remainingMs(), CONNECT_SETTLE_MS)));
  const listeners: Listener[] = [];
  if (grpc) listeners.push(grpc);
  if (http) listeners.push(http);
  intake.add(new Listeners(listeners, () => intake.remainingMs()));
  intake.add({
    name: 'export-service',
    start: async () => {
      exportService.open();
      log.info('started', { ...ports(), topic });
    },
    stop: async () => exportService.close(),
  });

  return {
    name: 'collector',
    start: () => lifecycle.start(),
    stop: () => lifecycle.stop(),
    ports,
    ready: () => exportService.ready(),
    health,
  };
}

export const collector = defineService({
  name: 'collector',
  needs: ['store', 'bus'],
  spec: receiverSpec,
  config: loadCollectorConfig,
  async create(deps, config) {
    return createCollector(deps, config);
  },
});

export default collector;
