/**
 * `npm run bench:discovery`: discovery throughput against a bare consumer, in one run.
 *
 * 1. A child process fills `<prefix>.spans` (12 partitions) with a realistic mix: 200 services × 50
 *    endpoints, traces of ~9 spans (http entry, http/grpc calls between services, mysql/redis clients,
 *    kafka producer → consumer, calls to an external `peer.service`), 3 hosts/instances per service,
 *    batched per (partition, service) as the receiver does, so parents and children of a trace arrive in
 *    different records.
 * 2. Baseline (a): a bare kafkajs consumer (eachBatch) that drains the topic and decodes every record
 *    with the full SpanBatch schema. For detail, also the same with discovery's projection reader.
 * 3. Discovery (b) end to end, in a child process started as deployed: consumer group, rules, the seven
 *    discoverers, windows, dedupe, upserts into the store (embedded PGlite on disk; then again on a fresh
 *    PostgreSQL database when BENCH_DATABASE_URL is set), until every span is processed and every row it
 *    produced is flushed.
 * 4. Memory: the dedupe cache is filled to DISCOVERY_CACHE_MAX_KEYS (1 000 000) keys of realistic shape
 *    through the real sink (rows discarded instead of written), then RSS is read. Peak RSS covers steps
 *    3 and 4.
 * 5. Scale (c), with BENCH_DATABASE_URL: BENCH_PROCESSES (2) discovery processes in one consumer group on
 *    another fresh PostgreSQL database, started together; their combined rate once the group formed
 *    (every member processing) until every partition is processed to its end and flushed (the end of
 *    (b)), over the rate (b)'s PostgreSQL process had over the same last spans of the topic (the first
 *    spans carry most first-seen shapes, so a process runs faster on the tail than over the whole run),
 *    is `scale` (the rates from the first span are printed too); their rows written per 1 000 spans, and
 *    the rows they made (as (b)'s, no two sharing a natural key), are printed.
 *
 * Env: KAFKA_BROKERS (set by scripts/with-broker.ts), BENCH_SPANS (default 3 000 000: the two-process run
 * needs a steady stretch after its group formed),
 * BENCH_DATABASE_URL (the admin database of a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres:
 * each PostgreSQL run creates its own database there and drops it afterwards), BENCH_SKIP_PGLITE=1
 * (PostgreSQL only; the RESULT line then reports it), BENCH_PROCESSES (processes of run (c); 1 leaves it
 * out), and for profiling BENCH_SKIP_BASELINE=1, BENCH_SKIP_MEMORY=1 (no cache fill), BENCH_CPU_PROF_DIR
 * (a V8 CPU profile of each discovery process), and for experiments BENCH_NODE_FLAGS (Node flags added to
 * the deployed ones of every discovery process, e.g. `--single-threaded`). `--hot [spans]` runs
 * discovery's hot path alone, with no broker or store (see {@link hot}); it prints the CPU per span of all
 * threads and of the main thread alone.
 */
import { spawn } from 'node:child_process';
import { Session } from 'node:inspector';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
// eslint-disable-next-line no-restricted-imports -- the baseline is a bare kafkajs consumer by definition
import { Kafka, logLevel } from 'kafkajs';
import { Bus, partitionFor, type OutMessage } from '../services/common/bus/index.ts';
import { codecFor, type Codec } from '../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../services/common/config.ts';
import { createLogger } from '../services/common/log.ts';
import { createRegistry, type Registry } from '../services/common/metrics.ts';
import type { Span } from '../services/common/records.ts';
import { createStore, type Queryable } from '../services/common/store/index.ts';
import { topicPlan } from '../services/common/topics.ts';
import { DedupeSink, NodeKinds } from '../services/discovery/dedupe.ts';
import { Ticket } from '../services/discovery/flusher.ts';
import { SpanPipeline } from '../services/discovery/pipeline.ts';
import { buildRuleSet, BUILTIN_RULES } from '../services/discovery/rules.ts';
import { createDiscovery } from '../services/discovery/service.ts';
import { spanBatchView } from '../services/discovery/span-view.ts';
import { DISCOVERED, TABLES } from '../services/discovery/tables.ts';
import { spanBatchReader } from '../services/discovery/span-codec.ts';
import { traces } from './discovery-mix.ts';
import { installWarningFilter } from '../services/common/process.ts';

installWarningFilter();

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const TOTAL_SPANS = Number(process.env.BENCH_SPANS ?? 3_000_000);
const PARTITIONS = 12;
const SERVICES = 200;
const SPANS_PER_RECORD = 100;
const CONCURRENCY = 3;
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const quiet = createLogger({ level: 'silent' });

