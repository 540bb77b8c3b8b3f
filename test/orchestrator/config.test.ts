/**
 * Configuration of the orchestrator and of bkdata-sim (defaults, a valid fixture, every problem named by
 * its key), and validation of flow commands and their configs.
 */
import test from 'ava';
import { simSpec } from '../../services/bkdata-sim/config.ts';
import { bkdataSimService } from '../../services/bkdata-sim/service.ts';
import { loadConfig } from '../../services/common/config.ts';
import { ConfigError, ValidationError } from '../../services/common/errors.ts';
import { flowSettings, orchestratorSpec } from '../../services/orchestrator/config.ts';
import { parseCommand, parseFlowConfig } from '../../services/orchestrator/intake.ts';
import { orchestratorService } from '../../services/orchestrator/service.ts';

/** The keys of the problems a config load reports (sorted), or [] when it loads. */
function problemKeys(load: () => unknown): string[] {
  try {
    load();
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map((p) => p.key).sort();
  }
}

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
  t.is(c.bkdataTenantId, 'system', 'the reference\'s DEFAULT_TENANT_ID');
  t.is(c.bkdataLanguage, 'zh-hans', 'the reference\'s LANGUAGE_CODE');
  t.is(loadConfig(orchestratorSpec, { env: { BKDATA_API_URL: 'http://x/', BKDATA_TENANT_ID: 'tenant-a', BKDATA_LANGUAGE: 'en' } }).bkdataLanguage, 'en');
  t.regex(flowSettings(c).flinkCode, /public class CodeTransform/, 'the bundled Flink job (flink/tail-sampling) is read');
});

test('orchestrator config problems are all reported with their keys', (t) => {
  const err = t.throws(() => loadConfig(orchestratorSpec, { env: { ORCH_HTTP_PORT: '99999', ORCH_MAX_CONCURRENT_FLOWS: '0', BKDATA_REQUIRED_TEMP_CONVERT_NODE: 'maybe', ORCH_LEASE_MS: '10' } }), { instanceOf: ConfigError });
  const keys = (err).problems.map((p) => p.key).sort();
  t.deepEqual(keys, ['BKDATA_API_URL', 'BKDATA_REQUIRED_TEMP_CONVERT_NODE', 'ORCH_HTTP_PORT', 'ORCH_LEASE_MS', 'ORCH_MAX_CONCURRENT_FLOWS']);
  t.regex(err?.message ?? '', /BKDATA_API_URL: is required/);
  const bad = t.throws(() => flowSettings(loadConfig(orchestratorSpec, { env: { BKDATA_API_URL: 'http://x/', BKDATA_FLINK_CODE_FILE: '/nonexistent/job.java' } })), { instanceOf: ConfigError });
  t.is((bad).problems[0]?.key, 'BKDATA_FLINK_CODE_FILE');
});

