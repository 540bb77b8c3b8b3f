/**
 * Configuration of the collector service (receiver part). Every key is an environment variable (or a
 * key of the BKSTREAM_CONFIG file); `configTable(receiverSpec)` renders the README's table.
 */
import { bool, commonSpec, int, str, type Config, type Spec } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';
import { GSE_KEY_DOC } from '../common/gse/secret.ts';
import { secretKeySpec, validateSecretKey } from '../common/secrets.ts';

const MiB = 1024 * 1024;

/** OTLP gRPC default message limit (bk-collector's gRPC `maxbytes` default). */
export const DEFAULT_MAX_GRPC_MESSAGE_BYTES = 8 * MiB;

const port = (env: string, def: number, what: string) =>
  int({ env, default: def, min: 0, max: 65_535, doc: `${what} (0 = any free port)` });

export const receiverSpec = {
  /** Interface the OTLP listeners bind. Default 127.0.0.1 (set 0.0.0.0 to accept other hosts). */
  otlpHost: str({ env: 'COLLECTOR_OTLP_HOST', default: '127.0.0.1', doc: 'interface of the OTLP listeners (0.0.0.0 for every interface)' }),
  grpcEnabled: bool({ env: 'COLLECTOR_OTLP_GRPC_ENABLED', default: true, doc: 'serve OTLP/gRPC `TraceService/Export`' }),
  grpcPort: port('COLLECTOR_OTLP_GRPC_PORT', 4317, 'OTLP/gRPC port'),
  httpEnabled: bool({ env: 'COLLECTOR_OTLP_HTTP_ENABLED', default: true, doc: 'serve OTLP/HTTP `POST /v1/traces` (protobuf and JSON)' }),
  httpPort: port('COLLECTOR_OTLP_HTTP_PORT', 4318, 'OTLP/HTTP port'),
  adminHost: str({ env: 'COLLECTOR_ADMIN_HOST', default: '127.0.0.1', doc: 'interface of the admin server' }),
  adminPort: port('COLLECTOR_ADMIN_PORT', 4310, 'admin port: `/metrics`, `/livez`, `/readyz`, the application registry and `POST /-/reload` (admin token)'),
  /** Largest gRPC message, bytes (8 MiB). Larger → RESOURCE_EXHAUSTED. */
  maxGrpcMessageBytes: int({ env: 'COLLECTOR_MAX_GRPC_MESSAGE_BYTES', default: DEFAULT_MAX_GRPC_MESSAGE_BYTES, min: 1024, doc: 'largest OTLP/gRPC message, bytes (larger: RESOURCE_EXHAUSTED)' }),
  /** Largest HTTP body, bytes, compressed or not (8 MiB). Larger → 413. */
  maxHttpBodyBytes: int({ env: 'COLLECTOR_MAX_HTTP_BODY_BYTES', default: 8 * MiB, min: 1024, doc: 'largest OTLP/HTTP body, bytes, before and after decompression (larger: 413)' }),
  /** Request bytes being handled at once (64 MiB); past it requests get UNAVAILABLE / 503. */
  maxInFlightBytes: int({ env: 'COLLECTOR_MAX_INFLIGHT_BYTES', default: 64 * MiB, min: 1024, doc: 'request bytes handled at once; more: UNAVAILABLE / 503 (retryable)' }),
  /** OTLP/HTTP: the request headers must arrive within this (10 s), else 408 and the connection closes. */
  httpHeadersTimeoutS: int({ env: 'COLLECTOR_HTTP_HEADERS_TIMEOUT_S', default: 10, min: 1, max: 300, doc: 'OTLP/HTTP: time a client has to send the request headers, s (then 408, connection closed)' }),
  /** OTLP/HTTP: the whole request, body included, must arrive within this (30 s). */
  httpRequestTimeoutS: int({ env: 'COLLECTOR_HTTP_REQUEST_TIMEOUT_S', default: 30, min: 1, max: 600, doc: 'OTLP/HTTP: time a client has to send a whole request, body included, s (then 408, connection closed)' }),
  /** OTLP/HTTP: a connection with no traffic for this long is closed (30 s). */
  httpIdleTimeoutS: int({ env: 'COLLECTOR_HTTP_IDLE_TIMEOUT_S', default: 30, min: 1, max: 3_600, doc: 'OTLP/HTTP: a connection without traffic for this long is closed, s (between requests: at most 5 s)' }),
  /** OTLP/HTTP: connections that have not shown a valid token in their headers (64); past it the oldest is closed. */
  httpMaxUnauthenticatedConnections: int({ env: 'COLLECTOR_HTTP_MAX_UNAUTHENTICATED_CONNECTIONS', default: 64, min: 1, doc: 'OTLP/HTTP: open connections that have not shown a valid token in their headers; past it the oldest of them is closed' }),
  /** OTLP/HTTP: requests without a token in their headers (one may be in the body) read at once (8); more get 429. */
  httpMaxUnauthenticatedRequests: int({ env: 'COLLECTOR_HTTP_MAX_UNAUTHENTICATED_REQUESTS', default: 8, min: 0, doc: 'OTLP/HTTP: requests without a token in their headers (only the bk.data.token resource attribute) whose bodies are read at once; more get 429 (0 = a header token is required)' }),
  /** How long an Export waits for Kafka's acknowledgement (5 000 ms) before answering UNAVAILABLE. */
  exportTimeoutMs: int({ env: 'COLLECTOR_EXPORT_TIMEOUT_MS', default: 5_000, min: 10, doc: 'how long an Export waits for Kafka to acknowledge its spans before UNAVAILABLE, ms' }),
  /**
   * The global rate limit, requests/s (reference template 2 000; 0 = unlimited, < 0 = reject all): one
   * bucket shared by every application without limits of its own, as the reference's global
   * `rate_limiter` config (applications with their own get their own bucket, like its per-token sub-configs).
   */
  rateLimitQps: int({ env: 'COLLECTOR_RATE_LIMIT_QPS', default: 2_000, doc: 'Export requests per second of the one bucket shared by every application without its own `rate_limit_qps`/`rate_limit_burst` (0 = unlimited, < 0 = reject all)' }),
  /** Burst of the shared bucket (reference template 4 000); also the burst of an application that sets only its qps. */
  rateLimitBurst: int({ env: 'COLLECTOR_RATE_LIMIT_BURST', default: 4_000, min: 0, doc: 'requests the shared bucket lets through at once after a quiet period (also the burst of an application that sets only its qps)' }),
  /** How long a resolved token is cached (60 000 ms). */
  tokenCacheTtlMs: int({ env: 'COLLECTOR_TOKEN_CACHE_TTL_MS', default: 60_000, min: 0, doc: 'how long a resolved token is cached, ms (also how long a rotated or disabled token keeps working)' }),
  /** How long an unknown token is remembered as unknown (5 000 ms). */
  tokenMissTtlMs: int({ env: 'COLLECTOR_TOKEN_MISS_TTL_MS', default: 5_000, min: 0, doc: 'how long an unknown token is remembered as unknown, ms' }),
  tokenCacheMaxEntries: int({ env: 'COLLECTOR_TOKEN_CACHE_MAX_ENTRIES', default: 10_000, min: 1, doc: 'tokens cached at most (known and unknown)' }),
  /** Largest SpanBatch record (256 KiB), under the broker's 1 MiB `message.max.bytes`. */
  batchMaxBytes: int({ env: 'COLLECTOR_BATCH_MAX_BYTES', default: 256 * 1024, min: 4 * 1024, max: 900 * 1024, doc: 'largest SpanBatch record, bytes (the broker refuses records over message.max.bytes, 1 MiB)' }),
  /** How long an idle receiver waits after a span before sending (0 ms: the next event-loop turn). */
  batchLingerMs: int({ env: 'COLLECTOR_BATCH_LINGER_MS', default: 0, min: 0, doc: 'how long an idle receiver waits for more spans before sending, ms (under load batches fill while sends are in flight)' }),
  /** Produce requests in flight at once (2): fewer means bigger records under load (less CPU per span), more means less waiting. */
  maxInFlightSends: int({ env: 'COLLECTOR_MAX_INFLIGHT_SENDS', default: 2, min: 1, max: 16, doc: 'produce requests to Kafka in flight at once (while they are, batches keep filling)' }),
  /** Bytes accepted and not yet acknowledged by Kafka (64 MiB); past it requests get UNAVAILABLE / 503. */
  producerQueueBytes: int({ env: 'COLLECTOR_PRODUCER_QUEUE_BYTES', default: 64 * MiB, min: 1024 * 1024, doc: 'span bytes accepted and not yet acknowledged by Kafka; more: UNAVAILABLE / 503' }),
  /** gzip record batches (true): spans compress ~5–15×, so the broker, disks and consumers' network carry that much less. */
  producerCompress: bool({ env: 'COLLECTOR_PRODUCER_COMPRESS', default: true, doc: 'gzip record batches sent to Kafka (spans compress 5–15×: less broker I/O, and less producer CPU per span than copying them raw through kafkajs)' }),
  /**
   * How often the flow commands queued by application changes are looked for (5 000 ms); the admin API's
   * own changes go out at once. 0 = this collector does not publish them (another one does).
   */
  flowCommandsPollIntervalMs: int({ env: 'COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS', default: 5_000, min: 0, doc: 'how often flow commands queued by application changes (`bkstream apps` against the store) are looked for and published on flow.commands, ms; the admin API\'s own go out at once (0 = this collector publishes none)' }),
  /** On: what the collector publishes by data id (the feeds) goes where the data id's GSE route says (README "Routing by data id"). */
  gseRouting: bool({ env: 'COLLECTOR_GSE_ROUTING', default: true, doc: 'publish the feeds by GSE route (routes read from `<prefix>.gse.routes`; a data id without a route, or no such topic: `0bkmonitor_{dataid}0` on KAFKA_BROKERS); off: always that default topic, the routes are not read. The spans topic is never routed' }),
  /** Opens the SASL passwords of GSE receivers (sealed by the orchestrator's registry with its key). */
  secretKey: { ...secretKeySpec.secretKey, doc: GSE_KEY_DOC },
  secretKeyFile: { ...secretKeySpec.secretKeyFile, doc: 'a file holding that key instead (mode 0600 or stricter, else refused)' },
  secretKeyPrevious: { ...secretKeySpec.secretKeyPrevious, doc: 'the orchestrator\'s older keys (comma separated), for passwords sealed before a key rotation' },
  /** Open breaker: time before one trial request goes to Kafka again (2 000 ms). */
  breakerResetMs: int({ env: 'COLLECTOR_BREAKER_RESET_MS', default: 2_000, min: 100, doc: 'after Kafka failures, how long requests fail fast before one trial, ms' }),
  /**
   * Graceful stop: how long requests in flight and unacknowledged batches may take (8 000 ms; the
   * reference waits up to 10 s — this leaves room for disconnecting within a 10 s stop deadline).
   */
  shutdownTimeoutMs: int({ env: 'COLLECTOR_SHUTDOWN_TIMEOUT_MS', default: 8_000, min: 0, doc: 'graceful stop: how long requests in flight and unacknowledged batches may take, ms' }),
} satisfies Spec;

