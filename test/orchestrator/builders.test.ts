/**
 * The pure parts: names, request parameters and node graphs of both flow types, node identity and
 * diffing, config comparison. Facts ported from the reference (bk-monitor apm/tests/test_bkdata_flow.py
 * and the quirks in services/orchestrator/README.md, "Differences from the reference") are marked "reference".
 */
import test from 'ava';
import { canonical, configDiffers, deepEqual } from '../../services/orchestrator/compare.ts';
import type { FlowSettings } from '../../services/orchestrator/config.ts';
import { normalizeAppName } from '../../services/orchestrator/kinds/kind.ts';
import * as tail from '../../services/orchestrator/kinds/tail-sampling.ts';
import * as metric from '../../services/orchestrator/kinds/virtual-metric.ts';
import { checkGraph, findNode, isSameNode, needsUpdate, nodePayload, positions, sqlChanged, type NodeDef } from '../../services/orchestrator/nodes.ts';
import { pythonJsonDumps } from '../../services/orchestrator/python-json.ts';
import { referenceAggSql, referenceAvgSql } from './reference-texts.ts';

const settings: FlowSettings = {
  operator: 'admin',
  maintainers: ['zoe', 'bob'],
  defaultBkBizId: 2,
  tailSamplingProjectId: 123,
  virtualMetricProjectId: 456,
  requiredTempConvertNode: false,
  dataExpiresDays: 30,
  virtualMetricStorage: 'mysql-default',
  virtualMetricStorageExpireDays: 30,
  mysqlStorageNodeType: 'mysql_storage',
  storageRegistryAreaCode: 'inland',
  flowClusterGroup: 'default_inland',
  flinkCode: '  class X {}\n',
};
const shop = { bkBizId: 2, appName: 'Shop-Web.v2' };

test('app names are normalized for tables (strip, - and . to _, lower case) but kept raw in flow names (reference quirk; README, Differences from the reference)', (t) => {
  t.is(normalizeAppName('  Shop-Web.v2 '), 'shop_web_v2');
  t.is(tail.cleanTableName(shop), 'bkapm_tail_shop_web_v2');
  t.is(tail.flowName(shop, settings), 'bkapm_tail_sampling_2_Shop-Web.v2');
  t.is(metric.flowName(shop), 'bkapm_metrics_2_Shop-Web.v2');
  t.is(tail.cleanTableName({ bkBizId: 2, appName: 'a'.repeat(60) }).length, 50, 'clean table name cut to 50');
  t.is(metric.datasourceName({ bkBizId: 2, appName: 'a'.repeat(60) }), 'a'.repeat(50), 'raw data name: the last 50 characters');
  t.is(metric.datasourceName(shop), 'bkapm_virtual_metric_shop_web_v2');
});

test('apps in spaces (bk_biz_id <= 0) use the default BKData business (reference test_resolve_bkdata_biz_id)', (t) => {
  t.is(tail.bkdataBizId(-100, settings), 2);
  t.is(tail.bkdataBizId(1001, settings), 1001);
  const space = { bkBizId: -100, appName: 'demo' };
  t.is(tail.deployParams(space, { data_id: 5 }, settings).bk_biz_id, 2);
  t.is(tail.flowName(space, settings), 'bkapm_tail_sampling_2_demo');
  // reference test_tail_sampling_registers_storage_in_resolved_bkdata_business
  t.is(tail.resourceSetParams(space, { data_id: 5 }, { ...settings, defaultBkBizId: 9527 }).bk_biz_id, 9527);
});

test('tail sampling deploy params: dataId mutual recognition, sorted unique maintainers', (t) => {
  const p = tail.deployParams(shop, { data_id: 1_500_001, app_creator: 'bob' }, settings);
  t.is(p.data_scenario, 'custom');
  t.is(p.data_scenario_id, 47);
  t.is(p.description, 'APM应用: Shop-Web.v2 业务ID: 2Trace数据源');
  const raw = p.access_raw_data as Record<string, unknown>;
  t.is(raw.raw_data_name, 'bkapm_trace_2_shop_web_v2');
  t.is(raw.preassigned_data_id, 1_500_001);
  t.is(raw.maintainer, 'admin,bob,zoe');
  t.deepEqual(raw.data_source_tags, ['server']);
  t.deepEqual(tail.deployParams(shop, { data_id: 1_500_001, app_creator: 'bob' }, settings), p, 'deterministic: no needless update_deploy_plan');
});

