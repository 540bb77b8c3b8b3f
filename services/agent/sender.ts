/**
 * The sender: delivers the spool to Kafka in order. It reads a batch after the last acknowledged record,
 * produces it (acks from every in-sync replica; the producer is idempotent, so a request retried after a
 * lost answer is not written twice), and only then acknowledges it in the spool, which may then delete it.
 * With GSE routing (routing.ts) a batch goes wherever its records' data ids are routed, and is acknowledged
 * once every target acknowledged; a retry skips the targets that already had it.
 * While Kafka is unreachable the batch is retried with backoff and new records pile up in the spool; when
 * Kafka returns they follow in order.
 *
 * Every record carries the headers `bk-agent-run` (the agent run that produced it) and `bk-agent-seq` (its
 * spool sequence, monotonic per agent across runs): a consumer sees a record twice only if the agent was
 * killed between Kafka's acknowledgement and the spool's, and then under the same sequence.
 *
 * Connection: opened when there is something to send, closed again after the spool has been empty for
 * `idleDisconnectMs` (the agent sends a few records a minute; reconnecting costs a few ms, while an idle
 * kafkajs 2.2.4 connection re-arms a 1 ms timer forever — its request queue schedules its pending check
 * with a negative delay when the queue is empty — which cost ~3 % of a core per connection).
 *
 * Stop: keeps sending until the spool has nothing unread or the flush deadline passes; what is left stays
 * in the spool for the next run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { OutMessage } from '../common/bus/index.ts';
import { errorMessage } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { backoffDelay } from '../common/retry.ts';
import type { AgentMetrics } from './metrics.ts';
import type { DiskSpool, SpoolRecord } from './spool/spool.ts';

/** What the sender produces through (the bus producer, the GSE routed sink of routing.ts, or a test double). */
export interface RecordSink {
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Sends one spool batch. `progress` is the same set for every attempt of the same batch: a sink that
   * sends to several places records there what was acknowledged, and skips it on the retry.
   */
  sendBatch(batches: readonly { topic: string; messages: readonly OutMessage[] }[], progress?: Set<string>): Promise<void>;
}

export const HEADER_RUN = 'bk-agent-run';
export const HEADER_SEQ = 'bk-agent-seq';

export interface SenderOptions {
  sink: RecordSink;
  spool: DiskSpool;
  metrics: AgentMetrics;
  logger: Logger;
  /** Records per produce request at most. Default 500. */
  batchRecords?: number;
  /** Bytes per produce request, about. Default 512 KiB. */
  batchBytes?: number;
  /** How long stop keeps delivering what is in the spool. Default 5 000 ms. */
  flushTimeoutMs?: number;
  /** Backoff between failed attempts: first and largest delay. Defaults 200 ms and 5 000 ms. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Disconnect after the spool has been empty this long (0 = keep the connection). Default 500 ms. */
  idleDisconnectMs?: number;
}

export interface SenderState {
  /** Whether the last attempt reached Kafka. */
  readonly up: boolean;
  readonly lastError?: string;
  /** ms since the epoch since when sends have been failing. */
  readonly downSince?: number;
}

