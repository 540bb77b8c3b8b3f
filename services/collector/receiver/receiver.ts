/**
 * The OTLP trace receiver: gRPC and HTTP listeners, the admin server, and the pipeline between them and
 * Kafka. One Component:
 *
 * - `start()` checks the span writer against the schema, binds the listeners and returns; Kafka is
 *   reached in the background (a broker that is down, or a missing topic, is retried with backoff), and
 *   until then every Export is answered UNAVAILABLE and `/healthz` says why.
 * - `stop()` stops intake first (new calls get UNAVAILABLE, listeners close), lets requests in flight
 *   finish — their batches are flushed at once and acknowledged — then flushes the producer and closes
 *   the admin server. Idempotent, safe without start.
 *
 * Accepted means acknowledged: an Export is answered OK only after Kafka acknowledged every record
 * holding one of its spans, so an accepted span survives even a crash of the receiver right after.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createBreaker, type Breaker } from '../../common/breaker.ts';
import type { Bus, BusProducer } from '../../common/bus/index.ts';
import { codecFor } from '../../common/avro/index.ts';
import { BkError, edgeStatusOf, errorMessage, MissingTopicsError, UnavailableError } from '../../common/errors.ts';
import type { Component } from '../../common/lifecycle.ts';
import type { Logger } from '../../common/log.ts';
import { type Registry } from '../../common/metrics.ts';
import { createHttpServer, json, type HttpServer } from '../../common/http.ts';
import { backoffDelay } from '../../common/retry.ts';
import type { Store } from '../../common/store/index.ts';
import { applicationRoutes } from '../apps-api.ts';
import { findByTokenHash } from '../applications.ts';
import type { ReceiverConfig } from '../config.ts';
import { SpanBatcher } from './batcher.ts';
import { isKafkaFailure, OverloadedError } from './errors.ts';
import { GrpcReceiver } from './grpc.ts';
import { HttpReceiver } from './http.ts';
import { receiverMetrics, type ReceiverMetrics } from './metrics.ts';
import type { ExportResponse } from '../../common/otlp/index.ts';
import { TracePipeline, type ExportHandler, type ExportRequest, type Protocol } from './pipeline.ts';
import { RateLimiter } from './ratelimit.ts';
import { checkSpanWriter } from './span-avro.ts';
import { SAMPLE_SPANS } from './samples.ts';
import { TokenCache } from './tokens.ts';

export interface ReceiverDeps {
  config: ReceiverConfig;
  /** Full name of the spans topic (`<prefix>.spans`). */
  topic: string;
  store: Store;
  bus: Bus;
  logger: Logger;
  registry: Registry;
}

