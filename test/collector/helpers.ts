/**
 * Collector test kit: the collector (service.ts's createCollector) on port 0 over a migrated PGlite store
 * and the real broker (a unique topic prefix, topics deleted in teardown), a registered application, a
 * reader of what reached Kafka, and real OpenTelemetry SDK clients.
 */
import type { ExecutionContext } from 'ava';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Bus } from '../../services/common/bus/index.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { grpcCredentials, GrpcMetadata as Metadata, grpcStatus as status } from '../../services/common/grpc.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import type { Span, SpanBatch } from '../../services/common/records.ts';
import type { ServiceDeps } from '../../services/common/service.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';
import { createApplication, type Application, type NewApplication } from '../../services/collector/applications.ts';
import { decodeResponse, EXPORT_PATH, traceServiceClient, type ExportResponse } from '../../services/common/otlp/index.ts';
import { createCollector, type CollectorService } from '../../services/collector/service.ts';
import { brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';

export interface ReceiverKit {
  collector: CollectorService;
  store: Store;
  bus: Bus;
  registry: Registry;
  prefix: string;
  topic: string;
  partitions: number;
  /** Token of the application registered for the test (biz 2, app `shop` — or a unique name on a shared store). */
  token: string;
  app: Application;
  grpcUrl: string;
  httpUrl: string;
  adminUrl: string;
  /** The admin token the collector accepts (BKSTREAM_ADMIN_TOKEN). */
  adminToken: string;
}

// One migrated PGlite store per test file (initdb in WASM takes seconds; tests use their own apps).
let fileStorePromise: Promise<Store> | undefined;

/** The test file's shared store; register `test.after.always(closeFileStore)` in files that use it. */
export function fileStore(): Promise<Store> {
  fileStorePromise ??= (async () => {
    const store = createStore({ dataDir: 'memory://', logger: silentLogger });
    await store.start();
    await store.migrate();
    return store;
  })();
  return fileStorePromise;
}

export async function closeFileStore(): Promise<void> {
  if (fileStorePromise) await (await fileStorePromise).stop();
  fileStorePromise = undefined;
}

export interface ReceiverKitOptions {
  /** Store to use (default: a fresh migrated PGlite store of the test's own). */
  store?: Store;
  /** Extra environment (config keys) of the receiver. */
  env?: Record<string, string>;
  partitions?: number;
  app?: Partial<NewApplication>;
  /** Brokers to use (a dedicated broker); default the shared test broker. */
  brokers?: string[];
  /** Create the topics (default true). */
  createTopics?: boolean;
  /** Wait until the receiver reached Kafka (default true). */
  waitReady?: boolean;
}

/** The collector on port 0 with a fresh store, a unique topic prefix and one registered application. */
export async function startReceiver(t: ExecutionContext, options: ReceiverKitOptions = {}): Promise<ReceiverKit> {
  const store = options.store ?? (await pgliteStore(t, { migrated: true }));
  const { token, application: app } = await createApplication(store, { bkBizId: 2, appName: options.store ? uniqueName('shop') : 'shop', tracesDataId: 1_500_001, ...options.app });
  const registry = createRegistry();
  const bus = new Bus({ brokers: options.brokers ?? brokers(), clientId: uniqueName('collector-test'), logger: silentLogger, registry });
  const prefix = uniqueName('rcv');
  const topic = `${prefix}.spans`;
  const partitions = options.partitions ?? 4;
  if (options.createTopics !== false) {
    const admin = bus.admin();
    await admin.start();
    await admin.ensureTopics([{ topic, numPartitions: partitions, retentionMs: 3_600_000 }]);
    await admin.stop();
    t.teardown(async () => {
      const a = bus.admin();
      await a.start().catch(() => undefined);
      await a.deleteTopics([topic]).catch(() => undefined);
      await a.stop().catch(() => undefined);
    });
  }
  const env: NodeJS.ProcessEnv = {
    TOPIC_PREFIX: prefix,
    KAFKA_BROKERS: (options.brokers ?? brokers()).join(','),
    COLLECTOR_OTLP_GRPC_PORT: '0',
    COLLECTOR_OTLP_HTTP_PORT: '0',
    COLLECTOR_ADMIN_PORT: '0',
    COLLECTOR_BATCH_LINGER_MS: '2',
    BKSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    ...options.env,
  };
  const deps: ServiceDeps = { env, logger: silentLogger, registry, store, bus, common: loadConfig(commonSpec, { env }) };
  const collector = createCollector(deps);
  t.teardown(() => collector.stop());
  await collector.start();
  if (options.waitReady !== false) await waitFor('the receiver to reach Kafka', () => collector.ready(), 60_000);
  const ports = collector.ports();
  return {
    collector,
    store,
    bus,
    registry,
    prefix,
    topic,
    partitions,
    token,
    app,
    grpcUrl: `http://127.0.0.1:${ports.grpc}`,
    httpUrl: `http://127.0.0.1:${ports.http}/v1/traces`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    adminToken: TEST_ADMIN_TOKEN,
  };
}

export interface ReadRecord {
  partition: number;
  key: string;
  batch: SpanBatch;
}

/** avsc decodes records as class instances: plain objects (Buffers kept) compare with deepEqual. */
export function toPlain<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => toPlain(v)) as T;
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
  return out as T;
}

