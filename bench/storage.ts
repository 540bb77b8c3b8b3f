/**
 * `npm run bench:storage`: the storage service's write rate against a bare COPY of the same rows, and
 * query latency over many stored spans, on PostgreSQL, in one run.
 *
 * 1. Spans: traces of 8 spans (an http entry, http and grpc calls between services, a mysql client, a
 *    redis client), 50 services × 20 endpoints, realistic attributes and resources; produced to
 *    `<prefix>.spans` (12 partitions) as SpanBatch records of ~100 spans keyed by trace id.
 * 2. Baseline: the same spans as storage rows (decoded and converted before the clock starts), COPYed
 *    straight into `storage_span` (the real partitioned table with its indexes) in chunks of
 *    STORAGE_FLUSH_MAX_ROWS on STORAGE_FLUSH_CONCURRENCY connections. No Kafka, no decoding, no
 *    staging, no trace summaries, no idempotence: the floor of what any writer of these rows pays.
 * 3. The service (createStorage, in this process, once the bench's own spans and rows are garbage) from
 *    a fresh consumer group: Kafka → transcode → COPY → trace summaries and rollup pieces, timed from the
 *    group's join to the last span written.
 * 4. Query latency: the table is filled to BENCH_STORAGE_STORED spans with SQL `generate_series`
 *    straight into the partitions (with matching trace summaries) over the last 24 hours — producing
 *    10 M spans through Kafka would take minutes on this machine and measure the writer again — then
 *    BENCH_STORAGE_QUERIES of each through the HTTP API: trace by id, a one-hour trace list filtered by
 *    entry service and minimum duration, and a one-hour RED aggregation (count, error rate, p99 of
 *    elapsed_time) grouped by service and endpoint.
 *
 * `node bench/storage.ts --hot [spans]`: the span consumers' JavaScript work alone, in this process (no
 * broker, no database): the same spans as SpanBatch records, decoded and made into one COPY Buffer (and
 * the trace and rollup pieces) per 10 000 rows — by the PostgreSQL path (span-copy.ts's transcoder →
 * rows → copyData) and by the path it replaced (avsc decode → spanRow → copyData) — in interleaved
 * rounds; prints µs per span of each. Run it under `node --cpu-prof` for shares of the hot path
 * (BENCH_HOT_ONLY=copy|objects runs one path).
 *
 * Env: KAFKA_BROKERS (set by scripts/with-broker.ts), BENCH_DATABASE_URL (a PostgreSQL admin database;
 * default postgres://postgres@127.0.0.1:5432/postgres — the bench creates and drops its own database),
 * BENCH_STORAGE_SPANS (spans written through the service, default 500 000), BENCH_STORAGE_STORED (spans
 * stored for the queries, default 10 000 000), BENCH_STORAGE_QUERIES (of each kind, default 200),
 * BENCH_STORAGE_KEEP_DB=1 (keep the database afterwards, to look at plans; drop it by hand),
 * BENCH_STORAGE_CPU_PROF=<file> (a V8 CPU profile of this process while the service writes).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus, partitionFor, type OutMessage } from '../services/common/bus/index.ts';
import { codecFor } from '../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../services/common/config.ts';
import { createLogger } from '../services/common/log.ts';
import { createRegistry } from '../services/common/metrics.ts';
import { installWarningFilter } from '../services/common/process.ts';
import type { Span } from '../services/common/records.ts';
import { CopyPool } from '../services/common/store/copy.ts';
import { createStore, type Store } from '../services/common/store/index.ts';
import { topicPlan } from '../services/common/topics.ts';
import { DAY_US, PartitionManager } from '../services/storage/partitions.ts';
import { rollupFromSpans } from '../services/storage/rollup.ts';
import { factsOfRows, rollupPieces, tracePieces } from '../services/storage/pieces.ts';
import { SpanLine, spanCopyDecoder, type StoredSpan } from '../services/storage/span-copy.ts';
import { spanPartitions } from '../services/storage/span-ingest.ts';
import { SPAN_COPY_COLUMNS, spanRow, type SpanRow } from '../services/storage/span-rows.ts';
import { copyData } from '../services/storage/span-writer.ts';
import { createStorage } from '../services/storage/service.ts';
import { fmt, interleaved, median, percentile, result } from './lib.ts';

installWarningFilter();

const SPANS = Number(process.env.BENCH_STORAGE_SPANS ?? 500_000);
const STORED = Number(process.env.BENCH_STORAGE_STORED ?? 10_000_000);
const QUERIES = Number(process.env.BENCH_STORAGE_QUERIES ?? 200);
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** The admin token the service is started with (BKSTREAM_ADMIN_TOKEN) and the queries send. */
const BENCH_ADMIN_TOKEN = `bkadm_bench-${randomBytes(16).toString('hex')}`;
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const PARTITIONS = 12;
const SPANS_PER_RECORD = 100;
const SERVICES = 50;
const ENDPOINTS = 20;
const FLUSH_ROWS = 10_000;
const CONCURRENCY = 2;
const BIZ = 2;
const APP = 'bench';
const quiet = createLogger({ level: 'silent' });