/** Waits for `work` at most `ms`; true when it finished (the timer does not outlive it). */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Logs one line per kind of failure per interval, so a flood of bad requests does not flood the log. */
class LogThrottle {
  readonly #last = new Map<string, number>();
  readonly #intervalMs: number;
  constructor(intervalMs = 10_000) {
    this.#intervalMs = intervalMs;
  }
  allow(kind: string): boolean {
    const now = Date.now();
    if ((this.#last.get(kind) ?? 0) + this.#intervalMs > now) return false;
    this.#last.set(kind, now);
    return true;
  }
}

export class TraceReceiver implements Component, ExportHandler {
  readonly name = 'otlp-receiver';
  readonly #deps: ReceiverDeps;
  readonly #log: Logger;
  readonly #metrics: ReceiverMetrics;
  readonly #tokens: TokenCache;
  readonly #producer: BusProducer;
  readonly #batcher: SpanBatcher;
  readonly #breaker: Breaker;
  readonly #pipeline: TracePipeline;
  readonly #grpc: GrpcReceiver | undefined;
  readonly #http: HttpReceiver | undefined;
  readonly #admin: HttpServer;
  readonly #throttle = new LogThrottle();
  #partitions: number | undefined;
  #kafkaProblem: string;
  #inFlightBytes = 0;
  #accepting = false;
  #started = false;
  #connecting: Promise<void> | undefined;
  #abort = new AbortController();
  #stopping: Promise<void> | undefined;

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
    const { config, logger, registry } = deps;
    this.#log = logger.child({ component: 'receiver' });
    this.#kafkaProblem = `connecting to Kafka at ${deps.bus.brokers.join(',')}`;
    this.#metrics = receiverMetrics(registry, {
      queuedBytes: () => this.#batcher.queuedBytes(),
      inFlightSends: () => this.#batcher.inFlightSends(),
    });
    const metrics = this.#metrics;
    this.#tokens = new TokenCache({
      lookup: (hash) => findByTokenHash(deps.store, hash),
      ttlMs: config.tokenCacheTtlMs,
      missTtlMs: config.tokenMissTtlMs,
      maxEntries: config.tokenCacheMaxEntries,
      onResult: (result) => metrics.tokenCache.inc({ result }),
    });
    // Not idempotent: kafkajs would then retry forever and a dead broker would never surface.
    this.#producer = deps.bus.producer({ compress: config.producerCompress });
    this.#batcher = new SpanBatcher({
      topic: deps.topic,
      header: codecFor('SpanBatch').schema.header,
      sender: this.#producer,
      maxBatchBytes: config.batchMaxBytes,
      maxQueuedBytes: config.producerQueueBytes,
      maxInFlightSends: config.maxInFlightSends,
      lingerMs: config.batchLingerMs,
      onRecord: (spans, bytes, err) => {
        metrics.records.inc({ result: err ? 'failed' : 'ok' });
        if (err) {
          if (this.#throttle.allow('publish')) this.#log.warn('publishing spans to Kafka failed', { topic: deps.topic, err });
          return;
        }
        metrics.recordSpans.observe(spans);
        metrics.recordBytes.observe(bytes);
      },
    });
    this.#breaker = createBreaker({
      name: 'kafka-spans',
      timeoutMs: config.exportTimeoutMs,
      resetTimeoutMs: config.breakerResetMs,
      volumeThreshold: 5,
      errorThresholdPercentage: 50,
      isFailure: isKafkaFailure,
      registry,
      logger,
    });
    this.#pipeline = new TracePipeline({
      tokens: this.#tokens,
      limiter: new RateLimiter(),
      defaultRateLimit: { qps: config.rateLimitQps, burst: config.rateLimitBurst },
      batcher: this.#batcher,
      partitions: () => this.#partitions,
      breaker: this.#breaker,
    });
    if (config.grpcEnabled) {
      this.#grpc = new GrpcReceiver({ host: config.otlpHost, port: config.grpcPort, maxMessageBytes: config.maxGrpcMessageBytes, handler: this, logger });
    }
    if (config.httpEnabled) {
      this.#http = new HttpReceiver({ host: config.otlpHost, port: config.httpPort, maxBodyBytes: config.maxHttpBodyBytes, handler: this, logger });
    }
    this.#admin = createHttpServer({
      host: config.adminHost,
      port: config.adminPort,
      registry,
      logger,
      health: () => this.health(),
      routes: [
        {
          method: 'POST',
          path: '/-/reload',
          handle: () => {
            this.#tokens.clear();
            this.#log.info('reloaded: token cache cleared');
            return json(200, { reloaded: true });
          },
        },
        ...applicationRoutes(deps.store, () => this.#tokens.clear()),
        {
          method: 'GET',
          path: '/-/healthz',
          handle: () => {
            const h = this.health();
            return json(h.ok ? 200 : 503, h);
          },
        },
      ],
    });
    metrics.kafkaReady.set(0);
  }

  /** Ports actually bound (useful when configured as 0). */
  ports(): { grpc: number | undefined; http: number | undefined; admin: number } {
    return { grpc: this.#grpc?.port(), http: this.#http?.port(), admin: this.#admin.port() };
  }

  /** Whether Kafka is reached and Exports can be accepted. */
  ready(): boolean {
    return this.#accepting && this.#partitions !== undefined;
  }

  health(): { ok: boolean; checks: Record<string, unknown> } {
    const breaker = this.#breaker.state();
    return {
      ok: this.ready() && breaker !== 'open',
      checks: {
        accepting: this.#accepting,
        kafka: this.#partitions === undefined ? this.#kafkaProblem : 'ready',
        topic: this.#deps.topic,
        partitions: this.#partitions ?? null,
        breaker,
        inflight_bytes: this.#inFlightBytes,
        queued_bytes: this.#batcher.queuedBytes(),
        inflight_sends: this.#batcher.inFlightSends(),
      },
    };
  }

  async start(): Promise<void> {
    if (this.#started) return;
    const mismatch = checkSpanWriter(codecFor('SpanBatch'), SAMPLE_SPANS);
    if (mismatch) throw new BkError('span_writer_mismatch', `${mismatch}: update receiver/span-avro.ts for the new schema`, false);
    this.#started = true;
    this.#abort = new AbortController();
    try {
      await this.#admin.start();
      await this.#grpc?.start();
      await this.#http?.start();
    } catch (err) {
      await this.stop().catch(() => undefined); // close what did start
      throw err;
    }
    this.#accepting = true;
    this.#connecting = this.#connectKafka(this.#abort.signal);
    this.#log.info('started', { ...this.ports(), topic: this.#deps.topic });
  }

  /** Reaches Kafka: the spans topic must exist (its partition count is read once) and the producer connect. */
  async #connectKafka(signal: AbortSignal): Promise<void> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      const admin = this.#deps.bus.admin();
      try {
        await admin.start();
        await admin.checkTopics([this.#deps.topic]);
        const partitions = await admin.partitionCount(this.#deps.topic);
        await this.#producer.start();
        if (signal.aborted) {
          await this.#producer.stop(); // stop() may have run while this connection was being made
          return;
        }
        this.#partitions = partitions;
        this.#metrics.kafkaReady.set(1);
        this.#log.info('connected to Kafka', { topic: this.#deps.topic, partitions, attempts: attempt });
        return;
      } catch (err) {
        // A failed connect may leave the producer half-open (and marked connected): reset it before retrying.
        await this.#producer.stop().catch(() => undefined);
        this.#kafkaProblem = err instanceof MissingTopicsError ? err.message : `Kafka unreachable: ${errorMessage(err)}`;
        if (attempt === 1 || attempt % 10 === 0) this.#log.warn('cannot reach Kafka yet; Exports are answered UNAVAILABLE', { topic: this.#deps.topic, attempt, problem: this.#kafkaProblem });
      } finally {
        await admin.stop().catch(() => undefined);
      }
      await sleep(backoffDelay(attempt, { initialDelayMs: 200, maxDelayMs: 5_000 }), undefined, { signal }).catch(() => undefined);
    }
  }

  // ExportHandler ------------------------------------------------------------------------------------------

  reserve(bytes: number): void {
    const max = this.#deps.config.maxInFlightBytes;
    if (this.#inFlightBytes + bytes > max && this.#inFlightBytes > 0) {
      throw new OverloadedError(`the receiver is at capacity (${this.#inFlightBytes} request bytes in flight): retry later`);
    }
    this.#inFlightBytes += bytes;
    this.#metrics.inFlightBytes.set(this.#inFlightBytes);
  }

  release(bytes: number): void {
    this.#inFlightBytes -= bytes;
    this.#metrics.inFlightBytes.set(this.#inFlightBytes);
  }

  refused(protocol: Protocol, err: unknown, wireBytes: number): void {
    const outcome = edgeStatusOf(err).outcome;
    this.#metrics.requests.inc({ protocol, outcome });
    this.#metrics.bytes.inc({ protocol }, wireBytes);
    this.#note(outcome, err);
  }

  async export(req: ExportRequest, wireBytes: number): Promise<ExportResponse> {
    const m = this.#metrics;
    const { protocol } = req;
    const started = performance.now();
    m.bytes.inc({ protocol }, wireBytes);
    m.requestBytes.observe({ protocol }, wireBytes);
    try {
      if (!this.#accepting) throw new UnavailableError('the receiver is shutting down');
      if (this.#partitions === undefined) throw new UnavailableError(`the receiver cannot publish yet: ${this.#kafkaProblem}`);
      const result = await this.#pipeline.export(req);
      m.received.inc({ protocol }, result.receivedSpans);
      m.accepted.inc({ protocol }, result.acceptedSpans);
      for (const [reason, n] of Object.entries(result.rejected)) m.rejected.inc({ protocol, reason }, n);
      for (const [app, n] of result.apps) m.appSpans.inc({ bk_biz_id: String(app.bkBizId), app_name: app.appName }, n);
      m.requests.inc({ protocol, outcome: result.rejectedSpans > 0 ? 'partial' : 'ok' });
      return result.rejectedSpans > 0 ? { partialSuccess: { rejectedSpans: result.rejectedSpans, errorMessage: result.errorMessage } } : {};
    } catch (err) {
      const outcome = edgeStatusOf(err).outcome;
      m.requests.inc({ protocol, outcome });
      const details = err instanceof BkError ? err.details : {};
      const received = typeof details.receivedSpans === 'number' ? details.receivedSpans : 0;
      if (received > 0) m.received.inc({ protocol }, received);
      const rejected = (details.rejected ?? {}) as Record<string, number>;
      for (const [reason, n] of Object.entries(rejected)) m.rejected.inc({ protocol, reason }, n);
      if (typeof details.spans === 'number') m.rejected.inc({ protocol, reason: outcome }, details.spans);
      this.#note(outcome, err);
      throw err;
    } finally {
      m.latency.observe({ protocol }, (performance.now() - started) / 1000);
    }
  }

  /** Logs failures the operator should know about (throttled); bad client input is only counted. */
  #note(outcome: string, err: unknown): void {
    if (outcome === 'internal') this.#log.error('export failed', { err });
    else if ((outcome === 'unavailable' || outcome === 'overloaded') && this.#throttle.allow(outcome)) {
      this.#log.warn('export refused, clients are told to retry', { outcome, reason: errorMessage(err) });
    }
  }

  // Stop -----------------------------------------------------------------------------------------------------

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (!this.#started) return;
    // One deadline for the whole drain, so the stop fits the service lifecycle's (and `bkstream up`'s).
    const deadline = Date.now() + this.#deps.config.shutdownTimeoutMs;
    const left = (): number => Math.max(0, deadline - Date.now());
    this.#accepting = false;
    this.#abort.abort();
    const failures: string[] = [];
    const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        failures.push(`${what}: ${errorMessage(err)}`);
        this.#log.error('stop step failed', { step: what, err });
      }
    };
    // Intake first: listeners close while the requests in flight finish (their batches go out at once).
    await Promise.all([step('grpc', async () => this.#grpc?.stop(left())), step('http', async () => this.#http?.stop(left()))]);
    await step('connect', async () => {
      // A connection attempt to a dead broker can take kafkajs's whole retry budget: do not wait for it.
      await within(this.#connecting ?? Promise.resolve(), Math.min(left(), 1_000));
    });
    await step('batches', async () => {
      // Bounded: with Kafka gone, kafkajs may keep retrying a send far longer than a stop may take.
      const drained = await within(this.#batcher.drain(), left());
      if (!drained) this.#log.warn('stopped before Kafka acknowledged every batch; their Exports were not answered OK', { queuedBytes: this.#batcher.queuedBytes() });
    });
    await step('producer', () => this.#producer.stop());
    this.#breaker.shutdown();
    await step('admin', () => this.#admin.stop());
    this.#partitions = undefined;
    this.#metrics.kafkaReady.set(0);
    this.#log.info('stopped');
    if (failures.length > 0) throw new Error(`receiver stop: ${failures.join('; ')}`);
  }
}
