/**
 * bkdata-sim over real HTTP: the stateful BKData behaviours the orchestrator relies on (clean status
 * moving from starting to running, dataflow start/stop/delete rules, grants, resource sets), fault
 * injection (error modes per family, outage windows, stuck cleans, latency), the admin API, persistence
 * in the store (persistence.test.ts), and the service lifecycle.
 */
import test, { type ExecutionContext } from 'ava';
import { createBkdataSim, type BkdataSim } from '../../services/bkdata-sim/service.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { simConfig } from '../orchestrator/kit.ts';
import { api, seed } from './client.ts';

/** A sim on port 0; `clock.now` is its time (tests move it instead of sleeping). */
async function startSim(t: ExecutionContext, env: Record<string, string> = {}, clock?: { now: number }): Promise<BkdataSim> {
  const sim = createBkdataSim({ config: simConfig(env), logger: silentLogger, registry: createRegistry(), ...(clock ? { now: () => clock.now } : {}) });
  await sim.start();
  t.teardown(() => sim.stop());
  return sim;
}

test('cleans are stopped when created, starting when started, running after the delay; stuck ones never run', async (t) => {
  const clock = { now: 1_000_000 };
  const sim = await startSim(t, { BKDATA_SIM_CLEAN_START_DELAY_MS: '300' }, clock);
  const call = api(sim);
  const { rawId, rt } = await seed(call);
  t.is(rawId, 901);
  t.is(rt, '2_tbl');
  const status = async (): Promise<string | undefined> => ((await call('GET', `/v3/databus/cleans/?raw_data_id=${rawId}`)).env.data as { status: string }[])[0]?.status;
  t.is(await status(), 'stopped');
  await call('POST', '/v3/databus/tasks/', { result_table_id: rt, storages: ['kafka'] });
  t.is(await status(), 'starting');
  clock.now += 299;
  t.is(await status(), 'starting');
  clock.now += 1;
  t.is(await status(), 'running');
  await call('DELETE', `/v3/databus/tasks/${rt}/`);
  t.is(await status(), 'stopped');

  sim.faults.stuckCleans = ['2_t*'];
  await call('POST', '/v3/databus/tasks/', { result_table_id: rt });
  clock.now += 10_000;
  t.is(await status(), 'starting', 'a stuck clean stays starting');

  const dup = await call('POST', '/v3/databus/cleans/', { bk_biz_id: 2, raw_data_id: 901, clean_config_name: 'c', result_table_name: 'tbl', json_config: '{}', fields: [{}] });
  t.deepEqual([dup.status, dup.env.result, dup.env.code], [200, false, '1500409']);
  const missing = await call('POST', '/v3/databus/cleans/', { bk_biz_id: 2, raw_data_id: 902, clean_config_name: 'c', result_table_name: 'x', json_config: '{', fields: [{}] });
  t.regex(missing.env.message, /raw data 902 does not exist/);
});

