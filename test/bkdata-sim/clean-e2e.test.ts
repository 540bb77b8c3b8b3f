/**
 * Cleans running behind bkdata-sim's databus API, on the real broker: raw data and cleans provisioned
 * with the requests the orchestrator's builders make, records in the reference formats produced to the
 * raw data topics (the trace data id's GSE topic `0bkmonitor_{id}0`; the virtual metric's topic from its
 * Kafka deploy plan), and the result rows read back from `GET /admin/results/{rt}`, field by field.
 *
 * The full path last: an application with tail sampling and virtual metrics on → the collector's flow
 * commands → the orchestrator provisions both flows in bkdata-sim → spans over OTLP/HTTP into the
 * collector → its feeds on the data ids' topics → bkdata-sim's cleans → rows equal, field by field, to
 * what BKData's clean makes of the feed records read back from those topics.
 */
import { randomInt } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { createBkdataSim, type BkdataSim } from '../../services/bkdata-sim/service.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import * as tail from '../../services/orchestrator/kinds/tail-sampling.ts';
import * as metric from '../../services/orchestrator/kinds/virtual-metric.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import type { RawRecord } from '../../services/common/bus/index.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { createApplication } from '../../services/collector/applications.ts';
import { createCollector } from '../../services/collector/service.ts';
import { createOrchestrator, orchestratorService } from '../../services/orchestrator/service.ts';
import { brokerKit, brokers, testBus, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
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

// ---------------------------------------------------------------------------------------------------------
// the full path

/** All records of a one-partition topic, in order. */
async function readAll(kit: BrokerKit, topic: string): Promise<RawRecord[]> {
  const [wm] = await kit.admin.watermarks(topic);
  const out: RawRecord[] = [];
  if (!wm || wm.high === wm.low) return out;
  await kit.bus.readRange(topic, [{ partition: 0, start: wm.low, end: wm.high }], async (records) => void out.push(...records));
  return out;
}

/** `yyyy-MM-dd HH:mm:ss` in UTC+8 (BKData's display zone), written out independently of the sim's. */
function cst(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
}

/** One OTLP/JSON attribute. */
const attr = (key: string, value: Record<string, unknown>) => ({ key, value });

test('full path: an application with both features → orchestrator flows in bkdata-sim → spans over OTLP → collector feeds → cleans → rows as BKData makes them', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const prefix = uniqueName('bkclean');
  const plan = topicPlan(prefix).map((p) => ({ ...p, numPartitions: 1, retentionMs: 3_600_000 }));
  const tracesDataId = randomInt(10_000_000, 99_999_999);
  const metricsDataId = tracesDataId + 1;
  const dataTopics = [tracesDataId, metricsDataId].map((id) => `0bkmonitor_${id}0`);
  await kit.admin.ensureTopics([...plan, ...dataTopics.map((topic) => ({ topic, numPartitions: 1, retentionMs: 3_600_000 }))]);
  t.teardown(() => kit.admin.deleteTopics([...plan.map((p) => p.topic), ...dataTopics]).catch(() => undefined));
  const appName = `pipe${tracesDataId}`;
  const rts = { tail: `2_bkapm_tail_${appName}`, metric: `2_bkapm_virtual_metric_${appName}` };
  t.teardown(async () => {
    for (const g of [`${prefix}-orch`, `bkdata-sim.${rts.tail}`, `bkdata-sim.${rts.metric}`]) await kit.admin.deleteGroup(g).catch(() => undefined);
  });
  const base: NodeJS.ProcessEnv = { KAFKA_BROKERS: brokers().join(','), TOPIC_PREFIX: prefix, LOG_LEVEL: 'silent' };

  const sim = createBkdataSim({ config: simConfig({ BKDATA_SIM_CLEAN_START_DELAY_MS: '0', BKDATA_SIM_CLEAN_POLL_MS: '50' }), logger: silentLogger, registry: createRegistry(), bus: testBus(), now: () => NOW, topicPrefix: prefix });
  await sim.start();
  t.teardown(() => sim.stop());
  const orchEnv = {
    ...base,
    BKDATA_API_URL: sim.url(),
    ORCH_HTTP_PORT: '0',
    ORCH_GRPC_PORT: '0',
    ORCH_INSTANCE_ID: uniqueName('orch'),
    ORCH_CONSUMER_GROUP: `${prefix}-orch`,
    BKDATA_CLEAN_POLL_INTERVAL_MS: '50',
    ORCH_RETRY_INITIAL_DELAY_MS: '20',
    ORCH_RETRY_MAX_DELAY_MS: '200',
    ORCH_POLL_INTERVAL_MS: '200',
  };
  const orchestrator = createOrchestrator({ store, bus: testBus(), logger: silentLogger, registry: createRegistry() }, orchestratorService.config(orchEnv));
  await orchestrator.start();
  t.teardown(() => orchestrator.stop());
  const collectorEnv = { ...base, COLLECTOR_OTLP_GRPC_PORT: '0', COLLECTOR_OTLP_HTTP_PORT: '0', COLLECTOR_ADMIN_PORT: '0', COLLECTOR_BATCH_LINGER_MS: '2', COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS: '100' };
  const collector = createCollector({ env: collectorEnv, logger: silentLogger, registry: createRegistry(), store, bus: testBus(), common: loadConfig(commonSpec, { env: collectorEnv }) });
  await collector.start();
  t.teardown(() => collector.stop());

  // The application: its switches queue both flows' commands, which the collector publishes.
  const { token } = await createApplication(store, { bkBizId: 2, appName, tracesDataId, metricsDataId, tailSampling: true, virtualMetric: true });
  await waitFor(
    'both cleans provisioned by the orchestrator and running',
    async () => {
      const { body } = await admin<{ cleans: { result_table_id: string; runner: string }[] }>(sim, 'cleans');
      return [rts.tail, rts.metric].every((rt) => body.cleans.some((c) => c.result_table_id === rt && c.runner === 'running'));
    },
    90_000,
    100,
  );
  await waitFor('the receiver to reach Kafka', () => collector.ready(), 60_000);

  // Spans over OTLP/HTTP JSON: an HTTP server span and its database client child.
  const startNs = BigInt(Date.now() - 2_000) * 1_000_000n + 123_456n;
  const trace = 'a3c5e7f90b1d2f4a6c8e0a2c4e6f8a0b';
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', { stringValue: 'cart' }), attr('telemetry.sdk.name', { stringValue: 'opentelemetry' }), attr('telemetry.sdk.language', { stringValue: 'go' })] },
        scopeSpans: [
          {
            spans: [
              {
                traceId: trace,
                spanId: '1111111111111111',
                name: 'GET /cart',
                kind: 2,
                startTimeUnixNano: startNs.toString(),
                endTimeUnixNano: (startNs + 1_200_000_000n).toString(),
                attributes: [attr('http.method', { stringValue: 'GET' }), attr('http.status_code', { intValue: 200 }), attr('ratio', { doubleValue: 0.5 })],
                status: {},
              },
              {
                traceId: trace,
                spanId: '2222222222222222',
                parentSpanId: '1111111111111111',
                name: 'SELECT carts',
                kind: 3,
                startTimeUnixNano: (startNs + 10_000_000n).toString(),
                endTimeUnixNano: (startNs + 30_000_000n).toString(),
                attributes: [attr('db.system', { stringValue: 'mysql' }), attr('db.name', { stringValue: 'carts' })],
                status: { code: 2, message: 'deadlock' },
              },
            ],
          },
        ],
      },
    ],
  };
  const res = await fetch(`http://127.0.0.1:${collector.ports().http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-bk-token': token }, body: JSON.stringify(body) });
  t.is(res.status, 200, await res.text());

  const tailRows = await rowsOf(sim, rts.tail, 2);
  const metricRows = await rowsOf(sim, rts.metric, 2);
  const localTime = cst(Math.floor(NOW / 60_000) * 60_000);

  // What BKData's tail clean makes of each GSE envelope on the traces data id's topic.
  const envelopes = (await readAll(kit, dataTopics[0] as string)).map((r) => JSON.parse(r.value.toString()) as { datetime: string; time: number; items: Record<string, unknown>[] });
  const wantTail = envelopes.flatMap((e) =>
    e.items.map((item) => ({
      span_id: item.span_id,
      trace_id: item.trace_id,
      // ASCII only and no doubles Java writes differently (0.5 is 0.5): Jackson's text is the item's own.
      span_info: JSON.stringify(item),
      datetime: e.datetime,
      timestamp: e.time,
      dtEventTime: e.datetime,
      dtEventTimeStamp: e.time * 1000,
      localTime,
    })),
  );
  t.is(wantTail.length, 2);
  t.deepEqual(tailRows.rows, wantTail);
  t.deepEqual(tailRows.rows.map((r) => r.span_id), ['1111111111111111', '2222222222222222']);

  // What BKData's virtual-metric clean makes of each derived point on the metrics data id's topic.
  const points = (await readAll(kit, dataTopics[1] as string)).flatMap((r) => (JSON.parse(r.value.toString()) as { data: { target: string; timestamp: number; metrics: { bk_apm_duration: number }; dimension: Record<string, string> }[] }).data);
  const dims = metric.METRIC_DIMENSIONS.filter((d) => d !== 'target');
  const wantMetric = points.map((p) => ({
    target: p.target,
    time: p.timestamp,
    bk_apm_duration: p.metrics.bk_apm_duration,
    ...Object.fromEntries(dims.map((d) => [d, p.dimension[d] ?? null])),
    timestamp: Math.floor(p.timestamp / 1000),
    dtEventTime: cst(p.timestamp),
    dtEventTimeStamp: p.timestamp,
    localTime,
  }));
  t.is(wantMetric.length, 2);
  t.deepEqual(metricRows.rows, wantMetric);
  t.deepEqual(metricRows.rows.map((r) => [r.span_name, r.kind, r.bk_apm_duration, r.service_name]), [
    ['GET /cart', '2', 1_200_000_000, 'cart'],
    ['SELECT carts', '3', 20_000_000, 'cart'],
  ]);
  t.like(metricRows.stats, { records_failed: 0, rows_out: 2 });
  t.like(tailRows.stats, { records_failed: 0, rows_out: 2 });
});
