/**
 * What an application's flow switches ask of the orchestrator (services/collector/app-flows.ts): the
 * commands planned for a registration, a change and a deletion; the checks of the tail-sampling keys;
 * and every planned command accepted by the orchestrator's own command parser (the two must agree, or a
 * queued command would be dead-lettered there).
 */
import test from 'ava';
import { checkFlowSettings, checkTailSamplingConfig, flowConfigOf, planFlowCommands, provisionedAfter, type AppFlowSettings } from '../../services/collector/app-flows.ts';
import { parseCommand } from '../../services/orchestrator/intake.ts';

const BASE: AppFlowSettings = {
  bkBizId: 2,
  traceRetentionDays: 7,
  tracesDataId: 1_500_001,
  metricsDataId: 1_600_001,
  tailSampling: false,
  tailSamplingConfig: {},
  virtualMetric: false,
  provisionedFlows: [],
};

const summary = (cmds: ReturnType<typeof planFlowCommands>): string[] => cmds.map((c) => `${c.action}:${c.flow_type}`);

test('a registration creates the flows it switches on, with the application as their data source', (t) => {
  t.deepEqual(planFlowCommands(undefined, BASE), [], 'nothing switched on: no command');
  const app = { ...BASE, tailSampling: true, tailSamplingConfig: { tail_percentage: 20, tail_conditions: [{ condition: 'and' as const, key: 'http.status_code', method: 'gte' as const, value: ['500'] }] }, virtualMetric: true };
  const cmds = planFlowCommands(undefined, app);
  t.deepEqual(summary(cmds), ['create_or_update:tail_sampling', 'create_or_update:virtual_metric']);
  t.deepEqual(cmds[0]?.config, { data_id: 1_500_001, es_retention_days: 7, tail_percentage: 20, tail_conditions: app.tailSamplingConfig.tail_conditions });
  t.deepEqual(cmds[1]?.config, { data_id: 1_600_001 });
  t.deepEqual(provisionedAfter([], cmds), ['tail_sampling', 'virtual_metric']);
});

test('a change sends create_or_update only when a flow config changed, stop when a switch goes off', (t) => {
  const on = { ...BASE, tailSampling: true, virtualMetric: true, provisionedFlows: ['tail_sampling', 'virtual_metric'] as AppFlowSettings['provisionedFlows'] };
  t.deepEqual(planFlowCommands(on, on), [], 'an unchanged application sends nothing');
  t.deepEqual(planFlowCommands(on, { ...on, description: 'x' } as AppFlowSettings), [], 'fields the flows do not read send nothing');
  t.deepEqual(summary(planFlowCommands(on, { ...on, tailSamplingConfig: { tail_percentage: 55 } })), ['create_or_update:tail_sampling']);
  t.deepEqual(summary(planFlowCommands(on, { ...on, traceRetentionDays: 30 })), ['create_or_update:tail_sampling'], 'the trace retention is the ES retention of sampled traces');
  t.deepEqual(summary(planFlowCommands(on, { ...on, metricsDataId: 9 })), ['create_or_update:virtual_metric']);
  t.deepEqual(summary(planFlowCommands(on, { ...on, tailSampling: false })), ['stop:tail_sampling']);
  t.deepEqual(summary(planFlowCommands(on, { ...on, tailSampling: false, virtualMetric: false })), ['stop:tail_sampling', 'stop:virtual_metric']);
  const off = { ...on, tailSampling: false, virtualMetric: false };
  t.deepEqual(summary(planFlowCommands(off, on)), ['create_or_update:tail_sampling', 'create_or_update:virtual_metric'], 'switched on again');
});

test('a deletion deletes every flow ever provisioned, switched on or not', (t) => {
  t.deepEqual(planFlowCommands(BASE, undefined), [], 'never provisioned: nothing to delete');
  t.deepEqual(summary(planFlowCommands({ ...BASE, tailSampling: false, provisionedFlows: ['tail_sampling'] }, undefined)), ['delete:tail_sampling'], 'a stopped flow still exists in BKData');
  t.deepEqual(summary(planFlowCommands({ ...BASE, tailSampling: true, virtualMetric: true, provisionedFlows: ['tail_sampling', 'virtual_metric'] }, undefined)), ['delete:tail_sampling', 'delete:virtual_metric']);
});

