/**
 * The host agent service (bkmonitorbeat): the composition root. Ports: the state directory (key/value
 * state, on-disk spool), Kafka through the bus, the admin HTTP server. Parts, in start order: state →
 * spool → sender (spool → Kafka) → publisher (channel → spool) → agent (config, schedulers, heartbeat) →
 * admin server → SIGHUP reload. Stop runs in reverse: intake (tasks) first, then the channel is drained
 * into the spool, then the spool into Kafka until the shutdown deadline.
 *
 * The agent needs no database. It also does not wait for Kafka at start (`needs` is empty and it opens
 * its own bus): it must start, collect and spool while the broker is away, and deliver when it returns.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Bus } from '../common/bus/index.ts';
import { brokersOrLocal } from '../common/config.ts';
import { ConfigError, type ConfigProblem } from '../common/errors.ts';
import { BackgroundRoutes, type WatchedSource } from '../common/gse/background-routes.ts';
import { ReceiverProducers } from '../common/gse/producers.ts';
import { RoutedPublisher } from '../common/gse/routed-publisher.ts';
import type { RouteSource } from '../common/gse/routes.ts';
import { routeSecretBox } from '../common/gse/secret.ts';
import { RouteWatcher, type FollowerSource } from '../common/gse/watcher.ts';
import { createHttpServer, json } from '../common/http.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import { defineService, edgeOptions, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { topicName } from '../common/topics.ts';
import { Agent } from './agent.ts';
import { formatCheckReport, type CheckReport } from './check-mode.ts';
import { BoundedChannel } from './channel.ts';
import { systemClock, type Clock } from './clock.ts';
import { agentSpec, DEFAULT_AGENT_CONFIG, validateAgent, type AgentConfig } from './config.ts';
import { loadAgentConfig } from './config-engine.ts';
import { agentMetrics } from './metrics.ts';
import { probeResources } from './probe/budget.ts';
import { Publisher } from './publisher.ts';
import { RoutedSink } from './routing.ts';
import { KafkaSender, type RecordSink } from './sender.ts';
import { DiskSpool } from './spool/spool.ts';
import { FileStateStore } from './state-store.ts';
import type { TaskOutput, TaskType } from './task.ts';
import { TASK_TYPES } from './tasks/index.ts';

/** The agent's version (the project's), reported by the heartbeat and selfstats. */
export const AGENT_VERSION = (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;

/**
 * Loads the service's settings and checks the bkmonitorbeat main file they name: one ConfigError lists
 * every problem of both.
 */
export function loadAgentServiceConfig(env: NodeJS.ProcessEnv, types: readonly TaskType[] = TASK_TYPES): AgentConfig {
  const problems: ConfigProblem[] = [];
  let config: AgentConfig | undefined;
  try {
    config = loadServiceConfig(agentSpec, env, validateAgent);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  const file = config?.configFile ?? (env.AGENT_CONFIG || DEFAULT_AGENT_CONFIG);
  try {
    loadAgentConfig(file, { types });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0 || !config) throw new ConfigError(problems);
  return config;
}

/**
 * Longest wait of an empty fetch of the routes topic (5 s). A route change still arrives at once (a fetch
 * is answered as soon as a record is there); an idle agent fetches every 5 s instead of four times a
 * second (the follower's default), which matters on thousands of hosts and for the agent's CPU budget.
 */
export const ROUTES_MAX_WAIT_MS = 5_000;

/** The bus as the route watcher sees it, with the agent's long polls. */
function routesBus(bus: Bus): FollowerSource {
  return { follower: (o) => bus.follower({ ...o, maxWaitTimeMs: ROUTES_MAX_WAIT_MS }) };
}

/** What tests and the benchmark may replace. */
export interface AgentOverrides {
  clock?: Clock;
  /** Instead of the Kafka producer (and the GSE routing). */
  sink?: RecordSink;
  /** Instead of the routes topic (with AGENT_GSE_ROUTING on): a fixed or test-driven source. */
  routeSource?: RouteSource;
  types?: readonly TaskType[];
  listenRestartDelayMs?: number;
  /** Sender retry backoff (tests shorten it). */
  retryMaxMs?: number;
  /**
   * `mode: check`: called once every task ran once (default {@link printCheckReport}). The process of its
   * own (`agentProcess`, main.ts) then also ends, as the reference's beat stops.
   */
  onCheckDone?: (report: CheckReport) => void;
}

/** Prints a check-mode report on stdout (the lines `bkstream agent check` prints). */
export function printCheckReport(report: CheckReport): void {
  process.stdout.write(`${formatCheckReport(report).lines.join('\n')}\n`);
}

/** The running service and its parts (for tests). */
export interface AgentService extends Component {
  readonly agent: Agent;
  readonly publisher: Publisher;
  readonly sender: KafkaSender;
  readonly spool: DiskSpool;
  /** The routes being read (undefined with AGENT_GSE_ROUTING off or a sink override). */
  readonly routes: BackgroundRoutes | undefined;
  readonly runId: string;
  readonly stateDir: string;
  /** The admin server's port (after start). */
  adminPort(): number;
}

export async function createAgentService(deps: ServiceDeps<never>, config: AgentConfig, overrides: AgentOverrides = {}): Promise<AgentService> {
  const logger = deps.logger.child({ service: 'agent' });
  const clock = overrides.clock ?? systemClock;
  const metrics = agentMetrics(deps.registry);
  const stateDir = resolve(config.stateDir ?? join(config.dataDir, 'agent'));
  const runId = randomUUID();
  const types = overrides.types ?? TASK_TYPES;
  const lifecycle = new Lifecycle({ logger, stopTimeoutMs: config.shutdownTimeoutMs + 5_000 });

  const state = lifecycle.add(new FileStateStore({ dir: stateDir, logger, clock }));
  const spool = new DiskSpool({ dir: join(stateDir, 'spool'), maxBytes: config.spoolMaxBytes, fsync: config.spoolFsync, logger });
  lifecycle.add({ name: 'agent-spool', start: () => spool.open(), stop: () => spool.close() });
  // Records go where their data id's GSE route says (routing.ts), or all to the bkstream topics (routing off).
  let sink: RecordSink;
  let routes: BackgroundRoutes | undefined;
  if (overrides.sink) sink = overrides.sink;
  else {
    const bus = new Bus({ brokers: brokersOrLocal(config.kafkaBrokers, deps.env), clientId: 'bkstream-agent', logger, registry: deps.registry });
    const defaultProducer = bus.producer({ idempotent: true });
    if (!config.gseRouting) sink = defaultProducer;
    else {
      const box = overrides.routeSource ? undefined : routeSecretBox(config);
      const source: WatchedSource = overrides.routeSource
        ? { current: () => (overrides.routeSource as RouteSource).current(), onChange: (l) => (overrides.routeSource as RouteSource).onChange(l), start: async () => {}, stop: async () => {} }
        : new RouteWatcher({ bus: routesBus(bus), topic: topicName(config.topicPrefix, 'gseRoutes'), ...(box ? { box } : {}), logger, registry: deps.registry });
      routes = lifecycle.add(new BackgroundRoutes({ source, logger }));
      // Receivers' producers are not idempotent: kafkajs would retry a send to a dead cluster forever, and
      // the batch could not move on when its data id's route changes (the spool's headers tell copies apart).
      const producers = new ReceiverProducers({ defaultProducer, logger, clientId: 'bkstream-agent-gse' });
      const gse = lifecycle.add(new RoutedPublisher({ source: routes, producers, logger, registry: deps.registry }));
      sink = new RoutedSink({ publisher: gse, producers, routes });
    }
  }
  const sender = lifecycle.add(new KafkaSender({
    sink,
    spool,
    metrics,
    logger,
    batchRecords: config.sendBatchRecords,
    batchBytes: config.sendBatchBytes,
    flushTimeoutMs: config.shutdownTimeoutMs,
    idleDisconnectMs: config.sendIdleDisconnectMs,
    ...(overrides.retryMaxMs === undefined ? {} : { retryMaxMs: overrides.retryMaxMs }),
  }));

  // The channel's size comes from the main file unless AGENT_CHANNEL_SIZE says otherwise.
  const preview = loadAgentConfig(config.configFile, { types });
  const channel = new BoundedChannel<TaskOutput>(config.channelSize || preview.main.eventBufferSize);
  const holder: { agent?: Agent } = {};
  const topics = { events: topicName(config.topicPrefix, 'events'), metrics: topicName(config.topicPrefix, 'metrics') };
  const publisher = lifecycle.add(new Publisher({
    channel,
    spool,
    runId,
    metrics,
    logger,
    context: () => ({ host: (holder.agent as Agent).host.current(), cmdbLevel: (holder.agent as Agent).host.cmdbLevel(), topics, state, now: () => clock.now() }),
  }));
  const core = new Agent({
    configFile: config.configFile,
    types,
    clock,
    logger,
    state,
    emit: async (o) => {
      await channel.push(o);
      metrics.queueDepth.set(channel.size);
    },
    paths: { proc: config.procRoot, sys: config.sysRoot, rootfs: config.rootfs },
    ...(config.hostIp ? { ipOverride: config.hostIp } : {}),
    version: AGENT_VERSION,
    statusCounters: () => publisher.counters,
    metrics,
    probes: probeResources({ maxSockets: config.probeMaxSockets, maxPingProcesses: config.probeMaxPingProcesses, pingPath: config.pingPath }),
    ...(overrides.listenRestartDelayMs === undefined ? {} : { listenRestartDelayMs: overrides.listenRestartDelayMs }),
  });
  holder.agent = core;
  lifecycle.add({
    name: 'agent',
    start: () => core.start(),
    stop: () => core.stop(Math.max(1_000, core.loaded.main.cleanUpTimeoutMs)),
  });

  // POST /-/reload needs an admin token (SECURITY.md): BKSTREAM_ADMIN_TOKEN, or one of the store's when the
  // agent runs beside a database (bkstream up). No readiness probes: Kafka being away is not ill health.
  const { auth } = edgeOptions(deps);
  const admin = createHttpServer({
    auth,
    host: config.adminHost,
    port: config.adminPort,
    registry: deps.registry,
    logger,
    health: () => {
      const s = spool.stats();
      const k = sender.state();
      return {
        // Kafka being away is not ill health: the agent spools and delivers later.
        ok: true,
        checks: {
          mode: core.loaded.main.mode,
          tasks: core.loaded.tasks.length,
          kafka: k.up ? 'up' : `unreachable${k.lastError ? `: ${k.lastError}` : ''}`,
          ...(routes ? { gse_routes: routes.state() } : {}),
          spool: { records: s.pending, bytes: s.bytes, dropped: s.dropped },
          queue: channel.size,
        },
      };
    },
    routes: [{
      method: 'POST',
      path: '/-/reload',
      handle: async () => {
        const r = await core.reload('http');
        return json(r.ok ? 200 : 400, { ok: r.ok, tasks: r.tasks, problems: r.problems, child_files: r.childFiles });
      },
    }],
  });
  lifecycle.add({ name: 'agent-admin', start: () => admin.start(), stop: () => admin.stop() });

  const onHup = (): void => {
    core.reload('SIGHUP').catch((err: unknown) => logger.error('reload failed', { err }));
  };
  lifecycle.add({
    name: 'agent-sighup',
    start: async () => {
      process.on('SIGHUP', onHup);
    },
    stop: async () => {
      process.off('SIGHUP', onHup);
    },
  });

  const whenChecked = async (): Promise<void> => {
    const finished = core.checkFinished();
    if (!finished) return;
    const results = await finished;
    logger.info('check mode: every task ran once', { tasks: results.length });
    (overrides.onCheckDone ?? printCheckReport)({ loaded: core.loaded, host: core.host.current(), results });
  };

  return {
    name: 'agent',
    start: async () => {
      await lifecycle.start();
      whenChecked().catch((err: unknown) => logger.error('check mode: the report failed', { err }));
    },
    stop: () => lifecycle.stop(),
    agent: core,
    publisher,
    sender,
    spool,
    routes,
    runId,
    stateDir,
    adminPort: () => admin.port(),
  };
}

export const agentService = defineService({
  name: 'agent',
  needs: [],
  spec: agentSpec,
  config: (env) => loadAgentServiceConfig(env),
  create: (deps, config) => createAgentService(deps, config),
});

export default agentService;

/**
 * The agent as a process of its own (main.ts): the module above, except that with `mode: check` the
 * process ends once every task ran and the report is printed — the reference's beat stops after its check
 * run (§A2.2). It ends the way a SIGTERM ends it (the runner stops the service: intake, then the channel
 * into the spool, then the spool into Kafka until AGENT_SHUTDOWN_TIMEOUT_MS), with exit code 0. Inside
 * `bkstream up` (the default module) the other services keep the process, so the agent prints its report
 * and stays up idle.
 */
export const agentProcess = defineService({
  ...agentService,
  create: (deps, config) => createAgentService(deps, config, {
    onCheckDone: (report) => {
      printCheckReport(report);
      // After the runner's signal handlers are in place (they are set once start() resolved).
      setImmediate(() => process.kill(process.pid, 'SIGTERM'));
    },
  }),
});
