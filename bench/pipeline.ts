/**
 * `npm run bench:pipeline` (issue 18): the whole APM path through the real broker — OTLP in, discovery
 * and storage rows out — at a sustained rate: spans stored per second, and the latency from a span's end
 * to its row being visible in storage and in discovery.
 *
 * Set-up: a fresh PostgreSQL database (created on BENCH_DATABASE_URL's server, migrated, dropped at the
 * end), a unique topic prefix (every topic of the plan; `spans` 12 partitions) and unique consumer groups,
 * one application registered with createApplication (no rate limit). The collector, discovery and
 * storage run as **separate child processes started as deployed** (`node services/<name>/main.ts`,
 * discovery with its deployment flags; deploy/compose.yaml), on PostgreSQL, each with its own Kafka
 * clients and event loop: that is how they share the 2 cores in production, and an in-process run would
 * put all three on one event loop, which no deployment does. They start with BKSTREAM_ADMIN_TOKEN set;
 * the bench reads their public `/metrics` and `/healthz`, and checks one probe through the discovery and
 * storage query APIs with that token at the end.
 *
 * Load: a separate process (so its CPU is not the services') exports OTLP/gRPC requests of 100 spans
 * (10 traces × 10 spans of one service instance: an HTTP SERVER entry, an HTTP call, MySQL and Redis
 * clients, a Kafka producer, a gRPC call, internal spans; 8 services × 20 routes, 3 instances each, ~10
 * attributes per span, events, 1 error in 23) built the way bench/receiver.ts builds its requests. Every
 * span must be new to storage, so each request is a pre-encoded template whose trace and span ids and
 * times are patched in place (fresh ids, times ending now): no protobuf encoding on the hot path. The
 * load is open-loop at BENCH_PIPELINE_RATE spans/s (at most BENCH_PIPELINE_CONCURRENCY Exports in flight;
 * a schedule more than 1 s behind is dropped, and the shortfall shows as a lower rate), for
 * BENCH_PIPELINE_WARMUP_SECONDS then the steady window of BENCH_PIPELINE_SECONDS.
 *
 * Figures:
 * - `spans_per_s`: spans storage newly wrote (its `bkstream_storage_rows_written_total{signal="spans"}`)
 *   per second over the steady window (probes included: 1 span per BENCH_PIPELINE_PROBE_MS; a storage
 *   still catching up on the warm-up's backlog when the window opens can store faster than the offered
 *   rate, so keep the warm-up long enough). The collector's accepted rate over the same window is printed
 *   beside it, and whether discovery kept up: the spans it had processed (`bkstream_discovery_spans_total`)
 *   against the spans the collector had accepted at the end of the window, and the groups' committed
 *   lag (discovery commits a batch only once its pairing-window entries settled, DISCOVERY_PAIRING_TTL_MS,
 *   so some committed lag is normal). Then the bench waits (BENCH_PIPELINE_DRAIN_SECONDS at most) until
 *   both have processed everything accepted, and prints how long that took.
 * - Latency: every BENCH_PIPELINE_PROBE_MS the load process sends a probe: a one-span Export on the same
 *   channels, an HTTP SERVER span of a real service whose end time is the send time and whose name
 *   (`GET /bench/probe/<n>`) is new, so it must become a new `apm_endpoint` row in discovery as well as a
 *   `storage_span` row. The bench polls PostgreSQL for both every BENCH_PIPELINE_POLL_MS (the resolution
 *   of the figure); end → visible is recorded per probe sent in the steady window. p50/p99 of storage and
 *   of discovery are printed; `p50_ms`/`p99_ms` on the RESULT line are the **worse of the two** (a span is
 *   "out" when both rows are visible). A probe not visible by the end of the drain counts as infinite.
 * - Baseline (`baseline_spans_per_s`, `ratio`): **the receiver alone**, measured in the same run before
 *   the pipeline: the same collector process and load generator with the same requests, closed-loop
 *   (CONCURRENCY Exports in flight, no pacing) for BENCH_PIPELINE_BASELINE_SECONDS into a spans topic of
 *   its own that nothing consumes — the ingest capacity of this machine with no consumer sharing it.
 *   `ratio` = spans_per_s / baseline: the share of that capacity the whole pipeline sustains end to end.
 *   At the default offered rate the ratio is bounded by rate / baseline (it says how much headroom is
 *   left, not the pipeline's capacity); BENCH_PIPELINE_RATE=0 runs the pipeline closed-loop too, and then
 *   ratio compares capacity with capacity (latency then includes the queueing of an overloaded pipeline).
 *   Why not a bare producer and consumer: they skip the OTLP decode and the collector, which the
 *   pipeline must pay; the receiver alone isolates what discovery and storage add.
 *
 * Env: KAFKA_BROKERS (set by scripts/with-broker.ts), BENCH_DATABASE_URL (admin database, default
 * postgres://postgres@127.0.0.1:5432/postgres), BENCH_PIPELINE_SECONDS (60), BENCH_PIPELINE_WARMUP_SECONDS
 * (10), BENCH_PIPELINE_RATE (50000 spans/s; 0 = closed loop), BENCH_PIPELINE_CONCURRENCY (64),
 * BENCH_PIPELINE_BASELINE_SECONDS (15), BENCH_PIPELINE_PROBE_MS (50), BENCH_PIPELINE_POLL_MS (50),
 * BENCH_PIPELINE_DRAIN_SECONDS (60), BENCH_PIPELINE_LOG_LEVEL (warn: the services' logs, prefixed, on
 * stderr). COLLECTOR_*, DISCOVERY_* and STORAGE_* settings in the environment reach the services.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus } from '../services/common/bus/index.ts';
import { GrpcMetadata, grpcCredentials, type ServiceError } from '../services/common/grpc.ts';
import { silentLogger } from '../services/common/log.ts';
import { installWarningFilter } from '../services/common/process.ts';
import { createStore, type Store } from '../services/common/store/index.ts';
import { topicPlan } from '../services/common/topics.ts';
import { EXPORT_PATH, encodeRequest, traceServiceClient } from '../services/common/otlp/index.ts';
import { createApplication } from '../services/collector/applications.ts';
import { fmt, percentile, result } from './lib.ts';

installWarningFilter();

const ROOT = join(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_PIPELINE_SECONDS ?? 60);
const WARMUP_SECONDS = Number(process.env.BENCH_PIPELINE_WARMUP_SECONDS ?? 10);
const RATE = Number(process.env.BENCH_PIPELINE_RATE ?? 50_000);
const CONCURRENCY = Number(process.env.BENCH_PIPELINE_CONCURRENCY ?? 64);
const BASELINE_SECONDS = Number(process.env.BENCH_PIPELINE_BASELINE_SECONDS ?? 15);
const PROBE_MS = Number(process.env.BENCH_PIPELINE_PROBE_MS ?? 50);
const POLL_MS = Number(process.env.BENCH_PIPELINE_POLL_MS ?? 50);
const DRAIN_SECONDS = Number(process.env.BENCH_PIPELINE_DRAIN_SECONDS ?? 60);
const LOG_LEVEL = process.env.BENCH_PIPELINE_LOG_LEVEL ?? 'warn';
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const BIZ = 2;
const APP = 'bench';
const SPANS_PER_REQUEST = 100;
const SPANS_PER_TRACE = 10;
const SERVICES = ['order-svc', 'cart-svc', 'payment-svc', 'user-svc', 'stock-svc', 'search-svc', 'ship-svc', 'mail-svc'];
const ROUTES = 20;
const TEMPLATES = 48;
const CHANNELS = 4;
const PARTITIONS = 12;
/** The discovery process's Node flags as deployed (deploy/Dockerfile, compose.yaml). */
const DISCOVERY_NODE_FLAGS = ['--max-semi-space-size=16', '--no-allocation-site-pretenuring', '--liftoff-only'];
const DEPLOY_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };

