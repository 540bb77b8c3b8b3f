/**
 * The export service: what the OTLP transports call for every Export request, whatever the protocol.
 * It owns admission (request bytes in flight), the request metrics, and the state of the Kafka connection:
 *
 * - `open()` starts accepting and reaches Kafka in the background: the spans topic must exist (its
 *   partition count is read once) and the producer connect. A broker that is down, or a missing topic,
 *   is retried with backoff; until then every Export is answered UNAVAILABLE and `health()` says why.
 * - `close()` stops accepting (new calls: UNAVAILABLE) and gives up connecting; requests in flight go on.
 *   `settle(ms)` waits a little for a connection attempt in progress; `reset()`, once the producer is
 *   stopped, forgets the connection.
 *
 * Accepted means acknowledged: `export()` answers OK only after the pipeline saw Kafka acknowledge every
 * record holding one of the request's spans (the collector README, "How it works").
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Breaker } from '../../common/breaker.ts';
import type { Bus, BusProducer } from '../../common/bus/index.ts';
import { BkError, DependencyUnavailableError, edgeStatusOf, errorMessage, MissingTopicsError, UnavailableError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { ExportResponse } from '../../common/otlp/index.ts';
import { backoffDelay } from '../../common/retry.ts';
import type { CollectorMetrics } from '../metrics.ts';
import type { SpanBatcher } from './batcher.ts';
import { OverloadedError } from './errors.ts';
import type { LogThrottle } from './log-throttle.ts';
import type { ExportRequest, Protocol, TracePipeline } from './pipeline.ts';
import type { TokenPort } from './tokens.ts';

/** What the transports call: admission of request bytes, then the export itself. */
export interface ExportHandler {
  /** Reserves `bytes` of in-flight request memory; throws (OverloadedError) when over the bound. */
  reserve(bytes: number): void;
  release(bytes: number): void;
  /** Handles one request (bytes already reserved); throws errors the shared edge table maps. */
  export(req: ExportRequest, wireBytes: number): Promise<ExportResponse>;
  /** Counts a request refused before {@link export} (too large, overloaded, bad encoding). */
  refused(protocol: Protocol, err: unknown, wireBytes: number): void;
  /** Whether a token names an enabled application (checked before a body is read); throws when the store cannot tell. */
  checkToken(token: string): Promise<boolean>;
}

/** What `/healthz` shows: `ok` once Exports can be accepted, and the state behind it. */
export interface ExportHealth {
  ok: boolean;
  checks: Record<string, unknown>;
}

export interface ExportServiceOptions {
  /** Full name of the spans topic (`<prefix>.spans`). */
  topic: string;
  /** Admin clients (topic check, partition count) and the brokers' names. */
  bus: Pick<Bus, 'admin' | 'brokers'>;
  /** Connected once Kafka is reached; the service stops it. */
  producer: BusProducer;
  pipeline: TracePipeline;
  /** Resolves header tokens before a body is read. */
  tokens: TokenPort;
  /** For health: the producer queue. */
  batcher: SpanBatcher;
  /** For health: the publishing breaker's state. */
  breaker: Breaker;
  metrics: CollectorMetrics;
  /** Request bytes handled at once, at most (COLLECTOR_MAX_INFLIGHT_BYTES). */
  maxInFlightBytes: number;
  throttle: LogThrottle;
  logger: Logger;
}

export class ExportService implements ExportHandler {
  readonly #opts: ExportServiceOptions;
  readonly #log: Logger;
  #partitions: number | undefined;
  /** Why Kafka is not reached, for the logs (may name addresses). */
  #kafkaProblem: string;
  /** The same for clients and /readyz: what, never where. */
  #kafkaState: 'connecting' | 'unavailable' | 'topic missing' = 'connecting';
  #inFlightBytes = 0;
  #accepting = false;
  #connecting: Promise<void> | undefined;
  #abort = new AbortController();

  constructor(options: ExportServiceOptions) {
    this.#opts = options;
    this.#log = options.logger;
    this.#kafkaProblem = `connecting to Kafka at ${options.bus.brokers.join(',')}`;
    options.metrics.kafkaReady.set(0);
  }

  /** Partitions of the spans topic; undefined while Kafka has not been reached. */
  partitions(): number | undefined {
    return this.#partitions;
  }

  /** Whether Kafka is reached and Exports can be accepted. */
  ready(): boolean {
    return this.#accepting && this.#partitions !== undefined;
  }

  health(): ExportHealth {
    const breaker = this.#opts.breaker.state();
    const batcher = this.#opts.batcher;
    return {
      ok: this.ready() && breaker !== 'open',
      checks: {
        accepting: this.#accepting,
        kafka: this.#partitions === undefined ? this.#kafkaState : 'ready',
        topic: this.#opts.topic,
        partitions: this.#partitions ?? null,
        breaker,
        inflight_bytes: this.#inFlightBytes,
        queued_bytes: batcher.queuedBytes(),
        inflight_sends: batcher.inFlightSends(),
      },
    };
  }

