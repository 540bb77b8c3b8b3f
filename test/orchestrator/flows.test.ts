/**
 * Flows end to end against bkdata-sim over real HTTP, on the real broker and an embedded store: both
 * flow types reach `success` with the BKData objects the reference creates; a repeated command writes
 * nothing; a changed config updates only what changed; a clean stuck in `starting` fails after the
 * reference's iterations; business errors (4xx, result=false) fail flows without touching breakers.
 */
import test from 'ava';
import { waitFor } from '../helpers/kafka.ts';
import { keyOf, metricCommand, setup, tailCommand, waitForCommand, waitForFlow, writesAfter } from './kit.ts';

test.serial('tail sampling reaches success and builds what the reference builds', async (t) => {
  const { sim, orch } = await setup(t);
  const cmd = tailCommand('Shop-Web', { es_retention_days: 45, trace_result_table_id: '2_bkapm.trace_shop' });
  const res = await orch.operations.submit(cmd, 'http');
  t.is(res.outcome, 'accepted');
  const flow = await waitForFlow(orch, keyOf(cmd), ['success', 'config_deploy_failed', 'config_cleans_failed', 'config_cleans_start_failed', 'auth_failed', 'config_flow_failed']);
  t.is(flow.status, 'success', flow.message);
  t.is(flow.step, 'done');
  t.true(flow.is_finished);
  t.truthy(flow.finished_time);

  // deploy: dataId mutual recognition keeps the trace data id as raw data id
  t.is(flow.deploy_data_id, 1_500_001);
  t.is(flow.deploy_bk_biz_id, 2);
  const raw = sim.state.rawData.get(1_500_001);
  t.is(raw?.raw_data_name, 'bkapm_trace_2_shop_web');
  t.is(raw?.data_scenario, 'custom');
  // clean: bkapm_tail_<normalized app>, started and running
  t.is(flow.databus_clean_result_table_id, '2_bkapm_tail_shop_web');
  const clean = sim.state.cleans.get('2_bkapm_tail_shop_web');
  t.is(clean?.clean_config_name, 'bkapm_tail');
  t.is(clean?.state, 'started');
  // project authorized on the clean's table; ES resource set registered and authorized
  t.true(sim.state.grants.has('1|2_bkapm_tail_shop_web'));
  t.deepEqual(sim.state.resourceSets.get('apm_storage_id_1')?.authorized_projects, [1]);
  // dataflow named with the raw app name; source → flink → ES; started from the tail
  const df = sim.state.flows.get(flow.flow_id as number);
  t.is(df?.flow_name, 'bkapm_tail_sampling_2_Shop-Web');
  t.deepEqual(df?.nodes.map((n) => n.node_type), ['stream_source', 'flink_streaming', 'elastic_storage']);
  const es = df?.nodes[2]?.node_config;
  t.is(es?.expires, 30, 'ES expiry clamped to BK_DATA_DATA_EXPIRES_DAYS');
  t.is(es?.physical_table_name, 'write_{yyyyMMdd}_2_bkapm_trace_shop');
  t.is(es?.cluster, 'apm_storage_id_1');
  const flink = df?.nodes[1]?.node_config;
  t.is(flink?.processing_name, 'bkapm_tail_shop_web_output');
  t.deepEqual((flink?.from_nodes as { id: number }[])[0]?.id, df?.nodes[0]?.node_id);
  t.is((JSON.parse(flink?.user_args as string) as { random_sampling_ratio: number }).random_sampling_ratio, 10);
  t.is(df?.deployments.at(-1)?.action, 'start');
  t.is(df?.deployments.at(-1)?.consuming_mode, 'from_tail');
  t.true(flow.process_info.some((l) => /^\[INFO\] \d{4}-\d\d-\d\d \d\d:\d\d create deploy successfully/.test(l)));

  const { steps } = await orch.operations.get(keyOf(cmd));
  t.deepEqual(
    steps.filter((s) => s.status === 'ok').map((s) => s.step).reverse(),
    ['deploy_data_source', 'clean_config', 'start_clean', 'authorize_project', 'register_storage', 'ensure_dataflow', 'sync_nodes', 'start_dataflow'],
  );
});