test('dataflows: created by name per project, nodes linked to existing parents, start only from no-start, delete only when stopped', async (t) => {
  const clock = { now: 1_000_000 };
  const sim = await startSim(t, { BKDATA_SIM_FLOW_STOP_DELAY_MS: '200' }, clock);
  const call = api(sim);
  const flow = (await call('POST', '/v3/dataflow/flow/flows/', { project_id: 1, flow_name: 'f' })).env.data as { flow_id: number };
  t.is((await call('POST', '/v3/dataflow/flow/flows/', { project_id: 1, flow_name: 'f' })).env.code, '1500409');
  t.deepEqual(((await call('GET', '/v3/dataflow/flow/flows?project_id=1')).env.data as { flow_name: string }[]).map((f) => f.flow_name), ['f']);
  const path = `/v3/dataflow/flow/flows/${flow.flow_id}`;
  t.is((await call('POST', `${path}/start/`, {})).env.result, false, 'no nodes: cannot start');
  const src = (await call('POST', `${path}/nodes/`, { node_type: 'stream_source', config: { a: 1 }, from_links: [] })).env.data as { node_id: number };
  const orphan = await call('POST', `${path}/nodes/`, { node_type: 'realtime', config: {}, from_links: [{ source: { node_id: 999 } }] });
  t.regex(orphan.env.message, /node 999, which is not in dataflow/);
  await call('POST', `${path}/nodes/`, { node_type: 'realtime', config: { sql: 'x' }, from_links: [{ source: { node_id: src.node_id } }] });
  await call('PUT', `${path}/nodes/${src.node_id}`, { node_type: 'stream_source', config: { a: 2 }, from_links: [] });
  const graph = (await call('GET', `${path}/graph`)).env.data as { nodes: { node_config: unknown }[] };
  t.deepEqual(graph.nodes.map((n) => n.node_config), [{ a: 2 }, { sql: 'x' }]);

  t.is((await call('GET', `${path}/latest_deploy_data/`)).env.data, null);
  t.is(((await call('GET', path)).env.data as { status: string }).status, 'no-start');
  t.true((await call('POST', `${path}/start/`, { consuming_mode: 'from_tail' })).env.result);
  t.is(((await call('GET', path)).env.data as { status: string }).status, 'running');
  t.is((await call('POST', `${path}/start/`, {})).env.code, '1500409', 'a running dataflow cannot be started again');
  t.true((await call('POST', `${path}/restart/`, { consuming_mode: 'continue' })).env.result);
  t.is(((await call('GET', `${path}/latest_deploy_data/`)).env.data as { action: string }).action, 'restart');
  await call('POST', `${path}/stop/`, {});
  t.is(((await call('GET', path)).env.data as { status: string }).status, 'stopping');
  t.is((await call('DELETE', `${path}/`)).env.result, false, 'cannot delete while stopping');
  clock.now += 200;
  t.is(((await call('GET', path)).env.data as { status: string }).status, 'no-start');
  t.true((await call('DELETE', `${path}/`)).env.result);
  t.is((await call('GET', path)).env.code, '1500404');
});

test('grants and resource sets', async (t) => {
  const sim = await startSim(t);
  const call = api(sim);
  const { rt } = await seed(call);
  t.is((await call('POST', '/v3/auth/projects/7/data/check/', { result_table_id: rt })).env.data, false);
  t.true((await call('POST', '/v3/auth/projects/7/data/add/', { object_id: rt, bk_biz_id: 2 })).env.result);
  t.is((await call('POST', '/v3/auth/projects/7/data/check/', { result_table_id: rt })).env.data, true);

  const params = { resource_set_id: 'apm_storage_id_1', resource_set_name: 'apm_storage_es', bk_biz_id: 2, category: 'es', connection_info: { host: 'es', port: 9200 } };
  t.deepEqual((await call('POST', '/v3/resourcecenter/resource_sets/get_or_create/', params)).env.data, { resource_set_id: 'apm_storage_id_1', resource_set_name: 'apm_storage_es' });
  const sameHost = await call('POST', '/v3/resourcecenter/resource_sets/get_or_create/', { ...params, resource_set_id: 'apm_storage_id_9', resource_set_name: 'other' });
  t.deepEqual(sameHost.env.data, { resource_set_id: 'apm_storage_id_1', resource_set_name: 'apm_storage_es' }, 'a cluster registered already is returned');
  t.deepEqual(((await call('GET', '/v3/resourcecenter/clusters/query_digest/')).env.data as { resource_group_id: string }[]).map((r) => r.resource_group_id), ['apm_storage_id_1']);
  await call('PATCH', '/v3/resourcecenter/resource_sets/apm_storage_id_1/', { authorized_projects: [3, 5] });
  t.deepEqual(((await call('GET', '/v3/resourcecenter/resource_sets/apm_storage_id_1/')).env.data as { authorized_projects: unknown }).authorized_projects, [{ id: 3 }, { id: 5 }]);
});

