/**
 * The BKData client over real HTTP (against bkdata-sim and a server that misbehaves): paths, envelope,
 * and the error mapping the breakers rely on — 5xx, timeouts and connection failures are retriable;
 * 4xx and result=false are business errors that never count against a breaker.
 */
import test from 'ava';
import { createBreaker } from '../../services/common/breaker.ts';
import { isRetriable } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createHttpServer } from '../../services/common/http.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { matchRoute } from '../../services/bkdata-sim/api.ts';
import { BKDATA_APIS, BkdataApiError, BkdataClient, isEnvelopeError, type ApiName } from '../../services/orchestrator/bkdata-client.ts';
import { SERIALIZER_APIS } from '../../services/orchestrator/bkdata-serializers.ts';
import type { FlowSettings } from '../../services/orchestrator/config.ts';
import * as tail from '../../services/orchestrator/kinds/tail-sampling.ts';
import * as metric from '../../services/orchestrator/kinds/virtual-metric.ts';
import { startSim } from './kit.ts';

function client(baseUrl: string, timeoutMs = 5_000): BkdataClient {
  return new BkdataClient({ baseUrl, appCode: 'bk_monitorv3', username: 'admin', timeoutMs });
}

test('every API the flows use is served by bkdata-sim at the same method and path', (t) => {
  for (const [name, def] of Object.entries(BKDATA_APIS)) {
    const path = def.path.replace(/\{\w+\}/g, '1');
    const m = matchRoute(def.method, `/api/bk-base/prod${path}`);
    t.true(m !== undefined && 'route' in m && m.route.name === name, `${def.method} ${def.path} → ${name}`);
    if (m && 'route' in m) t.is(m.route.family, def.family);
  }
});

test('URLs: placeholders filled, GET parameters in the query string, base path kept', (t) => {
  const c = client('http://127.0.0.1:1/api/bk-base/prod/');
  t.is(c.url('update_deploy_plan', { raw_data_id: 5 }), 'http://127.0.0.1:1/api/bk-base/prod/v3/access/deploy_plan/5');
  t.is(
    c.url('get_databus_cleans', { raw_data_id: 5 }),
    'http://127.0.0.1:1/api/bk-base/prod/v3/databus/cleans/?bkdata_authentication_method=user&appenv=ieod&raw_data_id=5&bk_username=admin&bk_app_code=bk_monitorv3',
  );
  t.throws(() => c.url('get_data_flow', {}), { instanceOf: BkdataApiError, message: /flow_id is required/ });
});

test('envelopes are unwrapped; business errors (result=false, 4xx) are not retriable, 5xx is', async (t) => {
  const sim = await startSim(t);
  const c = client(sim.url());
  const { raw_data_id } = await c.request<{ raw_data_id: number }>('access_deploy_plan', {
    bk_biz_id: 2,
    data_scenario: 'custom',
    access_raw_data: { raw_data_name: 'r1', preassigned_data_id: 42 },
  });
  t.is(raw_data_id, 42);
  t.deepEqual(await c.request('get_databus_cleans', { raw_data_id: 42 }), []);
  t.is(sim.calls.entries().at(-1)?.params.bk_app_code, 'bk_monitorv3', 'common parameters are sent');
  t.true((sim.calls.entries().at(-1)?.sentAt ?? 0) > 0, 'the send time travels in a header');

  const conflict = await t.throwsAsync(c.request('access_deploy_plan', { bk_biz_id: 2, data_scenario: 'custom', access_raw_data: { raw_data_name: 'r1' } }), { instanceOf: BkdataApiError });
  t.false(isRetriable(conflict));
  t.is(conflict?.bkCode, '1500409');
  t.regex(conflict?.message ?? '', /^access_deploy_plan: result=false \(code 1500409\): raw data r1 already exists/);

  for (const [mode, status, retriable] of [['http_5xx', 503, true], ['http_4xx', 400, false], ['result_false', 200, false]] as const) {
    sim.faults.errorRates.databus = 1;
    sim.faults.errorMode = mode;
    const err = await t.throwsAsync(c.request('get_databus_cleans', { raw_data_id: 42 }), { instanceOf: BkdataApiError });
    t.is(err?.httpStatus, status, mode);
    t.is(isRetriable(err), retriable, mode);
  }
});

