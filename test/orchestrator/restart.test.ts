/**
 * Two orchestrator instances sharing one PostgreSQL database never run the same flow at once. (The
 * orchestrator killed with SIGKILL mid-step and restarted is fault test (e), test/faults/orchestrator-kill.test.ts.)
 */
import test from 'ava';
import { silentLogger } from '../../services/common/log.ts';
import { createStore } from '../../services/common/store/index.ts';
import { brokerKit, uniqueName } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';
import { flowTopics, keyOf, startOrchestrator, startSim, tailCommand, waitForFlow } from './kit.ts';

test('two instances on one PostgreSQL database share the flows and never run one flow at the same time', async (t) => {
  t.timeout(180_000);
  const kit = await brokerKit(t);
  const prefix = await flowTopics(t, kit);
  const databaseUrl = await freshDatabase(t);
  const sim = await startSim(t, { BKDATA_SIM_LATENCY_MS: '10', BKDATA_SIM_CLEAN_START_DELAY_MS: '200' });
  const stores = await Promise.all([0, 1].map(async () => {
    const s = createStore({ databaseUrl, logger: silentLogger, poolSize: 4 });
    await s.start();
    t.teardown(() => s.stop());
    return s;
  }));
  await stores[0]?.migrate();
  const group = uniqueName('shared-group');
  const a = await startOrchestrator(t, { store: stores[0]!, bus: kit.bus, sim, prefix, env: { ORCH_INSTANCE_ID: 'instance-a', ORCH_CONSUMER_GROUP: group, ORCH_MAX_CONCURRENT_FLOWS: '4' } });
  const b = await startOrchestrator(t, { store: stores[1]!, bus: kit.bus, sim, prefix, env: { ORCH_INSTANCE_ID: 'instance-b', ORCH_CONSUMER_GROUP: group, ORCH_MAX_CONCURRENT_FLOWS: '4' } });

  const commands = Array.from({ length: 24 }, (_, i) => tailCommand(`shared${i}`, { data_id: 2_100_000 + i }));
  for (const [i, c] of commands.entries()) await (i % 2 === 0 ? a : b).orch.operations.submit(c, 'http');
  const owners = new Set<string>();
  for (const c of commands) {
    const f = await waitForFlow(a.orch, keyOf(c), ['success', 'config_cleans_start_failed', 'config_flow_failed'], 120_000);
    t.is(f.status, 'success', f.message);
    const steps = (await a.orch.flows.steps(f.id, 500)).reverse();
    for (const s of steps) owners.add(s.owner);
    for (let i = 1; i < steps.length; i++) {
      const prev = steps[i - 1]!;
      const cur = steps[i]!;
      if (prev.owner !== cur.owner) t.true(cur.started_at.getTime() >= (prev.finished_at?.getTime() ?? 0), `${f.app_name}: attempts of two instances overlap`);
    }
  }
  t.deepEqual([...owners].sort(), ['instance-a', 'instance-b'], 'both instances ran flows');
  const writes = sim.calls.stats().writesByApi;
  t.is(writes.access_deploy_plan, 24);
  t.is(writes.databus_cleans, 24);
  t.is(writes.create_data_flow, 24);
  t.is(writes.add_data_flow_node, 72);
  t.is(writes.start_data_flow, 24);
});
