/**
 * The whole pipeline in this process for the console's browser tests: bkdata-sim, orchestrator,
 * discovery, storage, collector and the console, each through its service module on port 0, over one
 * migrated PGlite store and the real broker (topics under a unique prefix, deleted afterwards).
 */
import type { ExecutionContext } from 'ava';
import { createBkdataSim, type BkdataSim } from '../../services/bkdata-sim/service.ts';
import { bkdataSimService } from '../../services/bkdata-sim/service.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import type { Component } from '../../services/common/lifecycle.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicName, topicPlan } from '../../services/common/topics.ts';
import { createCollector, type CollectorService } from '../../services/collector/service.ts';
import { createConsole, loadConsoleConfig, type ConsoleService } from '../../services/console/service.ts';
import { createDiscovery, type DiscoveryService } from '../../services/discovery/service.ts';
import { createOrchestrator, orchestratorService, type Orchestrator } from '../../services/orchestrator/service.ts';
import { createStorage, type StorageService } from '../../services/storage/service.ts';
import { brokerKit, brokers, testBus, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { createStore } from '../../services/common/store/index.ts';
import { freshDatabase, pgliteStore } from '../helpers/store.ts';

/** The admin token every service of the stack accepts (BKSTREAM_ADMIN_TOKEN; services that check no tokens ignore it). */
export const ADMIN_TOKEN = `bkadm_console_test_${'0123456789abcdef'.repeat(2)}`;

export interface Stack {
  kit: BrokerKit;
  store: Store;
  prefix: string;
  topics: { spans: string; metrics: string; events: string };
  sim: BkdataSim;
  orchestrator: Orchestrator;
  discovery: DiscoveryService;
  storage: StorageService;
  collector: CollectorService;
  console: ConsoleService;
  urls: { console: string; discovery: string; storage: string; orchestrator: string; collectorAdmin: string; otlpHttp: string };
}

/** Stops the parts in reverse order after the test file (each stop runs even if one fails). */
function stopAll(t: ExecutionContext, parts: Component[]): void {
  t.teardown(async () => {
    for (const p of [...parts].reverse()) await p.stop().catch(() => undefined);
  });
}

/**
 * `database`: embedded PGlite (default, as `bkstream up` runs: every service's statements share its one
 * thread) or a fresh PostgreSQL database (as a deployment runs).
 */
export async function startStack(t: ExecutionContext, options: { stuckApp?: string; database?: 'pglite' | 'pg' } = {}): Promise<Stack> {
  const kit = await brokerKit(t);
  let databaseUrl: string | undefined;
  let store: Store;
  if (options.database === 'pg') {
    databaseUrl = await freshDatabase(t);
    store = createStore({ databaseUrl, logger: silentLogger, poolSize: 8 });
    await store.start();
    t.teardown(() => store.stop());
    await store.migrate();
  } else {
    store = await pgliteStore(t, { migrated: true });
  }
  const prefix = uniqueName('console');
  const plan = topicPlan(prefix).map((p) => ({ ...p, numPartitions: Math.min(p.numPartitions, 2), retentionMs: 3_600_000 }));
  await kit.admin.ensureTopics(plan);
  t.teardown(() => kit.admin.deleteTopics(plan.map((p) => p.topic)).catch(() => undefined));
  const groups = ['disc', 'disc-replay', 'disc-events', 'stor-spans', 'stor-replay', 'stor-metrics', 'stor-events', 'stor-otlp', 'stor-rw', 'orch'].map((g) => `${prefix}-${g}`);
  t.teardown(async () => {
    for (const g of groups) await kit.admin.deleteGroup(g).catch(() => undefined);
  });
  const base: NodeJS.ProcessEnv = { KAFKA_BROKERS: brokers().join(','), TOPIC_PREFIX: prefix, LOG_LEVEL: 'silent', BKSTREAM_ADMIN_TOKEN: ADMIN_TOKEN, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
  const deps = (env: NodeJS.ProcessEnv) => {
    const registry = createRegistry();
    return { env, logger: silentLogger, registry, common: loadConfig(commonSpec, { env }), store, bus: testBus({ registry }) };
  };
  const parts: Component[] = [];
  stopAll(t, parts);

  const sim = createBkdataSim({
    config: bkdataSimService.config({ BKDATA_SIM_PORT: '0', BKDATA_SIM_CLEAN_START_DELAY_MS: '50', ...(options.stuckApp ? { BKDATA_SIM_STUCK_CLEANS: `*${options.stuckApp}*` } : {}) }),
    logger: silentLogger,
    registry: createRegistry(),
  });
  parts.push(sim);
  await sim.start();

  const orchEnv = {
    ...base,
    BKDATA_API_URL: sim.url(),
    ORCH_HTTP_PORT: '0',
    ORCH_GRPC_PORT: '0',
    ORCH_INSTANCE_ID: uniqueName('orch'),
    ORCH_CONSUMER_GROUP: `${prefix}-orch`,
    ORCH_CONSUMER_SESSION_TIMEOUT_MS: '10000',
    BKDATA_CLEAN_POLL_INTERVAL_MS: '50',
    BKDATA_FETCH_STATUS_THRESHOLD: '3',
    ORCH_STOP_POLL_INTERVAL_MS: '50',
    ORCH_RETRY_INITIAL_DELAY_MS: '20',
    ORCH_RETRY_MAX_DELAY_MS: '200',
    ORCH_POLL_INTERVAL_MS: '200',
    ORCH_BREAKER_RESET_TIMEOUT_MS: '1000',
  };
  const od = deps(orchEnv);
  const orchestrator = createOrchestrator({ store, bus: od.bus, logger: silentLogger, registry: od.registry }, orchestratorService.config(orchEnv));
  parts.push(orchestrator);
  await orchestrator.start();

  const discovery = await createDiscovery(deps({
    ...base,
    DISCOVERY_HTTP_PORT: '0',
    DISCOVERY_GROUP_ID: `${prefix}-disc`,
    DISCOVERY_REPLAY_GROUP_ID: `${prefix}-disc-replay`,
    DISCOVERY_EVENTS_GROUP_ID: `${prefix}-disc-events`,
    DISCOVERY_FLUSH_INTERVAL_MS: '100',
    DISCOVERY_PAIRING_TTL_MS: '500',
    DISCOVERY_STOP_DRAIN_MS: '1000',
  }));
  parts.push(discovery);
  await discovery.start();

  const storage = await createStorage(deps({
    ...base,
    STORAGE_HTTP_PORT: '0',
    STORAGE_SPANS_GROUP_ID: `${prefix}-stor-spans`,
    STORAGE_REPLAY_GROUP_ID: `${prefix}-stor-replay`,
    STORAGE_METRICS_GROUP_ID: `${prefix}-stor-metrics`,
    STORAGE_EVENTS_GROUP_ID: `${prefix}-stor-events`,
    STORAGE_OTLP_GROUP_ID: `${prefix}-stor-otlp`,
    STORAGE_REMOTE_WRITE_GROUP_ID: `${prefix}-stor-rw`,
    STORAGE_FLUSH_INTERVAL_MS: '50',
    STORAGE_STOP_DRAIN_MS: '1000',
    STORAGE_RETENTION_CACHE_TTL_MS: '0',
  }));
  parts.push(storage);
  await storage.start();

  const collector = createCollector(deps({
    ...base,
    COLLECTOR_OTLP_GRPC_PORT: '0',
    COLLECTOR_OTLP_HTTP_PORT: '0',
    COLLECTOR_ADMIN_PORT: '0',
    COLLECTOR_TOKEN_MISS_TTL_MS: '0',
  }));
  parts.push(collector);
  await collector.start();

  const ports = collector.ports();
  const urls = {
    discovery: `http://127.0.0.1:${discovery.http.port()}`,
    storage: `http://127.0.0.1:${storage.http.port()}`,
    orchestrator: `http://127.0.0.1:${orchestrator.httpPort()}`,
    collectorAdmin: `http://127.0.0.1:${ports.admin}`,
    otlpHttp: `http://127.0.0.1:${ports.http ?? 0}/v1/traces`,
    console: '',
  };
  const consoleService = createConsole({ logger: silentLogger, registry: createRegistry() }, loadConsoleConfig({
    ...base,
    CONSOLE_PORT: '0',
    CONSOLE_DISCOVERY_URL: urls.discovery,
    CONSOLE_STORAGE_URL: urls.storage,
    CONSOLE_ORCHESTRATOR_URL: urls.orchestrator,
    CONSOLE_COLLECTOR_ADMIN_URL: urls.collectorAdmin,
    CONSOLE_OTLP_HTTP_URL: urls.otlpHttp,
    CONSOLE_REFRESH_INTERVAL_MS: '1000',
  }));
  parts.push(consoleService);
  await consoleService.start();
  urls.console = consoleService.url();

  await waitFor('every consumer to join its group', () => collector.ready() && [...discovery.consumers, ...storage.consumers].every((c) => c.joined()), 90_000, 100);
  return {
    kit,
    store,
    prefix,
    topics: { spans: topicName(prefix, 'spans'), metrics: topicName(prefix, 'metrics'), events: topicName(prefix, 'events') },
    sim,
    orchestrator,
    discovery,
    storage,
    collector,
    console: consoleService,
    urls,
  };
}

/** GET of an upstream API as JSON, as the admin (for waits and checks beside the browser). */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