test('the tail-sampling keys and the switches are checked, every problem named', (t) => {
  const problems: string[] = [];
  checkTailSamplingConfig({ tail_percentage: 101, tail_trace_session_gap_min: 0, tail_trace_mark_timeout: 'x', colour: 'red', tail_conditions: [{ condition: 'xor', key: '', method: 'like', value: [1] }, 'x'] }, problems);
  t.deepEqual(problems, [
    'tail_sampling_config.colour: unknown key (one of tail_percentage, tail_trace_session_gap_min, tail_trace_mark_timeout, tail_conditions)',
    'tail_sampling_config.tail_percentage must be an integer from 0 to 100',
    'tail_sampling_config.tail_trace_session_gap_min must be an integer >= 1',
    'tail_sampling_config.tail_trace_mark_timeout must be an integer >= 1',
    'tail_sampling_config.tail_conditions[0].condition must be "and" or "or"',
    'tail_sampling_config.tail_conditions[0].key must be a non-empty string',
    'tail_sampling_config.tail_conditions[0].method must be one of gt, gte, lt, lte, eq, neq, reg, nreg',
    'tail_sampling_config.tail_conditions[0].value must be a list of strings',
    'tail_sampling_config.tail_conditions[1] must be an object {condition?, key, method, value}',
  ]);
  const connectors: string[] = [];
  checkTailSamplingConfig({ tail_conditions: [{ key: 'a', method: 'eq', value: ['1'] }, { key: 'b', method: 'eq', value: ['2'] }] }, connectors);
  t.deepEqual(connectors, ['tail_sampling_config.tail_conditions[1].condition is required after the first condition ("and" or "or")'], 'the first connector may be left out');
  const switches: string[] = [];
  checkFlowSettings({ ...BASE, bkBizId: -5, tracesDataId: 0, metricsDataId: 0, tailSampling: true, virtualMetric: true }, switches);
  t.deepEqual(switches, [
    'tail sampling needs the traces data id (traces_data_id > 0)',
    'virtual metrics need the metrics data id (metrics_data_id > 0)',
    'virtual metrics run for businesses only (bk_biz_id > 0), as the reference',
  ]);
  t.is(flowConfigOf(BASE, 'tail_sampling'), undefined);
});

test("every command an application plans is accepted by the orchestrator's command parser", (t) => {
  const full = {
    ...BASE,
    tailSampling: true,
    virtualMetric: true,
    tailSamplingConfig: {
      tail_percentage: 0,
      tail_trace_session_gap_min: 5,
      tail_trace_mark_timeout: 10,
      tail_conditions: [
        { key: 'span_name', method: 'reg' as const, value: ['^GET'] },
        { condition: 'or' as const, key: 'elapsed_time', method: 'gt' as const, value: ['1000000'] },
      ],
    },
    provisionedFlows: ['tail_sampling', 'virtual_metric'] as AppFlowSettings['provisionedFlows'],
  };
  const all = [...planFlowCommands(undefined, full), ...planFlowCommands(full, { ...full, tailSampling: false, virtualMetric: false }), ...planFlowCommands(full, undefined)];
  t.deepEqual(summary(all), ['create_or_update:tail_sampling', 'create_or_update:virtual_metric', 'stop:tail_sampling', 'stop:virtual_metric', 'delete:tail_sampling', 'delete:virtual_metric']);
  for (const c of all) {
    const parsed = parseCommand({ ...c, bk_biz_id: full.bkBizId, app_name: 'shop-app', operator: 'admin', config: JSON.stringify(c.config) });
    t.deepEqual(parsed.config, c.action === 'create_or_update' ? c.config : {});
  }
});