export type ReceiverConfig = Config<typeof receiverSpec>;

/** Everything the collector service reads (common keys included, so a shared config file is accepted). */
export const collectorSpec = { ...commonSpec, ...receiverSpec } satisfies Spec;
export type CollectorConfig = Config<typeof collectorSpec>;

/** Cross-field checks. */
export function validateCollector(c: CollectorConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [...validateSecretKey(c)];
  if (c.grpcEnabled && c.httpEnabled && c.grpcPort !== 0 && c.grpcPort === c.httpPort) {
    problems.push({ key: 'COLLECTOR_OTLP_HTTP_PORT', message: `must differ from COLLECTOR_OTLP_GRPC_PORT (${c.grpcPort})` });
  }
  if (c.adminPort !== 0 && ((c.grpcEnabled && c.adminPort === c.grpcPort) || (c.httpEnabled && c.adminPort === c.httpPort))) {
    problems.push({ key: 'COLLECTOR_ADMIN_PORT', message: `must differ from the OTLP ports (${c.adminPort})` });
  }
  if (c.httpHeadersTimeoutS > c.httpRequestTimeoutS) {
    problems.push({ key: 'COLLECTOR_HTTP_HEADERS_TIMEOUT_S', message: `must not exceed COLLECTOR_HTTP_REQUEST_TIMEOUT_S (${c.httpRequestTimeoutS})` });
  }
  if (c.producerQueueBytes < c.batchMaxBytes * 2) {
    problems.push({ key: 'COLLECTOR_PRODUCER_QUEUE_BYTES', message: `must hold at least two batches (${c.batchMaxBytes * 2} bytes)` });
  }
  return problems;
}
