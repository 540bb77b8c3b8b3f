/**
 * The consumer: at-least-once intake with durable-prefix commits (the bookkeeping is {@link CommitTracker}).
 *
 * - Records are read with `eachBatch`; each record is decoded with the consumer's decoder. Records that
 *   do not decode (unknown schema, corrupt body, empty value) go to the dead-letter topic with the error
 *   in headers, are counted, and do not stop the consumer.
 * - The handler gets the decoded batch and either finishes the work before returning (the batch is then
 *   durable) or returns `{ durable }`, a promise that settles when the work is durable (e.g. after the
 *   store flush that covers it). Offsets are committed only for a contiguous durable prefix of each
 *   partition; a rejected `durable` seeks the partition back so the records are read again.
 * - A handler error that is retriable is retried with backoff (heartbeating meanwhile); a non-retriable
 *   one makes the consumer retry the batch record by record and dead-letter the records that still fail.
 * - Back-pressure: when a partition has more than `maxInFlightRecords` records accepted but not yet
 *   durable, it is paused; it resumes when that drops below half.
 * - On a rebalance kafkajs restarts every partition from its committed offset; in-flight work of the old
 *   generation is never committed, and `onRevoke` tells the handler which partitions it lost.
 * - A crash kafkajs does not restart from (it restarts only after errors it deems retriable, and a broker
 *   outage can end in "Failed to find group coordinator", which it does not: kafkajs issues 1445, 1630)
 *   is followed by running the consumer again, with backoff, until it joins its group.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, ConsumerRunConfig, EachBatchPayload, IHeaders, Kafka } from 'kafkajs';
import { BkError, errorClass, errorMessage, isRetriable } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { counter, gauge, histogram, type Registry } from '../metrics.ts';
import { backoffDelay, retry } from '../retry.ts';
import { CommitTracker, type Ticket } from './commit-tracker.ts';
import { keepRetiredDisconnected } from './kafkajs-fixes.ts';
import type { BusProducer } from './producer.ts';
import { DLQ_HEADERS, type Batch, type BatchHandler, type ConsumedRecord, type Decoder, type HandleResult, type OutMessage, type TopicPartitions } from './types.ts';

export interface ConsumerOptions<T> {
  groupId: string;
  topics: readonly string[];
  /** Decodes record values (usually a Codec); records that fail go to `dlqTopic`. */
  codec: Decoder<T>;
  handler: BatchHandler<T>;
  /** Where undecodable and poison records go (`<prefix>.dlq`). */
  dlqTopic: string;
  /** A new group starts at the earliest retained record. Default true. */
  fromBeginning?: boolean;
  /** Partitions whose batches are handled at the same time. Default 1. */
  partitionsConsumedConcurrently?: number;
  /** Records accepted but not durable above which a partition is paused. Default 20 000. */
  maxInFlightRecords?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Default 1 MiB. */
  maxBytesPerPartition?: number;
  /** Longest wait of an empty fetch. Default 500 ms. */
  maxWaitTimeMs?: number;
  /** Retries of a retriable handler error before the batch is re-read from the last commit. Default 8. */
  handlerRetries?: number;
  /** Called after a rebalance with the partitions this member gained. */
  onAssign?: (partitions: TopicPartitions[]) => void;
  /** Called after a rebalance with the partitions this member lost; drop their state. */
  onRevoke?: (partitions: TopicPartitions[]) => void;
}

function consumerMetrics(registry: Registry) {
  return {
    records: counter(registry, { name: 'bkstream_consumer_records_total', help: 'Records consumed (decoded and dead-lettered)', labelNames: ['group', 'topic'] }),
    dlq: counter(registry, { name: 'bkstream_dlq_records_total', help: 'Records sent to the dead-letter topic', labelNames: ['group', 'topic', 'error'] }),
    lag: gauge(registry, { name: 'bkstream_consumer_lag', help: 'Records between the last consumed offset and the high watermark', labelNames: ['group', 'topic', 'partition'] }),
    inFlight: gauge(registry, { name: 'bkstream_consumer_inflight_records', help: 'Records accepted by the handler but not yet durable', labelNames: ['group'] }),
    paused: gauge(registry, { name: 'bkstream_consumer_paused_partitions', help: 'Partitions paused for back-pressure', labelNames: ['group'] }),
    commits: counter(registry, { name: 'bkstream_consumer_commits_total', help: 'Offset commits by result', labelNames: ['group', 'result'] }),
    handle: histogram(registry, { name: 'bkstream_consumer_handle_seconds', help: 'Time the handler took per batch', labelNames: ['group'] }),
  };
}