/** Child process: fills the topic and prints `produced <spans> <records> <bytes>`. */
async function produce(topic: string): Promise<void> {
  const codec = codecFor('SpanBatch');
  const bus = new Bus({ brokers, clientId: 'bench-producer', logger: quiet });
  const producer = bus.producer({ maxInFlightRequests: 5 });
  await producer.start();
  const buffers = new Map<string, { partition: number; spans: Span[] }>();
  let out: OutMessage[] = [];
  let records = 0;
  let bytes = 0;
  let spans = 0;
  const sends: Promise<void>[] = [];
  const emit = (partition: number, list: Span[]): void => {
    const value = codec.encode({ spans: list });
    out.push({ key: list[0]?.trace_id ?? null, value, partition });
    records++;
    bytes += value.length;
    if (out.length >= 40) {
      sends.push(producer.send(topic, out));
      out = [];
    }
  };
  for (const trace of traces(TOTAL_SPANS)) {
    const partition = partitionFor(trace[0]?.trace_id ?? '', PARTITIONS);
    for (const s of trace) {
      const key = `${partition}:${s.resource['service.name'] as string}`;
      let b = buffers.get(key);
      if (!b) buffers.set(key, (b = { partition, spans: [] }));
      b.spans.push(s);
      spans++;
      if (b.spans.length >= SPANS_PER_RECORD) {
        emit(partition, b.spans);
        b.spans = [];
      }
    }
    if (sends.length >= 8) await Promise.all(sends.splice(0));
  }
  for (const b of buffers.values()) if (b.spans.length > 0) emit(b.partition, b.spans);
  if (out.length > 0) sends.push(producer.send(topic, out));
  await Promise.all(sends);
  await producer.stop();
  console.log(`produced ${spans} ${records} ${bytes}`);
}

/**
 * The records {@link produce} makes of `total` spans (the same mix, batched per partition and service), by
 * partition, in the order they would be produced.
 */
function recordsByPartition(total: number): Buffer[][] {
  const codec = codecFor('SpanBatch');
  const out: Buffer[][] = Array.from({ length: PARTITIONS }, () => []);
  const buffers = new Map<string, { partition: number; spans: Span[] }>();
  for (const trace of traces(total)) {
    const partition = partitionFor(trace[0]?.trace_id ?? '', PARTITIONS);
    for (const s of trace) {
      const key = `${partition}:${s.resource['service.name'] as string}`;
      let b = buffers.get(key);
      if (!b) buffers.set(key, (b = { partition, spans: [] }));
      b.spans.push(s);
      if (b.spans.length >= SPANS_PER_RECORD) {
        out[partition]?.push(codec.encode({ spans: b.spans }));
        b.spans = [];
      }
    }
  }
  for (const b of buffers.values()) if (b.spans.length > 0) out[b.partition]?.push(codec.encode({ spans: b.spans }));
  return out;
}

/**
 * {@link recordsByPartition}, kept in `BENCH_HOT_RECORDS` (a file) when set: read from it when it is there,
 * else made and written to it — so a profile of the hot path holds no encoding, and every run reads the
 * same bytes.
 */
function hotRecords(total: number): Buffer[][] {
  const file = process.env.BENCH_HOT_RECORDS;
  if (file && existsSync(file)) {
    const all = readFileSync(file);
    const out: Buffer[][] = Array.from({ length: PARTITIONS }, () => []);
    for (let at = 0; at < all.length;) {
      const partition = all.readUInt8(at);
      const length = all.readUInt32LE(at + 1);
      out[partition]?.push(all.subarray(at + 5, at + 5 + length));
      at += 5 + length;
    }
    return out;
  }
  const records = recordsByPartition(total);
  if (file) {
    writeFileSync(file, Buffer.concat(records.flatMap((list, partition) => list.flatMap((r) => {
      const head = Buffer.alloc(5);
      head.writeUInt8(partition, 0);
      head.writeUInt32LE(r.length, 1);
      return [head, r];
    }))));
  }
  return records;
}

/**
 * `node bench/discovery.ts --hot [spans]`: discovery's own per-span work on a fixed workload, in this
 * process, with no broker and no store — what a CPU profile (`--cpu-prof`) or an instruction count
 * (`valgrind --tool=callgrind`, repeatable on a busy machine) of the hot path looks at. The records of
 * the benchmark's mix are encoded first; then each is read by the span view (as the bus decodes) and the
 * batches of each partition (~40 records, as kafkajs hands them over) go through the pipeline: shapes,
 * discoverers, dedupe, windows. Pending rows are taken and dropped every 5 000 as a flush would (the
 * writer works per row, not per span). The clock advances as if 100 000 spans/s were consumed. Prints CPU
 * µs per span of the processing part (encoding left out). `BENCH_HOT_RECORDS=<file>` keeps the encoded
 * records between runs.
 */
