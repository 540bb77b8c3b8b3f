/**
 * Configuration of the orchestrator and of bkdata-sim (defaults, a valid fixture, every problem named by
 * its key), and validation of flow commands and their configs.
 */
import test from 'ava';
import { simSpec } from '../../services/bkdata-sim/config.ts';
import { loadConfig } from '../../services/common/config.ts';
import { ConfigError, ValidationError } from '../../services/common/errors.ts';
import { flowSettings, orchestratorSpec } from '../../services/orchestrator/config.ts';
import { parseCommand, parseFlowConfig } from '../../services/orchestrator/intake.ts';

test('orchestrator defaults are the reference values', (t) => {
  const c = loadConfig(orchestratorSpec, { env: { BKDATA_API_URL: 'http://127.0.0.1:8090/' } });
  t.is(c.httpPort, 8082);
  t.is(c.grpcPort, 50051);
  t.is(c.fetchStatusThreshold, 10);
  t.is(c.virtualMetricCleanRetries, 3);
  t.is(c.cleanPollIntervalMs, 1_000);
  t.is(c.defaultBkBizId, 2);
  t.is(c.dataExpiresDays, 30);
  t.is(c.flowClusterGroup, 'default_inland');
  t.is(c.stopMaxPolls, 300);
  t.false(c.requiredTempConvertNode);
  t.regex(flowSettings(c).flinkCode, /placeholder/, 'the bundled Flink placeholder is read');
});

test('orchestrator config problems are all reported with their keys', (t) => {
  const err = t.throws(() => loadConfig(orchestratorSpec, { env: { ORCH_HTTP_PORT: '99999', ORCH_MAX_CONCURRENT_FLOWS: '0', BKDATA_REQUIRED_TEMP_CONVERT_NODE: 'maybe', ORCH_LEASE_MS: '10' } }), { instanceOf: ConfigError });
  const keys = (err).problems.map((p) => p.key).sort();
  t.deepEqual(keys, ['BKDATA_API_URL', 'BKDATA_REQUIRED_TEMP_CONVERT_NODE', 'ORCH_HTTP_PORT', 'ORCH_LEASE_MS', 'ORCH_MAX_CONCURRENT_FLOWS']);
  t.regex(err?.message ?? '', /BKDATA_API_URL: is required/);
  const bad = t.throws(() => flowSettings(loadConfig(orchestratorSpec, { env: { BKDATA_API_URL: 'http://x/', BKDATA_FLINK_CODE_FILE: '/nonexistent/job.java' } })), { instanceOf: ConfigError });
  t.is((bad).problems[0]?.key, 'BKDATA_FLINK_CODE_FILE');
});

test('bkdata-sim config: defaults, a valid fixture, and every invalid value named', (t) => {
  const d = loadConfig(simSpec, { env: {} });
  t.is(d.port, 8090);
  t.is(d.persist, 'memory');
  t.is(d.errorRate, 0);
  const c = loadConfig(simSpec, { env: { BKDATA_SIM_FAMILY_ERROR_RATES: 'databus=0.5,auth=1', BKDATA_SIM_OUTAGES: '10-40', BKDATA_SIM_ERROR_MODE: 'result_false' } });
  t.deepEqual(c.familyErrorRates, ['databus=0.5', 'auth=1']);
  const err = t.throws(() => loadConfig(simSpec, { env: { BKDATA_SIM_FAMILY_ERROR_RATES: 'nope=1', BKDATA_SIM_OUTAGES: '40-10', BKDATA_SIM_ERROR_RATE: '2', BKDATA_SIM_PERSIST: 'disk' } }), { instanceOf: ConfigError });
  t.deepEqual((err).problems.map((p) => p.key).sort(), ['BKDATA_SIM_ERROR_RATE', 'BKDATA_SIM_FAMILY_ERROR_RATES', 'BKDATA_SIM_OUTAGES', 'BKDATA_SIM_PERSIST']);
});

test('flow commands: defaults filled, every problem listed', (t) => {
  const c = parseCommand({ action: 'create_or_update', flow_type: 'tail_sampling', bk_biz_id: '-5', app_name: 'a.b-c', config: '{"data_id": 3}' }, 1234);
  t.is(c.bk_biz_id, -5, 'spaces are allowed for tail sampling');
  t.is(c.requested_at, 1234);
  t.regex(c.command_id, /^[0-9a-f-]{36}$/);
  t.deepEqual(c.config, { data_id: 3 });
  t.is(parseCommand({ action: 'stop', flow_type: 'virtual_metric', bk_biz_id: 3, app_name: 'x' }).action, 'stop', 'stop needs no config');

  const err = t.throws(() => parseCommand({ action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 0, app_name: 'x'.repeat(51), operator: 5, config: { data_id: 0, kafka: { port: 'x', bogus: 1 }, extra: true } }), { instanceOf: ValidationError });
  for (const part of [/bk_biz_id must be > 0/, /app_name must be/, /operator must be a string/, /config.data_id must be a positive integer/, /config.kafka.port must be a non-negative integer/, /config.kafka.bogus: unknown field/, /config.extra: unknown key/]) {
    t.regex(err?.message ?? '', part);
  }
  t.throws(() => parseCommand('nope'), { message: /must be a JSON object/ });
});

test('tail sampling config checks conditions and ranges', (t) => {
  const ok = parseFlowConfig('tail_sampling', 'create_or_update', { data_id: 1, tail_percentage: 100, tail_conditions: [{ condition: 'or', key: 'attributes.http.status_code', method: 'gte', value: ['500'] }] });
  t.is((ok as { tail_percentage: number }).tail_percentage, 100);
  const err = t.throws(() => parseFlowConfig('tail_sampling', 'create_or_update', { data_id: 1, tail_percentage: 101, tail_conditions: [{ condition: 'xor', key: '', method: 'like', value: [1] }], es_cluster: { port: -1 } }), { instanceOf: ValidationError });
  for (const part of [/tail_percentage must be an integer in \[0, 100\]/, /condition must be "and" or "or"/, /key must be a non-empty string/, /method must be one of/, /value must be a list of strings/, /es_cluster.port/]) {
    t.regex(err?.message ?? '', part);
  }
  t.throws(() => parseFlowConfig('tail_sampling', 'create_or_update', '{oops'), { message: /not valid JSON/ });
});
