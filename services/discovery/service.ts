/**
 * The discovery service's composition root (README: What it does, How it works): consumer groups on
 * `spans` (and `spans.replay`), the rules engine and the seven discoverers, LRU dedupe, batched
 * idempotent upserts, expiry sweeps, cmdb_host from agent static events, and the query API on port 8081
 * (with /metrics and /healthz). `create(deps, config)` builds the ports and parts and returns them as
 * one component started and stopped by a {@link Lifecycle} (intake stops first).
 */
import type { Batch, BusConsumer, ConsumerOptions } from '../common/bus/index.ts';
import { codecFor } from '../common/avro/index.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import { createHttpServer, type HttpServer } from '../common/http.ts';
import type { AgentEvent } from '../common/records.ts';
import { defineService, edgeOptions, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { startInBackground } from '../common/background.ts';
import { guardStore } from '../common/store-guard.ts';
import { topicName } from '../common/topics.ts';
import { queryRoutes } from './api.ts';
import { hostsFromEvent, upsertHosts } from './cmdb.ts';
import { discoverySpec, validateDiscovery, type DiscoveryConfig } from './config.ts';
import { DedupeSink, NodeKinds } from './dedupe.ts';
import { Flusher } from './flusher.ts';
import { Lookups } from './lookups.ts';
import { discoveryMetrics } from './metrics.ts';
import { SpanPipeline } from './pipeline.ts';
import { spanBatchView, type SpanView } from './span-view.ts';
import { Sweeper } from './sweep.ts';
import { TABLES } from './tables.ts';
import { Writer } from './writer.ts';

/** Topo nodes whose kind is kept in memory for the relation discoverer. */
const MAX_NODE_KINDS = 200_000;

export interface DiscoveryService extends Component {
  readonly config: DiscoveryConfig;
  readonly http: HttpServer;
  readonly pipeline: SpanPipeline;
  readonly sink: DedupeSink;
  readonly flusher: Flusher;
  readonly sweeper: Sweeper;
  /** The span consumers (spans, and spans.replay when enabled) and the events consumer. */
  readonly consumers: readonly BusConsumer<unknown>[];
}

/** The shared settings and discovery's own from `env` (and BKSTREAM_CONFIG), every problem of both at once. */
export function loadDiscoveryConfig(env: NodeJS.ProcessEnv): DiscoveryConfig {
  return loadServiceConfig(discoverySpec, env, validateDiscovery);
}

function consumerPart<T>(consumer: BusConsumer<T>, drainMs: number): Component {
  return { name: consumer.name, start: () => consumer.start(), stop: () => consumer.stop(drainMs) };
}

/**
 * Builds discovery on the given store and bus: ports (lookups, dedupe sink, writer), parts (flusher,
 * pipeline, consumers, sweeper, HTTP server) and their lifecycle; nothing starts until `start()`.
 */
export async function createDiscovery(deps: ServiceDeps<'store' | 'bus'>, config: DiscoveryConfig = loadDiscoveryConfig(deps.env)): Promise<DiscoveryService> {
  const log = deps.logger.child({ component: 'discovery' });
  const { registry, bus } = deps;
  // Store outages reach API clients as 503 "the database is unavailable" (common/store-guard.ts).
  const store = guardStore(deps.store);
  const prefix = deps.common.topicPrefix;
  const topics = {
    spans: topicName(prefix, 'spans'),
    replay: topicName(prefix, 'spansReplay'),
    events: topicName(prefix, 'events'),
    dlq: topicName(prefix, 'dlq'),
  };

  const nodeKinds = new NodeKinds(MAX_NODE_KINDS);
  const sink = new DedupeSink({ maxKeys: config.cacheMaxKeys, ttlMs: config.cacheTtlMs, touchIntervalMs: config.touchIntervalMs, nodeKinds });
  let hits = 0;
  let lookupsTotal = 0;
  const m = discoveryMetrics(registry, {
    cachedKeys: () => sink.cachedKeys(),
    pendingRows: () => sink.pendingRows(),
    windowItems: () => pipeline.windowItems(),
    cacheHitRatio: () => (lookupsTotal === 0 ? 0 : hits / lookupsTotal),
  });
  const writer = new Writer({ store, logger: deps.logger });
  let flushFailures = 0;
  const flusher = new Flusher({
    pending: sink,
    write: (snapshot) => writer.write(snapshot),
    intervalMs: config.flushIntervalMs,
    maxRows: config.flushMaxRows,
    logger: deps.logger,
    onFlushed: (result, seconds) => {
      flushFailures = 0;
      m.flush.observe(seconds);
      for (const [table, n] of Object.entries(result.written)) if (n) m.written.inc({ table }, n);
      for (const [table, n] of Object.entries(result.rejected)) if (n) m.rejected.inc({ table }, n);
    },
    onFailed: () => {
      flushFailures++;
      m.flushFailures.inc();
    },
  });
  const lookups = new Lookups({ db: store, logger: deps.logger, nodeKinds, ruleTtlMs: config.ruleCacheTtlMs, cmdbTtlMs: config.cmdbCacheTtlMs, maxNodesPerApp: config.maxRowsPerApp });
  const pipeline = new SpanPipeline({
    lookups,
    sink,
    nodeKinds,
    flusher,
    window: { ttlMs: config.pairingTtlMs, maxItems: config.pairingMaxItems },
    touchIntervalMs: config.touchIntervalMs,
    maxShapes: config.shapeCacheMax,
    maxQueuedBatches: config.partitionsConcurrently + 1,
    logger: deps.logger,
  });

  /** Moves the pipeline's and the sink's plain counters into the registry. */
  const syncMetrics = (): void => {
    const s = pipeline.stats();
    if (s.spans) m.spans.inc(s.spans);
    if (s.reread) m.reread.inc(s.reread);
    if (s.shapeMisses) m.shapeMisses.inc(s.shapeMisses);
    if (s.paired) m.pairs.inc(s.paired);
    for (const [reason, n] of Object.entries(s.dropped)) if (n) m.dropped.inc({ reason }, n);
    const c = sink.counts();
    for (const table of TABLES) {
      if (c.hits[table]) m.sightings.inc({ table, result: 'hit' }, c.hits[table]);
      if (c.misses[table]) m.sightings.inc({ table, result: 'miss' }, c.misses[table]);
      hits += c.hits[table];
      lookupsTotal += c.hits[table] + c.misses[table];
    }
  };

  const spanConsumer = (groupId: string, topic: string): BusConsumer<SpanView> =>
    bus.consumer<SpanView>({
      groupId,
      topics: [topic],
      codec: spanBatchView(),
      handler: pipeline.handle,
      dlqTopic: topics.dlq,
      partitionsConsumedConcurrently: config.partitionsConcurrently,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      maxInFlightRecords: config.maxInFlightRecords,
      onRevoke: (partitions) => pipeline.revoke(partitions),
    });
  const spans = spanConsumer(config.groupId, topics.spans);
  const replay = config.consumeReplay ? spanConsumer(config.replayGroupId, topics.replay) : undefined;
  const eventsOptions: ConsumerOptions<AgentEvent> = {
    groupId: config.eventsGroupId,
    topics: [topics.events],
    codec: codecFor('AgentEvent'),
    dlqTopic: topics.dlq,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    handler: async (batch: Batch<AgentEvent>) => {
      const rows = batch.records.flatMap((r) => hostsFromEvent(r.value));
      if (rows.length === 0) return;
      await upsertHosts(store, rows);
      lookups.addHosts(rows);
      m.hosts.inc(rows.length);
    },
  };
  const events = bus.consumer(eventsOptions);

  const sweeper = new Sweeper({
    store,
    logger: deps.logger,
    intervalMs: config.sweepIntervalMs,
    defaultRetentionDays: config.defaultRetentionDays,
    topoNodeRetentionDays: config.topoNodeRetentionDays,
    maxRowsPerApp: config.maxRowsPerApp,
    onSwept: (r) => {
      for (const [table, n] of Object.entries(r.expired)) m.swept.inc({ table, reason: 'expired' }, n);
      for (const [table, n] of Object.entries(r.overflow)) m.swept.inc({ table, reason: 'overflow' }, n);
    },
  });

  const consumers: BusConsumer<unknown>[] = [spans, ...(replay ? [replay] : []), events] as BusConsumer<unknown>[];
  // Authentication (an application's token, or an admin token, per listing) and readiness probes (SECURITY.md).
  const http = createHttpServer({
    ...edgeOptions({ ...deps, store }),
    host: config.httpHost,
    port: config.httpPort,
    registry,
    logger: deps.logger,
    routes: queryRoutes({ db: store, defaultRetentionDays: config.defaultRetentionDays, topoNodeRetentionDays: config.topoNodeRetentionDays, maxPageSize: config.apiMaxPageSize }),
    health: () => ({
      // Repeated flush failures mean the store is down: nothing is committed until it is back.
      ok: flushFailures < 3,
      checks: {
        store: flushFailures < 3 ? 'ok' : `${flushFailures} flushes failed in a row`,
        pending_rows: sink.pendingRows(),
        consumers: Object.fromEntries(consumers.map((c) => [c.name, c.joined() ? 'joined' : 'joining'])),
      },
    }),
  });

  let ticker: NodeJS.Timeout | undefined;
  const timers: Component = {
    name: 'discovery-timers',
    start: async () => {
      ticker ??= setInterval(() => {
        pipeline.expire();
        syncMetrics();
      }, Math.max(10, Math.min(1_000, Math.floor(config.pairingTtlMs / 4))));
      ticker.unref();
    },
    stop: async () => {
      clearInterval(ticker);
      ticker = undefined;
      syncMetrics();
      sink.purgeStale();
    },
  };
  const topicCheck: Component = {
    name: 'discovery-topics',
    start: async () => {
      const admin = bus.admin();
      await admin.start();
      try {
        await admin.checkTopics([topics.spans, topics.events, topics.dlq, ...(replay ? [topics.replay] : [])]);
      } finally {
        await admin.stop();
      }
    },
    stop: async () => {},
  };

  // Started in this order, stopped in reverse: intake (consumers) first, then the flush of what they left.
  const lifecycle = new Lifecycle({ logger: deps.logger });
  lifecycle.add({ name: 'discovery-http', start: () => http.start(), stop: () => http.stop() });
  lifecycle.add(flusher);
  lifecycle.add(timers);
  lifecycle.add(sweeper);
  // Kafka in the background: the API is up (and not ready) until the broker answers and the groups join.
  const kafka = new Lifecycle({ logger: deps.logger, name: 'discovery-kafka' });
  // The span groups join first: a consumer's start waits for its group to take it in, which another
  // member notices only at its next heartbeat, so a member joining a running group would otherwise make
  // its span partitions wait for the events group's rebalance as well.
  kafka.add(topicCheck);
  kafka.add(consumerPart(spans, config.stopDrainMs));
  if (replay) kafka.add(consumerPart(replay, config.stopDrainMs));
  kafka.add(consumerPart(events, config.stopDrainMs));
  lifecycle.add(startInBackground(kafka, { logger: deps.logger }));

  return {
    name: 'discovery',
    config,
    http,
    pipeline,
    sink,
    flusher,
    sweeper,
    consumers,
    start: async () => {
      await lifecycle.start();
      log.info('started', { topics: consumers.map((c) => c.name), port: http.port() });
    },
    stop: () => lifecycle.stop(),
  };
}

export const discoveryService = defineService({
  name: 'discovery',
  needs: ['store', 'bus'],
  spec: discoverySpec,
  config: loadDiscoveryConfig,
  create: createDiscovery,
});

export default discoveryService;