test.serial('virtual metric reaches success with its five-node graph', async (t) => {
  const { sim, orch } = await setup(t);
  const cmd = metricCommand('order.svc');
  await orch.operations.submit(cmd, 'http');
  const flow = await waitForFlow(orch, keyOf(cmd), ['success', 'config_deploy_failed', 'config_cleans_failed', 'config_cleans_start_failed', 'auth_failed', 'config_flow_failed']);
  t.is(flow.status, 'success', flow.message);
  const raw = sim.state.rawData.get(flow.deploy_data_id as number);
  t.is(raw?.raw_data_name, 'bkapm_virtual_metric_order_svc');
  t.is(raw?.data_scenario, 'queue');
  t.is(flow.databus_clean_result_table_id, '2_bkapm_virtual_metric_order_svc');
  t.true(sim.state.grants.has('1|2_bkapm_virtual_metric_order_svc'));
  const df = sim.state.flows.get(flow.flow_id as number);
  t.is(df?.flow_name, 'bkapm_metrics_2_order.svc');
  t.deepEqual(df?.nodes.map((n) => n.node_type), ['stream_source', 'realtime', 'mysql_storage', 'realtime', 'mysql_storage']);
  // The aggregations' tables keep the raw app name (reference apm_metrics.py), the clean's is normalized.
  t.deepEqual(df?.nodes[3]?.node_config.from_result_table_ids, ['2_bkapm_metric_order.svc_agg']);
  t.is(df?.nodes[4]?.node_config.result_table_id, '2_bkapm_metric_order.svc_avg_agg');
  t.is(sim.calls.stats().byApi.register_storage, undefined);
  t.is(sim.calls.stats().byApi.query_resource_list, undefined, 'virtual metric registers no ES storage');
});

test.serial('a second identical command makes no write calls; a changed config updates only what changed', async (t) => {
  const { sim, orch } = await setup(t);
  const first = tailCommand('repeat', {}, { command_id: 'c1', requested_at: 1_000 });
  await orch.operations.submit(first, 'http');
  await waitForFlow(orch, keyOf(first), ['success']);

  // the same command id again: ignored without a call
  const before = sim.calls.lastSeq();
  t.is((await orch.operations.submit(first, 'kafka')).outcome, 'duplicate');

  // the same config under a new id: every step runs, reads only
  await orch.operations.submit({ ...first, command_id: 'c2', requested_at: 2_000 }, 'http');
  const again = await waitForFlow(orch, keyOf(first), ['success']);
  t.is(again.command_id, 'c2');
  t.deepEqual(writesAfter(sim, before), []);
  t.true(sim.calls.lastSeq() > before, 'the steps did read BKData');

  // a new sampling percentage: only the Flink node changes, and the running dataflow is restarted
  const mark = sim.calls.lastSeq();
  await orch.operations.submit({ ...first, command_id: 'c3', requested_at: 3_000, config: { data_id: 1_500_001, tail_percentage: 55 } }, 'http');
  const changed = await waitForFlow(orch, keyOf(first), ['success']);
  t.is(changed.command_id, 'c3');
  t.deepEqual(writesAfter(sim, mark), ['update_data_flow_node', 'restart_data_flow']);
  const update = sim.calls.entries(mark).find((c) => c.api === 'update_data_flow_node');
  t.is(update?.params.node_type, 'flink_streaming');
  const df = sim.state.flows.get(changed.flow_id as number);
  t.is(df?.deployments.at(-1)?.consuming_mode, 'continue', 'no SQL changed: restart continues where it was');

  // an older command arriving late is ignored
  t.is((await orch.operations.submit({ ...first, command_id: 'c0', requested_at: 500 }, 'kafka')).outcome, 'stale');
});

test.serial('a clean stuck in starting fails the flow with config_cleans_start_failed after 10 start attempts', async (t) => {
  const { sim, orch } = await setup(t, { BKDATA_SIM_STUCK_CLEANS: '*_bkapm_tail_stuck' });
  const cmd = tailCommand('stuck');
  await orch.operations.submit(cmd, 'http');
  const flow = await waitForFlow(orch, keyOf(cmd), ['config_cleans_start_failed', 'success']);
  t.is(flow.status, 'config_cleans_start_failed');
  t.is(flow.step, 'start_clean');
  t.regex(flow.message, /status is not running/);
  const stats = sim.calls.stats();
  t.is(stats.byApi.start_databus_cleans, 10, 'APM_APP_BKDATA_FETCH_STATUS_THRESHOLD iterations');
  t.is(stats.byApi.get_databus_cleans, 11, 'one read before the loop and one per iteration');
  t.is(stats.byApi.auth_result_table, undefined, 'nothing after the failed step ran');

  // a retry starts the loop again from the failed step (and the clean is no longer stuck)
  sim.faults.stuckCleans = [];
  await orch.operations.retry(keyOf(cmd));
  const retried = await waitForFlow(orch, keyOf(cmd), ['success', 'config_cleans_start_failed']);
  t.is(retried.status, 'success');
  t.is(sim.calls.stats().byApi.access_deploy_plan, 1, 'finished steps are not repeated');
});