// ---------------------------------------------------------------------------------------------------------
// Requests: templates encoded once, ids and times patched per Export

type Kv = { key: string; value: Record<string, unknown> };
function kv(key: string, v: string | number | boolean): Kv {
  if (typeof v === 'string') return { key, value: { stringValue: v } };
  if (typeof v === 'boolean') return { key, value: { boolValue: v } };
  return { key, value: Number.isInteger(v) ? { intValue: v } : { doubleValue: v } };
}

function resource(service: string, instance: number): { attributes: Kv[] } {
  const ip = `10.0.${SERVICES.indexOf(service) + 1}.${instance + 10}`;
  return {
    attributes: [
      kv('service.name', service), kv('service.version', '1.4.2'), kv('telemetry.sdk.name', 'opentelemetry'),
      kv('telemetry.sdk.language', 'nodejs'), kv('telemetry.sdk.version', '2.0.0'), kv('net.host.ip', ip),
      kv('net.host.name', `${service}-${instance}`), kv('net.host.port', 8080), kv('host.name', `${service}-${instance}`), kv('process.pid', 4242 + instance),
    ],
  };
}

/** Where a template's ids and times sit, and what each becomes. */
interface Template {
  bytes: Buffer;
  /** Positions of each trace id (k = its index in the request). */
  traces: { at: number[]; k: number }[];
  /** Positions of each span id, as span id and as parent id (idx = the span's index). */
  spans: { at: number[]; idx: number }[];
  /** Positions of each time (fixed64 ns) and how long before the request's latest time it is. */
  times: { at: number[]; back: bigint }[];
}

function positions(buf: Buffer, needle: Buffer): number[] {
  const out: number[] = [];
  for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + 1)) out.push(at);
  return out;
}