test('tail sampling clean params and ETL', (t) => {
  const p = tail.cleanParams(shop, settings, 77);
  t.is(p.clean_config_name, 'bkapm_tail');
  t.is(p.result_table_name, 'bkapm_tail_shop_web_v2');
  t.is(p.result_table_name_alias, p.result_table_name);
  t.is(p.raw_data_id, 77);
  t.deepEqual((p.fields as { field_name: string }[]).map((f) => f.field_name), ['span_id', 'trace_id', 'span_info', 'datetime']);
  const etl = JSON.parse(p.json_config as string) as { conf: Record<string, unknown> };
  t.deepEqual(etl.conf, { time_format: 'yyyy-MM-dd HH:mm:ss', timezone: 8, time_field_name: 'datetime', output_field_name: 'timestamp', timestamp_len: 0, encoding: 'UTF-8' });
  t.regex(p.json_config as string, /"key":"__all_keys__"/);
});

test('ES storage registration names and table (reference test: cluster 1 "es", rt 2_bkapm.trace)', (t) => {
  const config = { data_id: 1, trace_result_table_id: '2_bkapm.trace', es_cluster: { cluster_id: 1, cluster_name: 'es', host: 'es.example.com', port: 9300, username: 'username', password: 'password' } };
  t.is(tail.esTableName(shop, config), '2_bkapm_trace');
  const p = tail.resourceSetParams(shop, config, settings);
  t.is(p.resource_set_id, 'apm_storage_id_1');
  t.is(p.resource_set_name, 'apm_storage_es');
  t.is(p.category, 'es');
  t.deepEqual((p.connection_info as Record<string, unknown>).transport, 9300);
  t.is((p.connection_info as Record<string, unknown>).support_node_tag, false);
});

test('ES expiry is clamped: < 0 or > BK_DATA_DATA_EXPIRES_DAYS becomes the cap (reference quirk; README, Differences from the reference)', (t) => {
  t.is(tail.clampExpires(-1, 30), 30);
  t.is(tail.clampExpires(45, 30), 30);
  t.is(tail.clampExpires(0, 30), 0);
  t.is(tail.clampExpires(7, 30), 7);
});

test('tail sampling graph: source → flink → ES, or with the temporary realtime node', (t) => {
  const nodes = tail.tailSamplingNodes(shop, { data_id: 1, tail_percentage: 25, tail_conditions: [{ condition: 'and', key: 'status.code', method: 'eq', value: ['2'] }] }, settings, '2_bkapm_tail_shop_web_v2', 'apm_storage_id_1');
  checkGraph(nodes);
  t.deepEqual(nodes.map((n) => [n.key, n.nodeType, n.parents]), [
    ['source', 'stream_source', []],
    ['flink', 'flink_streaming', ['source']],
    ['es', 'elastic_storage', ['flink']],
  ]);
  const flink = nodes[1]!.config({ source: 11 });
  t.is(flink.processing_name, 'bkapm_tail_shop_web_v2_output');
  t.is(flink.bk_biz_id, 2);
  t.is(flink.code, 'class X {}');
  t.deepEqual(flink.from_nodes, [{ from_result_table_ids: ['2_bkapm_tail_shop_web_v2'], id: 11 }]);
  t.deepEqual(JSON.parse(flink.user_args as string), {
    input_table_id: '2_bkapm_tail_shop_web_v2',
    output_table_id: '2_bkapm_tail_shop_web_v2_output',
    trace_session_gap_min: 30,
    trace_mark_timeout_min: 1440,
    sampling_conditions: [{ condition: 'and', key: 'status.code', method: 'eq', value: ['2'] }],
    max_span_count: 10000,
    random_sampling_ratio: 25,
  });
  t.is(((flink.outputs as { fields: unknown[] }[])[0]!.fields).length, 16);
  const es = nodes[2]!.config({});
  t.deepEqual(es.storage_keys, ['trace_id', 'span_id']);
  t.is(es.expires, 7, 'default retention');
  t.is(es.result_table_id, '2_bkapm_tail_shop_web_v2_output');

  const withTemp = tail.tailSamplingNodes(shop, { data_id: 1 }, { ...settings, requiredTempConvertNode: true }, '2_bkapm_tail_shop_web_v2', 'x');
  checkGraph(withTemp);
  t.deepEqual(withTemp.map((n) => n.key), ['source', 'convert', 'flink', 'es']);
  const temp = withTemp[1]!.config({});
  t.is(temp.table_name, 'tail_shop_web_v2_output');
  t.is(temp.sql, 'SELECT span_id, trace_id, span_info, datetime FROM 2_bkapm_tail_shop_web_v2');
  t.is(withTemp[2]!.config({ convert: 5 }).processing_name, 'tail_shop_web_v2_output_output');
});

