/**
 * The application settings form's pure model (services/console/web/app-settings.ts), in Node: the form
 * of an application, the PATCH body of a change (only what changed, read back by the collector's own
 * body parser), and the collector's real 400 messages placed on the fields they name.
 */
import test from 'ava';
import { CONDITION_METHODS as COLLECTOR_METHODS, checkFlowSettings, checkTailSamplingConfig } from '../../services/collector/app-flows.ts';
import { applicationUpdateFrom } from '../../services/collector/apps-api.ts';
import { validateApplication } from '../../services/collector/applications.ts';
import { ValidationError } from '../../services/common/errors.ts';
import { CONDITION_METHODS, conditionsOf, fieldErrors, FORM, formOf, newCondition, patchOf, splitValues, type AppFlowFields } from '../../services/console/web/app-settings.ts';

const APP: AppFlowFields = {
  traceRetentionDays: 7,
  tracesDataId: 1_500_001,
  metricsDataId: 0,
  tailSampling: false,
  tailSamplingConfig: { tail_percentage: 10, tail_conditions: [{ key: 'attributes.http.status_code', method: 'gte', value: ['500'] }] },
  virtualMetric: false,
};

/** The problems the collector reports for `fn`, as its ValidationError message (problems joined with `; `). */
function collectorMessage(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err.message;
    throw err;
  }
  throw new Error('the collector accepted it');
}

test('the console offers the condition methods the collector accepts', (t) => {
  t.deepEqual([...CONDITION_METHODS], [...COLLECTOR_METHODS]);
});

test('form of an application: every setting as text, conditions one row each with their values joined', (t) => {
  const form = formOf(APP);
  t.deepEqual(form, {
    trace_retention_days: '7',
    traces_data_id: '1500001',
    metrics_data_id: '0',
    tail_sampling: false,
    tail_percentage: '10',
    tail_trace_session_gap_min: '',
    tail_trace_mark_timeout: '',
    conditions: [{ connector: 'and', key: 'attributes.http.status_code', method: 'gte', values: '500' }],
    virtual_metric: false,
  });
  t.deepEqual(patchOf(APP, form), {}, 'nothing changed: nothing to send');
});

test('PATCH body: only what changed; emptied numbers and removed conditions go back to the defaults (null)', (t) => {
  const form = formOf(APP);
  const changed = {
    ...form,
    tail_sampling: true,
    trace_retention_days: ' 14 ',
    tail_percentage: '',
    tail_trace_mark_timeout: '30',
    conditions: [...form.conditions, { connector: 'or' as const, key: ' attributes.db.system ', method: 'eq', values: 'mysql, , redis ' }],
  };
  const body = patchOf(APP, changed);
  t.deepEqual(body, {
    trace_retention_days: 14,
    tail_sampling: true,
    tail_sampling_config: {
      tail_percentage: null,
      tail_trace_mark_timeout: 30,
      tail_conditions: [
        { key: 'attributes.http.status_code', method: 'gte', value: ['500'] },
        { condition: 'or', key: 'attributes.db.system', method: 'eq', value: ['mysql', 'redis'] },
      ],
    },
  });
  // the collector's own parser and checks take it as it is
  const update = applicationUpdateFrom(body);
  t.is(update.traceRetentionDays, 14);
  const problems: string[] = [];
  checkTailSamplingConfig({ tail_trace_mark_timeout: 30, tail_conditions: (body.tail_sampling_config as { tail_conditions: unknown }).tail_conditions }, problems);
  t.deepEqual(problems, []);

  t.deepEqual(patchOf(APP, { ...form, conditions: [] }), { tail_sampling_config: { tail_conditions: null } }, 'every condition removed');
  t.deepEqual(patchOf(APP, { ...form, virtual_metric: true, metrics_data_id: '1500002' }), { metrics_data_id: 1_500_002, virtual_metric: true });
});

test('PATCH body: what is not a plain integer is sent as typed, for the collector to judge', (t) => {
  const form = formOf(APP);
  const body = patchOf(APP, { ...form, trace_retention_days: 'a week', tail_percentage: '12.5' });
  t.deepEqual(body, { trace_retention_days: 'a week', tail_sampling_config: { tail_percentage: '12.5' } });
  const message = collectorMessage(() => applicationUpdateFrom(body));
  t.deepEqual(fieldErrors(message), { trace_retention_days: ['trace_retention_days must be a number'] });
});

test('conditions: the first has no connector; values split on commas', (t) => {
  t.deepEqual(splitValues(' a,b , ,c'), ['a', 'b', 'c']);
  t.deepEqual(conditionsOf([{ ...newCondition(), connector: 'or', key: 'k', values: 'x' }, { ...newCondition(), key: 'j', method: 'reg', values: '^a' }]), [
    { key: 'k', method: 'eq', value: ['x'] },
    { condition: 'and', key: 'j', method: 'reg', value: ['^a'] },
  ]);
});

test('the collector\'s 400 messages land on the fields they name (its real wording)', (t) => {
  const problems: string[] = [];
  checkTailSamplingConfig(
    {
      tail_percentage: 150,
      tail_trace_session_gap_min: 0,
      tail_conditions: [{ key: '', method: 'like', value: 'x' }, { key: 'k', method: 'eq', value: [] }, 'nope'],
    },
    problems,
  );
  checkFlowSettings({ bkBizId: -3, traceRetentionDays: 7, tracesDataId: 0, metricsDataId: 0, tailSampling: true, tailSamplingConfig: {}, virtualMetric: true }, problems);
  const errors = fieldErrors(`collector: ${problems.join('; ')} (400)`);
  t.deepEqual(Object.keys(errors).sort(), [
    'tail_conditions.0.key',
    'tail_conditions.0.method',
    'tail_conditions.0.values',
    'tail_conditions.1.connector',
    'tail_conditions.2',
    'tail_percentage',
    'tail_sampling',
    'tail_trace_session_gap_min',
    'virtual_metric',
  ]);
  t.deepEqual(errors.tail_percentage, ['tail_sampling_config.tail_percentage must be an integer from 0 to 100']);
  t.deepEqual(errors.tail_sampling, ['tail sampling needs the traces data id (traces_data_id > 0)']);
  t.is(errors.virtual_metric?.length, 2, 'no metrics data id, and not a business');

  const retention = collectorMessage(() => validateApplication({ bkBizId: 2, appName: 'shop', traceRetentionDays: 0, tracesDataId: -1 }));
  t.deepEqual(fieldErrors(retention), { trace_retention_days: ['trace retention must be a positive number of days'], traces_data_id: ['traces data id must be a non-negative integer'] });
  t.deepEqual(fieldErrors('collector: unknown field colour (400)'), { [FORM]: ['unknown field colour'] }, 'what names no field is shown for the form');
});