/** Groups records by topic, keeping their order. */
function toBatches(records: readonly SpoolRecord[]): { topic: string; messages: OutMessage[] }[] {
  const byTopic = new Map<string, OutMessage[]>();
  for (const r of records) {
    let list = byTopic.get(r.topic);
    if (!list) byTopic.set(r.topic, (list = []));
    list.push({ key: r.key, value: r.value, timestamp: Math.round(r.timestamp), headers: { [HEADER_RUN]: r.run, [HEADER_SEQ]: String(r.seq) } });
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

export class KafkaSender implements Component {
  readonly name = 'agent-sender';
  readonly #o: Required<Omit<SenderOptions, 'logger'>>;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  /** Wakes the loop's wait for data when stop begins. */
  readonly #wake = new AbortController();
  #draining = false;
  #loop: Promise<void> | undefined;
  #state: SenderState = { up: false };
  #connected = false;

  constructor(options: SenderOptions) {
    this.#o = {
      sink: options.sink,
      spool: options.spool,
      metrics: options.metrics,
      batchRecords: options.batchRecords ?? 500,
      batchBytes: options.batchBytes ?? 512 * 1024,
      flushTimeoutMs: options.flushTimeoutMs ?? 5_000,
      retryInitialMs: options.retryInitialMs ?? 200,
      retryMaxMs: options.retryMaxMs ?? 5_000,
      idleDisconnectMs: options.idleDisconnectMs ?? 500,
    };
    this.#log = options.logger.child({ component: 'agent.sender' });
  }

  state(): SenderState {
    return this.#state;
  }

  /** Starts delivering in the background; never waits for Kafka. */
  async start(): Promise<void> {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    if (!this.#loop) {
      await this.#o.sink.stop().catch(() => undefined);
      return;
    }
    this.#draining = true;
    this.#wake.abort();
    const timer = setTimeout(() => this.#stop.abort(new DOMException('flush deadline', 'AbortError')), this.#o.flushTimeoutMs);
    try {
      await this.#loop;
    } finally {
      clearTimeout(timer);
      this.#stop.abort(new DOMException('stopped', 'AbortError'));
      await this.#o.sink.stop().catch((err: unknown) => this.#log.warn('producer stop failed', { err }));
    }
    const left = this.#o.spool.stats().pending;
    if (left > 0) this.#log.warn('stopped with records left in the spool; they are sent on the next start', { records: left });
  }

  #up(): void {
    if (!this.#state.up) this.#log.info('Kafka reachable; delivering the spool', { pending: this.#o.spool.stats().pending });
    this.#state = { up: true };
    this.#o.metrics.kafkaUp.set(1);
  }

  #down(err: unknown): void {
    const message = errorMessage(err);
    if (this.#state.up || this.#state.downSince === undefined) this.#log.warn('Kafka unreachable; records stay in the spool', { err: message });
    this.#state = { up: false, lastError: message, downSince: this.#state.downSince ?? Date.now() };
    this.#o.metrics.kafkaUp.set(0);
  }

  /** Resolves after `ms` or when the stop deadline aborts. */
  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stop.signal }).catch(() => undefined);
  }

  /** Resolves with the send's outcome, or rejects when the stop deadline passes first. */
  #abortable<T>(p: Promise<T>): Promise<T> {
    const signal = this.#stop.signal;
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  async #run(): Promise<void> {
    const { spool, sink, metrics } = this.#o;
    let batch: SpoolRecord[] | undefined;
    /** What the sink delivered of `batch` in earlier attempts (routed sends: targets that acknowledged). */
    let progress = new Set<string>();
    let attempt = 0;
    while (!this.#stop.signal.aborted) {
      try {
        if (!batch) {
          const next = await spool.read(this.#o.batchRecords, this.#o.batchBytes);
          if (next.length === 0) {
            if (this.#draining) return;
            if (this.#connected && this.#o.idleDisconnectMs > 0) {
              // Nothing to send: disconnect if nothing comes for a while (the agent sends a few records a
              // minute; an idle kafkajs connection costs CPU, and thousands of agents need no standing
              // connections to the brokers). The next record reconnects (a few ms).
              const idle = AbortSignal.any([this.#wake.signal, AbortSignal.timeout(this.#o.idleDisconnectMs)]);
              await spool.waitForData(idle);
              if (idle.aborted && !this.#wake.signal.aborted && spool.stats().pending === 0) {
                this.#connected = false;
                await this.#abortable(sink.stop()).catch(() => undefined);
              }
              continue;
            }
            await spool.waitForData(this.#wake.signal);
            continue;
          }
          batch = next;
          progress = new Set();
        }
        // Connected only when there is something to send.
        if (!this.#connected) {
          this.#connected = true; // set first: a failed start leaves sockets that the stop in the catch closes
          await this.#abortable(sink.start());
        }
        await this.#abortable(sink.sendBatch(toBatches(batch), progress));
        const last = batch[batch.length - 1] as SpoolRecord;
        await spool.ack(last.seq, batch.length);
        for (const r of batch) metrics.published.inc({ kind: r.topic.endsWith('.events') ? 'events' : 'metrics' });
        metrics.spoolRecords.set(spool.stats().pending);
        metrics.spoolBytes.set(spool.stats().bytes);
        batch = undefined;
        attempt = 0;
        this.#up();
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#down(err);
        // Reconnect before the next attempt: a producer whose connection failed does not reconnect by
        // itself. The idempotent producer keeps its id and sequences, so a retried batch Kafka already
        // has is recognised as a duplicate.
        if (this.#connected) {
          this.#connected = false;
          await this.#abortable(sink.stop()).catch(() => undefined);
        }
        await this.#pause(backoffDelay(++attempt, { initialDelayMs: this.#o.retryInitialMs, maxDelayMs: this.#o.retryMaxMs }));
      }
    }
  }
}
