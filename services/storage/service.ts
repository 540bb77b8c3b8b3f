/**
 * The storage service: consumer groups on `spans` (and `spans.replay`), `metrics` and `events` that
 * bulk-write spans (with per-trace summaries), metric samples and events into day partitions; partition
 * maintenance (create ahead, drop past retention); the BaseQuery API on port 8083 (with /metrics and
 * /healthz); and, when configured, second sinks (OTLP export of spans, Prometheus remote write of metrics)
 * on consumer groups of their own.
 */
import { codecFor } from '../common/avro/index.ts';
import type { BusConsumer } from '../common/bus/index.ts';
import { createHttpServer, type HttpServer } from '../common/http.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import type { RecordTypes } from '../common/records.ts';
import { defineService, edgeOptions, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { CopyPool } from '../common/store/copy.ts';
import { topicName } from '../common/topics.ts';
import { storageRoutes } from './api.ts';
import { basereportRows } from './basereport.ts';
import { storageSpec, validateStorage, type StorageConfig } from './config.ts';
import { EventWriter, type EventRow } from './event-writer.ts';
import { Flusher } from './flusher.ts';
import { MetricWriter, type MetricWriteResult } from './metric-writer.ts';
import { storageMetrics, type StorageMetrics } from './metrics.ts';
import { listPartitions, PartitionManager } from './partitions.ts';
import { foldRollups } from './rollup.ts';
import { Retention } from './retention.ts';
import type { MetricRow } from './series.ts';
import { SINKS } from './sinks/index.ts';
import { spanCopyDecoder, type SpanCopyBatch, type StoredSpan } from './span-copy.ts';
import { SpanIngest } from './span-ingest.ts';
import { SpanWriter, type SpanWriteResult } from './span-writer.ts';

export interface StorageService extends Component {
  readonly config: StorageConfig;
  readonly http: HttpServer;
  readonly metrics: StorageMetrics;
  readonly partitions: PartitionManager;
  readonly flushers: { spans: Flusher<StoredSpan, SpanWriteResult>; metrics: Flusher<MetricRow, MetricWriteResult>; events: Flusher<EventRow, number> };
  readonly consumers: readonly BusConsumer<unknown>[];
  /** Creates partitions ahead and drops expired ones now (also runs every STORAGE_MAINTENANCE_INTERVAL_MS). */
  maintain(): Promise<void>;
}

export function loadStorageConfig(env: NodeJS.ProcessEnv): StorageConfig {
  return loadServiceConfig(storageSpec, env, validateStorage);
}

function consumerPart<T>(consumer: BusConsumer<T>, drainMs: number): Component {
  return { name: consumer.name, start: () => consumer.start(), stop: () => consumer.stop(drainMs) };
}

export async function createStorage(deps: ServiceDeps<'store' | 'bus'>, config: StorageConfig = loadStorageConfig(deps.env)): Promise<StorageService> {
  const log = deps.logger.child({ component: 'storage' });
  const { store, bus, registry } = deps;
  const prefix = deps.common.topicPrefix;
  const topics = {
    spans: topicName(prefix, 'spans'),
    replay: topicName(prefix, 'spansReplay'),
    metrics: topicName(prefix, 'metrics'),
    events: topicName(prefix, 'events'),
    dlq: topicName(prefix, 'dlq'),
  };
  const copy = store.driver === 'pg' && deps.common.databaseUrl ? new CopyPool(deps.common.databaseUrl, { logger: deps.logger, poolSize: config.copyPoolSize }) : undefined;
  // PostgreSQL: the query API reads through a pool whose connections carry the statement timeout, a
  // work_mem for in-memory aggregation, and no JIT (its compile time, ~30 ms and more, is paid by every
  // aggregation the planner costs high, and buys nothing at these sizes)
  const reader = store.driver === 'pg' && deps.common.databaseUrl
    ? new CopyPool(deps.common.databaseUrl, { logger: deps.logger, poolSize: 4, statementTimeoutMs: config.queryTimeoutMs, settings: { work_mem: `${config.queryWorkMemMb}MB`, jit: 'off' } })
    : undefined;
  const retention = new Retention({ db: store, defaultDays: config.defaultRetentionDays, ttlMs: config.retentionCacheTtlMs });
  const partitions = new PartitionManager(store);

  let writeFailures = 0;
  const probes = { pendingRows: () => ({ spans: flushers.spans.pending(), metrics: flushers.metrics.pending(), events: flushers.events.pending() }) };
  const m = storageMetrics(registry, probes);
  const dropped = (signal: string) => (reason: string, n: number) => m.dropped.inc({ signal, reason }, n);
  const flusherOptions = (signal: 'spans' | 'metrics' | 'events') => ({
    name: signal,
    maxRows: config.flushMaxRows,
    intervalMs: config.flushIntervalMs,
    logger: deps.logger,
    onRejected: (rows: unknown[]) => m.dropped.inc({ signal, reason: 'rejected' }, rows.length),
    onFailed: () => {
      writeFailures++;
      m.writeFailures.inc({ signal });
    },
  });

  const spanIngest = new SpanIngest({ retention, partitions, writer: new SpanWriter({ store, copy }), aheadDays: config.partitionsAheadDays, onDropped: dropped('spans') });
  const metricWriter = new MetricWriter({ store, copy, partitions, retentionDays: config.metricRetentionDays, aheadDays: config.partitionsAheadDays, onDropped: dropped('metrics') });
  const eventWriter = new EventWriter({ store, partitions, retentionDays: config.eventRetentionDays, aheadDays: config.partitionsAheadDays, onDropped: dropped('events') });
  const flushers = {
    spans: new Flusher<StoredSpan, SpanWriteResult>({
      ...flusherOptions('spans'),
      concurrency: copy ? config.flushConcurrency : 1,
      write: spanIngest.write,
      onWritten: (r, _rows, seconds) => {
        writeFailures = 0;
        m.write.observe({ signal: 'spans' }, seconds);
        m.written.inc({ signal: 'spans' }, r.inserted);
        m.duplicates.inc({ signal: 'spans' }, r.rows - r.inserted);
        m.traces.inc({ result: 'created' }, r.tracesCreated);
        m.traces.inc({ result: 'merged' }, r.tracesMerged);
      },
    }),
    metrics: new Flusher<MetricRow, MetricWriteResult>({
      ...flusherOptions('metrics'),
      write: metricWriter.write,
      onWritten: (r, _rows, seconds) => {
        writeFailures = 0;
        m.write.observe({ signal: 'metrics' }, seconds);
        m.written.inc({ signal: 'metrics' }, r.inserted);
        m.duplicates.inc({ signal: 'metrics' }, r.samples - r.inserted);
        m.series.inc(r.newSeries);
      },
    }),
    events: new Flusher<EventRow, number>({
      ...flusherOptions('events'),
      write: eventWriter.write,
      onWritten: (inserted, rows, seconds) => {
        writeFailures = 0;
        m.write.observe({ signal: 'events' }, seconds);
        m.written.inc({ signal: 'events' }, inserted);
        m.duplicates.inc({ signal: 'events' }, rows - inserted);
      },
    }),
  };
  spanIngest.flusher = flushers.spans;
  metricWriter.flusher = flushers.metrics;
  eventWriter.flusher = flushers.events;

  const consumerBase = { dlqTopic: topics.dlq, partitionsConsumedConcurrently: config.partitionsConcurrently, maxInFlightRecords: config.maxInFlightRecords };
  // PostgreSQL: records transcoded straight to COPY rows (span-copy.ts); PGlite: span objects to unnest arrays
  const spanConsumer = (groupId: string, topic: string): BusConsumer<RecordTypes['SpanBatch']> | BusConsumer<SpanCopyBatch> =>
    copy
      ? bus.consumer({ ...consumerBase, groupId, topics: [topic], codec: spanCopyDecoder(), handler: spanIngest.handleCopy })
      : bus.consumer({ ...consumerBase, groupId, topics: [topic], codec: codecFor('SpanBatch'), handler: spanIngest.handle });
  const spans = spanConsumer(config.spansGroupId, topics.spans);
  const replay = config.consumeReplay ? spanConsumer(config.replayGroupId, topics.replay) : undefined;
  const metricsConsumer = bus.consumer({ ...consumerBase, groupId: config.metricsGroupId, topics: [topics.metrics], codec: codecFor('MetricBatch'), handler: metricWriter.handle });
  // events are stored as they are; basereport events also become host series (basereport.ts)
  const eventsConsumer = bus.consumer({
    ...consumerBase,
    groupId: config.eventsGroupId,
    topics: [topics.events],
    codec: codecFor('AgentEvent'),
    handler: async (batch) => {
      const events = flushers.events.add(eventWriter.rows(batch.records));
      const derived = flushers.metrics.add(metricWriter.keep(batch.records.flatMap((r) => basereportRows(r.value))));
      return { durable: Promise.all([events, derived]).then(() => undefined) };
    },
  });

  const sinkConsumers = SINKS.filter((s) => s.enabled(config)).map((factory) => {
    const sink = factory.create(config, deps.logger);
    return bus.consumer<RecordTypes['SpanBatch' | 'MetricBatch']>({
      ...consumerBase,
      groupId: factory.groupId(config),
      topics: [topicName(prefix, factory.topic)],
      codec: codecFor(factory.record),
      handler: async (batch) => {
        try {
          const r = await sink.send(batch.records.map((rec) => rec.value));
          m.sinkSent.inc({ sink: factory.name }, r.sent);
          if (r.dropped) m.sinkDropped.inc({ sink: factory.name }, r.dropped);
        } catch (err) {
          m.sinkFailures.inc({ sink: factory.name });
          throw err;
        }
      },
    });
  });

  const consumers = [spans, ...(replay ? [replay] : []), metricsConsumer, eventsConsumer, ...sinkConsumers] as BusConsumer<unknown>[];
  // Authentication (an application's token for its own routes, an admin token for the rest: the
  // cross-application trace lookup, the application list, agent metrics and events) and readiness
  // probes of the store and the broker (SECURITY.md).
  const http = createHttpServer({
    ...edgeOptions({ ...deps, store }),
    host: config.httpHost,
    port: config.httpPort,
    registry,
    logger: deps.logger,
    routes: storageRoutes({ store, reader, timeoutMs: config.queryTimeoutMs, retention, maxPageSize: config.maxPageSize, maxTraceSpans: config.maxTraceSpans, maxMetricPoints: config.maxMetricPoints }).map((r) => ({
      ...r,
      handle: async (req) => {
        const started = performance.now();
        try {
          return await r.handle(req);
        } finally {
          m.queries.observe({ endpoint: req.path.replace(/\/apps\/[^/]+\/[^/]+/, '/apps/:biz/:app').replace(/\/traces\/[^/]+$/, '/traces/:id') }, (performance.now() - started) / 1000);
        }
      },
    })),
    health: () => ({
      ok: writeFailures < 3,
      checks: {
        store: writeFailures < 3 ? 'ok' : `${writeFailures} writes failed in a row`,
        pending_rows: probes.pendingRows(),
        consumers: Object.fromEntries(consumers.map((c) => [c.name, c.joined() ? 'joined' : 'joining'])),
      },
    }),
  });

  const maintain = async (): Promise<void> => {
    await retention.refresh(true);
    const r = await partitions.maintain(Date.now(), retention.classes(), config.partitionsAheadDays, config);
    if (r.created.length) m.partitions.inc({ action: 'created' }, r.created.length);
    if (r.dropped.length) {
      m.partitions.inc({ action: 'dropped' }, r.dropped.length);
      log.info('partitions dropped past retention', { partitions: r.dropped });
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const maintenance: Component = {
    name: 'storage-maintenance',
    start: async () => {
      await maintain();
      timer ??= setInterval(() => {
        maintain().catch((err: unknown) => log.warn('partition maintenance failed; retried at the next interval', { err }));
      }, config.maintenanceIntervalMs);
      timer.unref();
    },
    stop: async () => {
      clearInterval(timer);
      timer = undefined;
    },
  };
  // PostgreSQL: the rollup pieces writes append are folded into the per-minute rollups (rollup.ts)
  let foldTimer: NodeJS.Timeout | undefined;
  let folding: Promise<void> | undefined;
  const fold = (): Promise<void> =>
    (folding ??= (async () => {
      try {
        const existing = (await listPartitions(store)).filter((p) => p.kind === 'minute');
        const r = await foldRollups(store, existing.map((p) => ({ retentionDays: p.retentionDays as number, day: p.day })));
        if (r.dropped) log.info('rollup pieces of days past retention dropped', { pieces: r.dropped });
      } catch (err) {
        log.warn('folding rollup pieces failed; retried at the next interval', { err });
      } finally {
        folding = undefined;
      }
    })());
  const rollupFold: Component = {
    name: 'storage-rollup-fold',
    start: async () => {
      foldTimer ??= setInterval(() => void fold(), config.rollupFoldIntervalMs);
      foldTimer.unref();
    },
    stop: async () => {
      clearInterval(foldTimer);
      foldTimer = undefined;
      await folding;
    },
  };

  const topicCheck: Component = {
    name: 'storage-topics',
    start: async () => {
      const admin = bus.admin();
      await admin.start();
      try {
        await admin.checkTopics([topics.spans, topics.metrics, topics.events, topics.dlq, ...(replay ? [topics.replay] : [])]);
      } finally {
        await admin.stop();
      }
    },
    stop: async () => {},
  };

  // Started in this order, stopped in reverse: consumers (intake) first, then the writes they left, the API, the pool.
  const lifecycle = new Lifecycle({ logger: deps.logger });
  lifecycle.add(topicCheck);
  if (copy) lifecycle.add(copy);
  if (reader) lifecycle.add(reader);
  lifecycle.add(maintenance);
  if (copy) lifecycle.add(rollupFold);
  lifecycle.add({ name: 'storage-http', start: () => http.start(), stop: () => http.stop() });
  lifecycle.add(flushers.events);
  lifecycle.add(flushers.metrics);
  lifecycle.add(flushers.spans);
  for (const c of consumers) lifecycle.add(consumerPart(c, config.stopDrainMs));

  return {
    name: 'storage',
    config,
    http,
    metrics: m,
    partitions,
    flushers,
    consumers,
    maintain,
    start: async () => {
      await lifecycle.start();
      log.info('started', { port: http.port(), driver: store.driver, copy: copy !== undefined, sinks: SINKS.filter((s) => s.enabled(config)).map((s) => s.name) });
    },
    stop: () => lifecycle.stop(),
  };
}

export const storageService = defineService({
  name: 'storage',
  needs: ['store', 'bus'],
  spec: storageSpec,
  config: loadStorageConfig,
  create: createStorage,
});

export default storageService;
