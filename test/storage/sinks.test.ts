/**
 * The second sinks against real receivers: Prometheus remote write into a real Prometheus (Debian's
 * `prometheus`, started here on a loopback port with its remote-write receiver on), and OTLP/HTTP JSON
 * export into this project's collector (started through its service module), whose Kafka output must
 * carry the exported spans unchanged. Also the remote-write encoding's unit checks.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snappy from 'snappyjs';
import { codecFor } from '../../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { Span, SpanBatch } from '../../services/common/records.ts';
import type { ServiceModule } from '../../services/common/service.ts';
import { createApplication } from '../../services/collector/applications.ts';
import { encodeWriteRequest } from '../../services/storage/sinks/protobuf.ts';
import { labelName, metricName, toTimeSeries } from '../../services/storage/sinks/remote-write.ts';
import { exportRequest } from '../../services/storage/sinks/otlp.ts';
import { brokerKit, brokers, testBus, uniqueName, waitFor } from '../helpers/kafka.ts';
import { createService } from '../helpers/service.ts';
import { pgliteStore } from '../helpers/store.ts';
import { addApp, span } from './helpers.ts';
import { hostMetrics, produceMetrics, produceSpans, startStorage, storageTopics } from './kit.ts';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A real Prometheus with its remote-write receiver, on a loopback port and a temporary TSDB. */
async function startPrometheus(t: ExecutionContext): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'bkstream-prom-'));
  writeFileSync(join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1m\n');
  const port = await freePort();
  const proc = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--web.enable-remote-write-receiver',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let exited = false;
  const spawnError = new Promise<never>((_, reject) => {
    proc.once('error', (err) => reject(new Error(`cannot start prometheus (install Debian's prometheus package: apt-get install -y prometheus): ${err.message}`)));
  });
  proc.once('exit', () => (exited = true));
  t.teardown(async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      await new Promise((resolve) => proc.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const base = `http://127.0.0.1:${port}`;
  await Promise.race([
    spawnError,
    waitFor('prometheus ready', async () => {
      if (exited) throw new Error(`prometheus exited: ${stderr}`);
      return (await fetch(`${base}/-/ready`)).ok;
    }, 30_000, 100),
  ]);
  return base;
}

test('remote-write encoding: Prometheus-valid names, sorted labels, series grouped with samples in time order', (t) => {
  t.is(metricName('cpu.usage-pct'), 'cpu_usage_pct');
  t.is(metricName('1st'), '_1st');
  t.is(labelName('k8s.pod:name'), 'k8s_pod_name');
  const batch = hostMetrics('10.0.0.1', 'h', 3, 1_800_000_000_000);
  batch.records.reverse();
  const series = toTimeSeries([batch]);
  t.is(series.length, 3);
  const cpu = series.find((s) => s.labels.some((l) => l.name === '__name__' && l.value === 'cpu_usage_pct'));
  t.deepEqual(cpu?.labels.map((l) => l.name), ['__name__', 'bk_biz_id', 'bk_data_id', 'bk_host_id', 'bk_target_cloud_id', 'bk_target_ip', 'device_name', 'hostname', 'target']);
  t.deepEqual(cpu?.samples.map((s) => s.value), [10, 11, 12]);
  // a WriteRequest decodes back by hand: field 1 (timeseries), its field 1 (labels) and 2 (samples)
  const buf = encodeWriteRequest([{ labels: [{ name: '__name__', value: 'x' }], samples: [{ value: 1.5, timestamp: 1_800_000_000_000 }, { value: -2, timestamp: -1 }] }]);
  t.is(buf[0], 0x0a, 'field 1, length-delimited');
  t.true(Buffer.from(snappy.uncompress(snappy.compress(buf))).equals(buf));
  t.true(buf.includes(Buffer.from([0x09, ...Buffer.from(new Float64Array([1.5]).buffer)])), 'double sample value');
  t.true(buf.includes(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), 'negative int64 as ten bytes');
});

test('OTLP/JSON request: spans grouped by resource, hex ids, nanosecond strings, typed values', (t) => {
  const s = span({ trace: 'ab'.repeat(16), id: 'cd'.repeat(8), start: 1_700_000_000_000_001, duration: 5, attributes: { i: 3, d: 1.5, b: true, s: 'x', bytes: Buffer.from('hi'), list: ['a', 1] } });
  const req = exportRequest([s, { ...s, span_id: 'ef'.repeat(8) }, { ...s, resource: { 'service.name': 'other' } }]) as { resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[] };
  t.is(req.resourceSpans.length, 2);
  const first = req.resourceSpans[0]?.scopeSpans[0]?.spans[0] as Record<string, unknown>;
  t.like(first, { traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), startTimeUnixNano: '1700000000000001000', endTimeUnixNano: '1700000000000006000', kind: 2 });
  t.deepEqual(first.attributes, [
    { key: 'i', value: { intValue: '3' } },
    { key: 'd', value: { doubleValue: 1.5 } },
    { key: 'b', value: { boolValue: true } },
    { key: 's', value: { stringValue: 'x' } },
    { key: 'bytes', value: { bytesValue: 'aGk=' } },
    { key: 'list', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '1' }] } } },
  ]);
});