test.serial('4xx errors fail the flow with the step status and never open a breaker', async (t) => {
  const { sim, orch, registry } = await setup(t, { BKDATA_SIM_FAMILY_ERROR_RATES: 'auth=1', BKDATA_SIM_ERROR_MODE: 'http_4xx' }, { ORCH_BREAKER_VOLUME_THRESHOLD: '2' });
  const cmds = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'].map((app) => tailCommand(app, { data_id: 1_500_100 + Number(app.slice(1)) }));
  for (const c of cmds) await orch.operations.submit(c, 'http');
  for (const c of cmds) {
    const f = await waitForFlow(orch, keyOf(c), ['auth_failed', 'success']);
    t.is(f.status, 'auth_failed');
    t.regex(f.message, /HTTP 400/);
  }
  t.is(orch.breakers.auth.state(), 'closed');
  const stats = sim.calls.stats();
  // check (counted as "no permission") and grant, for each flow: all reached the API
  t.is(stats.byApi.auth_projects_data_check, 6);
  t.is(stats.byApi.auth_result_table, 6);
  t.notRegex(await registry.metrics(), /bkstream_breaker_calls_total\{breaker="auth",result="rejected"\}/);
  t.regex(await registry.metrics(), /bkstream_breaker_state\{breaker="auth"\} 0/);
});

test.serial('result=false business errors fail the flow with the reference status without retries', async (t) => {
  const { sim, orch } = await setup(t, { BKDATA_SIM_FAMILY_ERROR_RATES: 'access=1', BKDATA_SIM_ERROR_MODE: 'result_false' });
  const cmd = metricCommand('bizerr');
  await orch.operations.submit(cmd, 'http');
  const flow = await waitForFlow(orch, keyOf(cmd), ['config_deploy_failed', 'success']);
  t.is(flow.status, 'config_deploy_failed');
  t.regex(flow.message, /result=false/);
  t.is(sim.calls.stats().byApi.access_deploy_plan, 1);
  t.is(orch.breakers.access.state(), 'closed');
});

test.serial('transient 5xx errors are retried with backoff and the flow still succeeds', async (t) => {
  const { sim, orch } = await setup(t, { BKDATA_SIM_ERROR_RATE: '0.3' }, { ORCH_BREAKER_ERROR_THRESHOLD_PCT: '90', ORCH_STEP_RETRIES: '20' });
  const cmds = [tailCommand('flaky1', { data_id: 1_500_201 }), metricCommand('flaky2')];
  for (const c of cmds) await orch.operations.submit(c, 'http');
  for (const c of cmds) t.is((await waitForFlow(orch, keyOf(c), ['success', 'config_deploy_failed', 'config_cleans_failed', 'config_cleans_start_failed', 'auth_failed', 'config_flow_failed'])).status, 'success');
  t.true((sim.calls.stats().byOutcome.injected_error ?? 0) > 0, 'errors were injected');
});

test.serial('stop and delete: the dataflow is stopped (then deleted) and the clean stopped; create works again after', async (t) => {
  const { sim, orch } = await setup(t, { BKDATA_SIM_FLOW_STOP_DELAY_MS: '200' });
  const cmd = tailCommand('lifecycle', {}, { requested_at: 1 });
  await orch.operations.submit(cmd, 'http');
  const created = await waitForFlow(orch, keyOf(cmd), ['success']);
  const flowId = created.flow_id as number;

  await orch.operations.submit({ ...cmd, action: 'stop', config: {}, requested_at: 2 }, 'http');
  const stopped = await waitForFlow(orch, keyOf(cmd), ['stopped', 'stop_failed']);
  t.is(stopped.status, 'stopped');
  t.is(sim.state.flows.get(flowId)?.target, 'no-start');
  t.is(sim.state.cleans.get('2_bkapm_tail_lifecycle')?.state, 'stopped');
  t.true((sim.calls.stats().byApi.get_data_flow ?? 0) >= 2, 'waited for the stop to complete');

  // a second stop finds everything stopped and writes nothing
  const mark = sim.calls.lastSeq();
  await orch.operations.submit({ ...cmd, action: 'stop', config: {}, requested_at: 3 }, 'http');
  await waitForCommand(orch, keyOf(cmd), 3, ['stopped']);
  t.deepEqual(writesAfter(sim, mark), []);

  await orch.operations.submit({ ...cmd, action: 'delete', config: {}, requested_at: 4 }, 'http');
  const deleted = await waitForFlow(orch, keyOf(cmd), ['deleted', 'delete_failed', 'stop_failed']);
  t.is(deleted.status, 'deleted');
  t.is(deleted.flow_id, null);
  t.false(sim.state.flows.has(flowId));

  await orch.operations.submit({ ...cmd, requested_at: 5 }, 'http');
  const again = await waitForFlow(orch, keyOf(cmd), ['success']);
  t.not(again.flow_id, flowId, 'a new dataflow');
  t.is(sim.calls.stats().writesByApi.access_deploy_plan, 1, 'the raw data is kept and reused');
});