test('virtual metric names, params and graph', (t) => {
  t.is(metric.cleanResultTableId(shop), '2_bkapm_virtual_metric_shop_web_v2');
  const deploy = metric.deployParams(shop, { data_id: 9, kafka: { host: 'kafka.local', port: 9093, topic: 't9', partitions: 3 } }, settings);
  t.is(deploy.data_scenario, 'queue');
  const scope = ((deploy.access_conf_info as { resource: { scope: Record<string, unknown>[] } }).resource.scope)[0]!;
  t.is(scope.master, 'kafka.local:9093');
  t.is(scope.group, 't9_0000');
  t.is(scope.tasks, 3);
  const clean = metric.cleanParams(shop, settings, 5);
  t.is(clean.clean_config_name, 'bkapm_metric');
  t.is((clean.fields as unknown[]).length, 30);
  t.is(metric.METRIC_DIMENSIONS.length, 28);
  const nodes = metric.virtualMetricNodes(shop, settings);
  checkGraph(nodes);
  t.deepEqual(nodes.map((n) => n.nodeType), ['stream_source', 'realtime', 'mysql_storage', 'realtime', 'mysql_storage']);
  const agg = nodes[1]!.config({});
  t.is(agg.table_name, 'bkapm_metric_Shop-Web.v2_agg');
  t.is(agg.window_type, 'scroll');
  t.is(agg.count_freq, 60);
  t.regex(agg.sql as string, /sum\(IF\(kind='3' OR kind='5', 1, 0\)\) as bk_apm_request_count/);
  const avg = nodes[3]!.config({});
  t.deepEqual(avg.from_result_table_ids, ['2_bkapm_metric_Shop-Web.v2_agg']);
  t.deepEqual(nodes[4]!.config({}).indexed_fields, [...metric.METRIC_DIMENSIONS]);
});

