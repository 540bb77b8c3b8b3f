/**
 * The orchestrator as a ServiceModule: a config error names its keys; stop without start; start, process
 * a command, stop (twice); a missing topic is named by readiness (the service still comes up); the retry
 * budget ends in the step status.
 */
import test from 'ava';
import { createApplication } from '../../services/collector/applications.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { orchestratorService, type Orchestrator } from '../../services/orchestrator/service.ts';
import { brokerKit, uniqueName, waitFor } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { fastEnv, flowTopics, keyOf, setup, startSim, tailCommand, waitForFlow } from './kit.ts';
import { createService } from '../helpers/service.ts';

test.serial('service lifecycle: config errors, stop without start, start → process → stop, missing topics', async (t) => {
  const kit = await brokerKit(t);
  const prefix = await flowTopics(t, kit);
  const store = await pgliteStore(t, { migrated: true });
  const sim = await startSim(t);
  const deps = (env: Record<string, string>) => ({ env, logger: silentLogger, registry: createRegistry(), store, bus: kit.bus, common: loadConfig(commonSpec, { env }) });

  const bad = await t.throwsAsync(createService(orchestratorService, deps({ ORCH_GRPC_PORT: 'many' })), { instanceOf: ConfigError });
  t.deepEqual((bad).problems.map((p) => p.key).sort(), ['BKDATA_API_URL', 'ORCH_GRPC_PORT']);

  const idle = await createService(orchestratorService, deps({ ...fastEnv(sim), TOPIC_PREFIX: prefix }));
  await idle.stop();

  const orch = (await createService(orchestratorService, deps({ ...fastEnv(sim), TOPIC_PREFIX: prefix }))) as Orchestrator;
  await orch.start();
  const cmd = tailCommand('lifecycle-app');
  await createApplication(store, { bkBizId: 2, appName: 'lifecycle-app' }); // the service reads the store's application registry
  await orch.operations.submit(cmd, 'http');
  t.is((await waitForFlow(orch, keyOf(cmd), ['success'])).status, 'success');
  await orch.stop();
  await orch.stop();
  const after = await orch.flows.get(keyOf(cmd));
  t.is(after?.lease_owner, null, 'leases are given back at stop');

  // Missing topics do not stop the service: its APIs come up and readiness names what is missing.
  const noTopics = (await createService(orchestratorService, deps({ ...fastEnv(sim), TOPIC_PREFIX: uniqueName('none') }))) as Orchestrator;
  t.teardown(() => noTopics.stop());
  await noTopics.start();
  const readyz = `http://127.0.0.1:${noTopics.httpPort()}/readyz`;
  const ready = await waitFor('readiness to name the missing topics', async () => {
    const res = await fetch(readyz);
    const body = (await res.json()) as { checks: { kafka: string } };
    return res.status === 503 && /missing Kafka topics/.test(body.checks.kafka) ? body : undefined;
  }, 30_000);
  t.regex(ready.checks.kafka, /flow\.commands.*flow\.status.*dlq/);
  t.is((await fetch(`http://127.0.0.1:${noTopics.httpPort()}/livez`)).status, 200);
  await noTopics.stop();
});

test.serial('retriable errors spend the step retry budget, then fail the flow with the step status', async (t) => {
  // Every dataflow call fails with 503, but the breaker never opens (threshold 100 %: the budget decides).
  const { orch, sim } = await setup(t, { BKDATA_SIM_FAMILY_ERROR_RATES: 'dataflow=1' }, { ORCH_BREAKER_ERROR_THRESHOLD_PCT: '100', ORCH_STEP_RETRIES: '3' });
  const cmd = tailCommand('budget');
  await orch.operations.submit(cmd, 'http');
  const flow = await waitForFlow(orch, keyOf(cmd), ['config_flow_failed', 'success']);
  t.is(flow.status, 'config_flow_failed');
  t.is(flow.step, 'ensure_dataflow');
  t.regex(flow.message, /gave up after 4 attempts: get_data_flow_list: HTTP 503/);
  t.is(sim.calls.stats().byApi.get_data_flow_list, 4, 'the first attempt and 3 retries');
  const { steps } = await orch.operations.get(keyOf(cmd));
  t.deepEqual(steps.filter((s) => s.step === 'ensure_dataflow').map((s) => s.status).reverse(), ['retry', 'retry', 'retry', 'failed']);
  t.is(orch.breakers.dataflow.state(), 'closed');
});