test.serial('a create whose answer was lost is adopted on the next attempt, never made twice', async (t) => {
  // BKData carries out the creates but the answers never arrive (connection reset after the work).
  const { sim, orch } = await setup(t, { BKDATA_SIM_LOST_ANSWER_RATES: 'access=1,databus=1' });
  const cmds = [tailCommand('lost1', { data_id: 1_500_301 }), metricCommand('lost2')];
  for (const c of cmds) await orch.operations.submit(c, 'http');
  const lost = (api: string): number => sim.calls.entries().filter((c) => c.api === api && c.outcome === 'answer_lost').length;
  await waitFor('both raw data creates to lose their answer', () => lost('access_deploy_plan') >= 2);
  sim.faults.lostAnswerRates.access = 0;
  await waitFor('both clean creates to lose their answer', () => lost('databus_cleans') >= 2);
  sim.faults.lostAnswerRates.databus = 0;
  for (const c of cmds) {
    const f = await waitForFlow(orch, keyOf(c), ['success', 'config_deploy_failed', 'config_cleans_failed']);
    t.is(f.status, 'success', f.message);
    t.true(f.process_info.some((l) => /raw data exists already .* adopted/.test(l)), 'raw data adopted');
    t.true(f.process_info.some((l) => /clean \S+ exists already .* adopted/.test(l)), 'clean adopted');
  }
  t.is(sim.state.rawData.size, 2);
  t.is(sim.state.cleans.size, 2);
  const writes = sim.calls.stats().writesByApi;
  t.is(writes.access_deploy_plan, 2, 'each raw data created once');
  t.is(writes.databus_cleans, 2, 'each clean created once');
  t.is(writes.update_deploy_plan ?? 0, 0, 'an adopted raw data created by an earlier attempt of the same request is not updated');
  t.is(writes.update_databus_cleans ?? 0, 0, 'nor an adopted clean');
});

test.serial('retriable errors while a virtual-metric clean starts do not use up its 3 reference retries', async (t) => {
  // The clean is held in `starting` and the retries are 1 s apart, so the test can fault BKData between
  // the first status read and the first retry without racing the flow.
  const { sim, orch } = await setup(t, { BKDATA_SIM_STUCK_CLEANS: '*' }, { ORCH_BREAKER_ERROR_THRESHOLD_PCT: '100', BKDATA_CLEAN_POLL_INTERVAL_MS: '1000' });
  const cmd = metricCommand('vm-5xx');
  await orch.operations.submit(cmd, 'http');
  await waitFor('the clean started and read as starting', () => {
    const calls = sim.calls.entries();
    const started = calls.find((c) => c.api === 'start_databus_cleans' && c.outcome === 'ok');
    return started !== undefined && calls.some((c) => c.api === 'get_databus_cleans' && c.outcome === 'ok' && c.seq > started.seq);
  }, 60_000, 1);
  // Every databus call now fails with 503, more times than the clean has retries.
  sim.faults.errorRates.databus = 1;
  await waitFor('more failed databus calls than the clean has retries (or the flow to give up)', async () =>
    (sim.calls.stats().byOutcome.injected_error ?? 0) >= 6 || (await orch.flows.get(keyOf(cmd)))?.status === 'config_cleans_start_failed', 60_000, 5);
  t.not((await orch.flows.get(keyOf(cmd)))?.status, 'config_cleans_start_failed', 'the 503s did not count as retries');
  sim.faults.stuckCleans = [];
  sim.faults.errorRates.databus = 0;
  const flow = await waitForFlow(orch, keyOf(cmd), ['success', 'config_cleans_start_failed', 'config_cleans_failed']);
  t.is(flow.status, 'success', flow.message);
});
