/**
 * Test kit of the orchestrator tests: a bkdata-sim on port 0, the flow topics under a unique prefix, an
 * orchestrator wired to both (ports 0, fast polls), sample commands, and waits on flow status.
 */
import type { ExecutionContext } from 'ava';
import type { SimConfig } from '../../services/bkdata-sim/config.ts';
import { bkdataSimService, createBkdataSim, type BkdataSim } from '../../services/bkdata-sim/service.ts';
import type { Bus } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicName } from '../../services/common/topics.ts';
import { ANY_APPLICATION, type ApplicationRegistry } from '../../services/orchestrator/applications.ts';
import type { FlowKey, Flow } from '../../services/orchestrator/model.ts';
import { createOrchestrator, orchestratorService, type Orchestrator } from '../../services/orchestrator/service.ts';
import { brokerKit, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';

/** The key orchestrators under test seal flow-config secrets with (BKSTREAM_SECRET_KEY). */
export const TEST_SECRET_KEY = Buffer.alloc(32, 7).toString('base64');

/** A sim config with test defaults (port 0, clean running 50 ms after start) and overrides. */
export function simConfig(env: Record<string, string> = {}): SimConfig {
  return bkdataSimService.config({ BKDATA_SIM_PORT: '0', BKDATA_SIM_CLEAN_START_DELAY_MS: '50', ...env });
}

export async function startSim(t: ExecutionContext, env: Record<string, string> = {}, registry: Registry = createRegistry()): Promise<BkdataSim> {
  const sim = createBkdataSim({ config: simConfig(env), logger: silentLogger, registry });
  await sim.start();
  t.teardown(() => sim.stop());
  return sim;
}

/** Creates `<prefix>.flow.commands`, `.flow.status`, `.dlq` for a unique prefix; deleted in teardown. */
export async function flowTopics(t: ExecutionContext, kit: BrokerKit): Promise<string> {
  const prefix = uniqueName('orch');
  const topics = (['flowCommands', 'flowStatus', 'dlq'] as const).map((k) => topicName(prefix, k));
  await kit.admin.ensureTopics(topics.map((topic) => ({ topic, numPartitions: 3, retentionMs: 3_600_000 })));
  t.teardown(() => kit.admin.deleteTopics(topics).catch(() => undefined));
  return prefix;
}

/** Fast settings for tests: any free port, short polls and backoffs. */
export function fastEnv(sim: BkdataSim, extra: Record<string, string> = {}): Record<string, string> {
  return {
    BKDATA_API_URL: sim.url(),
    ORCH_HTTP_PORT: '0',
    ORCH_GRPC_PORT: '0',
    ORCH_INSTANCE_ID: uniqueName('orch'),
    ORCH_CONSUMER_GROUP: uniqueName('orch-group'),
    ORCH_CONSUMER_SESSION_TIMEOUT_MS: '10000',
    BKDATA_CLEAN_POLL_INTERVAL_MS: '50',
    ORCH_STOP_POLL_INTERVAL_MS: '50',
    ORCH_RETRY_INITIAL_DELAY_MS: '20',
    ORCH_RETRY_MAX_DELAY_MS: '200',
    ORCH_POLL_INTERVAL_MS: '200',
    ORCH_BREAKER_RESET_TIMEOUT_MS: '1000',
    BKDATA_TIMEOUT_MS: '5000',
    ...ADMIN_ENV,
    BKSTREAM_SECRET_KEY: TEST_SECRET_KEY,
    ...extra,
  };
}

export interface OrchestratorUnderTest {
  orch: Orchestrator;
  registry: Registry;
  prefix: string;
}

export async function startOrchestrator(
  t: ExecutionContext,
  deps: { store: Store; bus: Bus; sim: BkdataSim; prefix: string; env?: Record<string, string>; registry?: Registry; applications?: ApplicationRegistry },
): Promise<OrchestratorUnderTest> {
  const registry = deps.registry ?? createRegistry();
  const config = orchestratorService.config({ ...fastEnv(deps.sim, deps.env), TOPIC_PREFIX: deps.prefix });
  // Tests of the flows themselves use any application name; test/orchestrator/applications.test.ts checks the registry.
  const applications = deps.applications ?? ANY_APPLICATION;
  const orch = createOrchestrator({ store: deps.store, bus: deps.bus, logger: silentLogger, registry, applications }, config);
  t.teardown(() => orch.stop());
  await orch.start();
  return { orch, registry, prefix: deps.prefix };
}

export function tailCommand(app: string, config: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { action: 'create_or_update', flow_type: 'tail_sampling', bk_biz_id: 2, app_name: app, config: { data_id: 1_500_001, tail_percentage: 10, ...config }, operator: 'tester', ...extra };
}

export function metricCommand(app: string, config: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 2, app_name: app, config: { data_id: 1_600_001, ...config }, operator: 'tester', ...extra };
}

export function keyOf(cmd: Record<string, unknown>): FlowKey {
  return { bk_biz_id: cmd.bk_biz_id as number, app_name: cmd.app_name as string, flow_type: cmd.flow_type as FlowKey['flow_type'] };
}

/** Waits until the flow's status is one of `statuses`; returns the flow. */
export async function waitForFlow(orch: Orchestrator, key: FlowKey, statuses: readonly string[], timeoutMs = 60_000): Promise<Flow> {
  return waitFor(`flow ${key.bk_biz_id}:${key.app_name}:${key.flow_type} in ${statuses.join('/')}`, async () => {
    const f = await orch.flows.get(key);
    return f && statuses.includes(f.status) ? f : undefined;
  }, timeoutMs, 50);
}

/** Successful write calls the sim saw after `afterSeq`, as `api` names. */
export function writesAfter(sim: BkdataSim, afterSeq: number): string[] {
  return sim.calls.entries(afterSeq).filter((c) => c.write && c.outcome === 'ok').map((c) => c.api);
}

/** Waits until the flow follows the command requested at `requestedAt` and is in one of `statuses`. */
export async function waitForCommand(orch: Orchestrator, key: FlowKey, requestedAt: number, statuses: readonly string[], timeoutMs = 60_000): Promise<Flow> {
  return waitFor(`flow to follow the command of ${requestedAt}`, async () => {
    const f = await orch.flows.get(key);
    return f && f.command_requested_at === requestedAt && statuses.includes(f.status) ? f : undefined;
  }, timeoutMs, 50);
}

/** Broker kit, flow topics, a migrated in-memory store, a sim and an orchestrator, all torn down after the test. */
export async function setup(t: ExecutionContext, simEnv: Record<string, string> = {}, orchEnv: Record<string, string> = {}) {
  const kit = await brokerKit(t);
  const prefix = await flowTopics(t, kit);
  const store = await pgliteStore(t, { migrated: true });
  const sim = await startSim(t, simEnv);
  const { orch, registry } = await startOrchestrator(t, { store, bus: kit.bus, sim, prefix, env: orchEnv });
  return { kit, prefix, store, sim, orch, registry };
}