test('node identity per kind, and update only when one of our keys differs', (t) => {
  const rt = { from_result_table_ids: ['2_a'], table_name: 't', bk_biz_id: 2, cluster: 'c' };
  t.true(isSameNode('source', { from_result_table_ids: ['2_a'], name: 'x' }, { from_result_table_ids: ['2_a'], name: 'other' }));
  t.false(isSameNode('realtime', rt, { ...rt, bk_biz_id: 3 }));
  t.true(isSameNode('realtime', rt, { ...rt, cluster: 'other' }), 'realtime ignores cluster');
  t.false(isSameNode('storage', rt, { ...rt, cluster: 'other' }), 'storage compares cluster');
  t.true(isSameNode('elastic', { from_result_table_ids: ['x'], result_table_id: 'x', bk_biz_id: 2, cluster: 'a' }, { from_result_table_ids: ['x'], result_table_id: 'x', bk_biz_id: 2, cluster: 'b' }));
  const flink = { bk_biz_id: 2, from_nodes: [{ from_result_table_ids: ['2_a'], id: 1 }], outputs: [{ table_name: 'o' }], user_args: '{}' };
  t.true(isSameNode('flink', flink, { ...flink, from_nodes: [{ from_result_table_ids: ['2_a'], id: 9 }], user_args: 'x' }));
  t.false(isSameNode('flink', flink, { ...flink, outputs: [{ table_name: 'p' }] }));
  t.false(isSameNode('flink', flink, {}), 'malformed graph nodes never match');

  t.false(needsUpdate({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1, extra: true }), 'keys only the graph has are ignored');
  t.true(needsUpdate({ a: 1 }, { a: '1' }));
  t.true(sqlChanged({ sql: 'x' }, undefined), 'a new node with SQL');
  t.false(sqlChanged({ sql: 'x' }, { sql: 'x' }));
  t.false(sqlChanged({ name: 'x' }, undefined), 'no SQL, no tail restart');

  const def: NodeDef = { key: 'rt', kind: 'realtime', nodeType: 'realtime', parents: [], config: () => rt };
  t.is(findNode(def, rt, [{ node_id: 1, node_type: 'storage', node_config: rt }, { node_id: 2, node_type: 'realtime', node_config: rt }])?.node_id, 2, 'node_type must match too');
});

test('canvas positions and request payloads', (t) => {
  const defs: NodeDef[] = [
    { key: 'a', kind: 'source', nodeType: 'stream_source', parents: [], config: () => ({}) },
    { key: 'b', kind: 'realtime', nodeType: 'realtime', parents: ['a'], config: () => ({}) },
    { key: 'c', kind: 'storage', nodeType: 'mysql_storage', parents: ['b'], config: () => ({}) },
  ];
  t.deepEqual(positions(defs), { a: { x: 100, y: 100 }, b: { x: 200, y: 200 }, c: { x: 300, y: 300 } });
  t.deepEqual(nodePayload(7, defs[1]!, { k: 1 }, { a: 41 }, { x: 200, y: 200 }, 1_700_000_000_000), {
    flow_id: 7,
    from_links: [{ source: { node_id: 41, id: 'ch_41', arrow: 'Right' }, target: { id: 'bk_node_1700000000000', arrow: 'Left' } }],
    node_type: 'realtime',
    config: { k: 1 },
    frontend_info: { x: 200, y: 200 },
  });
  t.throws(() => nodePayload(7, defs[1]!, {}, {}, { x: 0, y: 0 }, 0), { message: /parent a has no node id/ });
  t.throws(() => checkGraph([defs[1]!, defs[0]!]), { message: /parent a must come first/ });
});

test('stored configs are compared order-insensitively, optionally ignoring keys (reference _is_diff)', (t) => {
  t.false(configDiffers({ a: [3, 1, 2], b: { x: 1, y: 2 } }, { b: { y: 2, x: 1 }, a: [1, 2, 3] }));
  t.true(configDiffers({ a: 1 }, { a: 2 }));
  t.true(configDiffers(null, { a: 1 }));
  t.false(configDiffers({ a: 1, result_table_name: 'x' }, { a: 1, result_table_name: 'y' }, ['result_table_name']));
  t.deepEqual(canonical({ b: [{ z: 1, a: 2 }], a: null }), { a: null, b: [{ a: 2, z: 1 }] });
  t.true(deepEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }));
  t.false(deepEqual([1, 2], [2, 1]));
});