const hex = (n: number, bytes: number): string => n.toString(16).padStart(bytes * 2, '0').slice(-bytes * 2);

/** Trace `i` of 8 spans ending about now − `agoUs`. */
function trace(i: number, startUs: number): Span[] {
  const traceId = `${hex(i, 8)}${randomBytes(8).toString('hex')}`;
  const svc = (k: number): string => `svc-${(i * 7 + k) % SERVICES}`;
  const resource = (name: string): Span['resource'] => ({
    'service.name': name, 'service.version': '1.4.2', 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.language': 'go', 'telemetry.sdk.version': '1.28.0',
    'net.host.ip': `10.0.${(i % 3)}.${(i * 7) % 200}`, 'bk.instance.id': `go:${name}:${i % 3}`,
  });
  let n = 0;
  const mk = (parent: string, service: string, kind: number, name: string, offset: number, duration: number, attributes: Span['attributes'], error = false): Span => {
    const spanId = `${hex(i, 6)}${hex(n++, 2)}`;
    return {
      bk_biz_id: BIZ, app_name: APP, trace_id: traceId, span_id: spanId, parent_span_id: parent, span_name: name, kind,
      start_time: startUs + offset, end_time: startUs + offset + duration, elapsed_time: duration,
      status: { code: error ? 2 : 0, message: error ? 'timeout' : '' }, trace_state: '', attributes, resource: resource(service), events: [], links: [], client_ip: '10.1.0.1',
    };
  };
  const endpoint = `GET /api/v1/items/${i % ENDPOINTS}`;
  const err = i % 50 === 0;
  const entry = mk('', svc(0), 2, endpoint, 0, 40_000 + (i % 1000) * 50, { 'http.method': 'GET', 'http.route': endpoint, 'http.status_code': err ? 500 : 200, 'http.scheme': 'https', 'net.peer.ip': '10.2.0.9' }, err);
  const call = mk(entry.span_id, svc(0), 3, `POST /orders/${i % ENDPOINTS}`, 1_000, 30_000, { 'http.method': 'POST', 'http.status_code': 200, 'peer.service': svc(1) });
  const server = mk(call.span_id, svc(1), 2, `POST /orders/${i % ENDPOINTS}`, 2_000, 28_000, { 'http.method': 'POST', 'http.status_code': 200 });
  const grpc = mk(server.span_id, svc(1), 3, `inventory.Stock/Reserve`, 3_000, 10_000, { 'rpc.system': 'grpc', 'rpc.service': 'inventory.Stock', 'rpc.method': 'Reserve' });
  const grpcServer = mk(grpc.span_id, svc(2), 2, `inventory.Stock/Reserve`, 3_500, 9_000, { 'rpc.system': 'grpc', 'rpc.grpc.status_code': 0 });
  const db = mk(grpcServer.span_id, svc(2), 3, 'UPDATE stock', 4_000, 3_000 + (i % 100) * 10, { 'db.system': 'mysql', 'db.statement': 'UPDATE stock SET n = n - ? WHERE id = ?', 'net.peer.name': 'mysql.local', 'net.peer.port': 3306 }, err);
  const cache = mk(server.span_id, svc(1), 3, 'GET', 15_000, 300, { 'db.system': 'redis', 'db.operation': 'GET', 'net.peer.name': 'redis.local' });
  const internal = mk(entry.span_id, svc(0), 1, 'render', 35_000, 2_000, { 'template': 'items' });
  return [entry, call, server, grpc, grpcServer, db, cache, internal];
}

