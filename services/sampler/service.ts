/**
 * The sampler's composition root (README: What it does, How it works): a consumer group on `spans`, the
 * tail-sampling state machine per partition and application with the policies of the running
 * tail-sampling flows (bkdata_flow, refreshed), the kept spans produced to `spans.sampled` before the
 * input's offsets commit, /metrics and /healthz. `create(deps, config)` builds the parts and returns them
 * as one component started and stopped by a {@link Lifecycle} (intake stops first).
 */
import type { BusConsumer } from '../common/bus/index.ts';
import { createHttpServer, type HttpServer } from '../common/http.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import { defineService, edgeOptions, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { topicName } from '../common/topics.ts';
import { samplerSpec, validateSampler, type SamplerConfig } from './config.ts';
import { samplerMetrics } from './metrics.ts';
import { PolicySource } from './policies.ts';
import { StateBudget } from './sampler.ts';
import { SampledBatchWriter, spanBatchDecoder, type SpanBatchView } from './span-batch.ts';
import { SamplerStage, type StageCounts } from './stage.ts';

export interface SamplerService extends Component {
  readonly config: SamplerConfig;
  readonly http: HttpServer;
  readonly stage: SamplerStage;
  readonly policies: PolicySource;
  readonly budget: StateBudget;
  readonly consumer: BusConsumer<SpanBatchView>;
}

/** The shared settings and the sampler's own from `env` (and BKSTREAM_CONFIG), every problem of both at once. */
export function loadSamplerConfig(env: NodeJS.ProcessEnv): SamplerConfig {
  return loadServiceConfig(samplerSpec, env, validateSampler);
}

