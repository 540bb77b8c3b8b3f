/**
 * The orchestrator service (README): drives BKData provisioning flows as durable state machines behind
 * one circuit breaker per BKData API family. This file is its only composition root:
 *
 * ports (flow store, breakers, guarded BKData client, producer, command consumer, secret box) → parts
 * (engine, status publisher, worker loop, command intake, operations, HTTP and gRPC APIs) → one Lifecycle.
 *
 * Start order: breakers and housekeeping, secrets at rest (plain passwords of stored flows sealed), the
 * Kafka producer (in the background: the broker need not be up), status publisher, worker loop, HTTP,
 * gRPC, the command consumer (in the background: the APIs answer while its group joins). Stop runs in
 * reverse, so intake (consumer, APIs) stops first and running flows finish their current attempt before
 * the leases are given back and the last statuses are published. Every API call needs an admin token
 * (SECURITY.md); readiness is the database's and the broker's last probes.
 */
import { codecFor } from '../common/avro/index.ts';
import { startInBackground } from '../common/background.ts';
import { errorMessage, MissingTopicsError, UnavailableError } from '../common/errors.ts';
import { createHttpServer } from '../common/http.ts';
import { Lifecycle } from '../common/lifecycle.ts';
import { maskingLogger, secretBoxOf } from '../common/secrets.ts';
import { defineService, edgeOptions, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { guardStore } from '../common/store-guard.ts';
import { topicName } from '../common/topics.ts';
import { storeApplications, type ApplicationRegistry } from './applications.ts';
import { createBreakers, GuardedBkdataApi, type Breakers } from './bkdata-api.ts';
import { BkdataClient, FAMILIES } from './bkdata-client.ts';
import { flowSettings, instanceIdOf, orchestratorSpec, validateOrchestrator, type OrchestratorConfig } from './config.ts';
import { FlowEngine } from './engine.ts';
import { FlowStore } from './flow-store.ts';
import { GrpcApi } from './grpc-api.ts';
import { gseRoutes } from './gse/http-api.ts';
import { GseRoutesPublisher } from './gse/publisher.ts';
import { GseRegistry } from './gse/registry.ts';
import { GseStore } from './gse/store.ts';
import { httpRoutes } from './http-api.ts';
import { CommandIntake } from './intake.ts';
import { orchestratorMetrics } from './metrics.ts';
import { FlowOperations } from './operations.ts';
import { StatusPublisher } from './publisher.ts';
import { FlowRunner } from './runner.ts';

/** How often step-log rows and seen command ids past their retention are deleted, ms. */
const HOUSEKEEPING_INTERVAL_MS = 3_600_000;

/** What callers (tests, the benchmark) reach of a running orchestrator besides start/stop. */
export interface OrchestratorParts {
  /** The lease owner name of this instance. */
  readonly owner: string;
  readonly flows: FlowStore;
  readonly breakers: Breakers;
  readonly runner: FlowRunner;
  readonly operations: FlowOperations;
  /** The GSE routing registry (gse/): the API's calls, the default stream_to. */
  readonly gse: GseRegistry;
  /** The HTTP API's port (the bound one with ORCH_HTTP_PORT=0). */
  httpPort(): number;
  /** The gRPC API's port (the bound one with ORCH_GRPC_PORT=0). */
  grpcPort(): number;
}

export type Orchestrator = Lifecycle & OrchestratorParts;

export type OrchestratorDeps = Pick<ServiceDeps<'store' | 'bus'>, 'logger' | 'registry' | 'store' | 'bus'> & {
  /** Where applications are registered (flows of others are refused; applications.ts); default the store's apm_application. */
  applications?: ApplicationRegistry;
};

/** Builds the orchestrator on `deps`; `start()` brings it up. */
export function createOrchestrator(deps: OrchestratorDeps, config: OrchestratorConfig): Orchestrator {
  const { registry, bus } = deps;
  // The BKData app secret never reaches a log line, whatever logs it (an error echoing a header, a debug line).
  const logger = maskingLogger(deps.logger, [config.bkdataAppSecret]);
  const store = guardStore(deps.store);
  const log = logger.child({ component: 'orchestrator' });
  const secrets = secretBoxOf(config, (path) =>
    log.warn('created a secret key for flow-config passwords; instances sharing this database need the same one (BKSTREAM_SECRET_KEY)', { path }));
  const metrics = orchestratorMetrics(registry);
  const owner = instanceIdOf(config);
  const statusTopic = topicName(config.topicPrefix, 'flowStatus');
  const commandsTopic = topicName(config.topicPrefix, 'flowCommands');
  const dlqTopic = topicName(config.topicPrefix, 'dlq');
  const gseTopic = topicName(config.topicPrefix, 'gseRoutes');

  // ports
  const flows = new FlowStore(store);
  const breakers = createBreakers(
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
  const breakerState = (family: keyof Breakers) => breakers[family].state();
  const client = new BkdataClient({
    baseUrl: config.bkdataApiUrl,
    appCode: config.bkdataAppCode,
    appSecret: config.bkdataAppSecret,
    username: config.operator,
    timeoutMs: config.bkdataTimeoutMs,
    tenantId: config.bkdataTenantId,
    language: config.bkdataLanguage,
  });
  const api = new GuardedBkdataApi(client, breakers, metrics);
  const producer = bus.producer();

  // parts
  const engine = new FlowEngine({
    flows,
    api,
    breakerState,
    settings: flowSettings(config),
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
    owner,
    secrets,
    logger,
    metrics,
  });
  const publisher = new StatusPublisher({ flows, producer, codec: codecFor('FlowStatus'), topic: statusTopic, owner, logger, metrics });
  const runner = new FlowRunner({
    flows,
    engine,
    owner,
    maxConcurrentFlows: config.maxConcurrentFlows,
    leaseMs: config.leaseMs,
    pollIntervalMs: config.pollIntervalMs,
    logger,
    metrics,
    // Every attempt may have written flow.status records to the outbox.
    onFlowReleased: () => publisher.wake(),
  });
  // Commands and retries write to the outbox too: wake the publisher with the runner.
  const wakeAll = (): void => {
    runner.wake();
    publisher.wake();
  };
  const intake = new CommandIntake(flows, wakeAll, metrics, logger, secrets, deps.applications ?? storeApplications(store));
  const operations = new FlowOperations(flows, intake, breakerState, wakeAll);
  // GSE data routing (gse/, README "GSE data routing"): stored here, published to <prefix>.gse.routes.
  const gseStore = new GseStore(store);
  const gsePublisher = new GseRoutesPublisher({ store: gseStore, producer, bus, topic: gseTopic, logger, metrics });
  const gse = new GseRegistry({ store: gseStore, box: secrets, publisher: gsePublisher, logger });

  // A breaker letting a probe through wakes one waiting flow; a closed breaker wakes them all.
  for (const family of FAMILIES) {
    breakers[family].onStateChange((state) => {
      if (state === 'open') return;
      flows.wakeWaiting(family, state === 'closed').then(
        (n) => {
          if (n > 0) runner.wake();
        },
        (err: unknown) => log.warn('could not wake waiting flows', { family, err: errorMessage(err) }),
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
  const edge = edgeOptions({ logger, registry, common: config, store, bus });
  const kafkaOut = new Lifecycle({ logger, name: 'kafka-producer' });
  kafkaOut.add({
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
  kafkaOut.add(producer);
  const producerPart = startInBackground(kafkaOut, { logger });
  // The GSE publisher has a background start of its own: flows never wait for the routes topic.
  const gseOut = new Lifecycle({ logger, name: 'gse-routes' });
  gseOut.add({
    name: 'gse-routes-ready',
    start: async () => {
      if (!producerPart.started()) throw new UnavailableError('the Kafka producer is not connected yet');
      const admin = bus.admin();
      await admin.start();
      try {
        await admin.checkTopics([gseTopic]);
      } finally {
        await admin.stop();
      }
    },
    stop: async () => undefined,
  });
  gseOut.add(gsePublisher);
  const gsePart = startInBackground(gseOut, { logger });
  const consumerPart = startInBackground(consumer, { logger });
  const http = createHttpServer({
    host: config.host,
    port: config.httpPort,
    registry,
    logger,
    ...edge,
    routes: [...httpRoutes(operations), ...gseRoutes(gse, metrics, logger)],
    // Ready once the flow topics are there and the producer is connected; the consumer's group may still
    // be joining (commands over HTTP and gRPC are taken meanwhile).
    health: () => {
      const failure = producerPart.lastError();
      return {
        ok: producerPart.started(),
        checks: {
          owner,
          active_flows: runner.activeCount(),
          breakers: operations.breakers(),
          kafka: producerPart.started() ? 'connected' : failure instanceof MissingTopicsError ? failure.message : 'connecting',
          consumer: consumer.joined() ? 'joined' : 'joining',
          gse_routes: gsePart.started() ? 'publishing' : gsePart.lastError() instanceof MissingTopicsError ? errorMessage(gsePart.lastError()) : 'starting',
        },
      };
    },
  });
  const grpc = new GrpcApi(operations, config.host, config.grpcPort, logger, edge.auth);

  // the lifecycle
  const lifecycle = new Lifecycle({ logger });
  let housekeeping: NodeJS.Timeout | undefined;
  lifecycle.add({
    name: 'breakers',
    start: async () => {
      housekeeping = setInterval(() => {
        flows.prune(config.historyRetentionHours * 3_600_000).catch((err: unknown) => log.warn('pruning flow history failed', { err: errorMessage(err) }));
      }, HOUSEKEEPING_INTERVAL_MS);
      housekeeping.unref();
    },
    stop: async () => {
      clearInterval(housekeeping);
      for (const b of Object.values(breakers)) b.shutdown();
    },
  });
  lifecycle.add({
    name: 'secrets-at-rest',
    start: async () => {
      const { sealed, unreadable } = await flows.resealSecrets(secrets);
      if (sealed > 0) log.info('sealed the secrets of stored flows', { flows: sealed, key: secrets.keyId });
      if (unreadable > 0) log.error('stored flows hold secrets this instance cannot open: they fail until the key that sealed them is configured (BKSTREAM_SECRET_KEY_PREVIOUS)', { flows: unreadable, key: secrets.keyId });
    },
    stop: async () => undefined,
  });
  lifecycle.add({
    name: 'gse-registry',
    start: async () => {
      await gse.resealPasswords();
      await gse.ensureDefault(bus.brokers, config.operator);
    },
    stop: async () => undefined,
  });
  lifecycle.add(producerPart);
  lifecycle.add(gsePart);
  lifecycle.add(publisher);
  lifecycle.add(runner);
  lifecycle.add({ name: 'orchestrator-http', start: () => http.start(), stop: () => http.stop() });
  lifecycle.add(grpc);
  lifecycle.add(consumerPart);
  lifecycle.add({
    name: 'started',
    start: async () => log.info('orchestrator started', { owner, http_port: http.port(), grpc_port: grpc.port() }),
    stop: async () => undefined,
  });

  return Object.assign(lifecycle, { owner, flows, breakers, runner, operations, gse, httpPort: () => http.port(), grpcPort: () => grpc.port() });
}

export const orchestratorService = defineService({
  name: 'orchestrator',
  needs: ['store', 'bus'],
  spec: orchestratorSpec,
  config: (env): OrchestratorConfig => loadServiceConfig(orchestratorSpec, env, validateOrchestrator),
  async create(deps, config) {
    return createOrchestrator(deps, config);
  },
});

export default orchestratorService;