function makeSpans(total: number): Span[] {
  const out: Span[] = [];
  const now = Date.now() * 1000;
  for (let i = 0; out.length < total; i++) out.push(...trace(i, now - 600_000_000 + (i % 600) * 1_000_000));
  return out.slice(0, total);
}

async function produce(bus: Bus, topic: string, spans: Span[]): Promise<number> {
  const codec = codecFor('SpanBatch');
  const producer = bus.producer({ maxInFlightRequests: 5 });
  await producer.start();
  const byPartition = new Map<number, Span[]>();
  for (const s of spans) {
    const p = partitionFor(s.trace_id, PARTITIONS);
    const list = byPartition.get(p);
    if (list) list.push(s);
    else byPartition.set(p, [s]);
  }
  let records = 0;
  const messages: OutMessage[] = [];
  for (const [partition, list] of byPartition) {
    for (let i = 0; i < list.length; i += SPANS_PER_RECORD) {
      const chunk = list.slice(i, i + SPANS_PER_RECORD);
      messages.push({ key: chunk[0]?.trace_id ?? null, partition, value: codec.encode({ spans: chunk }) });
    }
  }
  // requests under the broker's 1 MiB record-batch limit
  let chunk: OutMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    if (bytes + m.value.length > 700_000 && chunk.length > 0) {
      await producer.send(topic, chunk);
      records += chunk.length;
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += m.value.length;
  }
  if (chunk.length > 0) {
    await producer.send(topic, chunk);
    records += chunk.length;
  }
  await producer.stop();
  return records;
}

/** Bare COPY of the rows into storage_span, FLUSH_ROWS at a time on CONCURRENCY connections. */
async function bareCopy(url: string, rows: SpanRow[]): Promise<number> {
  const pool = new CopyPool(url, { logger: quiet, poolSize: CONCURRENCY });
  await pool.start();
  const chunks: Buffer[] = [];
  for (let i = 0; i < rows.length; i += FLUSH_ROWS) chunks.push(copyData(rows.slice(i, i + FLUSH_ROWS)));
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++] as Buffer;
      await pool.transaction((tx) => tx.copyFrom(`COPY storage_span (${SPAN_COPY_COLUMNS.join(', ')}) FROM STDIN`, chunk));
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await pool.stop();
  return rows.length / seconds;
}

/**
 * BENCH_STORAGE_CPU_PROF=<file>: a V8 CPU profile of this process while the service writes (the span
 * consumers, the writer's JavaScript); resolves to the function that stops it and writes the file.
 */
async function startProfile(): Promise<(() => Promise<void>) | undefined> {
  const file = process.env.BENCH_STORAGE_CPU_PROF;
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
    console.log(`  CPU profile of the service phase: ${file}`);
  };
}

/**
 * CPU seconds used so far by the local PostgreSQL server's processes (Linux /proc; 0 elsewhere): read
 * before and after a phase, the server's share of it (processes that exit in between are not counted).
 */
function serverCpuSeconds(): number {
  let ticks = 0;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('postgres')) continue;
        const fields = stat.slice(close + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // the process exited
      }
    }
  } catch {
    return 0;
  }
  return ticks / 100;
}

function rowsPerWrite(rows: number, writes: number): number {
  return Math.round(rows / Math.max(1, writes));
}

async function count(store: Store, table: string): Promise<number> {
  const { rows } = await store.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? 0;
}

/**
 * Fills storage_span (and storage_trace) with `total` spans over the last 24 hours by generate_series:
 * traces of 8 spans, 50 services × 20 endpoints, 2 % errors.
 */
