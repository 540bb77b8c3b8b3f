/**
 * bench/receiver — OTLP/gRPC Export throughput of the trace receiver, through to Kafka, against a bare
 * grpc-js server that only decodes the same requests.
 *
 *   npm run bench:receiver            (starts the local broker unless KAFKA_BROKERS is set)
 *
 * - Requests: 64 distinct ExportTraceServiceRequests of 100 spans each (10 traces × 10 spans of one
 *   service; ~10 attributes per span, 10 resource attributes, an event on every tenth span), encoded
 *   once; the token goes in `x-bk-token` metadata.
 * - Load: a separate process (so the client's CPU is not the server's) keeps CONCURRENCY Export calls in
 *   flight over 4 channels, sending the pre-encoded bytes, and times each call (p50/p99 Export latency).
 * - Baseline: a bare grpc-js server in this process, built the usual way (@grpc/proto-loader's
 *   TraceService definition and default deserializer: protobufjs decode + toObject, as mock OTLP servers
 *   such as @elastic/mockotlpserver do), whose handler answers an empty response. A stricter baseline is
 *   measured too: the request decoded with protobufjs only (no toObject); its ratio is printed, not on
 *   the RESULT line.
 * - Receiver: the real collector (service.ts's createCollector; PGlite store, a 12-partition spans
 *   topic), answering after Kafka acknowledged. Accepted spans are counted from OK answers and
 *   cross-checked with the receiver's own `bkstream_receiver_spans_accepted_total` and the records on the
 *   topic.
 * - The three servers take turns (ROUNDS each, ROUND_SECONDS long, after a warm-up of each), so machine
 *   noise hits all; medians are reported. The receiver's CPU use is measured during its rounds
 *   to give spans per CPU-second (per core).
 *
 * Env: BENCH_ROUNDS (5), BENCH_ROUND_SECONDS (5), BENCH_CONCURRENCY (64: many SDKs, one export in flight each —
 * the receiver answers after Kafka's acknowledgement, so its capacity shows only with enough callers);
 * COLLECTOR_* settings are passed to
 * the receiver (e.g. COLLECTOR_PRODUCER_COMPRESS=false).
 */
import { fork } from 'node:child_process';
import { Bus } from '../services/common/bus/index.ts';
import { commonSpec, loadConfig } from '../services/common/config.ts';
import { GrpcMetadata, GrpcServer, grpcCredentials, type ServiceError } from '../services/common/grpc.ts';
import { silentLogger } from '../services/common/log.ts';
import { createRegistry } from '../services/common/metrics.ts';
import { createStore } from '../services/common/store/index.ts';
import { createApplication } from '../services/collector/applications.ts';
import { decodeRequest, EXPORT_PATH, encodeRequest, traceServiceClient, traceServiceDefinition } from '../services/common/otlp/index.ts';
import { createCollector } from '../services/collector/service.ts';
import { fmt, median, percentile, result } from './lib.ts';
import { installWarningFilter } from '../services/common/process.ts';

