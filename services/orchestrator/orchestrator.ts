/**
 * The orchestrator assembled: command intake (Kafka flow.commands, HTTP, gRPC) → store → worker loop
 * (engine + steps over the breaker-guarded BKData client) → outbox → flow.status.
 *
 * Start order: topic check, status publisher, worker loop, command consumer, HTTP, gRPC. Stop runs in
 * reverse, so intake stops first and running flows finish their current attempt before the leases are
 * given back and the last statuses are published.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus } from '../common/bus/index.ts';
import { codecFor } from '../common/avro/index.ts';
import { ConfigError, errorMessage } from '../common/errors.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { type Registry } from '../common/metrics.ts';
import { createHttpServer, type HttpServer } from '../common/http.ts';
import type { Store } from '../common/store/index.ts';
import { topicName } from '../common/topics.ts';
import { createBreakers, GuardedBkdataApi, type Breakers } from './bkdata-api.ts';
import { BkdataClient, FAMILIES } from './bkdata-client.ts';
import { instanceIdOf, type OrchestratorConfig } from './config.ts';
import { FlowEngine } from './engine.ts';
import type { FlowSettings } from './flow-config.ts';
import { FlowStore } from './flow-store.ts';
import { GrpcApi } from './grpc-api.ts';
import { httpRoutes } from './http-api.ts';
import { CommandIntake } from './intake.ts';
import { FlowOperations } from './operations.ts';
import { StatusPublisher } from './publisher.ts';
import { FlowRunner } from './runner.ts';

export interface OrchestratorDeps {
  config: OrchestratorConfig;
  store: Store;
  bus: Bus;
  logger: Logger;
  registry: Registry;
  topicPrefix: string;
}

export const DEFAULT_FLINK_CODE_FILE = join(import.meta.dirname, 'tail-sampling-flink.java');

function readFlinkCode(config: OrchestratorConfig): string {
  const file = config.flinkCodeFile ?? DEFAULT_FLINK_CODE_FILE;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ key: 'BKDATA_FLINK_CODE_FILE', message: `cannot read ${file}: ${errorMessage(err)}` }]);
  }
}

export function flowSettings(config: OrchestratorConfig): FlowSettings {
  return {
    operator: config.operator,
    maintainers: config.maintainers,
    defaultBkBizId: config.defaultBkBizId,
    tailSamplingProjectId: config.tailSamplingProjectId,
    virtualMetricProjectId: config.virtualMetricProjectId,
    requiredTempConvertNode: config.requiredTempConvertNode,
    dataExpiresDays: config.dataExpiresDays,
    virtualMetricStorage: config.virtualMetricStorage,
    virtualMetricStorageExpireDays: config.virtualMetricStorageExpireDays,
    mysqlStorageNodeType: config.mysqlStorageNodeType,
    storageRegistryAreaCode: config.storageRegistryAreaCode,
    flowClusterGroup: config.flowClusterGroup,
    flinkCode: readFlinkCode(config),
  };
}

export class Orchestrator implements Component {
  readonly name = 'orchestrator';
  readonly owner: string;
  readonly flows: FlowStore;
  readonly breakers: Breakers;
  readonly runner: FlowRunner;
  readonly operations: FlowOperations;
  readonly #http: HttpServer;
  readonly #grpc: GrpcApi;
  readonly #parts: Lifecycle;
  readonly #log: Logger;

  constructor(deps: OrchestratorDeps) {
    const { config, logger, registry, bus } = deps;
    this.#log = logger.child({ component: 'orchestrator' });
    this.owner = instanceIdOf(config);
    const settings = flowSettings(config);
    this.flows = new FlowStore(deps.store);
    this.breakers = createBreakers(
      {
        timeoutMs: config.bkdataTimeoutMs,
        resetTimeoutMs: config.breakerResetTimeoutMs,
        errorThresholdPercentage: config.breakerErrorThresholdPct,
        volumeThreshold: config.breakerVolumeThreshold,
        rollingWindowMs: config.breakerWindowMs,
      },
      registry,
      logger,
    );
    const client = new BkdataClient({
      baseUrl: config.bkdataApiUrl,
      appCode: config.bkdataAppCode,
      appSecret: config.bkdataAppSecret,
      username: config.operator,
      timeoutMs: config.bkdataTimeoutMs,
    });
    const api = new GuardedBkdataApi(client, this.breakers, registry);
    const engine = new FlowEngine({
      flows: this.flows,
      api,
      breakerState: (f) => this.breakers[f].state(),
      settings,
      limits: {
        fetchStatusThreshold: config.fetchStatusThreshold,
        cleanPollIntervalMs: config.cleanPollIntervalMs,
        virtualMetricCleanRetries: config.virtualMetricCleanRetries,
        stopPollIntervalMs: config.stopPollIntervalMs,
        stopMaxPolls: config.stopMaxPolls,
      },
      retry: { stepRetries: config.stepRetries, initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
      waitRecheckMs: config.waitRecheckMs,
      processInfoMaxLines: config.processInfoMaxLines,
      owner: this.owner,
      logger,
      registry,
    });
    const statusTopic = topicName(deps.topicPrefix, 'flowStatus');
    const commandsTopic = topicName(deps.topicPrefix, 'flowCommands');
    const dlqTopic = topicName(deps.topicPrefix, 'dlq');
    const producer = bus.producer();
    const publisher = new StatusPublisher({ flows: this.flows, producer, codec: codecFor('FlowStatus'), topic: statusTopic, owner: this.owner, logger, registry });
    this.runner = new FlowRunner({
      flows: this.flows,
      engine,
      owner: this.owner,
      maxConcurrentFlows: config.maxConcurrentFlows,
      leaseMs: config.leaseMs,
      pollIntervalMs: config.pollIntervalMs,
      logger,
      registry,
      // Every attempt may have written flow.status records to the outbox.
      onFlowReleased: () => publisher.wake(),
    });
    // Commands and retries write to the outbox too: wake the publisher with the runner.
    const wakeAll = (): void => {
      this.runner.wake();
      publisher.wake();
    };
    const intake = new CommandIntake(this.flows, wakeAll, registry, logger);
    this.operations = new FlowOperations(this.flows, intake, (f) => this.breakers[f].state(), wakeAll);

    // A breaker letting a probe through wakes one waiting flow; a closed breaker wakes them all.
    for (const family of FAMILIES) {
      this.breakers[family].onStateChange((state) => {
        if (state === 'open') return;
        this.flows.wakeWaiting(family, state === 'closed').then(
          (n) => {
            if (n > 0) this.runner.wake();
          },
          (err: unknown) => this.#log.warn('could not wake waiting flows', { family, err: errorMessage(err) }),
        );
      });
    }

    const consumer = bus.consumer({
      groupId: config.consumerGroup,
      topics: [commandsTopic],
      codec: codecFor('FlowCommand'),
      dlqTopic,
      sessionTimeoutMs: config.consumerSessionTimeoutMs,
      heartbeatIntervalMs: Math.min(3_000, Math.floor(config.consumerSessionTimeoutMs / 3)),
      handler: async (batch) => {
        for (const record of batch.records) await intake.submit(record.value, 'kafka');
      },
    });
    this.#http = createHttpServer({
      host: config.host,
      port: config.httpPort,
      registry,
      logger,
      routes: httpRoutes(this.operations),
      health: () => ({ ok: true, checks: { owner: this.owner, active_flows: this.runner.activeCount(), breakers: this.operations.breakers() } }),
    });
    this.#grpc = new GrpcApi(this.operations, config.host, config.grpcPort, logger);

    const housekeeping = setInterval(() => {
      this.flows.prune(config.historyRetentionHours * 3_600_000).catch((err: unknown) => this.#log.warn('pruning flow history failed', { err: errorMessage(err) }));
    }, 3_600_000);
    housekeeping.unref();

    this.#parts = new Lifecycle({ logger });
    this.#parts.add({
      name: 'topic-check',
      start: async () => {
        const admin = bus.admin();
        await admin.start();
        try {
          await admin.checkTopics([commandsTopic, statusTopic, dlqTopic]);
        } finally {
          await admin.stop();
        }
      },
      stop: async () => undefined,
    });
    this.#parts.onStop('breakers', () => {
      clearInterval(housekeeping);
      for (const b of Object.values(this.breakers)) b.shutdown();
    });
    this.#parts.add(producer);
    this.#parts.add(publisher);
    this.#parts.add(this.runner);
    this.#parts.add(consumer);
    const http = this.#http;
    this.#parts.add({ name: 'orchestrator-http', start: () => http.start(), stop: () => http.stop() });
    this.#parts.add(this.#grpc);
  }

  httpPort(): number {
    return this.#http.port();
  }

  grpcPort(): number {
    return this.#grpc.port();
  }

  async start(): Promise<void> {
    await this.#parts.start();
    this.#log.info('orchestrator started', { owner: this.owner, http_port: this.httpPort(), grpc_port: this.grpcPort() });
  }

  async stop(): Promise<void> {
    await this.#parts.stop();
  }
}