async function fill(store: Store, partitions: PartitionManager, total: number, nowUs: number): Promise<void> {
  const traces = Math.floor(total / 8);
  const t0 = nowUs - 24 * 3600 * 1_000_000;
  const step = Math.floor((24 * 3600 * 1_000_000) / Math.max(1, traces));
  const needs = [];
  for (let d = Math.floor(t0 / DAY_US) - 1; d <= Math.floor(nowUs / DAY_US) + 1; d++) {
    needs.push({ kind: 'span' as const, day: d, retentionDays: 7 }, { kind: 'trace' as const, day: d, retentionDays: 7 }, { kind: 'minute' as const, day: d, retentionDays: 7 });
  }
  await partitions.ensure(needs);
  const CHUNK = 125_000; // traces per statement (1 M spans)
  for (let from = 0; from < traces; from += CHUNK) {
    const to = Math.min(traces, from + CHUNK) - 1;
    const started = performance.now();
    await store.query(`
      INSERT INTO storage_span (bk_biz_id, app_name, retention_days, trace_id, span_id, parent_span_id, span_name, kind, start_time, end_time, elapsed_time,
        status_code, status_message, trace_state, service_name, category, attributes, resource, events, links, client_ip)
      SELECT ${BIZ}, '${APP}', 7, md5(i::text), lpad(to_hex(i * 8 + k), 16, '0'),
        CASE WHEN k = 0 THEN '' ELSE lpad(to_hex(i * 8 + (k - 1) / 2), 16, '0') END,
        CASE WHEN k < 2 THEN 'GET /api/v1/items/' || (i % ${ENDPOINTS}) ELSE 'op-' || k || '/' || (i % ${ENDPOINTS}) END,
        CASE WHEN k = 0 THEN 2 WHEN k % 2 = 1 THEN 3 ELSE 2 END,
        ${t0} + i::bigint * ${step} + k * 1000, ${t0} + i::bigint * ${step} + k * 1000 + (20000 + (i * 31 + k * 7) % 50000) / (k + 1),
        (20000 + (i * 31 + k * 7) % 50000) / (k + 1),
        CASE WHEN i % 50 = 0 AND k = 0 THEN 2 ELSE 0 END, '', '', 'svc-' || ((i * 7 + k / 3) % ${SERVICES}),
        CASE WHEN k = 5 THEN 'db' ELSE 'http' END,
        CASE WHEN k = 5 THEN jsonb_build_object('db.system', 'mysql', 'db.statement', 'UPDATE stock SET n = n - 1')
             ELSE jsonb_build_object('http.method', CASE WHEN k % 2 = 0 THEN 'GET' ELSE 'POST' END, 'http.status_code', CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END) END,
        jsonb_build_object('service.name', 'svc-' || ((i * 7 + k / 3) % ${SERVICES}), 'telemetry.sdk.language', 'go'),
        '[]'::jsonb, '[]'::jsonb, ''
      FROM generate_series(${from}, ${to}) AS i, generate_series(0, 7) AS k
      ON CONFLICT DO NOTHING`);
    await store.query(`
      INSERT INTO storage_trace (bk_biz_id, app_name, retention_days, anchor_time, trace_id, min_start_time, max_end_time, services, span_max_duration, span_min_duration,
        span_count, error_count, cat_http, cat_rpc, cat_db, cat_messaging, cat_async_backend, cat_other, kind_unspecified, kind_interval, kind_sync, kind_async,
        root_span_id, root_span_name, root_span_service, root_span_kind, root_span_has_parent, root_span_start,
        root_service, root_service_span_id, root_service_span_name, root_service_kind, root_service_status_code, root_service_category, root_service_start)
      SELECT ${BIZ}, '${APP}', 7, ${t0} + i::bigint * ${step}, md5(i::text), ${t0} + i::bigint * ${step}, ${t0} + i::bigint * ${step} + 60000,
        ARRAY['svc-' || ((i * 7) % ${SERVICES}), 'svc-' || ((i * 7 + 1) % ${SERVICES}), 'svc-' || ((i * 7 + 2) % ${SERVICES})], 60000, 2500,
        8, CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END, 7, 0, 1, 0, 0, 0, 0, 0, 8, 0,
        lpad(to_hex(i * 8), 16, '0'), 'GET /api/v1/items/' || (i % ${ENDPOINTS}), 'svc-' || ((i * 7) % ${SERVICES}), 2, false, ${t0} + i::bigint * ${step},
        'svc-' || ((i * 7) % ${SERVICES}), lpad(to_hex(i * 8), 16, '0'), 'GET /api/v1/items/' || (i % ${ENDPOINTS}), 2, CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, 'http', ${t0} + i::bigint * ${step}
      FROM generate_series(${from}, ${to}) AS i
      ON CONFLICT DO NOTHING`);
    console.log(`  filled traces ${from}..${to} (${((to + 1) * 8).toLocaleString()} spans) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  // their per-minute rollups (the service's spans have theirs), an hour of end times at a time
  for (let from = t0 - 3_600_000_000; from < nowUs + 3_600_000_000; from += 3_600_000_000) {
    await store.query(rollupFromSpans(`client_ip = '' AND end_time >= ${from} AND end_time < ${from + 3_600_000_000}`));
  }
  // A day of ingestion leaves a partition vacuumed and its BRIN ranges summarized (autosummarize, migration
  // 0405, within about a minute of a range filling); the bulk fill has just been written.
  await store.exec('VACUUM ANALYZE storage_span');
  await store.exec('ANALYZE storage_trace; ANALYZE storage_span_minute');
}

/**
 * Produces the bench spans and times the bare COPY of the same rows (the baseline), in a function of its
 * own so that the spans and rows (hundreds of MB of heap for 500 000) are garbage before the service runs in this
 * process: kept alive, every major GC of the service's run would mark them too.
 */
async function produceAndBaseline(bus: Bus, topic: string, partitions: PartitionManager, dbUrl: string): Promise<number> {
  console.log(`generating ${SPANS.toLocaleString()} spans`);
  const spans = makeSpans(SPANS);
  const records = await produce(bus, topic, spans);
  console.log(`produced ${records} SpanBatch records to ${topic}`);
  const rows = spans.map((s) => spanRow(s, 7));
  await partitions.ensure(spanPartitions(rows));
  const serverBefore = serverCpuSeconds();
  const baseline = await bareCopy(dbUrl, rows);
  const baselineServerCpu = serverCpuSeconds() - serverBefore;
  console.log(`baseline (bare COPY into storage_span): ${Math.round(baseline)} spans/s; PostgreSQL ${((baselineServerCpu * 1e6) / rows.length).toFixed(1)} µs CPU per span`);
  return baseline;
}

async function timed(n: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await fn(i);
    out.push(performance.now() - started);
  }
  return out;
}

async function main(): Promise<void> {
  const dbName = `bkstream_bench_storage_${Date.now().toString(36)}`;
  const admin = createStore({ databaseUrl: ADMIN_URL, logger: quiet, poolSize: 1 });
  await admin.start();
  await admin.exec(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const store = createStore({ databaseUrl: dbUrl, logger: quiet, poolSize: 4 });
  const bus = new Bus({ brokers, clientId: 'bench-storage', logger: quiet });
  const prefix = `bench-storage-${Date.now().toString(36)}`;
  const plan = topicPlan(prefix).filter((p) => /\.(spans|spans\.replay|metrics|events|dlq)$/.test(p.topic)).map((p) => ({ ...p, numPartitions: p.topic.endsWith('.spans') ? PARTITIONS : 1 }));
  const busAdmin = bus.admin();
  try {
    await store.start();
    await store.migrate();
    await store.query('INSERT INTO apm_application (bk_biz_id, app_name, trace_retention_days) VALUES ($1, $2, 7)', [BIZ, APP]);
    await busAdmin.start();
    await busAdmin.ensureTopics(plan);

    const partitions = new PartitionManager(store);
    const baseline = await produceAndBaseline(bus, `${prefix}.spans`, partitions, dbUrl);
    await store.exec('TRUNCATE storage_span, storage_trace');
    await store.exec('VACUUM ANALYZE storage_span');

    // the service
    const env: NodeJS.ProcessEnv = {
      KAFKA_BROKERS: brokers.join(','), TOPIC_PREFIX: prefix, DATABASE_URL: dbUrl, STORAGE_HTTP_PORT: '0',
      STORAGE_FLUSH_MAX_ROWS: String(FLUSH_ROWS), STORAGE_FLUSH_CONCURRENCY: String(CONCURRENCY), STORAGE_CONSUME_REPLAY: 'false',
      STORAGE_SPANS_GROUP_ID: `${prefix}-spans`, STORAGE_METRICS_GROUP_ID: `${prefix}-metrics`, STORAGE_EVENTS_GROUP_ID: `${prefix}-events`,
      STORAGE_MAX_IN_FLIGHT_RECORDS: '5000',
      // The query API needs a token (SECURITY.md): the queries below are the application's own, sent with the admin token.
      BKSTREAM_ADMIN_TOKEN: BENCH_ADMIN_TOKEN,
    };
    const registry = createRegistry();
    const service = await createStorage({ env, logger: quiet, registry, store, bus: new Bus({ brokers, clientId: 'bench-storage-svc', logger: quiet, registry }), common: loadConfig(commonSpec, { env }) });
    await service.start();
    while (!service.consumers.every((c) => c.joined())) await sleep(20);
    const profiler = await startProfile();
    const cpuBefore = process.cpuUsage();
    const serverCpuBefore = serverCpuSeconds();
    const started = performance.now();
    const written = async (): Promise<number> => (await service.metrics.written.get()).values.find((v) => v.labels.signal === 'spans')?.value ?? 0;
    let last = 0;
    while ((last = await written()) < SPANS) {
      await sleep(50);
      if (performance.now() - started > 600_000) throw new Error(`only ${last} of ${SPANS} spans written in 10 minutes`);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const serverCpu = serverCpuSeconds() - serverCpuBefore;
    await profiler?.();
    const rate = SPANS / seconds;
    const traces = await count(store, 'storage_trace');
    console.log(`service: ${SPANS} spans (${traces} traces) in ${seconds.toFixed(2)} s = ${Math.round(rate)} spans/s, ratio ${fmt(rate / baseline)}`);
    const writes = (await service.metrics.write.get()).values.filter((v) => v.labels.signal === 'spans');
    const writeCount = writes.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    const writeSum = writes.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
    console.log(`  ${writeCount} span writes, ${(writeSum / Math.max(1, writeCount)).toFixed(3)} s each on average (${rowsPerWrite(SPANS, writeCount)} rows)`);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    console.log(`  this process: ${cpuSeconds.toFixed(2)} s CPU (${((100 * cpuSeconds) / seconds).toFixed(0)} % of one core), ${((cpuSeconds * 1e6) / SPANS).toFixed(1)} µs per span; PostgreSQL ${((serverCpu * 1e6) / SPANS).toFixed(1)} µs CPU per span`);

    // queries over many stored spans
    const stored = await count(store, 'storage_span');
    const nowUs = Date.now() * 1000;
    if (STORED > stored) {
      console.log(`filling to ${STORED.toLocaleString()} spans with generate_series`);
      await fill(store, partitions, STORED - stored, nowUs);
    }
    const total = await count(store, 'storage_span');
    const traceCount = await count(store, 'storage_trace');
    console.log(`stored: ${total.toLocaleString()} spans, ${traceCount.toLocaleString()} traces`);
    const base = `http://127.0.0.1:${service.http.port()}/api/v1/apps/${BIZ}/${APP}`;
    const filled = Math.floor(Math.max(0, STORED - stored) / 8);
    const call = async (path: string, body?: unknown): Promise<void> => {
      const auth = { authorization: `Bearer ${BENCH_ADMIN_TOKEN}` };
      const res = await fetch(`${base}${path}`, body === undefined ? { headers: auth } : { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
    };
    const nowS = Math.floor(nowUs / 1e6);
    const hour = (i: number): { start_time: number; end_time: number } => {
      const end = nowS - (i % 23) * 3600;
      return { start_time: end - 3600, end_time: end };
    };
    const ids = filled > 0
      ? (await store.query<{ id: string }>(`SELECT md5(((random() * ${filled - 1})::int)::text) AS id FROM generate_series(1, ${QUERIES})`)).rows.map((r) => r.id)
      : (await store.query<{ id: string }>(`SELECT trace_id AS id FROM storage_trace ORDER BY random() LIMIT ${QUERIES}`)).rows.map((r) => r.id);
    await call(`/traces/${ids[0] as string}`); // warm-up
    const traceMs = await timed(ids.length, (i) => call(`/traces/${ids[i] as string}`));
    const listMs = await timed(QUERIES, (i) => call('/traces', { ...hour(i), limit: 50, filters: [{ key: 'root_service', operator: 'equal', value: [`svc-${i % SERVICES}`] }, { key: 'duration', operator: 'gte', value: [30_000] }] }));
    const aggMs = await timed(QUERIES, (i) => call('/aggregate', { ...hour(i), metrics: ['count', 'error_rate', 'p99'], group_by: ['resource.service.name', 'span_name'] }));
    for (const [name, xs] of [['trace by id', traceMs], ['trace list (1 h, filtered)', listMs], ['RED aggregation (1 h, p99 by endpoint)', aggMs]] as const) {
      console.log(`${name}: p50 ${median(xs).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms over ${xs.length}`);
    }
    await service.stop();
    result('storage', {
      spans_per_s: Math.round(rate),
      baseline_spans_per_s: Math.round(baseline),
      ratio: rate / baseline,
      trace_p99_ms: percentile(traceMs, 99),
      list_p99_ms: percentile(listMs, 99),
      agg_p99_ms: percentile(aggMs, 99),
    });
  } finally {
    await busAdmin.deleteTopics(plan.map((p) => p.topic)).catch(() => undefined);
    await busAdmin.stop().catch(() => undefined);
    await store.stop().catch(() => undefined);
    if (process.env.BENCH_STORAGE_KEEP_DB === '1') console.log(`kept database ${dbUrl} (BENCH_STORAGE_KEEP_DB=1)`);
    else await admin.exec(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.stop();
  }
}

/** SpanBatch records of `total` bench spans, ~100 spans each (as produced). */
function hotRecords(total: number): Buffer[] {
  const codec = codecFor('SpanBatch');
  const spans = makeSpans(total);
  const out: Buffer[] = [];
  for (let i = 0; i < spans.length; i += SPANS_PER_RECORD) out.push(codec.encode({ spans: spans.slice(i, i + SPANS_PER_RECORD) }));
  return out;
}

/** The consumers' per-span JavaScript work (decode, rows, COPY Buffer per FLUSH_ROWS rows) on both paths. */
function hot(total: number): void {
  const records = hotRecords(total);
  const spans = records.length * SPANS_PER_RECORD;
  const avroBytes = records.reduce((n, r) => n + r.length, 0);
  console.log(`${spans} spans in ${records.length} records: ${Math.round(avroBytes / spans)} Avro bytes per span`);
  const transcoder = spanCopyDecoder();
  const codec = codecFor('SpanBatch');
  let sink = 0;
  const flushAll = (rows: StoredSpan[]): void => {
    for (let i = 0; i < rows.length; i += FLUSH_ROWS) {
      const part = rows.slice(i, i + FLUSH_ROWS);
      spanPartitions(part);
      sink += copyData(part).length;
      // the summary and rollup pieces the writer sends with the rows
      const facts = factsOfRows(part);
      sink += tracePieces(facts).length + rollupPieces(facts).length;
    }
  };
  const cases: Record<string, () => void> = {
    copy: () => {
      const rows: StoredSpan[] = [];
      for (const buf of records) {
        const batch = transcoder.decode(buf);
        for (let i = 0; i < batch.count; i++) {
          batch.setRetention(i, 7);
          rows.push(new SpanLine(batch, i));
        }
      }
      flushAll(rows);
    },
    objects: () => {
      const rows: StoredSpan[] = [];
      for (const buf of records) for (const s of codec.decode(buf).spans) rows.push(spanRow(s, 7));
      flushAll(rows);
    },
  };
  sink = 0;
  cases.copy?.();
  console.log(`${Math.round(sink / spans)} COPY bytes per span`);
  const only = process.env.BENCH_HOT_ONLY;
  const run = only ? { [only]: cases[only] as () => void } : cases;
  const ops = interleaved(run, Number(process.env.BENCH_HOT_ROUNDS ?? 7), 2_000);
  for (const [name, perSecond] of Object.entries(ops)) console.log(`${name}: ${(1e6 / (perSecond * spans)).toFixed(2)} µs per span (${spans} spans per run)`);
  if (ops.copy && ops.objects) console.log(`objects / copy: ${fmt(ops.copy / ops.objects)}×`);
  if (sink === 0) console.log('nothing written');
}

if (process.argv.includes('--hot')) {
  const n = Number(process.argv[process.argv.indexOf('--hot') + 1]);
  hot(Number.isFinite(n) && n > 0 ? n : 20_000);
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