async function hot(total: number): Promise<void> {
  const records = hotRecords(total);
  const decoder = spanBatchView();
  const nodeKinds = new NodeKinds(200_000);
  const sink = new DedupeSink({ maxKeys: 1_000_000, ttlMs: 21_600_000, touchIntervalMs: 60_000, nodeKinds });
  const rules = buildRuleSet(BUILTIN_RULES);
  let now = Date.now();
  const pipeline = new SpanPipeline({
    lookups: { ensure: () => undefined, rules: () => rules, cmdbVersion: 0, host: () => undefined, nodeKind: (b, a, k) => nodeKinds.nodeKind(b, a, k) },
    sink,
    nodeKinds,
    flusher: { ticket: () => new Ticket((settled) => settled()), nudge: () => {} },
    window: { ttlMs: 2_000, maxItems: 20_000 },
    touchIntervalMs: 60_000,
    maxShapes: 100_000,
    maxQueuedBatches: CONCURRENCY + 1,
    logger: quiet,
    now: () => now,
  });
  const BATCH_RECORDS = 40;
  // Garbage collections while processing: minor ones count allocation (one per filled young generation).
  const gcs = { minor: 0, major: 0, ms: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
      else gcs.major++;
      gcs.ms += e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  // BENCH_HOT_HEAP_PROFILE=<file>: where the processing allocates (V8's sampling heap profiler, garbage included).
  const heapProfile = process.env.BENCH_HOT_HEAP_PROFILE;
  const inspector = heapProfile ? new Session() : undefined;
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => inspector?.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
  if (inspector) {
    inspector.connect();
    await post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const started = performance.now();
  let spans = 0;
  const offsets = new Array<number>(PARTITIONS).fill(0);
  for (let round = 0; offsets.some((o, p) => o < (records[p]?.length ?? 0)); round++) {
    for (let p = 0; p < PARTITIONS; p++) {
      const list = records[p] ?? [];
      const from = offsets[p] as number;
      if (from >= list.length) continue;
      const slice = list.slice(from, from + BATCH_RECORDS);
      offsets[p] = from + slice.length;
      const batch = {
        topic: 'hot', partition: p, lastOffset: String(from + slice.length - 1), heartbeat: async () => {}, isStale: () => false,
        records: slice.map((raw, k) => {
          const value = decoder.decode(raw);
          spans += value.count;
          return { topic: 'hot', partition: p, offset: String(from + k), key: null, value, timestamp: 0, headers: {}, raw };
        }),
      };
      await pipeline.handle(batch);
      now += Math.round((batch.records.reduce((n, r) => n + r.value.count, 0) / 100_000) * 1000);
      if (sink.pendingRows() >= 5_000) sink.take();
    }
  }
  await pipeline.idle();
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  const ms = performance.now() - started;
  await sleep(10); // the last GC entries
  observer.disconnect();
  if (inspector && heapProfile) {
    const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
    writeFileSync(heapProfile, JSON.stringify(profile));
    inspector.disconnect();
  }
  const stats = pipeline.stats();
  console.log(`hot path: ${spans} spans, ${((cpu.user + cpu.system) / spans).toFixed(3)} µs CPU per span (main thread ${((main.user + main.system) / spans).toFixed(3)}), ${Math.round(spans / ms * 1000)} spans/s wall, ` +
    `shape misses ${stats.shapeMisses}, pairs ${stats.paired}, cached keys ${sink.cachedKeys()}; ` +
    `GC: ${gcs.minor} minor, ${gcs.major} major, ${((gcs.ms / ms) * 100).toFixed(1)} % of the time`);
}

// ---------------------------------------------------------------------------------------------------------
// Measurements

/** The bare consumer: drain and decode, nothing else. Returns spans/s from first batch to last span. */
async function bareConsumer(topic: string, groupId: string, codec: Codec<{ spans: unknown[] }>, expected: number): Promise<{ spansPerS: number; cpuUsPerSpan: number }> {
  const kafka = new Kafka({ clientId: groupId, brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId, maxBytesPerPartition: 1 << 20, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let first = 0;
  let last = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  let cpu0 = process.cpuUsage();
  await consumer.run({
    partitionsConsumedConcurrently: CONCURRENCY,
    eachBatch: async ({ batch }) => {
      if (first === 0) {
        first = performance.now();
        cpu0 = process.cpuUsage();
      }
      for (const m of batch.messages) if (m.value) seen += codec.decode(m.value).spans.length;
      if (seen >= expected && last === 0) {
        last = performance.now();
        done();
      }
    },
  });
  await finished;
  const cpu = process.cpuUsage(cpu0);
  await consumer.disconnect();
  return { spansPerS: (seen / (last - first)) * 1000, cpuUsPerSpan: (cpu.user + cpu.system) / seen };
}

function metricSum(registry: Registry, name: string): number {
  const m = registry.getSingleMetric(name) as unknown as { hashMap?: Record<string, { value: number }> } | undefined;
  return Object.values(m?.hashMap ?? {}).reduce((n, v) => n + v.value, 0);
}

interface DiscoveryRun {
  spansPerS: number;
  /** Spans processed over time: `[ms since the first span, spans processed]`, the flush at the end last. */
  timeline: [number, number][];
  cpuUsPerSpan: number;
  written: number;
  cachedKeys: number;
  rssMb: number;
  peakRssMb: number;
  hitRatio: number;
  store: string;
  /** Rows per discovered table at the end. */
  rows: Record<string, number>;
  duplicates: number;
}

async function discoveryRun(prefix: string, expected: number, databaseUrl: string | undefined): Promise<DiscoveryRun> {
  const dir = `.tmp/bench-pglite-${prefix}`;
  const store = createStore({ databaseUrl, dataDir: dir, logger: quiet, poolSize: 4 });
  await store.start();
  await store.migrate();
  const registry = createRegistry();
  const bus = new Bus({ brokers, clientId: 'bench-discovery', logger: quiet, registry });
  const env: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: brokers.join(','),
    TOPIC_PREFIX: prefix,
    DISCOVERY_GROUP_ID: `${prefix}-discovery-${databaseUrl ? 'pg' : 'pglite'}`,
    DISCOVERY_EVENTS_GROUP_ID: `${prefix}-events-${databaseUrl ? 'pg' : 'pglite'}`,
    DISCOVERY_CONSUME_REPLAY: 'false',
    DISCOVERY_HTTP_PORT: '0',
    DISCOVERY_PARTITIONS_CONCURRENTLY: String(CONCURRENCY),
    DISCOVERY_PAIRING_TTL_MS: '2000',
  };
  const service = await createDiscovery({ env, logger: quiet, registry, store, bus, common: loadConfig(commonSpec, { env }) });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 100);
  await service.start();
  let first = 0;
  let cpu0 = process.cpuUsage();
  let maxPaused = 0;
  let maxWindow = 0;
  const timeline: [number, number][] = [];
  while (service.pipeline.processedSpans() < expected) {
    if (first === 0 && service.pipeline.processedSpans() > 0) {
      first = performance.now();
      cpu0 = process.cpuUsage();
    }
    if (first > 0) timeline.push([performance.now() - first, service.pipeline.processedSpans()]);
    maxPaused = Math.max(maxPaused, service.consumers[0]?.pausedPartitions().reduce((n, p) => n + p.partitions.length, 0) ?? 0);
    maxWindow = Math.max(maxWindow, service.pipeline.windowItems());
    await sleep(10);
  }
  const processedAt = performance.now();
  await service.flusher.flush();
  const last = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const spansPerS = (expected / (last - first)) * 1000;
  timeline.push([last - first, expected]);
  const runPeakMb = Math.max(peak, process.memoryUsage.rss()) / 2 ** 20;
  // Let the windows settle (root endpoints of the last traces) so every write is counted.
  await sleep(2_500);
  await service.flusher.flush();
  await registry.metrics(); // runs the gauges' collect
  const written = metricSum(registry, 'bkstream_discovery_records_written_total');
  const histo = (name: string): string => {
    const m = registry.getSingleMetric(name) as unknown as { hashMap: Record<string, { sum: number; count: number }> };
    const v = Object.values(m.hashMap).reduce((a, x) => ({ sum: a.sum + x.sum, count: a.count + x.count }), { sum: 0, count: 0 });
    return `${v.count} × ${(v.sum / Math.max(1, v.count) * 1000).toFixed(1)} ms = ${v.sum.toFixed(1)} s`;
  };
  console.log(`    detail: flushes ${histo('bkstream_discovery_flush_seconds')}; handler ${histo('bkstream_consumer_handle_seconds')}; ` +
    `most paused partitions ${maxPaused}; most window entries ${maxWindow}; ` +
    `shape misses ${metricSum(registry, 'bkstream_discovery_shape_misses_total')}; run ${((last - first) / 1000).toFixed(1)} s, ` +
    `of which the last flush after the last span ${Math.round(last - processedAt)} ms`);
  const hitRatio = (registry.getSingleMetric('bkstream_discovery_cache_hit_ratio') as unknown as { hashMap: Record<string, { value: number }> }).hashMap[''];

  gc();
  const rssAfterRunMb = process.memoryUsage.rss() / 2 ** 20;
  console.log(`    memory after the run: ${Math.round(rssAfterRunMb)} MB RSS with ${service.sink.cachedKeys()} cached keys (peak during the run ${Math.round(runPeakMb)} MB)`);

  // Memory with the cache full: realistic keys (endpoints of a service with unparameterised URLs,
  // instances) through the real sink; the rows are discarded instead of written.
  const { sink } = service;
  // BENCH_SKIP_MEMORY=1 (profiling) leaves the cache as the run left it.
  const fillTo = process.env.BENCH_SKIP_MEMORY === '1' ? 0 : service.config.cacheMaxKeys;
  for (let i = 0; sink.cachedKeys() < fillTo && i < 3 * fillTo; i++) {
    const svc = `svc-${i % SERVICES}`;
    if (i % 2 === 0) {
      sink.emit('endpoint', 2, 'bench', { endpoint_name: `GET /api/${svc}/orders/${i}`, service_name: svc, category_id: 'http', category_kind_key: 'http.method', category_kind_value: 'GET', span_kind: 2 }, Date.now() * 1000);
    } else {
      sink.emit('instance', 2, 'bench', { topo_node_key: svc, instance_id: `go:${svc}:pod-${i}:10.1.${i & 255}.${(i >> 8) & 255}:8080`, instance_topo_kind: 'service', component_instance_category: null, component_instance_predicate_value: null, sdk_name: 'opentelemetry', sdk_version: '1.28.0', sdk_language: 'go' }, Date.now() * 1000);
    }
    if (i % 5_000 === 0) sink.take();
  }
  // Read now: a key the service adds later (a window settling) may start a new generation of the cache,
  // which halves the count, not the memory (its tables are allocated whole).
  const cachedKeys = sink.cachedKeys();
  sink.take();
  gc();
  await sleep(200);
  const rssMb = process.memoryUsage.rss() / 2 ** 20;
  const mem = process.memoryUsage();
  console.log(`    memory detail: heap used ${Math.round(mem.heapUsed / 2 ** 20)} MB of ${Math.round(mem.heapTotal / 2 ** 20)} MB, external ${Math.round(mem.external / 2 ** 20)} MB ` +
    `(array buffers ${Math.round(mem.arrayBuffers / 2 ** 20)} MB, including PGlite's WASM memory), RSS ${Math.round(rssMb)} MB; heap spaces ` +
    v8.getHeapSpaceStatistics().filter((x) => x.space_size >= 2 ** 20).map((x) => `${x.space_name} ${Math.round(x.space_used_size / 2 ** 20)}/${Math.round(x.space_size / 2 ** 20)}`).join(', '));
  peak = Math.max(peak, process.memoryUsage.rss());
  clearInterval(sampler);
  const { rows, duplicates } = await tableCounts(store);
  await service.stop();
  const admin = bus.admin();
  await admin.start();
  await admin.deleteGroup(env.DISCOVERY_GROUP_ID as string);
  await admin.deleteGroup(env.DISCOVERY_EVENTS_GROUP_ID as string);
  await admin.stop();
  await store.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}.lock`, { force: true });
  return { spansPerS, timeline, cpuUsPerSpan: (cpu.user + cpu.system) / expected, written, cachedKeys, rssMb, peakRssMb: peak / 2 ** 20, hitRatio: hitRatio?.value ?? 0, store: databaseUrl ? 'postgresql' : 'pglite', rows, duplicates };
}

/** Rows per discovered table, and rows sharing a natural key with another (0 unless a constraint is missing). */
async function tableCounts(store: Queryable): Promise<{ rows: Record<string, number>; duplicates: number }> {
  const rows: Record<string, number> = {};
  let duplicates = 0;
  for (const t of TABLES) {
    const d = DISCOVERED[t];
    const key = ['bk_biz_id', 'app_name', ...d.key.map((c) => c.name)].join(', ');
    const { rows: [r] } = await store.query<{ n: number; distinct: number }>(`SELECT count(*)::int AS n, count(DISTINCT (${key}))::int AS distinct FROM ${d.sql}`);
    rows[d.sql] = r?.n ?? 0;
    duplicates += (r?.n ?? 0) - (r?.distinct ?? 0);
  }
  return { rows, duplicates };
}

/** What a member of a multi-process run reports on stdout (one JSON object per line). */
type MemberMessage =
  | { ready: true }
  | { progress: number; first: number; positions: Record<string, string> }
  | { flushed: number }
  | { result: { written: number; cpuUs: number; peakRssMb: number; shapeMisses: number; reread: number } };

/**
 * One member of a multi-process run (`--member <prefix> <group>`, PostgreSQL at BENCH_RUN_DATABASE_URL,
 * already migrated): builds discovery as {@link discoveryRun} does, then follows the parent's commands on
 * stdin — `start` (start consuming), `flush` (flush now and report when done), `finish` (let the windows
 * settle, flush, report the totals, stop) — and reports its progress every 50 ms: spans processed, when the
 * first was, and the next offset of each partition it holds.
 */
async function memberRun(prefix: string, group: string, databaseUrl: string): Promise<void> {
  const send = (m: MemberMessage): void => void process.stdout.write(`${JSON.stringify(m)}\n`);
  const commands = createInterface({ input: process.stdin });
  const waiting = new Map<string, () => void>();
  commands.on('line', (line) => waiting.get(line.trim())?.());
  const command = (name: string): Promise<void> => new Promise<void>((resolve) => waiting.set(name, resolve));
  const store = createStore({ databaseUrl, logger: quiet, poolSize: 4 });
  await store.start();
  const registry = createRegistry();
  const bus = new Bus({ brokers, clientId: `bench-member-${process.pid}`, logger: quiet, registry });
  const env: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: brokers.join(','),
    TOPIC_PREFIX: prefix,
    DISCOVERY_GROUP_ID: group,
    DISCOVERY_EVENTS_GROUP_ID: `${group}-events`,
    DISCOVERY_CONSUME_REPLAY: 'false',
    DISCOVERY_HTTP_PORT: '0',
    DISCOVERY_PARTITIONS_CONCURRENTLY: String(CONCURRENCY),
    DISCOVERY_PAIRING_TTL_MS: '2000',
  };
  const service = await createDiscovery({ env, logger: quiet, registry, store, bus, common: loadConfig(commonSpec, { env }) });
  let peak = 0;
  let first = 0;
  let cpu0 = process.cpuUsage();
  const ticker = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
    if (first === 0 && service.pipeline.processedSpans() > 0) {
      first = Date.now();
      cpu0 = process.cpuUsage();
    }
    send({ progress: service.pipeline.processedSpans(), first, positions: service.pipeline.positions() });
  }, 50);
  const started = command('start');
  send({ ready: true });
  await started;
  const flushing = command('flush');
  await service.start();
  await flushing;
  await service.flusher.flush();
  const cpu = process.cpuUsage(cpu0);
  const finishing = command('finish');
  send({ flushed: Date.now() });
  await finishing;
  clearInterval(ticker);
  await sleep(2_500); // the windows settle (root endpoints of the last traces)
  await service.flusher.flush();
  await registry.metrics();
  const result = {
    written: metricSum(registry, 'bkstream_discovery_records_written_total'),
    cpuUs: cpu.user + cpu.system,
    peakRssMb: Math.max(peak, process.memoryUsage.rss()) / 2 ** 20,
    shapeMisses: metricSum(registry, 'bkstream_discovery_shape_misses_total'),
    reread: metricSum(registry, 'bkstream_discovery_reread_spans_total'),
  };
  await service.stop();
  await store.stop();
  commands.close();
  send({ result });
}

interface MultiRun {
  processes: number;
  /** From the moment every member processes (the group formed) to the end. */
  spansPerS: number;
  /** The spans still ahead when every member processed (NaN when the group formed only after the end). */
  steadySpans: number;
  /** From the first span any member processed to the end (the group forming included). */
  wholeRunSpansPerS: number;
  cpuUsPerSpan: number;
  written: number;
  peakRssMb: number;
  rows: Record<string, number>;
  duplicates: number;
}

/** A fresh database on the PostgreSQL server of `adminUrl` for one run; `drop` removes it. */
async function benchDatabase(adminUrl: string, name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = createStore({ databaseUrl: adminUrl, logger: quiet, poolSize: 1 });
  await admin.start();
  await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.exec(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.stop();
    },
  };
}

/**
 * `processes` discovery processes in one consumer group on PostgreSQL (a fresh database), started
 * together and run as deployed: their combined rate from the first span either processed until every
 * partition is processed to its end and both flushed (the criterion of the one-process run), their
 * writes, and the rows they made.
 */
async function membersRun(prefix: string, topic: string, expected: number, adminUrl: string, processes: number, bus: Bus): Promise<MultiRun> {
  const db = await benchDatabase(adminUrl, `${prefix.replaceAll('-', '_')}_p${processes}`);
  const store = createStore({ databaseUrl: db.url, logger: quiet, poolSize: 2 });
  await store.start();
  await store.migrate();
  const group = `${prefix}-discovery-p${processes}`;
  const admin = bus.admin();
  await admin.start();
  const high = new Map((await admin.watermarks(topic)).map((w) => [`${topic}:${w.partition}`, BigInt(w.high)]));
  const members = Array.from({ length: processes }, () => {
    const child = spawn(process.execPath, [...process.execArgv, ...DEPLOY_NODE_FLAGS, import.meta.filename, '--member', prefix, group], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, ...DEPLOY_ENV, BENCH_RUN_DATABASE_URL: db.url },
    });
    const state = { child, ready: false, flushed: 0, first: 0, positions: {} as Record<string, string>, result: undefined as Extract<MemberMessage, { result: unknown }>['result'] | undefined, exited: false };
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const m = JSON.parse(line) as MemberMessage;
      if ('ready' in m) state.ready = true;
      else if ('progress' in m) {
        state.first = m.first;
        state.positions = m.positions;
      } else if ('flushed' in m) state.flushed = m.flushed;
      else state.result = m.result;
    });
    child.once('exit', () => (state.exited = true));
    return state;
  });
  const until = async (what: string, done: () => boolean): Promise<void> => {
    while (!done()) {
      if (members.some((m) => m.exited && m.result === undefined)) throw new Error(`a discovery member exited while waiting for ${what}`);
      await sleep(20);
    }
  };
  const tell = (command: string): void => {
    for (const m of members) m.child.stdin.write(`${command}\n`);
  };
  try {
    await until('every member ready', () => members.every((m) => m.ready));
    tell('start');
    // The group forms while the first member to join already consumes (the broker's initial rebalance
    // delay is 0 here, and a member learns of a rebalance at its next heartbeat, up to 3 s later): the
    // steady rate is measured from the moment every member processes, over the records still ahead then
    // (records read again after the rebalance are work not counted).
    const position = (key: string): bigint => members.reduce((best, m) => (m.positions[key] !== undefined && BigInt(m.positions[key]) > best ? BigInt(m.positions[key]) : best), 0n);
    let steady: { at: number; records: bigint } | undefined;
    const totalRecords = [...high.values()].reduce((n, x) => n + x, 0n);
    // Every partition processed to its end by whichever member holds it (or held it before a rebalance).
    await until('every partition processed', () => {
      if (!steady && members.every((m) => m.first > 0)) steady = { at: Date.now(), records: [...high].reduce((n, [key, end]) => n + end - position(key), 0n) };
      return [...high].every(([key, end]) => position(key) >= end);
    });
    tell('flush');
    await until('every member flushed', () => members.every((m) => m.flushed > 0));
    const first = Math.min(...members.map((m) => m.first).filter((x) => x > 0));
    const last = Math.max(...members.map((m) => m.flushed));
    const steadySpans = steady ? (Number(steady.records) / Number(totalRecords)) * expected : NaN;
    const wholeRate = (expected / (last - first)) * 1000;
    // A run too short for the group to form before the end is measured whole (and says so).
    const steadyRate = steady ? (steadySpans / (last - steady.at)) * 1000 : wholeRate;
    console.log(steady
      ? `    detail [${processes} processes]: every member processing ${((steady.at - first) / 1000).toFixed(1)} s after the first span, ${Math.round(steadySpans)} spans left then`
      : `    detail [${processes} processes]: the group formed only after the last span: the rate is the whole run's`);
    tell('finish');
    await until('every member finished', () => members.every((m) => m.result !== undefined));
    const results = members.map((m) => m.result as NonNullable<typeof m.result>);
    const { rows, duplicates } = await tableCounts(store);
    console.log(`    detail [${processes} processes]: shape misses ${results.map((r) => r.shapeMisses).join(' + ')}; spans read again and skipped (kept partitions) ${results.map((r) => r.reread).join(' + ')}; run ${((last - first) / 1000).toFixed(1)} s`);
    return {
      processes,
      spansPerS: steadyRate,
      steadySpans,
      wholeRunSpansPerS: wholeRate,
      cpuUsPerSpan: results.reduce((n, r) => n + r.cpuUs, 0) / expected,
      written: results.reduce((n, r) => n + r.written, 0),
      peakRssMb: Math.max(...results.map((r) => r.peakRssMb)),
      rows,
      duplicates,
    };
  } finally {
    for (const m of members) if (!m.exited) m.child.kill();
    await store.stop();
    await admin.deleteGroup(group).catch(() => undefined);
    await admin.deleteGroup(`${group}-events`).catch(() => undefined);
    await admin.stop();
    await db.drop();
  }
}