/** Template `n`: 10 traces × 10 spans of one service instance, with random marker ids and times. */
function buildTemplate(n: number): Template {
  const service = SERVICES[n % SERVICES.length] as string;
  const peer = SERVICES[(n + 3) % SERVICES.length] as string;
  const traceIds = Array.from({ length: SPANS_PER_REQUEST / SPANS_PER_TRACE }, () => randomBytes(16));
  const spanIds = Array.from({ length: SPANS_PER_REQUEST }, () => randomBytes(8));
  const t0 = 1_763_700_000_000_000_000n + BigInt(randomInt(1_000_000_000));
  const times = new Set<bigint>();
  const time = (t: bigint): string => {
    times.add(t);
    return t.toString();
  };
  const spans = spanIds.map((spanId, i) => {
    const k = Math.floor(i / SPANS_PER_TRACE);
    const j = i % SPANS_PER_TRACE;
    const route = `/api/${service.slice(0, -4)}/items/${(n * 7 + k) % ROUTES}/{id}`;
    const start = t0 + BigInt(k) * 50_000_017n + BigInt(j) * 1_000_123n;
    const end = start + (j === 0 ? 40_000_000n : BigInt(2_000_000 + j * 731_111));
    const error = i % 23 === 0;
    const shapes: [string, number, Kv[]][] = [
      [`GET ${route}`, 2, [kv('http.method', 'GET'), kv('http.route', route), kv('http.status_code', error ? 500 : 200), kv('http.scheme', 'https'), kv('net.peer.ip', '10.9.0.7'), kv('http.url', `https://shop.example${route.replace('{id}', String(i))}`), kv('http.user_agent', 'Mozilla/5.0 (X11; Linux x86_64)')]],
      [`POST /api/${peer.slice(0, -4)}/reserve`, 3, [kv('http.method', 'POST'), kv('http.status_code', 200), kv('net.peer.name', peer), kv('net.peer.port', 8080), kv('http.url', `http://${peer}:8080/api/reserve`)]],
      ['SELECT items', 3, [kv('db.system', 'mysql'), kv('db.name', 'shop'), kv('db.statement', 'SELECT * FROM items WHERE id = ?'), kv('net.peer.name', 'mysql.local'), kv('net.peer.port', 3306)]],
      ['UPDATE stock', 3, [kv('db.system', 'mysql'), kv('db.name', 'shop'), kv('db.statement', 'UPDATE stock SET n = n - ? WHERE id = ?'), kv('net.peer.name', 'mysql.local'), kv('net.peer.port', 3306)]],
      ['GET', 3, [kv('db.system', 'redis'), kv('db.operation', 'GET'), kv('net.peer.name', 'redis.local'), kv('net.peer.port', 6379)]],
      ['orders publish', 4, [kv('messaging.system', 'kafka'), kv('messaging.destination', 'orders'), kv('messaging.destination_kind', 'topic'), kv('net.peer.name', 'kafka.local')]],
      ['inventory.Stock/Reserve', 3, [kv('rpc.system', 'grpc'), kv('rpc.service', 'inventory.Stock'), kv('rpc.method', 'Reserve'), kv('net.peer.name', 'inventory'), kv('net.peer.port', 50051)]],
      ['render', 1, [kv('template', 'items'), kv('thread.id', 17)]],
      ['serialize', 1, [kv('format', 'json'), kv('bytes', 2048 + i)]],
      ['SELECT prices', 3, [kv('db.system', 'mysql'), kv('db.name', 'shop'), kv('db.statement', 'SELECT price FROM prices WHERE item = ?'), kv('net.peer.name', 'mysql.local'), kv('net.peer.port', 3306)]],
    ];
    const [name, kind, attributes] = shapes[j] as [string, number, Kv[]];
    return {
      traceId: traceIds[k],
      spanId,
      parentSpanId: j === 0 ? Buffer.alloc(0) : spanIds[k * SPANS_PER_TRACE],
      name,
      kind,
      startTimeUnixNano: time(start),
      endTimeUnixNano: time(end),
      attributes,
      events: j === 4 ? [{ timeUnixNano: time(start + 1_000n), name: 'cache.miss', attributes: [kv('cache.key', `item:${i}`)] }] : [],
      status: { code: error ? 2 : 0, message: error ? 'upstream returned 500' : '' },
    };
  });
  const bytes = encodeRequest({
    resourceSpans: [{ resource: resource(service, n % 3), scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.50.0' }, spans }] }],
  });
  const latest = [...times].reduce((a, b) => (b > a ? b : a));
  const le = (t: bigint): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(t);
    return b;
  };
  const template: Template = {
    bytes,
    traces: traceIds.map((id, k) => ({ at: positions(bytes, id), k })),
    spans: spanIds.map((id, idx) => ({ at: positions(bytes, id), idx })),
    times: [...times].map((t) => ({ at: positions(bytes, le(t)), back: latest - t })),
  };
  for (const m of [...template.traces, ...template.spans, ...template.times]) if (m.at.length === 0) throw new Error(`template ${n}: a marker was not found in the encoded request`);
  return template;
}

// ---------------------------------------------------------------------------------------------------------
// Load generator (child process)

interface LoadJob {
  port: number;
  token: string;
  warmupSeconds: number;
  seconds: number;
  /** Spans per second; 0 = closed loop. */
  rate: number;
  /** 0 = no probes. */
  probeMs: number;
}

interface Probe {
  n: number;
  traceId: string;
  spanId: string;
  name: string;
  endMs: number;
}

interface LoadReport {
  /** Spans answered OK within the steady window, and its length. */
  windowSpans: number;
  windowSeconds: number;
  okRequests: number;
  /** Requests the schedule dropped because it fell more than 1 s behind. */
  dropped: number;
  errors: Record<string, number>;
  latenciesMs: number[];
}

type LoadMessage = { probe: Probe } | { probeFailed: number } | { mark: 'start' | 'end' } | { report: LoadReport };

async function runLoad(job: LoadJob, templates: readonly Template[], send: (m: LoadMessage) => void, state: { seq: number; probe: number }): Promise<LoadReport> {
  const TraceClient = traceServiceClient();
  const clients = Array.from({ length: CHANNELS }, (_, i) =>
    new TraceClient(`127.0.0.1:${job.port}`, grpcCredentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'bench.channel': i }),
  );
  const metadata = new GrpcMetadata();
  metadata.set('x-bk-token', job.token);
  const nonce = randomBytes(4);
  const report: LoadReport = { windowSpans: 0, windowSeconds: job.seconds, okRequests: 0, dropped: 0, errors: {}, latenciesMs: [] };
  const started = performance.now();
  const windowStart = started + job.warmupSeconds * 1000;
  const deadline = windowStart + job.seconds * 1000;
  let marked = false;
  let calls = 0;
  const exportOnce = (body: Buffer): Promise<ServiceError | null> =>
    new Promise((resolve) => {
      const client = clients[calls++ % CHANNELS] as InstanceType<typeof TraceClient>;
      client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, metadata, { deadline: Date.now() + 30_000 }, (e) => resolve(e));
    });
  const request = (): Buffer => {
    const t = templates[state.seq % templates.length] as Template;
    const seq = state.seq++ >>> 0;
    const out = Buffer.from(t.bytes);
    for (const m of t.traces) for (const at of m.at) {
      nonce.copy(out, at);
      out.writeUInt32BE(seq, at + 4);
      out.writeUInt32BE(m.k, at + 8);
      out.writeUInt32BE(0x5eed_b10c, at + 12);
    }
    for (const m of t.spans) for (const at of m.at) {
      out.writeUInt32BE(seq, at);
      out.writeUInt16BE(m.idx, at + 4);
      nonce.copy(out, at + 6, 0, 2);
    }
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const m of t.times) for (const at of m.at) out.writeBigUInt64LE(now - m.back, at);
    return out;
  };
  const one = async (): Promise<void> => {
    const t0 = performance.now();
    const err = await exportOnce(request());
    const t1 = performance.now();
    if (err) report.errors[String(err.code)] = (report.errors[String(err.code)] ?? 0) + 1;
    else {
      report.okRequests++;
      if (t1 >= windowStart && t1 < deadline) {
        report.windowSpans += SPANS_PER_REQUEST;
        report.latenciesMs.push(t1 - t0);
      }
    }
  };
  // Probes: one new endpoint of a real service, ending at the send time.
  const probeTimer = job.probeMs > 0 ? setInterval(() => {
    const n = state.probe++;
    const endMs = Date.now();
    const end = BigInt(endMs) * 1_000_000n;
    const traceId = Buffer.concat([nonce, Buffer.from([0x9b, 0x0b, 0xe0, 0x00]), Buffer.alloc(8)]);
    traceId.writeUInt32BE(n, 8);
    traceId.writeUInt32BE(0x0000_0001, 12);
    const spanId = Buffer.from([0x9b, 0, 0, 0, 0, 0, 0, 1]);
    spanId.writeUInt32BE(n, 2);
    const name = `GET /bench/probe/${nonce.toString('hex')}/${n}`;
    const body = encodeRequest({
      resourceSpans: [{
        resource: resource(SERVICES[0] as string, 0),
        scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.50.0' }, spans: [{
          traceId, spanId, parentSpanId: Buffer.alloc(0), name, kind: 2,
          startTimeUnixNano: (end - 2_000_000n).toString(), endTimeUnixNano: end.toString(),
          attributes: [kv('http.method', 'GET'), kv('http.route', '/bench/probe'), kv('http.status_code', 200)],
          events: [], status: { code: 0, message: '' },
        }] }],
      }],
    });
    const now = performance.now();
    if (now >= windowStart && now < deadline) send({ probe: { n, traceId: traceId.toString('hex'), spanId: spanId.toString('hex'), name, endMs } });
    void exportOnce(body).then((err) => {
      if (err) send({ probeFailed: n });
    });
  }, job.probeMs) : undefined;

  const markStart = (): void => {
    if (!marked && performance.now() >= windowStart) {
      marked = true;
      send({ mark: 'start' });
    }
  };
  if (job.rate > 0) {
    const perSecond = job.rate / SPANS_PER_REQUEST;
    let sent = 0;
    let inFlight = 0;
    const waiters: (() => void)[] = [];
    while (performance.now() < deadline) {
      markStart();
      const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
      if (due - sent > perSecond) {
        report.dropped += due - sent - Math.ceil(perSecond);
        sent = due - Math.ceil(perSecond);
      }
      while (sent < due && inFlight < CONCURRENCY) {
        sent++;
        inFlight++;
        void one().finally(() => {
          inFlight--;
          waiters.shift()?.();
        });
      }
      if (inFlight >= CONCURRENCY) await new Promise<void>((resolve) => waiters.push(resolve));
      else await sleep(2);
    }
    while (inFlight > 0) await new Promise<void>((resolve) => waiters.push(resolve));
  } else {
    const ticker = setInterval(markStart, 5);
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) await one();
    }));
    clearInterval(ticker);
    markStart();
  }
  send({ mark: 'end' });
  if (probeTimer) clearInterval(probeTimer);
  report.windowSeconds = job.seconds;
  for (const c of clients) c.close();
  return report;
}