test('virtual metric aggregation tables and result tables use the raw app name; the clean keeps the normalized one (reference apm_metrics.py; errata §3)', (t) => {
  const nodes = metric.virtualMetricNodes(shop, settings);
  const configs = nodes.map((n) => n.config({}));
  t.deepEqual(configs[0]!.from_result_table_ids, ['2_bkapm_virtual_metric_shop_web_v2'], 'the clean: normalized');
  t.deepEqual(configs.map((c) => c.table_name ?? c.result_table_id), [
    '2_bkapm_virtual_metric_shop_web_v2',
    'bkapm_metric_Shop-Web.v2_agg',
    '2_bkapm_metric_Shop-Web.v2_agg',
    'bkapm_metric_Shop-Web.v2_avg_agg',
    '2_bkapm_metric_Shop-Web.v2_avg_agg',
  ]);
  t.is(configs[2]!.name, 'bkapm_metric_Shop-Web.v2_agg(tspider_storage)');
  t.deepEqual(configs[2]!.from_result_table_ids, ['2_bkapm_metric_Shop-Web.v2_agg']);
  t.is(configs[4]!.name, 'bkapm_metric_Shop-Web.v2_avg_agg(tspider_storage)');
  t.is(configs[3]!.output_name, 'bkapm_metric_Shop-Web.v2_avg_agg');
});

test('virtual metric SQL is the reference text byte for byte (lower-case from, its spacing), so an adopted node is not updated (errata §3)', (t) => {
  const nodes = metric.virtualMetricNodes(shop, settings);
  const agg = nodes[1]!.config({}).sql as string;
  const avg = nodes[3]!.config({}).sql as string;
  t.is(agg, referenceAggSql('2_bkapm_virtual_metric_shop_web_v2'));
  t.is(avg, referenceAvgSql('2_bkapm_metric_Shop-Web.v2_agg'));
  // The graph node the reference wrote needs no update.
  t.false(needsUpdate(nodes[1]!.config({}), { ...nodes[1]!.config({}), sql: agg }));
  t.true(needsUpdate(nodes[1]!.config({}), { ...nodes[1]!.config({}), sql: agg.replace('from ', 'FROM ') }), 'one byte off is a change');
});

test('tail sampling user_args is json.dumps text: ", " and ": " separators, non-ASCII escaped, conditions in the serializer\'s field order (errata §3)', (t) => {
  const conditions = [
    { value: ['5\u00e4\ud83d\ude00', 'a"b\\\n'], method: 'reg', key: 'attributes.http.url', extra: 'dropped' },
    { key: 'status.code', method: 'eq', value: ['2'], condition: 'or' },
  ] as unknown as tail.TailCondition[];
  const nodes = tail.tailSamplingNodes(shop, { data_id: 1, tail_percentage: 25, tail_conditions: conditions }, settings, '2_bkapm_tail_shop_web_v2', 'apm_storage_id_1');
  const userArgs = nodes[1]!.config({ source: 11 }).user_args;
  t.is(
    userArgs,
    '{"input_table_id": "2_bkapm_tail_shop_web_v2", "output_table_id": "2_bkapm_tail_shop_web_v2_output", "trace_session_gap_min": 30, "trace_mark_timeout_min": 1440, ' +
      '"sampling_conditions": [{"key": "attributes.http.url", "method": "reg", "value": ["5\\u00e4\\ud83d\\ude00", "a\\"b\\\\\\n"]}, {"condition": "or", "key": "status.code", "method": "eq", "value": ["2"]}], ' +
      '"max_span_count": 10000, "random_sampling_ratio": 25}',
  );
  const none = tail.tailSamplingNodes(shop, { data_id: 1 }, settings, '2_bkapm_tail_shop_web_v2', 'x')[1]!.config({ source: 1 }).user_args;
  t.regex(none as string, /"sampling_conditions": \[\], "max_span_count": 10000, "random_sampling_ratio": 100\}$/);
});

test('json.dumps text of values user_args may hold', (t) => {
  t.is(pythonJsonDumps({ a: [], b: {}, c: null, d: true, e: 1.5, f: 1e-5, g: -2.5e-7, h: 0.0001, i: 2 ** 60, j: '\u007f\u0001~' }), '{"a": [], "b": {}, "c": null, "d": true, "e": 1.5, "f": 1e-05, "g": -2.5e-07, "h": 0.0001, "i": 1152921504606846976, "j": "\\u007f\\u0001~"}');
  t.is(pythonJsonDumps({ skipped: undefined, kept: 1 }), '{"kept": 1}');
});