/** Builds the sampler on the given store and bus; nothing starts until `start()`. */
export async function createSampler(deps: ServiceDeps<'store' | 'bus'>, config: SamplerConfig = loadSamplerConfig(deps.env)): Promise<SamplerService> {
  const log = deps.logger.child({ component: 'sampler' });
  const { registry, store, bus } = deps;
  const prefix = deps.common.topicPrefix;
  const topics = { spans: topicName(prefix, 'spans'), sampled: topicName(prefix, 'spansSampled'), dlq: topicName(prefix, 'dlq') };

  const budget = new StateBudget({ maxTraces: config.maxTraces, maxBufferedBytes: config.maxBufferedMb * 2 ** 20 });
  let refreshFailures = 0;
  const policies = new PolicySource({ db: store, logger: deps.logger, refreshMs: config.policyRefreshMs, onRefreshFailed: () => void refreshFailures++ });
  const m = samplerMetrics(registry, {
    traces: () => budget.traces,
    bufferedSpans: () => budget.bufferedSpans,
    bufferedBytes: () => budget.bufferedBytes,
    policies: () => policies.counts().configured,
    invalidPolicies: () => policies.counts().invalid,
  });
  const producer = bus.producer();
  let outputPartitions = 0;
  const stage = new SamplerStage({
    policies,
    budget,
    writer: new SampledBatchWriter({ maxRecordBytes: config.maxRecordBytes }),
    get outputPartitions() {
      return outputPartitions;
    },
    send: (messages) => producer.send(topics.sampled, messages),
  });
  const consumer = bus.consumer<SpanBatchView>({
    groupId: config.groupId,
    topics: [topics.spans],
    codec: spanBatchDecoder(),
    handler: stage.handle,
    dlqTopic: topics.dlq,
    partitionsConsumedConcurrently: config.partitionsConcurrently,
    maxInFlightRecords: config.maxInFlightRecords,
    onRevoke: (partitions) => stage.revoke(partitions),
  });

  // Moves the stage's and the budget's plain counters into the registry.
  const synced: StageCounts = structuredClone(stage.counts);
  let syncedEvictedTraces = 0;
  let syncedEvictedSpans = 0;
  let syncedRefreshFailures = 0;
  const syncMetrics = (): void => {
    const c = stage.counts;
    for (const [outcome, n] of Object.entries(c.outcomes) as [keyof StageCounts['outcomes'], number][]) {
      if (n > synced.outcomes[outcome]) m.spans.inc({ outcome }, n - synced.outcomes[outcome]);
    }
    for (const [reason, n] of Object.entries(c.skipped) as [keyof StageCounts['skipped'], number][]) {
      if (n > synced.skipped[reason]) m.skipped.inc({ reason }, n - synced.skipped[reason]);
    }
    if (c.spansOut > synced.spansOut) m.spansOut.inc(c.spansOut - synced.spansOut);
    if (c.recordsOut > synced.recordsOut) m.recordsOut.inc(c.recordsOut - synced.recordsOut);
    if (c.expired > synced.expired) m.dropped.inc({ reason: 'expired' }, c.expired - synced.expired);
    if (c.droppedWithState > synced.droppedWithState) m.dropped.inc({ reason: 'state_dropped' }, c.droppedWithState - synced.droppedWithState);
    if (budget.evictedSpans > syncedEvictedSpans) m.dropped.inc({ reason: 'evicted' }, budget.evictedSpans - syncedEvictedSpans);
    if (budget.evictedTraces > syncedEvictedTraces) m.evictedTraces.inc(budget.evictedTraces - syncedEvictedTraces);
    if (refreshFailures > syncedRefreshFailures) m.refreshFailures.inc(refreshFailures - syncedRefreshFailures);
    Object.assign(synced, structuredClone(c));
    syncedEvictedSpans = budget.evictedSpans;
    syncedEvictedTraces = budget.evictedTraces;
    syncedRefreshFailures = refreshFailures;
  };

  // Readiness probes of the store and the broker (SECURITY.md, Health); no routes that need credentials.
  const { probes, probeIntervalMs, probeTimeoutMs } = edgeOptions(deps);
  const http = createHttpServer({
    probes,
    probeIntervalMs,
    probeTimeoutMs,
    host: config.httpHost,
    port: config.httpPort,
    registry,
    logger: deps.logger,
    health: () => ({
      ok: true,
      checks: {
        consumer: consumer.joined() ? 'joined' : 'joining',
        policies: policies.counts(),
        traces: budget.traces,
        buffered_spans: budget.bufferedSpans,
      },
    }),
  });

  const topicCheck: Component = {
    name: 'sampler-topics',
    start: async () => {
      const admin = bus.admin();
      await admin.start();
      try {
        await admin.checkTopics([topics.spans, topics.sampled, topics.dlq]);
        outputPartitions = await admin.partitionCount(topics.sampled);
      } finally {
        await admin.stop();
      }
    },
    stop: async () => {},
  };
  let ticker: NodeJS.Timeout | undefined;
  const timers: Component = {
    name: 'sampler-timers',
    start: async () => {
      ticker ??= setInterval(() => {
        stage.expire();
        syncMetrics();
      }, config.expireIntervalMs);
      ticker.unref();
    },
    stop: async () => {
      clearInterval(ticker);
      ticker = undefined;
      syncMetrics();
    },
  };

  // Started in this order, stopped in reverse: the consumer first (it waits for in-flight output), then
  // the producer that carries that output.
  const lifecycle = new Lifecycle({ logger: deps.logger });
  lifecycle.add(topicCheck);
  lifecycle.add({ name: 'sampler-http', start: () => http.start(), stop: () => http.stop() });
  lifecycle.add(policies);
  lifecycle.add(producer);
  lifecycle.add(timers);
  lifecycle.add({ name: consumer.name, start: () => consumer.start(), stop: () => consumer.stop(config.stopDrainMs) });

  return {
    name: 'sampler',
    config,
    http,
    stage,
    policies,
    budget,
    consumer,
    start: async () => {
      await lifecycle.start();
      log.info('started', { input: topics.spans, output: topics.sampled, outputPartitions, policies: policies.counts(), port: http.port() });
    },
    stop: () => lifecycle.stop(),
  };
}

export const samplerService = defineService({
  name: 'sampler',
  needs: ['store', 'bus'],
  spec: samplerSpec,
  config: loadSamplerConfig,
  create: createSampler,
});

export default samplerService;