/** Reads every record of `topic` from the beginning with a fresh consumer group, for the test's life. */
export async function readSpans(t: ExecutionContext, bus: Bus, topic: string): Promise<{ records: ReadRecord[]; spans: () => Span[] }> {
  const records: ReadRecord[] = [];
  const groupId = uniqueName('collector-read');
  const consumer = bus.consumer<SpanBatch>({
    groupId,
    topics: [topic],
    codec: codecFor('SpanBatch'),
    dlqTopic: `${topic}.unused-dlq`,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 500,
    maxWaitTimeMs: 100,
    partitionsConsumedConcurrently: 4,
    handler: async (batch) => {
      for (const r of batch.records) records.push({ partition: r.partition, key: r.key?.toString() ?? '', batch: toPlain(r.value) });
    },
  });
  t.teardown(async () => {
    await consumer.stop(0);
    const admin = bus.admin();
    await admin.start().catch(() => undefined);
    await admin.deleteGroup(groupId);
    await admin.stop().catch(() => undefined);
  });
  await consumer.start();
  return { records, spans: () => records.flatMap((r) => r.batch.spans) };
}

/** A tracer provider that keeps the finished spans in memory (exported later, by hand, to any exporter). */
export function memoryTracer(resource: Record<string, string | number | boolean>) {
  const memory = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ resource: defaultResource().merge(resourceFromAttributes(resource)), spanProcessors: [new SimpleSpanProcessor(memory)] });
  return { provider, tracer: provider.getTracer('bkstream-test', '1.0.0'), finished: () => memory.getFinishedSpans(), reset: () => memory.reset() };
}

export type ExporterKind = 'grpc' | 'http-proto' | 'http-json';

/** A real OTLP exporter of the SDK, pointed at the receiver, sending `token` the usual way. */
export function exporterFor(kit: Pick<ReceiverKit, 'grpcUrl' | 'httpUrl'>, kind: ExporterKind, token?: string): SpanExporter {
  const headers: Record<string, string> = token ? { 'x-bk-token': token } : {};
  if (kind === 'grpc') {
    const metadata = new Metadata();
    if (token) metadata.set('x-bk-token', token);
    return new GrpcExporter({ url: kit.grpcUrl, metadata, timeoutMillis: 30_000 });
  }
  if (kind === 'http-proto') return new ProtoExporter({ url: kit.httpUrl, headers, timeoutMillis: 30_000 });
  return new JsonExporter({ url: kit.httpUrl, headers, timeoutMillis: 30_000 });
}

export interface ExportOutcome {
  ok: boolean;
  error?: Error & { code?: number; data?: string };
}

/** Exports spans through `exporter` and reports the SDK's verdict. */
export function exportSpans(exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportOutcome> {
  return new Promise((resolve) => {
    exporter.export(spans, (result) => {
      resolve(Number(result.code) === 0 ? { ok: true } : { ok: false, ...(result.error ? { error: result.error } : {}) });
    });
  });
}

/** µs of an SDK high-resolution time, exactly. */
export function hrMicros(hr: readonly [number, number]): number {
  return hr[0] * 1_000_000 + Math.floor(hr[1] / 1000);
}

/** The value of a Prometheus sample (sum over label sets matching `labels`). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((n, v) => n + v.value, 0);
}

export interface RawGrpcResult {
  code: status;
  details: string;
  /** The ExportTraceServiceResponse on success. */
  response?: ExportResponse;
}

let TraceClient: ReturnType<typeof traceServiceClient> | undefined;

/** One Export call with the given bytes (grpc-js, no SDK): what a client sees, status included. */
export function grpcExport(kit: Pick<ReceiverKit, 'grpcUrl'>, body: Buffer, token?: string, metadata: Record<string, string> = {}): Promise<RawGrpcResult> {
  TraceClient ??= traceServiceClient();
  const client = new TraceClient(kit.grpcUrl.replace('http://', ''), grpcCredentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
  const md = new Metadata();
  if (token) md.set('x-bk-token', token);
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => decodeResponse(b), body, md, { deadline: Date.now() + 60_000 }, (err, response) => {
      client.close();
      if (err) resolve({ code: err.code, details: err.details });
      else resolve({ code: status.OK, details: '', ...(response ? { response } : {}) });
    });
  });
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** POSTs `body` to the receiver's OTLP/HTTP endpoint. */
export async function httpPost(url: string, body: Buffer | string, headers: Record<string, string>): Promise<HttpResult> {
  const res = await fetch(url, { method: 'POST', body, headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}