// ---------------------------------------------------------------------------------------------------------
// Main

interface LoadProcess {
  run(job: LoadJob, on: { probe?(p: Probe): void; probeFailed?(n: number): void; mark?(m: 'start' | 'end'): void }): Promise<LoadReport>;
  stop(): void;
}

function loadProcess(): LoadProcess {
  const child = fork(import.meta.filename, [], { env: { ...process.env, BENCH_PIPELINE_ROLE: 'load' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let exited: number | null | undefined;
  let failed: ((err: Error) => void) | undefined;
  child.once('exit', (code) => {
    exited = code;
    failed?.(new Error(`load generator exited (${code})`));
  });
  return {
    run: (job, on) =>
      new Promise((resolve, reject) => {
        if (exited !== undefined) return reject(new Error(`load generator exited (${exited})`));
        failed = reject;
        const listener = (m: LoadMessage): void => {
          if ('probe' in m) on.probe?.(m.probe);
          else if ('probeFailed' in m) on.probeFailed?.(m.probeFailed);
          else if ('mark' in m) on.mark?.(m.mark);
          else {
            child.off('message', listener);
            failed = undefined;
            resolve(m.report);
          }
        };
        child.on('message', listener);
        child.send(job);
      }),
    stop: () => child.disconnect(),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Service {
  name: string;
  child: ChildProcess;
  exited: boolean;
  stop(): Promise<void>;
}

/** `node [flags] services/<name>/main.ts` with the bench's environment; its log lines go to stderr, prefixed. */
function startService(name: string, env: NodeJS.ProcessEnv, flags: string[] = []): Service {
  const child = spawn(process.execPath, [...flags, join('services', name, 'main.ts')], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const service: Service = {
    name,
    child,
    exited: false,
    stop: async () => {
      if (service.exited) return;
      const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const killed = await Promise.race([exit.then(() => false), sleep(20_000).then(() => true)]);
      if (killed && !service.exited) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
  let lines = 0;
  const echo = (line: string): void => {
    if (++lines <= 40) console.error(`[${name}] ${line.slice(0, 400)}`);
    else if (lines === 41) console.error(`[${name}] (further log lines not shown)`);
  };
  if (child.stdout) createInterface({ input: child.stdout }).on('line', echo);
  if (child.stderr) createInterface({ input: child.stderr }).on('line', echo);
  child.once('exit', (code, signal) => {
    service.exited = true;
    if (code !== 0 && signal !== 'SIGTERM') console.error(`[${name}] exited with ${code ?? signal}`);
  });
  return service;
}

/** Waits until `url` answers 200 and `ok(body)` holds; fails when the service exits or after 60 s. */
async function waitReady(service: Service, url: string, ok: (body: unknown) => boolean = () => true): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    if (service.exited) throw new Error(`${service.name} exited while starting`);
    try {
      const res = await fetch(url);
      const body: unknown = await res.json().catch(() => undefined);
      if (res.status === 200 && ok(body)) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${service.name} not ready after 60 s (${url})`);
    await sleep(100);
  }
}

const consumersJoined = (body: unknown): boolean => {
  const consumers = (body as { checks?: { consumers?: Record<string, string> } } | undefined)?.checks?.consumers;
  return !!consumers && Object.keys(consumers).length > 0 && Object.values(consumers).every((s) => s === 'joined');
};

/** Sum of a counter's series on a service's /metrics (label filter `signal="spans"` style, optional). */
async function scrape(port: number, metric: string, filter = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric) || (line[metric.length] !== '{' && line[metric.length] !== ' ')) continue;
    if (filter && !line.includes(filter)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

interface Tracked extends Probe {
  storageMs?: number;
  discoveryMs?: number;
  failed?: boolean;
}

/** Polls PostgreSQL for the probes' storage_span and apm_endpoint rows; records end → visible. */
function poller(store: Store): { track(p: Probe): void; fail(n: number): void; all(): Tracked[]; pending(): number; stop(): Promise<void> } {
  const probes = new Map<number, Tracked>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const list = [...probes.values()].filter((p) => !p.failed);
      const forStorage = list.filter((p) => p.storageMs === undefined);
      const forDiscovery = list.filter((p) => p.discoveryMs === undefined);
      const [spans, endpoints] = await Promise.all([
        forStorage.length === 0 ? { rows: [] } : store.query<{ span_id: string; trace_id: string }>(
          'SELECT trace_id, span_id FROM storage_span WHERE bk_biz_id = $1 AND app_name = $2 AND trace_id = ANY($3::text[]) AND span_id = ANY($4::text[])',
          [BIZ, APP, forStorage.map((p) => p.traceId), forStorage.map((p) => p.spanId)]),
        forDiscovery.length === 0 ? { rows: [] } : store.query<{ endpoint_name: string }>(
          'SELECT DISTINCT endpoint_name FROM apm_endpoint WHERE bk_biz_id = $1 AND app_name = $2 AND endpoint_name = ANY($3::text[])',
          [BIZ, APP, forDiscovery.map((p) => p.name)]),
      ]);
      // Visible as of the poll's start (its snapshot is taken then, give or take the round trip).
      const seen = new Set(spans.rows.map((r) => `${r.trace_id}/${r.span_id}`));
      for (const p of forStorage) if (seen.has(`${p.traceId}/${p.spanId}`)) p.storageMs = started;
      const names = new Set(endpoints.rows.map((r) => r.endpoint_name));
      for (const p of forDiscovery) if (names.has(p.name)) p.discoveryMs = started;
      await sleep(Math.max(1, POLL_MS - (Date.now() - started)));
    }
  })();
  return {
    track: (p) => void probes.set(p.n, p),
    fail: (n) => {
      const p = probes.get(n);
      if (p) p.failed = true;
    },
    all: () => [...probes.values()],
    pending: () => [...probes.values()].filter((p) => !p.failed && (p.storageMs === undefined || p.discoveryMs === undefined)).length,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

async function main(): Promise<void> {
  const id = Date.now().toString(36);
  const prefix = `bench-pipe-${id}`;
  const basePrefix = `${prefix}-base`;
  const adminToken = `bkadm_bench-${randomBytes(16).toString('hex')}`;
  const dbName = `bkstream_bench_pipeline_${id}`;
  const admin = createStore({ databaseUrl: ADMIN_URL, logger: silentLogger, poolSize: 1 });
  await admin.start();
  await admin.exec(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const store = createStore({ databaseUrl: dbUrl, logger: silentLogger, poolSize: 3 });
  const bus = new Bus({ brokers, clientId: 'bench-pipeline', logger: silentLogger });
  const busAdmin = bus.admin();
  const plans = [...topicPlan(prefix), ...topicPlan(basePrefix)].map((p) => (p.topic.endsWith('.spans') ? { ...p, numPartitions: PARTITIONS } : p));
  const groups = {
    discovery: `${prefix}-discovery`, discoveryReplay: `${prefix}-discovery-replay`, discoveryEvents: `${prefix}-discovery-events`,
    storageSpans: `${prefix}-storage-spans`, storageReplay: `${prefix}-storage-replay`, storageMetrics: `${prefix}-storage-metrics`, storageEvents: `${prefix}-storage-events`,
  };
  const services: Service[] = [];
  const load = loadProcess();
  try {
    await store.start();
    await store.migrate();
    const { token } = await createApplication(store, { bkBizId: BIZ, appName: APP, rateLimitQps: 0 });
    await busAdmin.start();
    await busAdmin.ensureTopics(plans);
    const common = {
      ...DEPLOY_ENV,
      KAFKA_BROKERS: brokers.join(','), DATABASE_URL: dbUrl, DATA_DIR: join(ROOT, '.tmp', `bench-pipeline-${id}`),
      LOG_LEVEL, BKSTREAM_ADMIN_TOKEN: adminToken, BKSTREAM_ADMIN_TOKEN_FILE: undefined, BKSTREAM_CONFIG: undefined,
    };
    const collectorEnv = async (topicPrefix: string): Promise<{ env: NodeJS.ProcessEnv; grpc: number; admin: number }> => {
      const [grpc, http, adminPort] = [await freePort(), await freePort(), await freePort()];
      return {
        grpc, admin: adminPort,
        env: { ...common, TOPIC_PREFIX: topicPrefix, COLLECTOR_OTLP_GRPC_PORT: String(grpc), COLLECTOR_OTLP_HTTP_PORT: String(http), COLLECTOR_ADMIN_PORT: String(adminPort) },
      };
    };
    console.log(`pipeline bench: ${RATE > 0 ? `${RATE} spans/s offered` : 'closed loop'} (${CONCURRENCY} Exports in flight at most, ${SPANS_PER_REQUEST} spans each), ` +
      `${WARMUP_SECONDS} s warm-up + ${SECONDS} s steady window, a probe every ${PROBE_MS} ms polled every ${POLL_MS} ms; brokers ${brokers.join(',')}, database ${dbName}`);
    console.log('services: collector, discovery, storage as separate processes (node services/<name>/main.ts) on PostgreSQL');

    // Baseline: the receiver alone, closed loop, into a spans topic nothing consumes.
    const base = await collectorEnv(basePrefix);
    const baseCollector = startService('collector', base.env);
    services.push(baseCollector);
    await waitReady(baseCollector, `http://127.0.0.1:${base.admin}/readyz`);
    const baseReport = await load.run({ port: base.grpc, token, warmupSeconds: 2, seconds: BASELINE_SECONDS, rate: 0, probeMs: 0 }, {});
    await baseCollector.stop();
    const baseline = baseReport.windowSpans / baseReport.windowSeconds;
    console.log(`baseline (receiver alone, closed loop, ${BASELINE_SECONDS} s): ${Math.round(baseline)} spans/s, Export p99 ${fmt(percentile(baseReport.latenciesMs, 99))} ms` +
      (Object.keys(baseReport.errors).length > 0 ? `, errors ${JSON.stringify(baseReport.errors)}` : ''));

    // The pipeline.
    const col = await collectorEnv(prefix);
    const [discoveryPort, storagePort] = [await freePort(), await freePort()];
    const collector = startService('collector', col.env);
    const discovery = startService('discovery', {
      ...common, TOPIC_PREFIX: prefix, DISCOVERY_HTTP_PORT: String(discoveryPort), DISCOVERY_CONSUME_REPLAY: 'false',
      DISCOVERY_GROUP_ID: groups.discovery, DISCOVERY_REPLAY_GROUP_ID: groups.discoveryReplay, DISCOVERY_EVENTS_GROUP_ID: groups.discoveryEvents,
    }, DISCOVERY_NODE_FLAGS);
    const storage = startService('storage', {
      ...common, TOPIC_PREFIX: prefix, STORAGE_HTTP_PORT: String(storagePort), STORAGE_CONSUME_REPLAY: 'false',
      STORAGE_SPANS_GROUP_ID: groups.storageSpans, STORAGE_REPLAY_GROUP_ID: groups.storageReplay, STORAGE_METRICS_GROUP_ID: groups.storageMetrics, STORAGE_EVENTS_GROUP_ID: groups.storageEvents,
    });
    services.push(collector, discovery, storage);
    const startedAt = performance.now();
    await Promise.all([
      waitReady(collector, `http://127.0.0.1:${col.admin}/readyz`),
      waitReady(discovery, `http://127.0.0.1:${discoveryPort}/healthz`, consumersJoined),
      waitReady(storage, `http://127.0.0.1:${storagePort}/healthz`, consumersJoined),
    ]);
    console.log(`services ready (consumer groups joined) in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);

    const accepted = (): Promise<number> => scrape(col.admin, 'bkstream_receiver_spans_accepted_total');
    const stored = (): Promise<number> => scrape(storagePort, 'bkstream_storage_rows_written_total', 'signal="spans"');
    const discovered = (): Promise<number> => scrape(discoveryPort, 'bkstream_discovery_spans_total');
    const snapshot = async (): Promise<{ at: number; accepted: number; stored: number; discovered: number }> => {
      const [a, s, d] = await Promise.all([accepted(), stored(), discovered()]);
      return { at: performance.now(), accepted: a, stored: s, discovered: d };
    };
    const polls = poller(store);
    let windowStart: Promise<Awaited<ReturnType<typeof snapshot>>> | undefined;
    let windowEnd: Promise<Awaited<ReturnType<typeof snapshot>>> | undefined;
    let lagAtEnd: Promise<{ discovery: number; storage: number }> | undefined;
    const report = await load.run({ port: col.grpc, token, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS, rate: RATE, probeMs: PROBE_MS }, {
      probe: (p) => polls.track(p),
      probeFailed: (n) => polls.fail(n),
      mark: (m) => {
        if (m === 'start') windowStart = snapshot();
        else {
          windowEnd = snapshot();
          lagAtEnd = Promise.all([busAdmin.groupLag(groups.discovery, `${prefix}.spans`), busAdmin.groupLag(groups.storageSpans, `${prefix}.spans`)])
            .then(([d, s]) => ({ discovery: d, storage: s }));
        }
      },
    });
    if (!windowStart || !windowEnd || !lagAtEnd) throw new Error('the load generator did not mark its steady window');
    const w0 = await windowStart;
    const w1 = await windowEnd;
    const lag = await lagAtEnd;
    const windowS = (w1.at - w0.at) / 1000;
    const spansPerS = (w1.stored - w0.stored) / windowS;
    const acceptedPerS = (w1.accepted - w0.accepted) / windowS;
    const discoveredPerS = (w1.discovered - w0.discovered) / windowS;

    // Drain: until discovery and storage processed everything accepted and every probe is visible.
    const drainStarted = performance.now();
    let drained = await snapshot();
    while ((drained.stored < drained.accepted || drained.discovered < drained.accepted || polls.pending() > 0) && performance.now() - drainStarted < DRAIN_SECONDS * 1000) {
      await sleep(200);
      drained = await snapshot();
    }
    const drainS = (performance.now() - drainStarted) / 1000;
    await polls.stop();

    // One probe through the query APIs, with the admin token.
    const visible = polls.all().find((p) => p.storageMs !== undefined && p.discoveryMs !== undefined);
    if (visible) {
      const auth = { authorization: `Bearer ${adminToken}` };
      const endpoints = await fetch(`http://127.0.0.1:${discoveryPort}/api/v1/apps/${BIZ}/${APP}/endpoints?endpoint_name=${encodeURIComponent(visible.name)}`, { headers: auth });
      const trace = await fetch(`http://127.0.0.1:${storagePort}/api/v1/apps/${BIZ}/${APP}/traces/${visible.traceId}`, { headers: auth });
      const found = ((await endpoints.json()) as { total?: number }).total ?? 0;
      await trace.text();
      console.log(`query APIs (admin token): discovery lists probe ${visible.n}'s endpoint ${found} time(s) (HTTP ${endpoints.status}); storage returns its trace (HTTP ${trace.status})`);
    }

    const inWindow = polls.all().filter((p) => !p.failed);
    const storageMs = inWindow.map((p) => (p.storageMs === undefined ? Infinity : p.storageMs - p.endMs));
    const discoveryMs = inWindow.map((p) => (p.discoveryMs === undefined ? Infinity : p.discoveryMs - p.endMs));
    const missing = (xs: number[]): number => xs.filter((x) => x === Infinity).length;
    const failedProbes = polls.all().length - inWindow.length;
    console.log(`offered ${RATE > 0 ? `${RATE} spans/s` : 'closed loop'}; collector accepted ${Math.round(acceptedPerS)} spans/s over the ${windowS.toFixed(1)} s window` +
      `${report.dropped > 0 ? ` (the schedule fell behind: ${report.dropped} requests not sent)` : ''}; Export p50 ${fmt(percentile(report.latenciesMs, 50))} ms, p99 ${fmt(percentile(report.latenciesMs, 99))} ms` +
      (Object.keys(report.errors).length > 0 ? `; errors by gRPC code ${JSON.stringify(report.errors)}` : ''));
    console.log(`storage: ${Math.round(spansPerS)} spans/s stored; discovery: ${Math.round(discoveredPerS)} spans/s processed`);
    console.log(`at the window's end: storage ${w1.accepted - w1.stored} spans behind the collector, discovery ${w1.accepted - w1.discovered}; ` +
      `committed lag (records) storage ${lag.storage}, discovery ${lag.discovery} (discovery commits after its pairing window settles)`);
    console.log(`drain: ${drained.stored >= drained.accepted && drained.discovered >= drained.accepted ? 'both caught up' : 'NOT caught up'} ${drainS.toFixed(1)} s after the load stopped ` +
      `(accepted ${drained.accepted}, stored ${drained.stored}, discovered ${drained.discovered})`);
    console.log(`end → visible over ${inWindow.length} probes of the window${failedProbes > 0 ? ` (${failedProbes} probe Exports failed, left out)` : ''}: ` +
      `storage p50 ${fmt(percentile(storageMs, 50))} ms, p99 ${fmt(percentile(storageMs, 99))} ms${missing(storageMs) > 0 ? ` (${missing(storageMs)} never visible)` : ''}; ` +
      `discovery p50 ${fmt(percentile(discoveryMs, 50))} ms, p99 ${fmt(percentile(discoveryMs, 99))} ms${missing(discoveryMs) > 0 ? ` (${missing(discoveryMs)} never visible)` : ''}; ` +
      `RESULT reports the worse of the two (±${POLL_MS} ms polling)`);
    console.log(`ratio: stored spans/s over the receiver alone's capacity${RATE > 0 ? ` (bounded by offered/baseline = ${fmt(RATE / baseline)})` : ''}`);
    const p50 = Math.max(percentile(storageMs, 50), percentile(discoveryMs, 50));
    const p99 = Math.max(percentile(storageMs, 99), percentile(discoveryMs, 99));
    for (const s of services) await s.stop();
    result('pipeline', { spans_per_s: Math.round(spansPerS), baseline_spans_per_s: Math.round(baseline), ratio: spansPerS / baseline, p50_ms: p50, p99_ms: p99 });
  } finally {
    load.stop();
    for (const s of services) await s.stop().catch(() => undefined);
    for (const g of Object.values(groups)) await busAdmin.deleteGroup(g).catch(() => undefined);
    await busAdmin.deleteTopics(plans.map((p) => p.topic)).catch(() => undefined);
    await busAdmin.stop().catch(() => undefined);
    await store.stop().catch(() => undefined);
    await admin.exec(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.stop().catch(() => undefined);
    rmSync(join(ROOT, '.tmp', `bench-pipeline-${id}`), { recursive: true, force: true });
  }
}

if (process.env.BENCH_PIPELINE_ROLE === 'load') {
  const templates = Array.from({ length: TEMPLATES }, (_, n) => buildTemplate(n));
  const state = { seq: randomInt(1 << 30), probe: 0 };
  const send = (m: LoadMessage): void => void process.send?.(m);
  process.on('message', (job: LoadJob) => {
    runLoad(job, templates, send, state).then(
      (report) => send({ report }),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
  process.on('disconnect', () => process.exit(0));
} else {
  main().then(() => process.exit(0), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
