/**
 * bkdata-sim with its objects in the store (BKDATA_SIM_PERSIST=store), and the service lifecycle. Kept
 * apart from sim.test.ts: building the embedded store stalls the event loop, which the HTTP tests there
 * should not share.
 */
import test, { type ExecutionContext } from 'ava';
import { bkdataSimService, createBkdataSim, type BkdataSim } from '../../services/bkdata-sim/service.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { Store } from '../../services/common/store/index.ts';
import { testBus } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { simConfig } from '../orchestrator/kit.ts';
import { api, seed } from './client.ts';
import { createService } from '../helpers/service.ts';

async function startSim(t: ExecutionContext, env: Record<string, string>, store: Store): Promise<BkdataSim> {
  const sim = createBkdataSim({ config: simConfig(env), logger: silentLogger, registry: createRegistry(), store });
  await sim.start();
  t.teardown(() => sim.stop());
  return sim;
}

test.serial('with BKDATA_SIM_PERSIST=store the objects survive a restart', async (t) => {
  const store = await pgliteStore(t, { migrated: true });
  const first = await startSim(t, { BKDATA_SIM_PERSIST: 'store' }, store);
  const { rt } = await seed(api(first));
  await api(first)('POST', '/v3/dataflow/flow/flows/', { project_id: 1, flow_name: 'kept' });
  await first.stop();
  const second = await startSim(t, { BKDATA_SIM_PERSIST: 'store' }, store);
  t.true(second.state.cleans.has(rt));
  t.is(second.state.rawData.get(901)?.raw_data_name, 'r');
  t.deepEqual([...second.state.flows.values()].map((f) => f.flow_name), ['kept']);
  const next = (await api(second)('POST', '/v3/dataflow/flow/flows/', { project_id: 1, flow_name: 'new' })).env.data as { flow_id: number };
  t.is(next.flow_id, 2, 'id sequences continue');
  await api(second)('POST', '/admin/reset');
  t.is(second.state.cleans.size, 0);
  const { rows } = await store.query<{ n: number }>("SELECT count(*)::int AS n FROM bkdata_sim_object WHERE kind <> 'seq'");
  t.is(rows[0]?.n, 0, 'a reset empties the store too');
});

test.serial('service lifecycle: stop without start; create, start, serve, stop', async (t) => {
  const store = await pgliteStore(t, { migrated: true });
  const bus = testBus();
  const env = { BKDATA_SIM_PORT: '0' };
  const deps = { env, logger: silentLogger, registry: createRegistry(), store, bus, common: loadConfig(commonSpec, { env }) };
  const idle = await createService(bkdataSimService, deps);
  await idle.stop();
  const sim = (await createService(bkdataSimService, { ...deps, registry: createRegistry() })) as BkdataSim;
  await sim.start();
  t.is((await api(sim)('GET', '/v3/resourcecenter/clusters/query_digest/')).status, 200);
  await sim.stop();
  await sim.stop();
  await t.throwsAsync(createService(bkdataSimService, { ...deps, env: { BKDATA_SIM_PORT: 'x' } }), { message: /BKDATA_SIM_PORT: must be an integer/ });
});