/** The Node flags and environment discovery is deployed with (deploy/Dockerfile, compose.yaml, k8s/discovery.yaml). */
const DEPLOY_NODE_FLAGS = ['--max-semi-space-size=16', '--no-allocation-site-pretenuring', '--liftoff-only', ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
const DEPLOY_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };

/**
 * The rate of a one-process run over its last `spans` spans (from the first sample with at least
 * `expected - spans` processed to the end); NaN `spans` means the whole run.
 */
function tailRate(run: DiscoveryRun, spans: number): number {
  const end = run.timeline.at(-1) as [number, number];
  if (Number.isNaN(spans)) return run.spansPerS;
  const from = run.timeline.find(([, n]) => n >= end[1] - spans) ?? end;
  return from[0] < end[0] ? ((end[1] - from[1]) / (end[0] - from[0])) * 1000 : run.spansPerS;
}

/** Runs {@link discoveryRun} in a fresh process, as deployed, so its RSS is discovery's alone. */
function discoveryChild(prefix: string, expected: number, databaseUrl: string | undefined): Promise<DiscoveryRun> {
  return new Promise<DiscoveryRun>((resolve, reject) => {
    // BENCH_CPU_PROF_DIR (profiling): each discovery process writes a V8 CPU profile there.
    const profile = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
    const child = spawn(process.execPath, [...process.execArgv, ...DEPLOY_NODE_FLAGS, ...profile, import.meta.filename, '--discover', prefix, String(expected)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...DEPLOY_ENV, BENCH_RUN_DATABASE_URL: databaseUrl ?? '' },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      const text = c.toString();
      out += text;
      if (process.env.BENCH_CHILD_OUT) appendFileSync(process.env.BENCH_CHILD_OUT, text);
      for (const line of text.split('\n')) if (line.startsWith('    ')) console.log(line);
    });
    child.once('exit', (code) => {
      const json = out.split('\n').find((l) => l.startsWith('{'));
      if (code === 0 && json) resolve(JSON.parse(json) as DiscoveryRun);
      else reject(new Error(`discovery run exited with ${code}`));
    });
  });
}

