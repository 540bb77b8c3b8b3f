/**
 * Cleans running behind bkdata-sim's databus API, on the real broker: raw data and cleans provisioned
 * with the requests the orchestrator's builders make, records in the reference formats produced to the
 * raw data topics (the trace data id's GSE topic `0bkmonitor_{id}0`; the virtual metric's topic from its
 * Kafka deploy plan), and the result rows read back from `GET /admin/results/{rt}`, field by field.
 */
import { randomInt } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { createBkdataSim, type BkdataSim } from '../../services/bkdata-sim/service.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import * as tail from '../../services/orchestrator/kinds/tail-sampling.ts';
import * as metric from '../../services/orchestrator/kinds/virtual-metric.ts';
import { brokerKit, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { simConfig } from '../orchestrator/kit.ts';
import { api, type SimCall } from './client.ts';
import { app, BATCH, ENVELOPE, settings, SPAN_A } from './clean-records.ts';

/** 2025-12-02 16:05:30 CST: the sim's clock (a clean's `localTime` is this minute). */
const NOW = Date.UTC(2025, 11, 2, 8, 5, 30);

interface Results {
  kept: number;
  stats: { records_in: number; records_cleaned: number; records_failed: number; records_empty: number; rows_out: number; errors: Record<string, number> };
  rows: Record<string, unknown>[];
}

async function startSim(t: ExecutionContext, kit: BrokerKit, env: Record<string, string> = {}): Promise<BkdataSim> {
  const sim = createBkdataSim({
    config: simConfig({ BKDATA_SIM_CLEAN_START_DELAY_MS: '0', BKDATA_SIM_CLEAN_POLL_MS: '50', ...env }),
    logger: silentLogger,
    registry: createRegistry(),
    bus: kit.bus,
    now: () => NOW,
  });
  await sim.start();
  t.teardown(() => sim.stop());
  return sim;
}

async function admin<T>(sim: BkdataSim, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${sim.url()}admin/${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

/** A trace data id no other run uses, and its GSE topic (created here, deleted after the test). */
async function gseTopic(t: ExecutionContext, kit: BrokerKit): Promise<{ dataId: number; topic: string }> {
  const dataId = randomInt(10_000_000, 99_999_999);
  const topic = `0bkmonitor_${dataId}0`;
  await kit.admin.ensureTopics([{ topic, numPartitions: 1, retentionMs: 3_600_000 }]);
  t.teardown(() => kit.admin.deleteTopics([topic]).catch(() => undefined));
  return { dataId, topic };
}

async function ok(call: SimCall, method: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const { env } = await call(method, path, body);
  if (!env.result) throw new Error(`${method} ${path}: ${env.message}`);
  return env.data as Record<string, unknown>;
}

/** Provisions the tail-sampling raw data and clean as the orchestrator does, and starts the clean. */
async function tailClean(call: SimCall, dataId: number): Promise<string> {
  await ok(call, 'POST', '/v3/access/deploy_plan/', tail.deployParams(app, { data_id: dataId }, settings));
  const clean = await ok(call, 'POST', '/v3/databus/cleans/', tail.cleanParams(app, settings, dataId));
  const rt = clean.result_table_id as string;
  await ok(call, 'POST', '/v3/databus/tasks/', { result_table_id: rt, storages: ['kafka'] });
  return rt;
}

async function rowsOf(sim: BkdataSim, rt: string, count: number, limit = 1000): Promise<Results> {
  return waitFor(`${count} rows of ${rt}`, async () => {
    const { body } = await admin<Results>(sim, `results/${rt}?limit=${limit}`);
    return body.stats.rows_out >= count ? body : undefined;
  });
}

test('a running tail-sampling clean turns the GSE envelopes on the trace data id topic into rows; an unreadable record is counted, not fatal', async (t) => {
  const kit = await brokerKit(t);
  const sim = await startSim(t, kit);
  const call = api(sim);
  const { dataId, topic } = await gseTopic(t, kit);
  const rt = await tailClean(call, dataId);
  t.is(rt, '2_bkapm_tail_shop');

  await kit.produce(topic, [{ value: Buffer.from('{"datetime":"2025-12-02 16:05:04","items":[') }, { value: Buffer.from(ENVELOPE) }]);
  const res = await rowsOf(sim, rt, 2);
  t.is(res.rows.length, 2);
  const eventMs = Date.UTC(2025, 11, 2, 8, 5, 4);
  t.deepEqual(res.rows[0], {
    span_id: 'a1b2c3d4e5f60718',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    span_info: SPAN_A.replace('购物车', '\\u8D2D\\u7269\\u8F66'),
    datetime: '2025-12-02 16:05:04',
    timestamp: eventMs / 1000,
    dtEventTime: '2025-12-02 16:05:04',
    dtEventTimeStamp: eventMs,
    localTime: '2025-12-02 16:05:00',
  });
  // What the tail-sampling Flink job reads of each row (errata 1 of the reference notes).
  const spanInfo = JSON.parse(res.rows[1]?.span_info as string) as { span_id: string; trace_id: string };
  t.deepEqual([spanInfo.span_id, spanInfo.trace_id, res.rows[1]?.dtEventTimeStamp], [res.rows[1]?.span_id, res.rows[1]?.trace_id, eventMs]);
  t.deepEqual(res.stats, { records_in: 2, records_cleaned: 1, records_failed: 1, records_empty: 0, rows_out: 2, errors: { BadJsonObjectError: 1 } });

  const newest = await admin<Results>(sim, `results/${rt}?limit=1`);
  t.deepEqual([newest.body.kept, newest.body.rows.map((r) => r.span_id)], [2, ['0000000000000002']]);
  t.is((await admin(sim, `results/${rt}?limit=0`)).status, 400);
  t.is((await admin(sim, 'results/2_nothing')).status, 404);
});

test('a virtual-metric clean reads the topic of its Kafka deploy plan; stop stops it, a start resumes where it stopped; an update restarts it with the new config', async (t) => {
  const kit = await brokerKit(t);
  const sim = await startSim(t, kit, { BKDATA_SIM_RESULTS_MAX: '3' });
  const call = api(sim);
  const topic = await kit.topic('vm-raw');
  const raw = await ok(call, 'POST', '/v3/access/deploy_plan/', metric.deployParams(app, { data_id: 1_500_002, kafka: { topic } }, settings));
  const cleanParams = metric.cleanParams(app, settings, raw.raw_data_id as number);
  const rt = (await ok(call, 'POST', '/v3/databus/cleans/', cleanParams)).result_table_id as string;
  t.is(rt, metric.cleanResultTableId(app));
  await ok(call, 'POST', '/v3/databus/tasks/', { result_table_id: rt, storages: ['kafka'] });

  await kit.produce(topic, [{ value: Buffer.from(BATCH) }]);
  const first = await rowsOf(sim, rt, 2);
  t.deepEqual(first.rows.map((r) => [r.target, r.time, r.bk_apm_duration, r.kind, r.db_system, r.dtEventTimeStamp, r.timestamp]), [
    ['bk-collector', 1764662704250, 250000000, '2', null, 1764662704250, 1764662704],
    ['bk-collector', 1764662704020, 10000000, '3', 'mysql', 1764662704020, 1764662704],
  ]);
  const views = await admin<{ cleans: { result_table_id: string; topic: string; runner: string }[] }>(sim, 'cleans');
  t.like(views.body.cleans.find((c) => c.result_table_id === rt), { topic, runner: 'running' });

  // Stopped: its consumer leaves; what arrives meanwhile is cleaned once it runs again (offsets were committed).
  await ok(call, 'DELETE', `/v3/databus/tasks/${rt}/`, {});
  await waitFor('the clean to stop', async () => (await admin<{ cleans: { result_table_id: string; runner: string }[] }>(sim, 'cleans')).body.cleans.find((c) => c.result_table_id === rt)?.runner === 'stopped');
  await kit.produce(topic, [{ value: Buffer.from('{"data":[{"metrics":{"bk_apm_duration":5},"target":"t2","timestamp":1764662705000,"dimension":{}}]}') }]);
  await ok(call, 'POST', '/v3/databus/tasks/', { result_table_id: rt, storages: ['kafka'] });
  const second = await rowsOf(sim, rt, 3);
  t.deepEqual([second.stats.records_in, second.rows.map((r) => r.target)], [2, ['bk-collector', 'bk-collector', 't2']]);

  // Updated while running (an ETL that reads no dimensions): restarted with it; only the newest 3 rows are kept.
  const etl = metric.metricCleanJsonConfig() as { extract: { next: { next: { next: { next: unknown[] } } } } };
  etl.extract.next.next.next.next.splice(2, 1);
  await ok(call, 'PUT', `/v3/databus/cleans/${rt}/`, { ...cleanParams, json_config: JSON.stringify(etl), fields: metric.metricCleanFields().slice(0, 3) });
  await kit.produce(topic, [{ value: Buffer.from('{"data":[{"metrics":{"bk_apm_duration":6},"target":"t3","timestamp":1764662706000,"dimension":{"kind":"2"}}]}') }]);
  const third = await rowsOf(sim, rt, 4, 3);
  t.deepEqual(third.rows.map((r) => r.target), ['bk-collector', 't2', 't3']);
  t.deepEqual(third.rows[2], { target: 't3', time: 1764662706000, bk_apm_duration: 6, timestamp: 1764662706, dtEventTime: '2025-12-02 16:05:06', dtEventTimeStamp: 1764662706000, localTime: '2025-12-02 16:05:00' });
  t.is(third.kept, 3);
});

test('a clean whose config cannot run is shown with its problems and consumes nothing; without a bus no clean runs', async (t) => {
  const kit = await brokerKit(t);
  const sim = await startSim(t, kit);
  const call = api(sim);
  const { dataId } = await gseTopic(t, kit);
  await ok(call, 'POST', '/v3/access/deploy_plan/', tail.deployParams(app, { data_id: dataId }, settings));
  const params = { ...tail.cleanParams(app, settings, dataId), fields: [{ field_name: 'nope', field_type: 'string' }] };
  const rt = (await ok(call, 'POST', '/v3/databus/cleans/', params)).result_table_id as string;
  await ok(call, 'POST', '/v3/databus/tasks/', { result_table_id: rt });
  const view = await waitFor('the clean to be refused', async () => (await admin<{ cleans: { runner: string; problems: string[] }[] }>(sim, 'cleans')).body.cleans.find((c) => c.runner === 'invalid'));
  t.deepEqual(view.problems, ['field nope is not assigned by the ETL']);

  const bare = createBkdataSim({ config: simConfig({ BKDATA_SIM_CLEAN_START_DELAY_MS: '0' }), logger: silentLogger, registry: createRegistry() });
  await bare.start();
  t.teardown(() => bare.stop());
  const bareCall = api(bare);
  await tailClean(bareCall, dataId);
  t.deepEqual((await admin<{ cleans: { runner: string }[] }>(bare, 'cleans')).body.cleans.map((c) => c.runner), ['stopped']);
});