test('fault injection per family and mode, outage windows, unknown routes, call statistics', async (t) => {
  const sim = await startSim(t, { BKDATA_SIM_FAMILY_ERROR_RATES: 'auth=1', BKDATA_SIM_ERROR_MODE: 'http_4xx' });
  const call = api(sim);
  const base = sim.url().replace(/\/$/, '');
  t.is((await call('POST', '/v3/auth/projects/1/data/check/', { result_table_id: 'x' })).status, 400);
  t.is((await call('GET', '/v3/resourcecenter/clusters/query_digest/')).status, 200, 'other families unaffected');

  const admin = (method: string, path: string, body?: unknown): Promise<Response> => fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const bad = await admin('PUT', '/admin/faults', { error_mode: 'bogus', family_error_rates: { nope: 1, auth: 2 } });
  t.is(bad.status, 400);
  t.is(((await bad.json()) as { problems: string[] }).problems.length, 3);
  t.is((await admin('PUT', '/admin/faults', { family_error_rates: { auth: 0 }, error_rate: 0 })).status, 200);
  t.is((await call('POST', '/v3/auth/projects/1/data/check/', { result_table_id: 'x' })).status, 200);

  t.is((await admin('POST', '/admin/outages', { duration_ms: 60_000 })).status, 201);
  await t.throwsAsync(fetch(`${base}/v3/resourcecenter/clusters/query_digest/`), { message: /fetch failed/ }, 'connections are reset during an outage');
  t.is((await admin('PUT', '/admin/faults', { outage_mode: '503' })).status, 200);
  t.is((await call('GET', '/v3/resourcecenter/clusters/query_digest/')).status, 503);
  t.is((await fetch(`${base}/healthz`)).status, 200, 'admin and health stay up');
  t.is((await admin('DELETE', '/admin/outages')).status, 200);
  t.is((await call('GET', '/v3/resourcecenter/clusters/query_digest/')).status, 200);

  t.is((await call('GET', '/v3/nothing/here/')).status, 404);
  t.is((await call('PATCH', '/v3/databus/cleans/')).status, 405);

  const stats = (await (await admin('GET', '/admin/calls')).json()) as { total: number; by_outcome: Record<string, number>; by_api: Record<string, number> };
  t.is(stats.by_outcome.injected_error, 1);
  t.is(stats.by_outcome.outage, 2);
  t.is(stats.by_outcome.unknown_route, 2);
  t.is(stats.by_api.auth_projects_data_check, 2);
  t.regex(await (await fetch(`${base}/metrics`)).text(), /bkstream_bkdata_sim_calls_total\{api="query_resource_list",outcome="outage"\} 2/);
  const log = (await (await admin('GET', '/admin/calls?log=1')).json()) as { log: unknown[] };
  t.is(log.log.length, stats.total);
  await admin('POST', '/admin/reset');
  t.is(((await (await admin('GET', '/admin/calls')).json()) as { total: number }).total, 0);
});

test('outage windows from config are relative to start; latency is added', async (t) => {
  const sim = await startSim(t, { BKDATA_SIM_OUTAGES: '0-60', BKDATA_SIM_OUTAGE_MODE: '503' });
  t.is((await api(sim)('GET', '/v3/resourcecenter/clusters/query_digest/')).status, 503);
  sim.faults.outages = [];
  sim.faults.latencyMs = 150;
  const started = performance.now();
  t.is((await api(sim)('GET', '/v3/resourcecenter/clusters/query_digest/')).status, 200);
  t.true(performance.now() - started >= 140, 'the answer waited for the injected latency');
});