  /** Starts accepting Exports and reaching Kafka in the background. */
  open(): void {
    if (this.#accepting) return;
    this.#accepting = true;
    this.#abort = new AbortController();
    this.#connecting = this.#connect(this.#abort.signal);
  }

  /** Stops accepting Exports (they get UNAVAILABLE) and gives up connecting; requests in flight go on. */
  close(): void {
    this.#accepting = false;
    this.#abort.abort();
  }

  /** Waits for a connection attempt in progress, at most `ms` (one to a dead broker can take kafkajs's whole retry budget). */
  async settle(ms: number): Promise<void> {
    if (!this.#connecting) return;
    const timer = new AbortController();
    await Promise.race([this.#connecting, sleep(ms, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
  }

  /** Forgets the connection once the producer is stopped. */
  reset(): void {
    this.#partitions = undefined;
    this.#opts.metrics.kafkaReady.set(0);
  }

  /** Reaches Kafka: the spans topic must exist (its partition count is read once) and the producer connect. */
  async #connect(signal: AbortSignal): Promise<void> {
    const { bus, topic, producer } = this.#opts;
    for (let attempt = 1; !signal.aborted; attempt++) {
      const admin = bus.admin();
      try {
        await admin.start();
        await admin.checkTopics([topic]);
        const partitions = await admin.partitionCount(topic);
        await producer.start();
        if (signal.aborted) {
          await producer.stop(); // the service may have stopped while this connection was being made
          return;
        }
        this.#partitions = partitions;
        this.#opts.metrics.kafkaReady.set(1);
        this.#log.info('connected to Kafka', { topic, partitions, attempts: attempt });
        return;
      } catch (err) {
        // A failed connect may leave the producer half-open (and marked connected): reset it before retrying.
        await producer.stop().catch(() => undefined);
        this.#kafkaProblem = err instanceof MissingTopicsError ? err.message : `Kafka unreachable: ${errorMessage(err)}`;
        this.#kafkaState = err instanceof MissingTopicsError ? 'topic missing' : 'unavailable';
        if (attempt === 1 || attempt % 10 === 0) this.#log.warn('cannot reach Kafka yet; Exports are answered UNAVAILABLE', { topic, attempt, problem: this.#kafkaProblem });
      } finally {
        await admin.stop().catch(() => undefined);
      }
      await sleep(backoffDelay(attempt, { initialDelayMs: 200, maxDelayMs: 5_000 }), undefined, { signal }).catch(() => undefined);
    }
  }

  // ExportHandler ------------------------------------------------------------------------------------------

  reserve(bytes: number): void {
    const max = this.#opts.maxInFlightBytes;
    if (this.#inFlightBytes + bytes > max && this.#inFlightBytes > 0) {
      throw new OverloadedError(`the receiver is at capacity (${this.#inFlightBytes} request bytes in flight): retry later`);
    }
    this.#inFlightBytes += bytes;
    this.#opts.metrics.inFlightBytes.set(this.#inFlightBytes);
  }

  release(bytes: number): void {
    this.#inFlightBytes -= bytes;
    this.#opts.metrics.inFlightBytes.set(this.#inFlightBytes);
  }

  async checkToken(token: string): Promise<boolean> {
    return (await this.#opts.tokens.resolve(token)) !== undefined;
  }

  refused(protocol: Protocol, err: unknown, wireBytes: number): void {
    const { outcome } = edgeStatusOf(err);
    this.#opts.metrics.requests.inc({ protocol, outcome });
    this.#opts.metrics.bytes.inc({ protocol }, wireBytes);
    this.#note(outcome, err);
  }

  async export(req: ExportRequest, wireBytes: number): Promise<ExportResponse> {
    const m = this.#opts.metrics;
    const { protocol } = req;
    const started = performance.now();
    m.bytes.inc({ protocol }, wireBytes);
    m.requestBytes.observe({ protocol }, wireBytes);
    try {
      if (!this.#accepting) throw new UnavailableError('the receiver is shutting down');
      if (this.#partitions === undefined) {
        throw this.#kafkaState === 'topic missing'
          ? new UnavailableError(`the receiver cannot publish yet: the topic ${this.#opts.topic} is missing`)
          : new DependencyUnavailableError('Kafka broker', { details: { state: this.#kafkaState } });
      }
      const result = await this.#opts.pipeline.export(req);
      m.received.inc({ protocol }, result.receivedSpans);
      m.accepted.inc({ protocol }, result.acceptedSpans);
      for (const [reason, n] of Object.entries(result.rejected)) m.rejected.inc({ protocol, reason }, n);
      for (const [app, n] of result.apps) m.appSpans.inc({ bk_biz_id: String(app.bkBizId), app_name: app.appName }, n);
      // `empty`: resource groups that passed the checks but held no span (the reference counts them as skipped).
      m.requests.inc({ protocol, outcome: result.receivedSpans === 0 ? 'empty' : result.rejectedSpans > 0 ? 'partial' : 'ok' });
      return result.rejectedSpans > 0 ? { partialSuccess: { rejectedSpans: result.rejectedSpans, errorMessage: result.errorMessage } } : {};
    } catch (err) {
      const { outcome } = edgeStatusOf(err);
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
    else if ((outcome === 'unavailable' || outcome === 'overloaded') && this.#opts.throttle.allow(outcome)) {
      this.#log.warn('export refused, clients are told to retry', { outcome, reason: errorMessage(err) });
    }
  }
}
