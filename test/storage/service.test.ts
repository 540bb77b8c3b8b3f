/**
 * The storage service end to end through the real broker: spans produced to `spans` are shown by
 * `bkstream trace <id>` within 2 s; replayed spans (through `spans.replay`) are not stored twice; agent
 * MetricBatch records come back from a range query (`bkstream metrics`); events are listed; the
 * service's lifecycle (stop without start; start → process → stop) on both stores.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { AgentEvent } from '../../services/common/records.ts';
import { createStore } from '../../services/common/store/index.ts';
import { runMetrics } from '../../services/cli/commands/metrics.ts';
import { runTrace } from '../../services/cli/commands/trace.ts';
import { runTraces } from '../../services/cli/commands/traces.ts';
import { createStorage, loadStorageConfig, storageService } from '../../services/storage/service.ts';
import { ADMIN_ENV, bearer } from '../common/auth-kit.ts';
import { brokerKit, testBus, waitFor } from '../helpers/kafka.ts';
import { createService } from '../helpers/service.ts';
import { freshDatabase, pgliteStore } from '../helpers/store.ts';
import { addApp, span } from './helpers.ts';
import { hostMetrics, produceMetrics, produceSpans, startStorage, storageTopics } from './kit.ts';

function checkoutTrace(trace: string, at: number) {
  return [
    span({ trace, id: `${trace.slice(0, 8)}00000001`, service: 'gateway', kind: 2, name: 'GET /checkout', start: at, duration: 40_000, attributes: { 'http.method': 'GET', 'http.status_code': 200 } }),
    span({ trace, id: `${trace.slice(0, 8)}00000002`, parent: `${trace.slice(0, 8)}00000001`, service: 'gateway', kind: 3, name: 'POST /orders', start: at + 1_000, duration: 30_000 }),
    span({ trace, id: `${trace.slice(0, 8)}00000003`, parent: `${trace.slice(0, 8)}00000002`, service: 'orders', kind: 2, name: 'POST /orders', start: at + 2_000, duration: 25_000 }),
    span({ trace, id: `${trace.slice(0, 8)}00000004`, parent: `${trace.slice(0, 8)}00000003`, service: 'orders', kind: 3, name: 'INSERT orders', start: at + 3_000, duration: 5_000, error: true, attributes: { 'db.system': 'mysql' } }),
  ];
}

test('stop without start; a bad configuration lists every problem', async (t) => {
  const store = createStore({ dataDir: 'memory://', logger: silentLogger });
  const env = { KAFKA_BROKERS: '127.0.0.1:1' };
  const service = await createStorage({ env, logger: silentLogger, registry: createRegistry(), store, bus: testBus(), common: loadConfig(commonSpec, { env }) });
  await t.notThrowsAsync(service.stop());
  await t.notThrowsAsync(service.stop());
  const err = t.throws(() => loadStorageConfig({ STORAGE_HTTP_PORT: 'x', STORAGE_METRICS_GROUP_ID: 'bkstream-storage-spans', STORAGE_OTLP_HEADERS: 'nope', STORAGE_OTLP_ENDPOINT: 'ftp://x' }), { instanceOf: ConfigError });
  for (const key of ['STORAGE_HTTP_PORT', 'STORAGE_OTLP_ENDPOINT']) t.regex(err.message, new RegExp(key));
  const cross = t.throws(() => loadStorageConfig({ STORAGE_METRICS_GROUP_ID: 'bkstream-storage-spans', STORAGE_OTLP_HEADERS: 'nope' }), { instanceOf: ConfigError });
  t.regex(cross.message, /STORAGE_METRICS_GROUP_ID: must differ from STORAGE_SPANS_GROUP_ID/);
  t.regex(cross.message, /STORAGE_OTLP_HEADERS: header "nope" is not name=value/);
  t.is(storageService.name, 'storage');
});

test.serial('end to end on PostgreSQL: spans in Kafka are a waterfall in `bkstream trace` within 2 s; replays are not stored twice; metrics and events come back', async (t) => {
  const kit = await brokerKit(t);
  const url = await freshDatabase(t);
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 4 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  await addApp(store);
  const where = await storageTopics(t, kit);
  const run = await startStorage(t, kit, store, where, { DATABASE_URL: url });
  const env = { STORAGE_URL: run.url, ...ADMIN_ENV };

  const trace = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const at = (Date.now() - 60_000) * 1000;
  await produceSpans(kit, where.topics.spans, checkoutTrace(trace, at));
  const produced = performance.now();
  const lines: string[] = [];
  await waitFor('the trace in `bkstream trace`', async () => {
    lines.length = 0;
    return (await runTrace([trace], env, (l) => lines.push(l))) === 0 && lines.length === 5;
  }, 10_000, 20);
  const seconds = (performance.now() - produced) / 1000;
  t.log(`produced → visible in bkstream trace: ${seconds.toFixed(3)} s`);
  t.true(seconds <= 2, `visible after ${seconds} s`);
  t.regex(lines[0] as string, new RegExp(`^trace ${trace}  app 2/shop  4 spans, 2 services, 40.0 ms, 1 error  root gateway$`));
  t.deepEqual(lines.slice(1).map((l) => l.slice(l.indexOf('|', 23) + 2)), [
    'gateway: GET /checkout [server]',
    '  gateway: POST /orders [client]',
    '    orders: POST /orders [server]',
    '      orders: INSERT orders [client]  ✗ error',
  ]);
  const json: string[] = [];
  t.is(await runTrace([trace, '--json'], env, (l) => json.push(l)), 0);
  t.is((JSON.parse(json.join('\n')) as { spans: unknown[] }).spans.length, 4);

  // the trace list through the CLI
  const listed: string[] = [];
  t.is(await runTraces(['shop', '--service', 'gateway', '--min-duration', '10ms', '--since', '1h'], env, (l) => listed.push(l)), 0);
  t.is(listed.length, 2);
  t.regex(listed[1] as string, new RegExp(`^${trace}  .* +40.0 ms +4 +2 +yes +gateway: GET /checkout$`));
  const none: string[] = [];
  await runTraces(['shop', '--min-duration', '1s'], env, (l) => none.push(l));
  t.regex(none[0] as string, /^no traces of 2\/shop since/);

  // the same spans again, on the live topic and through spans.replay: stored once
  await produceSpans(kit, where.topics.spans, checkoutTrace(trace, at));
  await produceSpans(kit, where.topics.replay, checkoutTrace(trace, at));
  await waitFor('both redeliveries written', async () => {
    const m = await run.service.metrics.duplicates.get();
    return (m.values.find((v) => v.labels.signal === 'spans')?.value ?? 0) >= 8;
  }, 30_000);
  const { rows } = await store.query<{ n: number; c: number }>('SELECT (SELECT count(*) FROM storage_span)::int AS n, (SELECT span_count FROM storage_trace) AS c');
  t.deepEqual(rows[0], { n: 4, c: 4 });

  // agent metrics: an hour of a host's basereport-derived series, back from a range query
  const now = Date.now();
  await produceMetrics(kit, where.topics.metrics, [hostMetrics('10.0.0.7', 'web-1', 30, now), hostMetrics('10.0.0.8', 'web-2', 30, now)]);
  const out: string[] = [];
  await waitFor('cpu_usage_pct of 10.0.0.7', async () => {
    out.length = 0;
    return (await runMetrics(['cpu_usage_pct', '--host', '10.0.0.7', '--since', '1h', '--json'], env, (l) => out.push(l), now + 1_000)) === 0 &&
      ((JSON.parse(out.join('\n')) as { series: unknown[] }).series.length === 1);
  }, 30_000, 100);
  const series = (JSON.parse(out.join('\n')) as { series: { labels: Record<string, string>; points: [number, number][] }[] }).series;
  t.like(series[0]?.labels, { bk_target_ip: '10.0.0.7', hostname: 'web-1', device_name: 'total', bk_biz_id: '2', bk_data_id: '1001', bk_host_id: '7' });
  t.is(series[0]?.points.length, 30);
  t.deepEqual(series[0]?.points.map(([, v]) => v), Array.from({ length: 30 }, (_, i) => 10 + i));
  const byHost = await (await fetch(`${run.url}/api/v1/metrics/query?name=mem_used_pct&by=hostname&agg=max&step=3600&start=${Math.floor(now / 1000) - 3600}&end=${Math.floor(now / 1000) + 1}`, { headers: bearer() })).json() as { series: { labels: Record<string, string>; points: [number, number][] }[] };
  t.deepEqual(byHost.series.map((s) => s.labels.hostname), ['web-1', 'web-2']);
  t.is(byHost.series[0]?.points.reduce((m, [, v]) => Math.max(m, v), 0), 50 + 29 / 2);
  const text: string[] = [];
  t.is(await runMetrics(['load1', '--host', 'web-2', '--step', '10m'], env, (l) => text.push(l), now + 1_000), 0);
  t.regex(text[0] as string, /^\{.*hostname="web-2".*\}$/);

  // events
  const eventCodec = codecFor('AgentEvent');
  const event = (type: string, ts: number): AgentEvent => ({ event_type: type, data_id: 1_100_001, bk_biz_id: 2, task_id: 3, timestamp: ts, agent: { bk_cloud_id: 0, ip: '10.0.0.7', hostname: 'web-1', bk_agent_id: 'a', bk_host_id: 7 }, status: 0, dimensions: { target: 'https://example.test' }, metrics: { available: 1 }, body: JSON.stringify({ type, ok: true }) });
  const evs = [event('http', now - 2_000), event('heartbeat', now - 1_000), event('http', now - 500)];
  await kit.produce(where.topics.events, [...evs, evs[0] as AgentEvent].map((e) => ({ key: '2:1100001', value: eventCodec.encode(e) })));
  await waitFor('events listed', async () => {
    const r = (await (await fetch(`${run.url}/api/v1/events?event_type=http`, { headers: bearer() })).json()) as { items: unknown[] };
    return r.items.length === 2;
  }, 30_000, 100);
  const page = (await (await fetch(`${run.url}/api/v1/events?limit=2`, { headers: bearer() })).json()) as { items: { event_type: string; body: unknown }[]; next_cursor: string };
  t.deepEqual(page.items.map((e) => e.event_type), ['http', 'heartbeat']);
  t.deepEqual(page.items[0]?.body, { type: 'http', ok: true });
  const rest = (await (await fetch(`${run.url}/api/v1/events?limit=2&cursor=${page.next_cursor}`, { headers: bearer() })).json()) as { items: unknown[]; next_cursor?: string };
  t.is(rest.items.length, 1, 'the duplicate event was stored once');
  t.is(rest.next_cursor, undefined);

  // a basereport event (the agent's document) also becomes host series
  const report = { data: { cpu: { total_usage: 37.5, per_usage: [30, 45] }, mem: { meminfo: { total: 8e9, used: 2e9, usedPercent: 25 } }, load: { load_avg: { load1: 0.5, load5: 0.4, load15: 0.3 }, per_cpu_load: 0.25 }, disk: { usage: [{ path: '/', fstype: 'ext4', total: 1e11, usedPercent: 61.2 }] }, net: null }, dataid: 1_001, type: 'basereport' };
  await kit.produce(where.topics.events, [{ key: '2:1001', value: eventCodec.encode({ ...event('basereport', now - 100), data_id: 1_001, body: JSON.stringify(report) }) }]);
  const host: string[] = [];
  await waitFor('host series from basereport', async () => {
    host.length = 0;
    return (await runMetrics(['system.cpu_summary.usage', '--host', '10.0.0.7', '--json'], env, (l) => host.push(l), now + 1_000)) === 0 &&
      (JSON.parse(host.join('\n')) as { series: unknown[] }).series.length === 1;
  }, 30_000, 100);
  const cpu = (JSON.parse(host.join('\n')) as { series: { labels: Record<string, string>; points: [number, number][] }[] }).series[0];
  t.like(cpu?.labels, { bk_target_ip: '10.0.0.7', target: '0:10.0.0.7', bk_data_id: '1001' });
  t.deepEqual(cpu?.points.map(([, v]) => v), [37.5]);
  const disk = (await (await fetch(`${run.url}/api/v1/metrics/query?name=system.disk.in_use&match=mount_point%3D%2F&start=${Math.floor(now / 1000) - 60}&end=${Math.floor(now / 1000) + 1}`, { headers: bearer() })).json()) as { series: { labels: Record<string, string>; points: [number, number][] }[] };
  t.is(disk.series[0]?.points[0]?.[1], 61.2);
  t.is(disk.series[0]?.labels.fstype, 'ext4');

  const health = await fetch(`${run.url}/healthz`);
  t.is(health.status, 200);
  const metricsText = await (await fetch(`${run.url}/metrics`)).text();
  t.regex(metricsText, /bkstream_storage_rows_written_total\{signal="spans"[^}]*\} 4/);
});

test.serial('on embedded PGlite: start → spans, metrics → stop, through the service module', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  await addApp(store);
  const where = await storageTopics(t, kit, 1);
  const run = await startStorage(t, kit, store, where);
  const trace = 'f'.repeat(32);
  await produceSpans(kit, where.topics.spans, checkoutTrace(trace, (Date.now() - 10_000) * 1000));
  await produceMetrics(kit, where.topics.metrics, [hostMetrics('10.0.0.9', 'db-1', 5, Date.now())]);
  await waitFor('spans and samples stored', async () => {
    const { rows } = await store.query<{ s: number; m: number }>('SELECT (SELECT count(*) FROM storage_span)::int AS s, (SELECT count(*) FROM storage_metric_sample)::int AS m');
    return rows[0]?.s === 4 && rows[0]?.m === 15;
  }, 30_000, 100);
  const r = await fetch(`${run.url}/api/v1/apps/2/shop/traces/${trace}`, { headers: bearer() });
  t.is(r.status, 200);
  await run.service.stop();
  await t.notThrowsAsync(run.service.stop(), 'stop is idempotent');
  // the module as the runner builds it
  const env = { KAFKA_BROKERS: '127.0.0.1:1', STORAGE_HTTP_PORT: '0' };
  const component = await createService(storageService, { env, logger: silentLogger, registry: createRegistry(), store, bus: testBus(), common: loadConfig(commonSpec, { env }) });
  t.is(component.name, 'storage');
  await component.stop();
});