installWarningFilter();

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_SECONDS = Number(process.env.BENCH_ROUND_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const SPANS_PER_REQUEST = 100;
const REQUESTS = 64;
const CHANNELS = 4;

// ---------------------------------------------------------------------------------------------------------
// Requests (built the same way in both processes)

type Kv = { key: string; value: Record<string, unknown> };
function kv(key: string, v: string | number | boolean): Kv {
  if (typeof v === 'string') return { key, value: { stringValue: v } };
  if (typeof v === 'boolean') return { key, value: { boolValue: v } };
  return { key, value: Number.isInteger(v) ? { intValue: v } : { doubleValue: v } };
}

function idBytes(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let x = (seed * 2_654_435_761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function buildRequest(n: number): Buffer {
  const t0 = 1_763_700_000_000_000_000n + BigInt(n) * 1_000_000_000n;
  const spans = Array.from({ length: SPANS_PER_REQUEST }, (_, i) => {
    const trace = Math.floor(i / 10);
    const start = t0 + BigInt(i) * 1_000_123n;
    return {
      traceId: idBytes(n * 1000 + trace + 1, 16),
      spanId: idBytes(n * 100_000 + i + 7, 8),
      parentSpanId: i % 10 === 0 ? Buffer.alloc(0) : idBytes(n * 100_000 + i + 6, 8),
      name: i % 10 === 0 ? 'GET /api/orders/{id}' : `SELECT orders ${i % 3}`,
      kind: i % 10 === 0 ? 2 : 3,
      startTimeUnixNano: start.toString(),
      endTimeUnixNano: (start + 12_345_678n).toString(),
      attributes: [
        kv('http.method', 'GET'),
        kv('http.route', '/api/orders/{id}'),
        kv('http.status_code', 200),
        kv('http.scheme', 'https'),
        kv('net.peer.ip', '10.0.3.7'),
        kv('net.peer.port', 51_234),
        kv('http.url', `https://shop.example/api/orders/${i}?expand=items`),
        kv('http.user_agent', 'Mozilla/5.0 (X11; Linux x86_64)'),
        kv('sampling.ratio', 0.25),
        kv('thread.id', 17),
      ],
      events: i % 10 === 5 ? [{ timeUnixNano: (start + 1000n).toString(), name: 'cache.miss', attributes: [kv('cache.key', `order:${i}`)] }] : [],
      status: { code: i % 23 === 0 ? 2 : 0, message: i % 23 === 0 ? 'deadline exceeded' : '' },
    };
  });
  return encodeRequest({
    resourceSpans: [
      {
        resource: {
          attributes: [
            kv('service.name', 'order-svc'),
            kv('service.version', '1.4.2'),
            kv('telemetry.sdk.name', 'opentelemetry'),
            kv('telemetry.sdk.language', 'nodejs'),
            kv('telemetry.sdk.version', '2.0.0'),
            kv('net.host.ip', '10.0.1.5'),
            kv('net.host.name', 'order-7d9f'),
            kv('net.host.port', 8080),
            kv('host.name', 'order-7d9f'),
            kv('process.pid', 4242),
          ],
        },
        scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.50.0' }, spans }],
      },
    ],
  });
}

// ---------------------------------------------------------------------------------------------------------
// Load generator (child process)

interface LoadJob {
  port: number;
  token: string;
  seconds: number;
}

interface LoadReport {
  okRequests: number;
  seconds: number;
  errors: Record<string, number>;
  latenciesMs: number[];
}

async function runLoad(job: LoadJob, requests: readonly Buffer[]): Promise<LoadReport> {
  const TraceClient = traceServiceClient();
  const clients = Array.from({ length: CHANNELS }, (_, i) =>
    new TraceClient(`127.0.0.1:${job.port}`, grpcCredentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'bench.channel': i }),
  );
  const metadata = new GrpcMetadata();
  metadata.set('x-bk-token', job.token);
  const report: LoadReport = { okRequests: 0, seconds: job.seconds, errors: {}, latenciesMs: [] };
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const client = clients[w % CHANNELS] as InstanceType<typeof TraceClient>;
    while (performance.now() < deadline) {
      const body = requests[next++ % requests.length] as Buffer;
      const t0 = performance.now();
      const err = await new Promise<ServiceError | null>((resolve) => {
        client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, metadata, { deadline: Date.now() + 30_000 }, (e) => resolve(e));
      });
      if (err) {
        report.errors[String(err.code)] = (report.errors[String(err.code)] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 5));
      } else {
        report.okRequests++;
        report.latenciesMs.push(performance.now() - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  report.seconds = (performance.now() - started) / 1000;
  for (const c of clients) c.close();
  return report;
}

if (process.env.BENCH_RECEIVER_ROLE === 'load') {
  const requests = Array.from({ length: REQUESTS }, (_, n) => buildRequest(n));
  process.on('message', (job: LoadJob) => {
    runLoad(job, requests).then(
      (report) => process.send?.(report),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

// ---------------------------------------------------------------------------------------------------------
// Main

function loadProcess(): { run(job: LoadJob): Promise<LoadReport>; stop(): void } {
  const child = fork(import.meta.filename, [], { env: { ...process.env, BENCH_RECEIVER_ROLE: 'load' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let exited: number | null | undefined;
  let waiting: ((err: Error) => void) | undefined;
  child.once('exit', (code) => {
    exited = code;
    waiting?.(new Error(`load generator exited (${code})`));
  });
  return {
    run: (job) =>
      new Promise((resolve, reject) => {
        if (exited !== undefined) return reject(new Error(`load generator exited (${exited})`));
        waiting = reject;
        child.once('message', (m) => {
          waiting = undefined;
          resolve(m as LoadReport);
        });
        child.send(job);
      }),
    stop: () => child.disconnect(),
  };
}

/**
 * The decode-only baselines, TraceService/Export servers that decode each request and answer empty:
 * - `grpc`: a bare grpc-js server built the usual way, with @grpc/proto-loader's service definition and its
 *   default deserializer (protobufjs decode + toObject) — how mock OTLP servers such as @elastic/mockotlpserver serve it;
 * - `protobufjs`: the request decoded with protobufjs only (no toObject), the cheapest full decode there is
 *   with the official protos — a stricter yardstick.
 */
async function bareServer(kind: 'grpc' | 'protobufjs'): Promise<{ port: number; stop(): Promise<void> }> {
  const server = new GrpcServer({ what: `the ${kind} baseline`, host: '127.0.0.1', port: 0, maxReceiveBytes: 8 << 20 });
  if (kind === 'grpc') {
    // proto-loader's default options: its default deserializer decodes and calls toObject
    server.addService(traceServiceClient({}).service, { Export: (_call: unknown, callback: (err: null, res: object) => void) => callback(null, {}) });
  } else {
    server.addService(traceServiceDefinition(), {
      Export: (call: { request: Buffer }, callback: (err: null, res: object) => void) => {
        decodeRequest(call.request);
        callback(null, {});
      },
    });
  }
  await server.start();
  return { port: server.port(), stop: () => server.stop(0) };
}

interface Series {
  rates: number[];
  cpuUs: number[];
}

async function main(): Promise<void> {
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  const prefix = `bench-receiver-${Date.now().toString(36)}`;
  const topic = `${prefix}.spans`;
  const registry = createRegistry();
  const bus = new Bus({ brokers, clientId: 'bench-receiver', logger: silentLogger, registry });
  const admin = bus.admin();
  await admin.start();
  await admin.ensureTopics([{ topic, numPartitions: 12, retentionMs: 3_600_000 }]);
  const store = createStore({ dataDir: 'memory://', logger: silentLogger });
  await store.start();
  await store.migrate();
  const { token } = await createApplication(store, { bkBizId: 2, appName: 'bench', rateLimitQps: 0 });
  // COLLECTOR_* settings of the environment apply (to try other batch sizes, compression, ...).
  const tuning = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('COLLECTOR_')));
  const env: NodeJS.ProcessEnv = {
    ...tuning,
    KAFKA_BROKERS: brokers.join(','),
    TOPIC_PREFIX: prefix,
    COLLECTOR_OTLP_GRPC_PORT: '0',
    COLLECTOR_OTLP_HTTP_ENABLED: 'false',
    COLLECTOR_ADMIN_PORT: '0',
  };
  const receiver = createCollector({ env, logger: silentLogger, registry, store, bus, common: loadConfig(commonSpec, { env }) });
  await receiver.start();
  while (!receiver.ready()) await new Promise((r) => setTimeout(r, 50));
  const bare = await bareServer('grpc');
  const strict = await bareServer('protobufjs');
  const load = loadProcess();
  const sample = buildRequest(0);
  console.log(`receiver bench: ${SPANS_PER_REQUEST} spans/request (${sample.length} bytes), ${CONCURRENCY} calls in flight over ${CHANNELS} channels, ${ROUNDS} rounds × ${ROUND_SECONDS} s per server, brokers ${brokers.join(',')}`);
  console.log('servers: baseline = bare grpc-js + proto-loader (decode + toObject); strict = protobufjs decode only; receiver = through to Kafka, answered after the ack');

  const receiverPort = receiver.ports().grpc as number;
  const spans = (r: LoadReport): number => r.okRequests * SPANS_PER_REQUEST;
  const series = { baseline: { rates: [], cpuUs: [] } as Series, strict: { rates: [], cpuUs: [] } as Series, receiver: { rates: [], cpuUs: [] } as Series };
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let okSpans = 0;
  /** One round against one server: spans/s and CPU µs per span of this process. */
  const measure = async (port: number, into: Series): Promise<LoadReport> => {
    const cpu0 = process.cpuUsage();
    const r = await load.run({ port, token, seconds: ROUND_SECONDS });
    const cpu = process.cpuUsage(cpu0);
    into.rates.push(spans(r) / r.seconds);
    into.cpuUs.push((cpu.user + cpu.system) / Math.max(1, spans(r)));
    return r;
  };

  // Warm-up (JIT, connections, topic leaders)
  await load.run({ port: bare.port, token, seconds: 2 });
  await load.run({ port: strict.port, token, seconds: 2 });
  await load.run({ port: receiverPort, token, seconds: 3 });
  const acceptedBefore = await acceptedSpans(registry);

  const profiler = process.env.BENCH_PROFILE ? await startProfiler() : undefined;
  for (let round = 1; round <= ROUNDS; round++) {
    await measure(bare.port, series.baseline);
    await measure(strict.port, series.strict);
    await profiler?.resume();
    const r = await measure(receiverPort, series.receiver);
    await profiler?.pause();
    okSpans += spans(r);
    latencies.push(...r.latenciesMs);
    for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n;
    const show = (name: string, x: Series): string => `${name} ${fmt(x.rates.at(-1) as number)} spans/s (${fmt(x.cpuUs.at(-1) as number)} µs CPU/span)`;
    console.log(
      `round ${round}: ${show('baseline', series.baseline)} | ${show('strict', series.strict)} | ${show('receiver', series.receiver)}, ` +
        `p50 ${fmt(percentile(r.latenciesMs, 50))} ms, p99 ${fmt(percentile(r.latenciesMs, 99))} ms` +
        (Object.keys(r.errors).length > 0 ? `, errors ${JSON.stringify(r.errors)}` : ''),
    );
  }

  if (profiler && process.env.BENCH_PROFILE) await profiler.save(process.env.BENCH_PROFILE);
  load.stop();
  await bare.stop();
  await strict.stop();
  await receiver.stop();
  const accepted = (await acceptedSpans(registry)) - acceptedBefore;
  const records = (await admin.watermarks(topic)).reduce((n, w) => n + Number(BigInt(w.high) - BigInt(w.low)), 0);
  await admin.deleteTopics([topic]).catch(() => undefined);
  await admin.stop();
  await store.stop();

  const spansPerS = median(series.receiver.rates);
  const baselinePerS = median(series.baseline.rates);
  const strictPerS = median(series.strict.rates);
  const cpuUs = median(series.receiver.cpuUs);
  console.log(`accepted (OK answers) ${okSpans} spans; receiver's accepted counter ${accepted}; ${records} SpanBatch records on ${topic} (warm-up included)`);
  console.log(`receiver: ${fmt(cpuUs)} µs CPU per span → ${fmt(1e6 / cpuUs)} spans per CPU-second (per core) through to Kafka`);
  console.log(`baseline (grpc-js + proto-loader): ${fmt(median(series.baseline.cpuUs))} µs CPU per span; ratio ${fmt(spansPerS / baselinePerS)}`);
  console.log(`strict baseline (protobufjs decode only): ${fmt(strictPerS)} spans/s, ${fmt(median(series.strict.cpuUs))} µs CPU per span; ratio against it ${fmt(spansPerS / strictPerS)}`);
  if (Object.keys(errors).length > 0) console.log(`errors by gRPC code: ${JSON.stringify(errors)}`);
  if (accepted !== okSpans) console.log(`WARNING: OK answers (${okSpans} spans) and the accepted counter (${accepted}) differ`);
  result('receiver', {
    spans_per_s: spansPerS,
    baseline_spans_per_s: baselinePerS,
    ratio: spansPerS / baselinePerS,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
  });
}

/** BENCH_PROFILE=<file>: a CPU profile of the receiver rounds only (for `node --cpu-prof`-style analysis). */
async function startProfiler(): Promise<{ resume(): Promise<void>; pause(): Promise<void>; save(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  const nodes = new Map<number, unknown>();
  const samples: number[] = [];
  let running = false;
  return {
    async resume() {
      await session.post('Profiler.start');
      running = true;
    },
    async pause() {
      if (!running) return;
      running = false;
      const { profile } = await session.post('Profiler.stop');
      // Rounds are profiled separately; keep the last round's profile (node ids differ between runs).
      nodes.clear();
      for (const n of profile.nodes) nodes.set(n.id, n);
      samples.length = 0;
      samples.push(...(profile.samples ?? []));
      writeFileSync(`${process.env.BENCH_PROFILE}`, JSON.stringify(profile));
    },
    async save(file: string) {
      console.log(`CPU profile of the last receiver round: ${file} (${samples.length} samples)`);
      session.disconnect();
    },
  };
}

async function acceptedSpans(registry: ReturnType<typeof createRegistry>): Promise<number> {
  const metric = registry.getSingleMetric('bkstream_receiver_spans_accepted_total');
  if (!metric) return 0;
  return (await metric.get()).values.reduce((n, v) => n + v.value, 0);
}