export class BusConsumer<T> implements Component {
  readonly name: string;
  readonly #consumer: Consumer;
  readonly #producer: BusProducer;
  readonly #opts: ConsumerOptions<T>;
  readonly #log: Logger;
  readonly #group: string;
  readonly #tracker: CommitTracker;
  /** kafkajs's resume callbacks of partitions paused for back-pressure (`topic:partition`). */
  readonly #resumers = new Map<string, () => void>();
  readonly #pendingCommits = new Map<string, { topic: string; partition: number; offset: string }>();
  #commitChain: Promise<void> = Promise.resolve();
  #assignment = new Map<string, Set<number>>();
  #generation = 0;
  #activeBatches = 0;
  #running = false;
  /** Set once stop() has disconnected the kafkajs consumer (until a new start). */
  #retired = false;
  #joined = false;
  #stopping: Promise<void> | undefined;
  /** Runs again after crashes kafkajs does not restart from, since the last join. */
  #reruns = 0;
  #rerunTimer: NodeJS.Timeout | undefined;
  readonly #metrics: ReturnType<typeof consumerMetrics> | undefined;

  /** `producer` sends dead letters; the consumer starts and stops it. */
  constructor(kafka: Kafka, producer: BusProducer, logger: Logger, registry: Registry | undefined, options: ConsumerOptions<T>) {
    this.name = `kafka-consumer:${options.groupId}`;
    this.#opts = options;
    this.#group = options.groupId;
    this.#log = logger.child({ component: 'consumer', group: options.groupId });
    this.#tracker = new CommitTracker(options.maxInFlightRecords ?? 20_000);
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: options.heartbeatIntervalMs ?? 3_000,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 1 << 20,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? 500,
      allowAutoTopicCreation: false,
    });
    this.#producer = producer;
    this.#metrics = registry ? consumerMetrics(registry) : undefined;

    const { GROUP_JOIN, CRASH } = this.#consumer.events;
    keepRetiredDisconnected(this.#consumer, () => this.#retired);
    this.#consumer.on(GROUP_JOIN, (event) => {
      if (this.#retired) return;
      this.#reruns = 0;
      this.#onGroupJoin(event.payload.memberAssignment);
    });
    this.#consumer.on(CRASH, (event) => {
      if (this.#retired) return;
      this.#log.error('consumer crashed', { err: event.payload.error, restart: event.payload.restart });
      if (!event.payload.restart) this.#rerunLater();
    });
  }

  /** After a crash kafkajs does not restart from (it has disconnected the consumer): run it again, with backoff. */
  #rerunLater(): void {
    if (this.#rerunTimer || this.#retired || this.#stopping || !this.#running) return;
    const attempt = ++this.#reruns;
    const delayMs = backoffDelay(attempt, { initialDelayMs: 500, maxDelayMs: 30_000 });
    this.#log.error('consumer stopped by an error kafkajs does not restart from; running it again', { delayMs, attempt });
    this.#rerunTimer = setTimeout(() => {
      this.#rerunTimer = undefined;
      if (this.#retired || this.#stopping || !this.#running) return;
      // A failure inside run() is another CRASH (handled above); one before it (connect) is caught here.
      this.#run().catch((err: unknown) => {
        this.#log.warn('running the consumer again failed', { err, attempt });
        this.#rerunLater();
      });
    }, delayMs);
  }

  async #run(): Promise<void> {
    await this.#consumer.connect();
    await this.#consumer.run(this.#runConfig());
  }

  #runConfig(): ConsumerRunConfig {
    return {
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#opts.partitionsConsumedConcurrently ?? 1,
      eachBatch: (payload) => this.#eachBatch(payload),
    };
  }

  /** Partitions currently assigned to this member. */
  assignment(): TopicPartitions[] {
    return [...this.#assignment].map(([topic, ps]) => ({ topic, partitions: [...ps].sort((a, b) => a - b) }));
  }

  /** Whether this member has joined its group at least once. */
  joined(): boolean {
    return this.#joined;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    // Started again after a stop (a start retried in the background, common/background.ts): the next stop must stop it.
    this.#stopping = undefined;
    this.#retired = false;
    await this.#producer.start();
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: [...this.#opts.topics], fromBeginning: this.#opts.fromBeginning ?? true });
    this.#running = true;
    await this.#consumer.run(this.#runConfig());
    this.#log.info('started', { topics: this.#opts.topics });
  }

  /**
   * Stops intake (pauses every partition), waits up to `drainMs` for in-flight work to become durable,
   * commits it, then leaves the group.
   */
  stop(drainMs = 10_000): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#rerunTimer);
      this.#rerunTimer = undefined;
      if (!this.#running) {
        // never started, or start failed part-way: close whatever connect() opened
        await this.#consumer.disconnect().catch(() => undefined);
        await this.#producer.stop();
        return;
      }
      try {
        this.#consumer.pause(this.#opts.topics.map((topic) => ({ topic })));
      } catch {
        // kafkajs is restarting the consumer after a crash (a broker outage): there is no group to pause.
      }
      const deadline = Date.now() + drainMs;
      while ((this.#activeBatches > 0 || this.#tracker.inFlight() > 0) && Date.now() < deadline) await sleep(20);
      await this.#commitChain;
      await this.#flushCommits();
      this.#running = false;
      this.#retired = true;
      await this.#consumer.disconnect();
      await this.#producer.stop();
      this.#log.info('stopped');
    })();
    return this.#stopping;
  }

  /** Partitions paused for back-pressure right now. */
  pausedPartitions(): TopicPartitions[] {
    return this.#tracker.paused();
  }

  #onGroupJoin(memberAssignment: Record<string, number[]>): void {
    const next = new Map<string, Set<number>>(Object.entries(memberAssignment).map(([t, ps]) => [t, new Set(ps)]));
    const diff = (a: Map<string, Set<number>>, b: Map<string, Set<number>>): TopicPartitions[] =>
      [...a].map(([topic, ps]) => ({ topic, partitions: [...ps].filter((p) => !b.get(topic)?.has(p)) })).filter((x) => x.partitions.length > 0);
    const revoked = diff(this.#assignment, next);
    const assigned = diff(next, this.#assignment);
    this.#assignment = next;
    this.#joined = true;
    // kafkajs restarts every partition from its committed offset after a join: in-flight work is void.
    this.#generation++;
    this.#tracker.reset();
    this.#resumers.clear();
    this.#pendingCommits.clear();
    this.#updateGauges();
    this.#log.info('partitions assigned', { assignment: this.assignment(), revoked, assigned });
    if (revoked.length > 0) this.#opts.onRevoke?.(revoked);
    if (assigned.length > 0) this.#opts.onAssign?.(assigned);
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const isRunning = (): boolean => payload.isRunning();
    const isStale = (): boolean => payload.isStale();
    if (!isRunning() || isStale() || batch.messages.length === 0) return;
    this.#activeBatches++;
    try {
      const { topic, partition } = batch;
      const generation = this.#generation;
      const epoch = this.#tracker.epoch(topic, partition);
      const stale = (): boolean => isStale() || !isRunning() || generation !== this.#generation || epoch !== this.#tracker.epoch(topic, partition);

      const records: ConsumedRecord<T>[] = [];
      const dead: { message: (typeof batch.messages)[number]; err: unknown }[] = [];
      for (const m of batch.messages) {
        try {
          if (!m.value || m.value.length === 0) throw new BkError('record_empty', 'record has no value', false);
          records.push({
            topic,
            partition,
            offset: m.offset,
            key: m.key,
            value: this.#opts.codec.decode(m.value),
            timestamp: Number(m.timestamp),
            headers: m.headers ?? {},
            raw: m.value,
          });
        } catch (err) {
          dead.push({ message: m, err });
        }
      }
      this.#metrics?.records.inc({ group: this.#group, topic }, batch.messages.length);
      if (dead.length > 0) await this.#deadLetter(topic, partition, dead);

      const lastOffset = batch.lastOffset();
      const view: Batch<T> = { topic, partition, records, lastOffset, heartbeat: () => payload.heartbeat(), isStale: stale };
      let durable: Promise<void> = Promise.resolve();
      if (records.length > 0) {
        const result = await this.#handle(view);
        if (result === 'stale') return;
        durable = result?.durable ?? durable;
      }
      if (stale()) return;
      payload.resolveOffset(lastOffset);
      const lag = Number(batch.offsetLag());
      if (this.#metrics && Number.isFinite(lag)) this.#metrics.lag.set({ group: this.#group, topic, partition }, lag);

      const accepted = this.#tracker.accept(topic, partition, epoch, batch.firstOffset() ?? lastOffset, lastOffset, records.length);
      if (!accepted) return;
      if (accepted.pause) {
        this.#resumers.set(`${topic}:${partition}`, payload.pause());
        this.#log.debug('partition paused for back-pressure', { topic, partition, inFlight: this.#tracker.inFlight() });
      }
      this.#updateGauges();
      this.#whenDurable(durable, accepted.ticket);
    } finally {
      this.#activeBatches--;
    }
  }

  /** Runs the handler with heartbeats; retries retriable errors; isolates poison records. */
  async #handle(batch: Batch<T>): Promise<HandleResult | 'stale'> {
    const keepAlive = setInterval(() => {
      batch.heartbeat().catch((err: unknown) => this.#log.debug('heartbeat failed', { err }));
    }, Math.max(500, Math.floor((this.#opts.heartbeatIntervalMs ?? 3_000) / 2)));
    const started = performance.now();
    try {
      return await retry(() => this.#opts.handler(batch), {
        retries: this.#opts.handlerRetries ?? 8,
        retryOn: (err) => isRetriable(err) && !batch.isStale(),
        onRetry: (err, attempt, delayMs) => this.#log.warn('handler failed, retrying', { topic: batch.topic, partition: batch.partition, attempt, delayMs, err }),
      });
    } catch (err) {
      if (batch.isStale()) return 'stale';
      if (isRetriable(err)) throw err; // retries spent: let kafkajs restart from the last commit
      this.#log.warn('handler rejected a batch, retrying record by record', { topic: batch.topic, partition: batch.partition, err });
      return await this.#handleOneByOne(batch);
    } finally {
      clearInterval(keepAlive);
      this.#metrics?.handle.observe({ group: this.#group }, (performance.now() - started) / 1000);
    }
  }

  async #handleOneByOne(batch: Batch<T>): Promise<HandleResult> {
    const durables: Promise<void>[] = [];
    const dead: { record: ConsumedRecord<T>; err: unknown }[] = [];
    for (const record of batch.records) {
      try {
        const r = await this.#opts.handler({ ...batch, records: [record] });
        if (r) durables.push(r.durable);
      } catch (err) {
        dead.push({ record, err });
      }
    }
    if (dead.length > 0) {
      const raw = dead.map(({ record, err }) => ({
        message: { key: record.key, value: record.raw, offset: record.offset, headers: record.headers },
        err,
      }));
      await this.#deadLetter(batch.topic, batch.partition, raw);
    }
    return { durable: Promise.all(durables).then(() => undefined) };
  }

  async #deadLetter(
    topic: string,
    partition: number,
    items: { message: { key: Buffer | null; value: Buffer | null; offset: string; headers?: IHeaders }; err: unknown }[],
  ): Promise<void> {
    const now = new Date().toISOString();
    const messages: OutMessage[] = items.map(({ message, err }) => {
      const headers: Record<string, string | Buffer> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) {
        if (typeof v === 'string' || Buffer.isBuffer(v)) headers[k] = v;
      }
      Object.assign(headers, {
        [DLQ_HEADERS.topic]: topic,
        [DLQ_HEADERS.partition]: String(partition),
        [DLQ_HEADERS.offset]: message.offset,
        [DLQ_HEADERS.group]: this.#group,
        [DLQ_HEADERS.errorClass]: errorClass(err),
        [DLQ_HEADERS.errorMessage]: errorMessage(err).slice(0, 1000),
        [DLQ_HEADERS.failedAt]: now,
      });
      return { key: message.key, value: message.value ?? Buffer.alloc(0), headers };
    });
    await this.#producer.send(this.#opts.dlqTopic, messages);
    for (const { message, err } of items) {
      this.#metrics?.dlq.inc({ group: this.#group, topic, error: errorClass(err) });
      this.#log.warn('record dead-lettered', { topic, partition, offset: message.offset, error: errorClass(err), message: errorMessage(err) });
    }
  }

  /**
   * Waits for a batch's work to become durable. A method of its own so that the callbacks' closure does
   * not share {@link #eachBatch}'s scope: that scope holds the kafkajs payload, whose messages are slices
   * of the whole fetch response (up to 10 MB), and a batch can wait seconds (its window entries, then the
   * next flush). Closures there kept ~100 MB of responses alive in the discovery benchmark.
   */
  #whenDurable(durable: Promise<void>, ticket: Ticket): void {
    durable.then(
      () => this.#onDurable(ticket),
      (err: unknown) => this.#onDurableFailed(ticket, err),
    );
  }

  #onDurable(ticket: Ticket): void {
    const r = this.#tracker.durable(ticket);
    if (!r) return;
    const { topic, partition } = ticket;
    if (r.resume) this.#resume(topic, partition);
    this.#updateGauges();
    if (r.commit !== undefined) {
      this.#pendingCommits.set(`${topic}:${partition}`, { topic, partition, offset: r.commit });
      this.#commitChain = this.#commitChain.then(() => this.#flushCommits());
    }
  }

  #onDurableFailed(ticket: Ticket, err: unknown): void {
    const r = this.#tracker.failed(ticket);
    if (!r) return;
    const { topic, partition } = ticket;
    // Everything from the first non-durable slot on is read again; later slots are void.
    this.#log.error('work did not become durable; re-reading the partition', { topic, partition, offset: r.seekTo, err });
    if (r.resume) this.#resume(topic, partition);
    this.#updateGauges();
    if (this.#running) this.#consumer.seek({ topic, partition, offset: r.seekTo });
  }

  #resume(topic: string, partition: number): void {
    const key = `${topic}:${partition}`;
    this.#resumers.get(key)?.();
    this.#resumers.delete(key);
    this.#log.debug('partition resumed', { topic, partition, inFlight: this.#tracker.inFlight() });
  }

  async #flushCommits(): Promise<void> {
    if (this.#pendingCommits.size === 0 || !this.#running) return;
    const offsets = [...this.#pendingCommits.values()];
    this.#pendingCommits.clear();
    const generation = this.#generation;
    try {
      await this.#consumer.commitOffsets(offsets);
      this.#metrics?.commits.inc({ group: this.#group, result: 'ok' });
    } catch (err) {
      this.#metrics?.commits.inc({ group: this.#group, result: 'failed' });
      // A rebalance makes the commit fail; the new owner re-reads from the last commit.
      this.#log.warn('offset commit failed', { offsets, err, stale: generation !== this.#generation });
    }
  }

  #updateGauges(): void {
    if (!this.#metrics) return;
    this.#metrics.inFlight.set({ group: this.#group }, this.#tracker.inFlight());
    this.#metrics.paused.set({ group: this.#group }, this.#tracker.pausedCount());
  }
}