test('routing: any base path before /v3/, optional trailing slash, envelopes for 404 and 405, /admin/ is never the API', async (t) => {
  const sim = await startSim(t);
  const base = sim.url().replace(/\/$/, '');
  const raw = async (method: string, path: string): Promise<[number, string]> => {
    const res = await fetch(`${base}${path}`, { method });
    return [res.status, await res.text()];
  };
  await seed(api(sim));
  t.is((await api(sim)('GET', '/api/bk-base/prod/v3/databus/cleans?raw_data_id=901')).env.result, true, 'a base path and no trailing slash');
  t.is((await api(sim)('PUT', '/v3/databus/cleans/2%5Ftbl', { json_config: '{}', fields: [{}] })).env.result, true, 'path parameters are percent-decoded');
  t.deepEqual(await raw('PATCH', '/x/v3/databus/cleans/'), [405, '{"result":false,"code":"1500405","message":"method PATCH not allowed; use POST, GET","errors":null,"data":null}']);
  t.deepEqual(await raw('GET', '/v3/v3/access/rawdata/'), [404, '{"result":false,"code":"1500404","message":"no API at /v3/v3/access/rawdata/","errors":null,"data":null}'], 'the base path ends at the first /v3/');
  t.deepEqual(await raw('GET', '/admin/v3/access/rawdata/'), [404, '{"error":"not found"}']);
  t.deepEqual(await raw('POST', '/admin/faults'), [405, '{"error":"method not allowed"}']);
  t.deepEqual(await raw('PUT', '/v3/databus/cleans/%zz/'), [400, '{"error":"path parameter processing_id is not valid percent-encoding","code":"invalid_argument"}'], 'a malformed path parameter is the client\'s error');
  const stats = sim.calls.stats();
  t.is(stats.byOutcome.unknown_route, 2, 'unknown API paths are counted, admin ones are not');
  t.is(stats.byApi.update_databus_cleans, 1, 'a malformed path parameter is no call');
});

test('requests as the reference serialises them are taken (ids as text, appenv, pe_config), and the tenant and language headers are recorded', async (t) => {
  const sim = await startSim(t);
  const base = sim.url().replace(/\/$/, '');
  const send = async (method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ result: boolean; data: unknown }> => {
    const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    return (await res.json()) as { result: boolean; data: unknown };
  };
  const common = { bkdata_authentication_method: 'user', appenv: 'ieod', bk_username: 'admin', bk_app_code: 'bk_monitorv3' };
  const raw = await send('POST', '/v3/access/deploy_plan/', {
    ...common,
    data_scenario: 'queue',
    data_scenario_id: '47',
    bk_biz_id: 2,
    access_raw_data: { raw_data_name: 'kafka_raw', maintainer: 'admin' },
    access_conf_info: { resource: { type: 'kafka', scope: [{ master: '127.0.0.1:9092', topic: 't', tasks: '3', use_sasl: false }] } },
  }, { 'X-Bk-Tenant-Id': 'system', 'blueking-language': 'zh-hans' });
  t.true(raw.result);
  const rawId = (raw.data as { raw_data_id: number }).raw_data_id;
  const clean = await send('POST', '/v3/databus/cleans/', { ...common, raw_data_id: String(rawId), json_config: '{}', pe_config: '', bk_biz_id: 2, clean_config_name: 'c', result_table_name: 'tbl', result_table_name_alias: 'tbl', fields: [{ field_name: 'a' }], description: '' }, { 'X-Bk-Tenant-Id': 'tenant-a' });
  t.true(clean.result, 'raw_data_id as text names the raw data');
  t.is(sim.state.cleans.get('2_tbl')?.raw_data_id, rawId);
  t.false('appenv' in (sim.state.cleans.get('2_tbl')?.params ?? {}), 'caller fields are not part of the stored config');
  const [deploy, cleanCall] = sim.calls.entries();
  t.is(deploy?.tenant, 'system');
  t.is(deploy?.language, 'zh-hans');
  t.is(cleanCall?.tenant, 'tenant-a');
  t.is(cleanCall?.language, undefined, 'no header, nothing recorded');
});
