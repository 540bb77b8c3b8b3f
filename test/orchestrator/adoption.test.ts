/**
 * Adopting dataflows the reference created (README, Differences from the reference; errata §3): node
 * texts BKData keeps — the virtual metric's SQL, the Flink node's `user_args` — written as the reference
 * writes them (reference-texts.ts, literal texts) are found equal, so a new flow row taking over such a
 * dataflow neither updates a node nor restarts it. One byte off is an update and a restart.
 */
import test from 'ava';
import { loadConfig } from '../../services/common/config.ts';
import type { ApiName } from '../../services/orchestrator/bkdata-client.ts';
import { flowSettings, orchestratorSpec } from '../../services/orchestrator/config.ts';
import { planOf } from '../../services/orchestrator/kinds/index.ts';
import { tailSampling } from '../../services/orchestrator/kinds/tail-sampling.ts';
import { virtualMetric } from '../../services/orchestrator/kinds/virtual-metric.ts';
import { memoryBkdata, runPlan, sampleFlow } from './memory-bkdata.ts';
import { referenceAggSql, referenceAvgSql } from './reference-texts.ts';

const settings = flowSettings(loadConfig(orchestratorSpec, { env: { BKDATA_API_URL: 'http://127.0.0.1:8090/' } }));
const DATAFLOW_WRITES: readonly ApiName[] = ['create_data_flow', 'add_data_flow_node', 'update_data_flow_node', 'start_data_flow', 'restart_data_flow'];

test('a virtual-metric dataflow with the reference SQL and raw-app-name tables is adopted without a node update or a restart', async (t) => {
  const bkdata = memoryBkdata();
  const first = sampleFlow(virtualMetric, { data_id: 9 }, 'Shop-Web.v2');
  await runPlan(t, planOf('virtual_metric', 'running'), virtualMetric, first, bkdata.call, settings);
  const df = bkdata.state.flows.get(first.flow_id as number);
  if (!df) return void t.fail('no dataflow');
  // What the reference's task wrote: its tables named with the raw app name, its SQL texts.
  const [agg, avg] = df.nodes.filter((n) => n.node_type === 'realtime');
  t.is(agg?.node_config.table_name, 'bkapm_metric_Shop-Web.v2_agg');
  t.is(avg?.node_config.table_name, 'bkapm_metric_Shop-Web.v2_avg_agg');
  agg!.node_config.sql = referenceAggSql('2_bkapm_virtual_metric_shop_web_v2');
  avg!.node_config.sql = referenceAvgSql('2_bkapm_metric_Shop-Web.v2_agg');

  const mark = bkdata.calls.length;
  // A new flow row for the same app: what takes over a dataflow it did not create.
  const adopter = sampleFlow(virtualMetric, first.config, first.app_name);
  await runPlan(t, planOf('virtual_metric', 'running'), virtualMetric, adopter, bkdata.call, settings);
  t.is(adopter.flow_id, first.flow_id, 'found by name');
  t.deepEqual(bkdata.calls.slice(mark).filter((api) => DATAFLOW_WRITES.includes(api)), [], 'no node written, nothing (re)started');

  // One byte off (upper-case FROM, as this orchestrator wrote before): one update and a restart from the tail.
  agg!.node_config.sql = (agg!.node_config.sql as string).replace('\nfrom ', '\nFROM ');
  const again = bkdata.calls.length;
  await runPlan(t, planOf('virtual_metric', 'running'), virtualMetric, sampleFlow(virtualMetric, first.config, first.app_name), bkdata.call, settings);
  t.deepEqual(bkdata.calls.slice(again).filter((api) => DATAFLOW_WRITES.includes(api)), ['update_data_flow_node', 'restart_data_flow']);
  t.is(df.deployments.at(-1)?.consuming_mode, 'from_tail');
});

test('a tail-sampling Flink node whose user_args is the reference json.dumps text is adopted without a node update or a restart', async (t) => {
  const bkdata = memoryBkdata();
  const config = { data_id: 1_500_001, tail_percentage: 25, tail_conditions: [{ method: 'reg', key: 'attributes.http.url', value: ['/订单'] }, { condition: 'or', key: 'status.code', method: 'eq', value: ['2'] }] };
  const first = sampleFlow(tailSampling, config, 'shop');
  await runPlan(t, planOf('tail_sampling', 'running'), tailSampling, first, bkdata.call, settings);
  const flink = bkdata.state.flows.get(first.flow_id as number)?.nodes.find((n) => n.node_type === 'flink_streaming');
  if (!flink) return void t.fail('no Flink node');
  // TailSamplingFlinkNode.args through json.dumps, the conditions as the reference's serializer hands them on.
  flink.node_config.user_args =
    '{"input_table_id": "2_bkapm_tail_shop", "output_table_id": "2_bkapm_tail_shop_output", "trace_session_gap_min": 30, "trace_mark_timeout_min": 1440, ' +
    '"sampling_conditions": [{"key": "attributes.http.url", "method": "reg", "value": ["/\\u8ba2\\u5355"]}, {"condition": "or", "key": "status.code", "method": "eq", "value": ["2"]}], ' +
    '"max_span_count": 10000, "random_sampling_ratio": 25}';

  const mark = bkdata.calls.length;
  const adopter = sampleFlow(tailSampling, config, 'shop');
  await runPlan(t, planOf('tail_sampling', 'running'), tailSampling, adopter, bkdata.call, settings);
  t.is(adopter.flow_id, first.flow_id);
  t.deepEqual(bkdata.calls.slice(mark).filter((api) => DATAFLOW_WRITES.includes(api)), []);

  // JSON.stringify's compact text of the same arguments is a change: an update and a restart.
  flink.node_config.user_args = JSON.stringify(JSON.parse(flink.node_config.user_args as string));
  const again = bkdata.calls.length;
  await runPlan(t, planOf('tail_sampling', 'running'), tailSampling, sampleFlow(tailSampling, config, 'shop'), bkdata.call, settings);
  t.deepEqual(bkdata.calls.slice(again).filter((api) => DATAFLOW_WRITES.includes(api)), ['update_data_flow_node', 'restart_data_flow']);
});