test('timeouts, connection failures and non-envelope answers are retriable', async (t) => {
  const sim = await startSim(t, { BKDATA_SIM_LATENCY_MS: '500' });
  const slow = await t.throwsAsync(client(sim.url(), 50).request('query_resource_list'), { instanceOf: BkdataApiError });
  t.true(isRetriable(slow));
  t.regex(slow?.message ?? '', /timed out after 50 ms/);

  const refused = await t.throwsAsync(client('http://127.0.0.1:1/').request('query_resource_list'), { instanceOf: BkdataApiError });
  t.true(isRetriable(refused));
  t.regex(refused?.message ?? '', /request failed/);

  sim.faults.latencyMs = 0;
  sim.addOutage(60_000);
  const reset = await t.throwsAsync(client(sim.url()).request('query_resource_list'), { instanceOf: BkdataApiError });
  t.true(isRetriable(reset), 'an outage resets connections');

  const proxy = createHttpServer({ port: 0, registry: createRegistry(), health: () => ({ ok: true }), logger: silentLogger, routes: [{ method: 'GET', path: /^\/v3\//, handle: () => ({ status: 200, body: '<html>gateway</html>' }) }] });
  await proxy.start();
  t.teardown(() => proxy.stop());
  const html = await t.throwsAsync(client(`http://127.0.0.1:${proxy.port()}`).request('query_resource_list'), { instanceOf: BkdataApiError });
  t.true(isRetriable(html));
  t.regex(html?.message ?? '', /without a BKData envelope/);
});

test('through a breaker: business errors never open it (they count as answers), 5xx do', async (t) => {
  const sim = await startSim(t);
  const c = client(sim.url());
  // A per-call timeout far above an answer's time, so that a loaded machine cannot turn answers into timeouts.
  const breaker = createBreaker({ name: 'databus', volumeThreshold: 2, resetTimeoutMs: 60_000, timeoutMs: 5_000 });
  t.teardown(() => breaker.shutdown());
  const call = (api: ApiName, params: Record<string, unknown>): Promise<unknown> => breaker.fire((signal) => c.request(api, params, signal));
  sim.faults.errorRates.databus = 1;
  sim.faults.errorMode = 'http_4xx';
  for (let i = 0; i < 6; i++) await t.throwsAsync(call('get_databus_cleans', { raw_data_id: 1 }));
  t.is(breaker.state(), 'closed');
  sim.faults.errorMode = 'http_5xx';
  // business errors were answers: it takes more 5xx than answers to pass 50 %
  for (let i = 0; i < 10 && breaker.state() === 'closed'; i++) await t.throwsAsync(call('get_databus_cleans', { raw_data_id: 1 }));
  t.is(breaker.state(), 'open');
  const before = sim.calls.stats().total;
  await t.throwsAsync(call('get_databus_cleans', { raw_data_id: 1 }), { message: /circuit breaker databus is open/ });
  t.is(sim.calls.stats().total, before, 'no call reached the API while open');
});

test('an envelope is an error only when result is falsy and code is not 0; a body without result is a success (reference APIResource; errata §4)', async (t) => {
  t.false(isEnvelopeError({ code: '1500200', data: 1 }), 'no result: success');
  t.false(isEnvelopeError({ data: 1 }));
  t.false(isEnvelopeError({ result: false, code: 0 }), 'result false with code 0: success');
  t.true(isEnvelopeError({ result: false }), 'no code counts as -1');
  t.true(isEnvelopeError({ result: false, code: '0' }), 'the text "0" is not 0');
  for (const falsy of [null, 0, '', [], {}]) t.true(isEnvelopeError({ result: falsy, code: 1 }), JSON.stringify(falsy));
  t.false(isEnvelopeError({ result: 'ok', code: 1 }), 'a truthy result wins over the code');

  const bodies: Record<string, string> = {
    noResult: JSON.stringify({ code: 0, message: '', data: [{ resource_group_id: 'a' }] }),
    falseCodeZero: JSON.stringify({ result: false, code: 0, data: 'kept' }),
    falseNoCode: JSON.stringify({ result: false, message: 'refused' }),
    list: JSON.stringify([{ resource_group_id: 'b' }]),
    permission: JSON.stringify({ result: true, code: '9900403', message: 'no permission', data: null }),
  };
  const server = createHttpServer({ port: 0, registry: createRegistry(), health: () => ({ ok: true }), logger: silentLogger, routes: [{ method: 'GET', path: /^\/v3\//, handle: (req) => ({ status: 200, body: bodies[req.query.get('case') ?? ''] ?? '' }) }] });
  await server.start();
  t.teardown(() => server.stop());
  const c = client(`http://127.0.0.1:${server.port()}`);
  t.deepEqual(await c.request('query_resource_list', { case: 'noResult' }), [{ resource_group_id: 'a' }]);
  t.is(await c.request('query_resource_list', { case: 'falseCodeZero' }), 'kept');
  t.deepEqual(await c.request('query_resource_list', { case: 'list' }), [{ resource_group_id: 'b' }], 'JSON that is no object is the answer');
  const refused = await t.throwsAsync(c.request('query_resource_list', { case: 'falseNoCode' }), { instanceOf: BkdataApiError });
  t.false(isRetriable(refused));
  t.regex(refused?.message ?? '', /result=false \(code \?\): refused/);
  const denied = await t.throwsAsync(c.request('query_resource_list', { case: 'permission' }), { instanceOf: BkdataApiError });
  t.false(isRetriable(denied), 'the permission centre\'s code is a business error even with result=true');
  t.is(denied?.bkCode, '9900403');
});

const flowSettings = { operator: 'admin', maintainers: [], defaultBkBizId: 2, virtualMetricProjectId: 1, tailSamplingProjectId: 1 } as unknown as FlowSettings;
const shop = { bkBizId: 2, appName: 'shop' };

test('every API has an entry in the serializer table', (t) => {
  t.deepEqual([...SERIALIZER_APIS].sort(), Object.keys(BKDATA_APIS).sort());
});

test('requests are sent as the reference serializers make them: undeclared fields dropped, values coerced, defaults added (errata §4)', (t) => {
  const c = client('http://127.0.0.1:1/');
  const deploy = c.payload('access_deploy_plan', tail.deployParams(shop, { data_id: 1_500_001, app_creator: 'bob' }, flowSettings));
  t.false('operator' in deploy, 'operator is not declared');
  t.false('permission' in deploy, 'permission is not declared');
  t.is(deploy.data_scenario_id, '47', 'a CharField');
  t.is(deploy.appenv, 'ieod');
  t.is(deploy.bkdata_authentication_method, 'user');
  t.is((deploy.access_raw_data as Record<string, unknown>).preassigned_data_id, 1_500_001);
  t.deepEqual(Object.keys(deploy.access_raw_data as object), ['raw_data_name', 'raw_data_alias', 'maintainer', 'data_source', 'data_encoding', 'sensitivity', 'description', 'tags', 'data_source_tags', 'data_region', 'preassigned_data_id']);
  t.is(c.payload('update_deploy_plan', { raw_data_id: 9, ...tail.deployParams(shop, { data_id: 9 }, flowSettings) }).raw_data_id, '9');

  const kafka = c.payload('access_deploy_plan', metric.deployParams(shop, { data_id: 9, kafka: { partitions: 3, use_sasl: false } }, flowSettings));
  const conf = kafka.access_conf_info as { collection_model: Record<string, unknown>; resource: { scope: Record<string, unknown>[] } };
  t.is(conf.resource.scope[0]!.tasks, '3', 'Kafka tasks as text');
  t.is(conf.resource.scope[0]!.use_sasl, false);
  t.deepEqual(conf.collection_model, { collection_type: 'incr', start_at: 1, period: '1' });

  const clean = c.payload('databus_cleans', metric.cleanParams(shop, flowSettings, 77));
  t.is(clean.pe_config, '', 'pe_config added');
  t.is(clean.raw_data_id, '77', 'raw_data_id as text');
  t.is(clean.appenv, 'ieod');
  const update = c.payload('update_databus_cleans', { ...tail.cleanParams(shop, flowSettings, 77), processing_id: '2_bkapm_tail_shop' });
  t.is(update.pe_config, '');
  t.is(update.processing_id, '2_bkapm_tail_shop');

  t.deepEqual(c.payload('restart_data_flow', { flow_id: '7', consuming_mode: 'continue', cluster_group: 'default_inland', extra: 1 }), {
    bkdata_authentication_method: 'user',
    appenv: 'ieod',
    flow_id: 7,
    consuming_mode: 'continue',
    cluster_group: 'default_inland',
    bk_username: 'admin',
    bk_app_code: 'bk_monitorv3',
  });
  t.deepEqual(c.payload('auth_projects_data_check', { project_id: 1, result_table_id: '2_x' }).action_id, 'result_table.query_data', 'default');
  const node = c.payload('add_data_flow_node', { flow_id: 7, from_links: [], node_type: 'realtime', config: { counter: null, sql: ' kept as is ' }, frontend_info: { x: 100, y: 100 } });
  t.deepEqual(node.config, { counter: null, sql: ' kept as is ' }, 'a node config is a DictField: untouched');
  t.deepEqual(c.payload('update_resource_set', { resource_set_id: 'r', bk_username: 'admin', authorized_projects: [1] }), { resource_set_id: 'r', bk_username: 'admin', authorized_projects: [1], bk_app_code: 'bk_monitorv3' }, 'no serializer: as it is, no appenv');

  const bad = t.throws(() => c.payload('get_data_flow', { flow_id: 'seven' }), { instanceOf: BkdataApiError });
  t.false(isRetriable(bad));
  t.regex(bad?.message ?? '', /invalid parameters: flow_id: a valid integer is required/);
});

test('serialized requests reach bkdata-sim and it takes them (text ids, no operator)', async (t) => {
  const sim = await startSim(t);
  const c = client(sim.url());
  const { raw_data_id } = await c.request<{ raw_data_id: number }>('access_deploy_plan', tail.deployParams(shop, { data_id: 4242 }, flowSettings));
  t.is(raw_data_id, 4242);
  const sent = sim.calls.entries().at(-1)?.params ?? {};
  t.is(sent.appenv, 'ieod');
  t.is(sent.data_scenario_id, '47');
  t.false('operator' in sent);
  const created = await c.request<{ result_table_id: string }>('databus_cleans', tail.cleanParams(shop, flowSettings, raw_data_id));
  t.is(created.result_table_id, '2_bkapm_tail_shop');
  t.is(sim.calls.entries().at(-1)?.params.raw_data_id, '4242');
  t.is(sim.state.cleans.get('2_bkapm_tail_shop')?.raw_data_id, 4242, 'the text id names the raw data');
});

test('every request carries the tenant and language headers of the reference (X-Bk-Tenant-Id, blueking-language)', async (t) => {
  const sim = await startSim(t);
  await client(sim.url()).request('query_resource_list');
  await client(sim.url()).request('get_data_flow_list', { project_id: 1 });
  for (const call of sim.calls.entries()) {
    t.is(call.tenant, 'system', `${call.api}: the single-tenant default`);
    t.is(call.language, 'zh-hans', `${call.api}: the reference's LANGUAGE_CODE`);
  }
  const other = new BkdataClient({ baseUrl: sim.url(), appCode: 'bk_monitorv3', username: 'admin', timeoutMs: 5_000, tenantId: 'tenant-a', language: '' });
  await other.request('databus_cleans', { bk_biz_id: 2, raw_data_id: 1, json_config: '{}', fields: [], clean_config_name: 'c', result_table_name: 't', result_table_name_alias: 't' }).catch(() => undefined);
  const last = sim.calls.entries().at(-1);
  t.is(last?.api, 'databus_cleans');
  t.is(last?.tenant, 'tenant-a');
  t.is(last?.language, undefined, 'an empty language sends no header');
});