async function main(): Promise<void> {
  const prefix = `bench-disc-${Date.now().toString(36)}`;
  const bus = new Bus({ brokers, clientId: 'bench', logger: quiet });
  const admin = bus.admin();
  await admin.start();
  const plan = topicPlan(prefix).map((p) => (p.topic.endsWith('.spans') ? { ...p, numPartitions: PARTITIONS } : p));
  await admin.ensureTopics(plan);
  const topic = `${prefix}.spans`;
  try {
    console.log(`filling ${topic} with ${TOTAL_SPANS} spans (child process)…`);
    const started = performance.now();
    const produced = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, '--produce', topic], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`producer exited with ${code}`))));
    });
    const [, spans, records, bytes] = /produced (\d+) (\d+) (\d+)/.exec(produced) ?? [];
    const expected = Number(spans);
    console.log(`  ${expected} spans in ${records} records, ${(Number(bytes) / 2 ** 20).toFixed(1)} MiB, ${((performance.now() - started) / 1000).toFixed(1)} s`);

    // BENCH_SKIP_BASELINE=1 (profiling only) skips the bare consumers.
    const skip = process.env.BENCH_SKIP_BASELINE === '1';
    const none = { spansPerS: NaN, cpuUsPerSpan: NaN };
    // The bare consumer runs twice and its better run is the baseline: the broker is still writing back
    // the fill for a while, which slows whichever run comes first (runs have differed by 40 %).
    const bare = skip ? [] : [await bareConsumer(topic, `${prefix}-bare-1`, codecFor('SpanBatch'), expected), await bareConsumer(topic, `${prefix}-bare-2`, codecFor('SpanBatch'), expected)];
    const baseline = bare.length === 0 ? none : bare.reduce((best, r) => (r.spansPerS > best.spansPerS ? r : best));
    console.log(`(a) bare kafkajs consumer, full decode:        ${Math.round(baseline.spansPerS)} spans/s, ${baseline.cpuUsPerSpan.toFixed(1)} µs CPU per span ` +
      `(better of ${bare.map((r) => Math.round(r.spansPerS)).join(' and ')})`);
    const projected = skip ? none : await bareConsumer(topic, `${prefix}-bare-proj`, spanBatchReader(), expected);
    console.log(`    bare kafkajs consumer, discovery projection: ${Math.round(projected.spansPerS)} spans/s, ${projected.cpuUsPerSpan.toFixed(1)} µs CPU per span (detail only)`);
    for (const g of [`${prefix}-bare-1`, `${prefix}-bare-2`, `${prefix}-bare-proj`]) await admin.deleteGroup(g);

    // BENCH_SKIP_PGLITE=1 (with BENCH_DATABASE_URL) runs discovery on PostgreSQL only.
    const runs: DiscoveryRun[] = [];
    const pgAdmin = process.env.BENCH_DATABASE_URL;
    if (process.env.BENCH_SKIP_PGLITE !== '1' || !pgAdmin) runs.push(await discoveryChild(prefix, expected, undefined));
    let onePg: DiscoveryRun | undefined;
    if (pgAdmin) {
      const db = await benchDatabase(pgAdmin, `${prefix.replaceAll('-', '_')}_p1`);
      try {
        onePg = await discoveryChild(prefix, expected, db.url);
      } finally {
        await db.drop();
      }
      runs.push(onePg);
    }
    // BENCH_PROCESSES (default 2; 1 leaves the run out): processes in one group, on PostgreSQL only.
    const processes = Number(process.env.BENCH_PROCESSES ?? 2);
    const multi = pgAdmin && processes > 1 ? await membersRun(prefix, topic, expected, pgAdmin, processes, bus) : undefined;
    for (const r of runs) {
      console.log(`(b) discovery end to end [${r.store}]:          ${Math.round(r.spansPerS)} spans/s, ratio b/a ${(r.spansPerS / baseline.spansPerS).toFixed(2)}, ` +
        `${r.written} rows written (${((r.written / expected) * 1000).toFixed(2)} per 1 000 spans), cache hit ratio ${r.hitRatio.toFixed(4)}`);
      console.log(`    CPU per span: discovery ${r.cpuUsPerSpan.toFixed(1)} µs (all threads, store included) vs bare consumer ${baseline.cpuUsPerSpan.toFixed(1)} µs`);
      console.log(`    memory [${r.store}]: ${Math.round(r.rssMb)} MB RSS with ${r.cachedKeys} cached keys, peak ${Math.round(r.peakRssMb)} MB`);
    }
    // Scale compares like with like: (c)'s rate once the group formed against the one process's rate over
    // the same last records of the topic (the first spans carry most first-seen shapes, so a process is
    // faster on the tail than over the whole run).
    const oneTail = multi && onePg ? tailRate(onePg, multi.steadySpans) : NaN;
    const scale = multi ? multi.spansPerS / oneTail : NaN;
    if (multi && onePg) {
      const sameRows = JSON.stringify(multi.rows) === JSON.stringify(onePg.rows);
      console.log(`(c) ${multi.processes} discovery processes, one group [postgresql]: ${Math.round(multi.spansPerS)} spans/s once the group formed, ` +
        `${scale.toFixed(2)} × one process's ${Math.round(oneTail)} spans/s over the same last ${Math.round(Number.isNaN(multi.steadySpans) ? expected : multi.steadySpans)} spans ` +
        `(${Math.round(multi.wholeRunSpansPerS)} spans/s from the first span, ${(multi.wholeRunSpansPerS / onePg.spansPerS).toFixed(2)} × one process's whole run), ` +
        `${multi.written} rows written (${((multi.written / expected) * 1000).toFixed(2)} per 1 000 spans; one process ${((onePg.written / expected) * 1000).toFixed(2)})`);
      console.log(`    CPU per span: ${multi.cpuUsPerSpan.toFixed(1)} µs (all processes); peak RSS ${Math.round(multi.peakRssMb)} MB per process; ` +
        `rows per table ${sameRows ? 'the same as one process made' : `${JSON.stringify(multi.rows)}, one process ${JSON.stringify(onePg.rows)}`}; duplicate keys ${multi.duplicates}`);
    }
    const r = runs[0] as DiscoveryRun;
    console.log(`RESULT bench=discovery spans_per_s=${Math.round(r.spansPerS)} baseline_spans_per_s=${Math.round(baseline.spansPerS)} ratio=${(r.spansPerS / baseline.spansPerS).toFixed(2)} ` +
      `writes_per_1k_spans=${((r.written / expected) * 1000).toFixed(2)} rss_mb=${Math.round(r.peakRssMb)} cached_keys=${r.cachedKeys} ` +
      `processes=${multi?.processes ?? 1} scale=${scale.toFixed(2)}`);
  } finally {
    await admin.deleteTopics(plan.map((p) => p.topic)).catch(() => undefined);
    await admin.stop();
  }
}

if (process.argv.includes('--member')) {
  const i = process.argv.indexOf('--member');
  memberRun(process.argv[i + 1] as string, process.argv[i + 2] as string, process.env.BENCH_RUN_DATABASE_URL as string).then(() => process.exit(0), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (process.argv.includes('--hot')) {
  hot(Number(process.argv[process.argv.indexOf('--hot') + 1] ?? 300_000)).then(() => process.exit(0), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (process.argv.includes('--discover')) {
  const i = process.argv.indexOf('--discover');
  discoveryRun(process.argv[i + 1] as string, Number(process.argv[i + 2]), process.env.BENCH_RUN_DATABASE_URL || undefined).then((r) => {
    console.log(JSON.stringify(r));
    process.exit(0);
  }, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (process.argv.includes('--produce')) {
  produce(process.argv[process.argv.indexOf('--produce') + 1] as string).then(() => process.exit(0), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().then(() => process.exit(0), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