test('orchestrator settings that contradict each other are refused, each named by the key to change', (t) => {
  const base = { BKDATA_API_URL: 'http://127.0.0.1:8090/' };
  const load = (env: Record<string, string>) => () => orchestratorService.config({ ...base, ...env });
  t.deepEqual(problemKeys(load({})), [], 'the defaults are consistent');
  t.is(orchestratorService.config({ ...base, TOPIC_PREFIX: 'p1' }).topicPrefix, 'p1', 'the shared settings load with it');

  t.deepEqual(problemKeys(load({ ORCH_RETRY_INITIAL_DELAY_MS: '5000', ORCH_RETRY_MAX_DELAY_MS: '1000' })), ['ORCH_RETRY_INITIAL_DELAY_MS']);
  t.deepEqual(problemKeys(load({ ORCH_RETRY_INITIAL_DELAY_MS: '1000', ORCH_RETRY_MAX_DELAY_MS: '1000' })), [], 'equal delays: a constant backoff');
  t.deepEqual(problemKeys(load({ ORCH_HTTP_PORT: '9000', ORCH_GRPC_PORT: '9000' })), ['ORCH_GRPC_PORT']);
  t.deepEqual(problemKeys(load({ ORCH_HTTP_PORT: '0', ORCH_GRPC_PORT: '0' })), [], 'two free ports');
  t.deepEqual(problemKeys(load({ ORCH_POLL_INTERVAL_MS: '60000', ORCH_LEASE_MS: '30000' })), ['ORCH_POLL_INTERVAL_MS']);
  t.deepEqual(problemKeys(load({ ORCH_POLL_INTERVAL_MS: '30000', ORCH_LEASE_MS: '30000' })), []);
  t.deepEqual(problemKeys(load({ BKDATA_API_URL: 'http://localhost:8082/' })), ['BKDATA_API_URL'], 'BKData would be this orchestrator\'s own HTTP API');
  t.deepEqual(problemKeys(load({ BKDATA_API_URL: 'http://0.0.0.0:50051/api/', ORCH_HOST: '0.0.0.0' })), ['BKDATA_API_URL'], 'or its gRPC port');
  t.deepEqual(problemKeys(load({ BKDATA_API_URL: 'http://bkdata.example:8082/' })), [], 'another host on the same port');
  t.deepEqual(problemKeys(load({ BKDATA_FLINK_CODE_FILE: '/nonexistent/job.java' })), ['BKDATA_FLINK_CODE_FILE'], 'named before anything connects');

  const all = t.throws(() => orchestratorService.config({ ...base, ORCH_RETRY_INITIAL_DELAY_MS: '5000', ORCH_RETRY_MAX_DELAY_MS: '1000', ORCH_HTTP_PORT: '8090', ORCH_GRPC_PORT: '8090', ORCH_POLL_INTERVAL_MS: '40000' }), { instanceOf: ConfigError });
  t.deepEqual(all?.problems.map((p) => p.key).sort(), ['BKDATA_API_URL', 'ORCH_GRPC_PORT', 'ORCH_POLL_INTERVAL_MS', 'ORCH_RETRY_INITIAL_DELAY_MS'], 'every problem at once');
  t.regex(all?.message ?? '', /ORCH_RETRY_INITIAL_DELAY_MS: must be <= ORCH_RETRY_MAX_DELAY_MS \(1000\), got 5000/);
  t.deepEqual(problemKeys(load({ ORCH_HTTP_PORT: 'x', ORCH_RETRY_INITIAL_DELAY_MS: '5000', ORCH_RETRY_MAX_DELAY_MS: '1000' })), ['ORCH_HTTP_PORT'], 'cross-field checks run once every field parsed');
});

test('bkdata-sim settings that contradict each other are refused', (t) => {
  const load = (env: Record<string, string>) => () => bkdataSimService.config(env);
  t.deepEqual(problemKeys(load({})), []);
  t.deepEqual(problemKeys(load({ BKDATA_SIM_FAMILY_ERROR_RATES: 'databus=0.1,auth=1,databus=0.5' })), ['BKDATA_SIM_FAMILY_ERROR_RATES']);
  t.deepEqual(problemKeys(load({ BKDATA_SIM_LOST_ANSWER_RATES: 'access=0.1,access=0.1' })), ['BKDATA_SIM_LOST_ANSWER_RATES']);
  t.deepEqual(problemKeys(load({ BKDATA_SIM_FAMILY_ERROR_RATES: 'databus=1', BKDATA_SIM_LOST_ANSWER_RATES: 'databus=0.5' })), ['BKDATA_SIM_LOST_ANSWER_RATES'], 'no databus call reaches the handler');
  t.deepEqual(problemKeys(load({ BKDATA_SIM_ERROR_RATE: '1', BKDATA_SIM_FAMILY_ERROR_RATES: 'databus=0.5', BKDATA_SIM_LOST_ANSWER_RATES: 'databus=0.5' })), [], 'the family rate overrides the global one');
  t.deepEqual(problemKeys(load({ BKDATA_SIM_ERROR_RATE: '1', BKDATA_SIM_LOST_ANSWER_RATES: 'auth=0.5' })), ['BKDATA_SIM_LOST_ANSWER_RATES']);
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

test('tail conditions: condition optional on the first (reference serializer: required=False), required after it (README, Differences, 10)', (t) => {
  const first = { key: 'attributes.http.status_code', method: 'gte', value: ['500'] };
  const ok = parseFlowConfig('tail_sampling', 'create_or_update', { data_id: 1, tail_conditions: [first, { condition: 'and', key: 'kind', method: 'eq', value: ['2'] }] });
  t.deepEqual((ok as { tail_conditions: unknown[] }).tail_conditions[0], first, 'kept as given, without a condition');
  const err = t.throws(() => parseFlowConfig('tail_sampling', 'create_or_update', { data_id: 1, tail_conditions: [first, { key: 'kind', method: 'eq', value: ['2'] }, { condition: null, key: 'kind', method: 'eq', value: ['3'] }] }), { instanceOf: ValidationError });
  t.regex(err?.message ?? '', /config\.tail_conditions\[1\]\.condition is required after the first condition/);
  t.regex(err?.message ?? '', /config\.tail_conditions\[2\]\.condition must be "and" or "or"/, 'null is not left out (the reference refuses null too)');
  t.notRegex(err?.message ?? '', /tail_conditions\[0\]/);
});