test.serial('Prometheus remote write: agent metrics reach a real Prometheus', async (t) => {
  const prom = await startPrometheus(t);
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await storageTopics(t, kit, 1);
  const run = await startStorage(t, kit, store, where, { STORAGE_REMOTE_WRITE_URL: `${prom}/api/v1/write` });
  const now = Date.now();
  await produceMetrics(kit, where.topics.metrics, [hostMetrics('10.0.0.7', 'web-1', 30, now), hostMetrics('10.0.0.8', 'web-2', 30, now)]);
  const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
    const r = (await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}&time=${(now + 1_000) / 1000}`)).json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    return r.data.result;
  };
  const counted = await waitFor('30 samples of each host in Prometheus', async () => {
    const r = await query('count_over_time(cpu_usage_pct[1h])');
    return r.length === 2 && r.every((x) => x.value[1] === '30') ? r : undefined;
  }, 30_000, 200);
  t.deepEqual(counted.map((r) => r.metric.hostname).sort(), ['web-1', 'web-2']);
  const latest = await query('cpu_usage_pct{bk_target_ip="10.0.0.7"}');
  t.is(latest[0]?.value[1], '39');
  t.like(latest[0]?.metric, { __name__: 'cpu_usage_pct', bk_target_ip: '10.0.0.7', hostname: 'web-1', device_name: 'total', bk_biz_id: '2', bk_data_id: '1001' });
  t.is((await query('mem_used_pct{hostname="web-2"}'))[0]?.value[1], String(50 + 29 / 2));
  // at least once: a redelivery of samples Prometheus already has is refused (out of order, 400), counted
  // as dropped and committed: it never blocks the partition
  await produceMetrics(kit, where.topics.metrics, [hostMetrics('10.0.0.7', 'web-1', 30, now)]);
  await waitFor('the redelivery handled', async () => {
    const sentN = (await run.service.metrics.sinkSent.get()).values[0]?.value ?? 0;
    const droppedN = (await run.service.metrics.sinkDropped.get()).values[0]?.value ?? 0;
    return sentN + droppedN >= 270;
  }, 30_000, 100);
  t.is((await run.service.metrics.sinkSent.get()).values[0]?.value, 180);
  t.is((await query('count_over_time(cpu_usage_pct{hostname="web-1"}[1h])'))[0]?.value[1], '30');
});

test.serial('OTLP export: spans reach the project\'s collector, which publishes them unchanged', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  await addApp(store, 'sink-src');
  // the collector: its own application (the token says where spans go), its own topic prefix
  const { token } = await createApplication(store, { bkBizId: 2, appName: 'shop', tracesDataId: 1_500_001 });
  const collectorPrefix = uniqueName('otlp-rcv');
  const collectorTopic = `${collectorPrefix}.spans`;
  await kit.admin.ensureTopics([{ topic: collectorTopic, numPartitions: 1, retentionMs: 3_600_000 }]);
  t.teardown(() => kit.admin.deleteTopics([collectorTopic]));
  const httpPort = await freePort();
  const collectorEnv: NodeJS.ProcessEnv = {
    TOPIC_PREFIX: collectorPrefix,
    KAFKA_BROKERS: brokers().join(','),
    COLLECTOR_OTLP_GRPC_PORT: String(await freePort()),
    COLLECTOR_OTLP_HTTP_PORT: String(httpPort),
    COLLECTOR_ADMIN_PORT: String(await freePort()),
  };
  const module = ((await import('../../services/collector/service.ts')) as { default: ServiceModule }).default;
  const collector = await createService(module as ServiceModule<unknown, 'store' | 'bus'>, { env: collectorEnv, logger: silentLogger, registry: createRegistry(), store, bus: testBus(), common: loadConfig(commonSpec, { env: collectorEnv }) });
  t.teardown(() => collector.stop());
  await collector.start();

  // what the collector publishes
  const received: Span[] = [];
  const reader = kit.bus.consumer<SpanBatch>({ groupId: uniqueName('otlp-read'), topics: [collectorTopic], codec: codecFor('SpanBatch'), dlqTopic: `${collectorPrefix}.dlq`, handler: async (b) => {
    for (const r of b.records) received.push(...r.value.spans);
  } });
  t.teardown(() => reader.stop());
  await reader.start();

  const where = await storageTopics(t, kit, 1);
  await startStorage(t, kit, store, where, {
    STORAGE_OTLP_ENDPOINT: `http://127.0.0.1:${httpPort}/v1/traces`,
    STORAGE_OTLP_HEADERS: `x-bk-token=${token}`,
  });
  const at = (Date.now() - 60_000) * 1000;
  const sent = [
    span({ app: 'sink-src', trace: '0af7651916cd43dd8448eb211c80319c', id: 'b7ad6b7169203331', service: 'gateway', name: 'GET /x', start: at, duration: 2_000, attributes: { 'http.method': 'GET', 'http.status_code': 200, ratio: 0.5, ok: true, tags: ['a', 'b'] } }),
    span({ app: 'sink-src', trace: '0af7651916cd43dd8448eb211c80319c', id: 'c7ad6b7169203332', parent: 'b7ad6b7169203331', kind: 3, service: 'gateway', name: 'SELECT', start: at + 100, duration: 500, error: true, attributes: { 'db.system': 'mysql' } }),
  ];
  await produceSpans(kit, where.topics.spans, sent);
  await waitFor('both spans published by the collector', () => received.length >= 2, 30_000, 100);
  received.sort((a, b) => a.span_id.localeCompare(b.span_id));
  for (const [i, s] of sent.entries()) {
    const r = received[i] as Span;
    t.like(r, { bk_biz_id: 2, app_name: 'shop', trace_id: s.trace_id, span_id: s.span_id, parent_span_id: s.parent_span_id, span_name: s.span_name, kind: s.kind, start_time: s.start_time, end_time: s.end_time, elapsed_time: s.elapsed_time });
    t.is(r.status.code, s.status.code);
    t.deepEqual({ ...r.attributes }, { ...s.attributes });
    t.is(r.resource['service.name'], 'gateway');
  }
});
