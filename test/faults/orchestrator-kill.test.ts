/**
 * Fault (e), with real processes: `node services/orchestrator/main.ts` is killed with SIGKILL while its
 * flows are mid-way (the deploy and clean steps done, the cleans starting with calls in flight against
 * bkdata-sim, which counts every call) and started again on the same PostgreSQL database; every flow
 * completes, no finished step runs again, and BKData is asked to create nothing twice.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createApplication } from '../../services/collector/applications.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import type { FlowCommand } from '../../services/common/records.ts';
import { createStore } from '../../services/common/store/index.ts';
import { topicName } from '../../services/common/topics.ts';
import { FlowStore } from '../../services/orchestrator/flow-store.ts';
import { brokerKit, brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';
import { fastEnv, flowTopics, startSim } from '../orchestrator/kit.ts';
import { faultLine } from './kit.ts';

const MAIN = new URL('../../services/orchestrator/main.ts', import.meta.url).pathname;

function startProcess(env: NodeJS.ProcessEnv, output: string[]): ChildProcess {
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer): void => {
    output.push(chunk.toString('utf8'));
    if (output.length > 200) output.splice(0, output.length - 200);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

test('the orchestrator killed with SIGKILL mid-step resumes every flow at its step after a restart, repeating no finished step', async (t) => {
  t.timeout(180_000);
  const kit = await brokerKit(t);
  let repeated = 0;
  let succeeded = 0;
  const prefix = await flowTopics(t, kit);
  const databaseUrl = await freshDatabase(t);
  // Cleans take 3 s to run and every call 50 ms: the flows sit in start_clean with calls in flight.
  const sim = await startSim(t, { BKDATA_SIM_CLEAN_START_DELAY_MS: '3000', BKDATA_SIM_LATENCY_MS: '50' });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...fastEnv(sim, { BKDATA_CLEAN_POLL_INTERVAL_MS: '200', ORCH_LEASE_MS: '3000', BKDATA_FETCH_STATUS_THRESHOLD: '100' }),
    DATABASE_URL: databaseUrl,
    KAFKA_BROKERS: brokers().join(','),
    TOPIC_PREFIX: prefix,
    LOG_LEVEL: 'warn',
  };
  const output: string[] = [];
  let child = startProcess(env, output);
  t.teardown(() => kill(child));

  const apps = ['kill-a', 'kill-b', 'kill-c'];
  // The orchestrator reads the store's application registry: the applications are registered first.
  const registryStore = createStore({ databaseUrl, logger: silentLogger, poolSize: 1 });
  await registryStore.start();
  await registryStore.migrate();
  for (const app of apps) await createApplication(registryStore, { bkBizId: 2, appName: app });
  await registryStore.stop();
  const codec = codecFor('FlowCommand');
  const commands: FlowCommand[] = apps.map((app, i) => ({
    command_id: uniqueName('cmd'),
    action: 'create_or_update',
    flow_type: 'tail_sampling',
    bk_biz_id: 2,
    app_name: app,
    config: JSON.stringify({ data_id: 2_000_000 + i }),
    operator: 'tester',
    requested_at: Date.now(),
  }));
  await kit.produce(topicName(prefix, 'flowCommands'), commands.map((c) => ({ key: `2:${c.app_name}:tail_sampling`, value: codec.encode(c) })));

  // Kill it while every flow is starting its clean (after the deploy and clean steps finished).
  await waitFor('all flows in start_clean', () => new Set(sim.calls.entries().filter((c) => c.api === 'start_databus_cleans').map((c) => c.params.result_table_id)).size === apps.length, 90_000, 10);
  await kill(child);
  const before = sim.calls.stats().writesByApi;
  t.is(before.access_deploy_plan, 3);
  t.is(before.databus_cleans, 3);
  t.is(before.create_data_flow, undefined, 'killed before the dataflow steps');

  child = startProcess(env, output);
  const store = createStore({ databaseUrl, logger: silentLogger, poolSize: 2 });
  await store.start();
  t.teardown(() => store.stop());
  const flows = new FlowStore(store);
  for (const app of apps) {
    const f = await waitFor(`${app} to finish`, async () => {
      const flow = await flows.get({ bk_biz_id: 2, app_name: app, flow_type: 'tail_sampling' });
      return flow && ['success', 'config_cleans_start_failed', 'config_flow_failed', 'auth_failed'].includes(flow.status) ? flow : undefined;
    }, 90_000).catch((err: unknown) => {
      t.log(output.join('').slice(-4000));
      throw err;
    });
    t.is(f.status, 'success', f.message);
    if (f.status === 'success') succeeded++;
    const steps = await flows.steps(f.id, 200);
    for (const step of ['deploy_data_source', 'clean_config', 'authorize_project', 'register_storage', 'ensure_dataflow', 'sync_nodes', 'start_dataflow']) {
      const finished = steps.filter((s) => s.step === step && s.status === 'ok').length;
      repeated += Math.max(0, finished - 1);
      t.is(finished, 1, `${app}: ${step} finished once`);
    }
  }
  const writes = sim.calls.stats().writesByApi;
  // Create calls BKData got more than once per flow (the sim counts every call).
  const created = ['access_deploy_plan', 'databus_cleans', 'auth_result_table', 'create_data_flow', 'start_data_flow'].reduce((n, api) => n + Math.max(0, (writes[api] ?? 0) - apps.length), 0);
  faultLine(t, 'orchestrator-sigkill', { in: commands.length, out: succeeded, duplicates: repeated + created }, `steps_repeated=${repeated} bkdata_creates_repeated=${created} writes=${JSON.stringify(writes)}`);
  t.is(writes.access_deploy_plan, 3, 'no raw data created twice');
  t.is(writes.databus_cleans, 3, 'no clean created twice');
  t.is(writes.auth_result_table, 3);
  // flows racing on register_storage may both call get_or_create (idempotent); one resource set exists
  t.is(sim.state.resourceSets.size, 1);
  t.is(writes.create_data_flow, 3);
  t.is(writes.add_data_flow_node, 9);
  t.is(writes.start_data_flow, 3);
  t.is(writes.update_deploy_plan, undefined);
  t.is(writes.update_databus_cleans, undefined);
  await kill(child);
});
