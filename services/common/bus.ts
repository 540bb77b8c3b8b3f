/**
 * The Kafka bus over kafkajs: a producer, a batching queue in front of it, a consumer with at-least-once
 * semantics, and admin helpers. Services use this module, never kafkajs.
 *
 * Consumer semantics (design.md §5):
 * - Records are read with `eachBatch`; each record is decoded with the consumer's {@link Codec}. Records
 *   that do not decode (unknown schema, corrupt body, empty value) go to the dead-letter topic with the
 *   error in headers, are counted, and do not stop the consumer.
 * - The handler gets the decoded batch and either finishes the work before returning (the batch is then
 *   durable) or returns `{ durable }`, a promise that settles when the work is durable (e.g. after the
 *   store flush that covers it). Offsets are committed only for a contiguous durable prefix of each
 *   partition; a rejected `durable` seeks the partition back so the records are read again.
 * - A handler error that is retriable is retried with backoff (heartbeating meanwhile); a non-retriable
 *   one makes the bus retry the batch record by record and dead-letter the records that still fail.
 * - Back-pressure: when a partition has more than `maxInFlightRecords` records accepted but not yet
 *   durable, it is paused; it resumes when that drops below half.
 * - On a rebalance kafkajs restarts every partition from its committed offset; in-flight work of the old
 *   generation is never committed, and `onRevoke` tells the handler which partitions it lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CompressionTypes,
  Kafka,
  logLevel as KafkaLogLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type Producer,
} from 'kafkajs';
import { BkError, errorClass, errorMessage, isRetriable, MissingTopicsError, UnavailableError } from './errors.ts';
import type { Component } from './lifecycle.ts';
import { kafkaLogCreator, type Logger } from './log.ts';
import { counter, gauge, histogram, type Registry } from './metrics.ts';
import { partitionOf } from './murmur2.ts';
import { backoffDelay, retry } from './retry.ts';
import type { TopicPlan } from './topics.ts';

// kafkajs 2.2.4 arms a timer with a negative delay when its request queue is empty (Node clamps it to
// 1 ms, harmless) and Node >= 24 warns about it on every request. Drop only that warning.
const emitWarning = process.emitWarning.bind(process) as (warning: string | Error, ...rest: unknown[]) => void;
function filteredEmitWarning(warning: string | Error, ...rest: unknown[]): void {
  const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
  if (type !== 'TimeoutNegativeWarning') emitWarning(warning, ...rest);
}
process.emitWarning = filteredEmitWarning;

/** The partition a keyed record lands on, exactly as the Java client's (and kafkajs's) default partitioner picks it. */
export function partitionFor(key: string | Buffer, numPartitions: number): number {
  return partitionOf(typeof key === 'string' ? Buffer.from(key) : key, numPartitions);
}

export interface BusOptions {
  brokers: readonly string[];
  clientId: string;
  logger: Logger;
  registry?: Registry;
  /** Default 3 000 ms. */
  connectionTimeoutMs?: number;
  /** Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** kafkajs's own retries for connections and requests. Default 8. */
  retries?: number;
}

export interface OutMessage {
  key?: string | Buffer | null;
  value: Buffer;
  headers?: Record<string, string | Buffer>;
  /** Explicit partition; otherwise the Java-compatible hash of `key`. */
  partition?: number;
  /** Record timestamp, ms since the epoch (default: now). */
  timestamp?: number;
}

export class Bus {
  readonly #kafka: Kafka;
  readonly logger: Logger;
  readonly registry: Registry | undefined;
  readonly brokers: readonly string[];

  constructor(options: BusOptions) {
    this.logger = options.logger;
    this.registry = options.registry;
    this.brokers = options.brokers;
    this.#kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      retry: { retries: options.retries ?? 8, initialRetryTime: 100, maxRetryTime: 5_000 },
      logLevel: KafkaLogLevel.INFO,
      logCreator: kafkaLogCreator(options.logger),
    });
  }

  producer(options: ProducerOptions = {}): BusProducer {
    return new BusProducer(this.#kafka, this, options);
  }

  consumer<T>(options: ConsumerOptions<T>): BusConsumer<T> {
    return new BusConsumer<T>(this.#kafka, this, options);
  }

  admin(): BusAdmin {
    return new BusAdmin(this.#kafka.admin());
  }

  /**
   * Reads offsets [start, end) of the given partitions of `topic` once, raw, calling `onBatch` for each
   * fetched batch (in offset order per partition), and resolves when every range is read. Used by
   * replay: it reads through a throwaway consumer group, and commits nothing.
   *
   * A reader that waits for records must not wait forever. Records of a range can be deleted by retention
   * before they are read (the log start offset moves past them: the reader was seen waiting for them
   * until killed); each round first moves every range past what is gone, logging it. kafkajs's own
   * restart is off, and a round that crashes or fetches nothing for {@link READ_STALL_MS} ends: the next
   * round (a new group) reads each unfinished partition from the offset after the last record
   * delivered.
   */
  async readRange(topic: string, ranges: readonly OffsetRange[], onBatch: (records: RawRecord[]) => Promise<void>): Promise<void> {
    const pending = new Map<number, { next: bigint; end: bigint }>();
    for (const r of ranges) if (BigInt(r.start) < BigInt(r.end)) pending.set(r.partition, { next: BigInt(r.start), end: BigInt(r.end) });
    for (let round = 1; pending.size > 0; round++) {
      try {
        await this.#readRound(topic, pending, onBatch);
      } catch (err) {
        if (!(err instanceof ReaderCrash) || round >= READ_ROUNDS) throw err instanceof ReaderCrash ? err.cause : err;
        this.logger.warn('range reader crashed; reading the rest again with a new group', { topic, round, partitions: [...pending.keys()], err: err.cause });
      }
    }
  }

  /** One throwaway group reading what is left of `pending`; entries are advanced and removed as read. */
  async #readRound(topic: string, pending: Map<number, { next: bigint; end: bigint }>, onBatch: (records: RawRecord[]) => Promise<void>): Promise<void> {
    const groupId = `bkstream-reader-${process.pid}-${Date.now().toString(36)}`;
    const consumer = this.#kafka.consumer({ groupId, maxWaitTimeInMs: 250, allowAutoTopicCreation: false, retry: { restartOnFailure: async () => false } });
    const done = Promise.withResolvers<void>();
    done.promise.catch(() => undefined); // a crash may come before the promise is awaited
    consumer.on(consumer.events.CRASH, (e) => done.reject(new ReaderCrash(e.payload.error)));
    // The group is new, so it has no committed offsets and would start every partition at its beginning;
    // once joined, each partition of a range is sought to where it continues and the others are paused.
    // Records before a range's next offset are skipped anyway, so a seek that does not take costs time,
    // not correctness.
    let progressAt = Date.now();
    let watchdog: NodeJS.Timeout | undefined;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      progressAt = Date.now();
      try {
        const assigned = e.payload.memberAssignment[topic] ?? [];
        const idle = assigned.filter((partition) => !pending.has(partition));
        for (const partition of assigned) {
          const range = pending.get(partition);
          if (range) consumer.seek({ topic, partition, offset: String(range.next) });
        }
        if (idle.length > 0) consumer.pause([{ topic, partitions: idle }]);
      } catch (err) {
        done.reject(new ReaderCrash(err as Error));
      }
    });
    const admin = this.#kafka.admin();
    await admin.connect();
    try {
      for (const { partition, low } of await admin.fetchTopicOffsets(topic)) {
        const range = pending.get(partition);
        if (!range || BigInt(low) <= range.next) continue;
        this.logger.warn('records deleted by retention before they were read', { topic, partition, from: String(range.next), to: String(BigInt(low) < range.end ? BigInt(low) : range.end) });
        range.next = BigInt(low);
        if (range.next >= range.end) pending.delete(partition);
      }
      if (pending.size === 0) return;
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        // A round that makes no progress for a while ends like a crash, so a new group takes over.
        progressAt = Date.now();
        watchdog = setInterval(() => {
          if (Date.now() - progressAt > READ_STALL_MS) done.reject(new ReaderCrash(new Error(`no records for ${READ_STALL_MS} ms`)));
        }, 1_000);
        await consumer.run({
          autoCommit: false,
          eachBatch: async (payload) => {
            const { batch } = payload;
            const range = pending.get(batch.partition);
            if (!range) return;
            const records: RawRecord[] = [];
            for (const m of batch.messages) {
              const offset = BigInt(m.offset);
              if (offset >= range.end) break;
              if (offset < range.next) continue;
              records.push({ partition: batch.partition, offset: m.offset, key: m.key, value: m.value ?? Buffer.alloc(0), timestamp: Number(m.timestamp), headers: m.headers ?? {} });
            }
            try {
              if (records.length > 0) await onBatch(records);
            } catch (err) {
              done.reject(err);
              return;
            }
            progressAt = Date.now();
            const after = BigInt(batch.lastOffset()) + 1n;
            if (after > range.next) range.next = after;
            await payload.heartbeat();
            if (range.next >= range.end) {
              pending.delete(batch.partition);
              consumer.pause([{ topic, partitions: [batch.partition] }]);
              if (pending.size === 0) done.resolve();
            }
          },
        });
        await done.promise;
      } finally {
        clearInterval(watchdog);
        await consumer.disconnect();
      }
    } finally {
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect();
    }
  }
}

/** Rounds {@link Bus.readRange} tries before a consumer crash fails the read. */
const READ_ROUNDS = 5;
/** A range-reader round that fetches nothing for this long (group join included) is given up. */
const READ_STALL_MS = 15_000;

/** A range reader's consumer crashed (the round ends; {@link Bus.readRange} reads the rest again). */
class ReaderCrash extends Error {
  override readonly cause: Error;

  constructor(cause: Error) {
    super(`range reader crashed: ${cause.message}`);
    this.cause = cause;
  }
}

export interface OffsetRange {
  partition: number;
  /** First offset to read. */
  start: string;
  /** First offset not to read. */
  end: string;
}

export interface RawRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer;
  /** ms */
  timestamp: number;
  headers: IHeaders;
}

// ---------------------------------------------------------------------------------------------------------
// Producer

export interface ProducerOptions {
  /** gzip record batches. Default false. */
  compress?: boolean;
  /** Requests in flight per broker connection. Default 5 (1 when idempotent). */
  maxInFlightRequests?: number;
  /**
   * Let the broker drop duplicates of retried requests. Without it a request that partly fails (e.g. a
   * partition whose leader moved) is retried whole and the partitions that had succeeded get their
   * records twice — at-least-once, which idempotent consumers absorb. Costs one request in flight, and
   * kafkajs then retries without limit (a send to a dead broker never fails): not for paths that must
   * answer "unavailable" quickly.
   */
  idempotent?: boolean;
}

export class BusProducer implements Component {
  readonly name = 'kafka-producer';
  readonly #producer: Producer;
  readonly #log: Logger;
  readonly #compression: CompressionTypes;
  #connected = false;

  constructor(kafka: Kafka, bus: Bus, options: ProducerOptions) {
    this.#log = bus.logger.child({ component: 'producer' });
    this.#compression = options.compress ? CompressionTypes.GZIP : CompressionTypes.None;
    this.#producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      idempotent: options.idempotent ?? false,
      maxInFlightRequests: options.idempotent ? 1 : (options.maxInFlightRequests ?? 5),
    });
    this.#producer.on(this.#producer.events.DISCONNECT, () => {
      this.#connected = false;
    });
  }

  async start(): Promise<void> {
    if (this.#connected) return;
    // Marked before connecting: a failed connect can leave sockets behind that stop() must close.
    this.#connected = true;
    await this.#producer.connect();
    this.#log.debug('connected');
  }

  async stop(): Promise<void> {
    if (!this.#connected) return;
    this.#connected = false;
    await this.#producer.disconnect();
  }

  /** Sends messages to one topic and waits for all in-sync replicas to acknowledge. */
  async send(topic: string, messages: readonly OutMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.#producer.send({ topic, acks: -1, compression: this.#compression, messages: messages.map(toKafkaMessage) });
  }

  /** Sends to several topics in one request per broker. */
  async sendBatch(batches: readonly { topic: string; messages: readonly OutMessage[] }[]): Promise<void> {
    const topicMessages = batches.filter((b) => b.messages.length > 0).map((b) => ({ topic: b.topic, messages: b.messages.map(toKafkaMessage) }));
    if (topicMessages.length === 0) return;
    await this.#producer.sendBatch({ acks: -1, compression: this.#compression, topicMessages });
  }
}

function toKafkaMessage(m: OutMessage): { key: string | Buffer | null; value: Buffer; headers?: IHeaders; partition?: number; timestamp?: string } {
  return {
    key: m.key ?? null,
    value: m.value,
    ...(m.headers ? { headers: m.headers } : {}),
    ...(m.partition === undefined ? {} : { partition: m.partition }),
    ...(m.timestamp === undefined ? {} : { timestamp: String(m.timestamp) }),
  };
}

export interface BatchingOptions {
  /** Flush a topic's queue when it holds this many messages. Default 500. */
  maxBatchMessages?: number;
  /** ... or this many bytes. Default 1 MiB. */
  maxBatchBytes?: number;
  /** ... or when the oldest queued message waited this long. Default 20 ms. */
  lingerMs?: number;
  /** Bytes queued or in flight above which {@link BatchingProducer.enqueue} refuses (back-pressure). Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Concurrent flushes. Default 4. */
  maxInFlightFlushes?: number;
}

interface Pending {
  message: OutMessage;
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * A bounded queue in front of a producer: `enqueue` returns a promise that resolves when the message is
 * acknowledged; messages are sent in batches (size, bytes or linger). When more than `maxQueuedBytes`
 * are waiting, `enqueue` throws {@link UnavailableError} at once instead of buffering without bound.
 * `stop()` flushes everything accepted before it resolves.
 */
export class BatchingProducer implements Component {
  readonly name = 'kafka-batching-producer';
  readonly #producer: BusProducer;
  readonly #queues = new Map<string, Pending[]>();
  readonly #queueBytes = new Map<string, number>();
  readonly #opts: Required<BatchingOptions>;
  readonly #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #bytes = 0;
  #accepting = true;
  readonly #depth: ReturnType<typeof gauge> | undefined;

  constructor(producer: BusProducer, options: BatchingOptions = {}, registry?: Registry) {
    this.#producer = producer;
    this.#opts = {
      maxBatchMessages: options.maxBatchMessages ?? 500,
      maxBatchBytes: options.maxBatchBytes ?? 1 << 20,
      lingerMs: options.lingerMs ?? 20,
      maxQueuedBytes: options.maxQueuedBytes ?? 64 << 20,
      maxInFlightFlushes: options.maxInFlightFlushes ?? 4,
    };
    if (registry) {
      this.#depth = gauge(registry, { name: 'bkstream_producer_queue_bytes', help: 'Bytes queued or in flight in the batching producer' });
    }
  }

  async start(): Promise<void> {
    this.#accepting = true;
    await this.#producer.start();
  }

  /** Bytes accepted and not yet acknowledged. */
  queuedBytes(): number {
    return this.#bytes;
  }

  /** Whether a message of `bytes` would be accepted now. */
  hasRoom(bytes: number): boolean {
    return this.#accepting && this.#bytes + bytes <= this.#opts.maxQueuedBytes;
  }

  /** Queues one message; resolves when Kafka acknowledged it. Throws {@link UnavailableError} when full or stopping. */
  enqueue(topic: string, message: OutMessage): Promise<void> {
    const bytes = message.value.length + (message.key?.length ?? 0);
    if (!this.#accepting) return Promise.reject(new UnavailableError('producer is stopping'));
    if (this.#bytes + bytes > this.#opts.maxQueuedBytes) {
      return Promise.reject(new UnavailableError(`producer queue is full (${this.#bytes} bytes waiting)`));
    }
    return new Promise<void>((resolve, reject) => {
      let queue = this.#queues.get(topic);
      if (!queue) this.#queues.set(topic, (queue = []));
      queue.push({ message, bytes, resolve, reject });
      this.#bytes += bytes;
      this.#depth?.set(this.#bytes);
      const topicBytes = (this.#queueBytes.get(topic) ?? 0) + bytes;
      this.#queueBytes.set(topic, topicBytes);
      if (queue.length >= this.#opts.maxBatchMessages || topicBytes >= this.#opts.maxBatchBytes) this.#flushTopic(topic);
      else this.#timer ??= setTimeout(() => this.#flushAll(), this.#opts.lingerMs);
    });
  }

  /** Sends everything queued now and waits for it. */
  async flush(): Promise<void> {
    this.#flushAll();
    while (this.#inFlight.size > 0 || this.#queues.size > 0) {
      this.#flushAll();
      await Promise.allSettled([...this.#inFlight]);
    }
  }

  async stop(): Promise<void> {
    this.#accepting = false;
    await this.flush();
    await this.#producer.stop();
  }

  #flushAll(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const topic of [...this.#queues.keys()]) this.#flushTopic(topic);
  }

  #flushTopic(topic: string): void {
    if (this.#inFlight.size >= this.#opts.maxInFlightFlushes) {
      // Too many sends in flight: try again when one finishes (the queue stays bounded by maxQueuedBytes).
      this.#timer ??= setTimeout(() => this.#flushAll(), this.#opts.lingerMs);
      return;
    }
    const queue = this.#queues.get(topic);
    if (!queue || queue.length === 0) return;
    this.#queues.delete(topic);
    this.#queueBytes.delete(topic);
    const done = this.#producer
      .send(topic, queue.map((p) => p.message))
      .then(
        () => {
          for (const p of queue) p.resolve();
        },
        (err: unknown) => {
          for (const p of queue) p.reject(err);
        },
      )
      .finally(() => {
        this.#bytes -= queue.reduce((n, p) => n + p.bytes, 0);
        this.#depth?.set(this.#bytes);
        this.#inFlight.delete(done);
        if (this.#queues.size > 0) this.#timer ??= setTimeout(() => this.#flushAll(), 0);
      });
    this.#inFlight.add(done);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Consumer

export interface ConsumedRecord<T> {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: T;
  /** Kafka record timestamp, ms. */
  timestamp: number;
  headers: IHeaders;
  /** The record's original bytes (what a dead letter or a replay carries). */
  raw: Buffer;
}

export interface Batch<T> {
  topic: string;
  partition: number;
  /** Decoded records (dead-lettered ones removed), in offset order. */
  records: ConsumedRecord<T>[];
  /** Offset of the last message of the fetched batch (including dead-lettered ones). */
  lastOffset: string;
  /** Keeps the group membership alive during long work; cheap to call often. */
  heartbeat(): Promise<void>;
  /** True when the batch belongs to an old generation (rebalance) or a seek; its work may be dropped. */
  isStale(): boolean;
}

/** `void`: the work is durable when the promise resolves. `{ durable }`: it will be when `durable` resolves. */
export type HandleResult = void | { durable: Promise<void> };
export type BatchHandler<T> = (batch: Batch<T>) => Promise<HandleResult>;

export interface TopicPartitions {
  topic: string;
  partitions: number[];
}

/** Turns a record's bytes into a value; throws for records that belong in the dead-letter topic. */
export interface Decoder<T> {
  decode(buf: Buffer): T;
}

/** Passes the bytes through (dead-letter readers, replay). */
export const rawDecoder: Decoder<Buffer> = { decode: (buf) => buf };

export interface ConsumerOptions<T> {
  groupId: string;
  topics: readonly string[];
  /** Decodes record values (usually a {@link Codec}); records that fail go to `dlqTopic`. */
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

interface Slot {
  /** Offset to commit once this slot and all before it are durable (last offset + 1). */
  commitOffset: string;
  firstOffset: string;
  records: number;
  done: boolean;
}

interface PartitionState {
  slots: Slot[];
  inFlight: number;
  resume?: () => void;
  /** Incremented on seek and rebalance: slots of an older epoch are ignored. */
  epoch: number;
}

/** Header names of dead-lettered records. */
export const DLQ_HEADERS = {
  topic: 'bk-source-topic',
  partition: 'bk-source-partition',
  offset: 'bk-source-offset',
  group: 'bk-consumer-group',
  errorClass: 'bk-error-class',
  errorMessage: 'bk-error-message',
  failedAt: 'bk-failed-at',
} as const;

export class BusConsumer<T> implements Component {
  readonly name: string;
  readonly #consumer: Consumer;
  readonly #producer: BusProducer;
  readonly #opts: ConsumerOptions<T>;
  readonly #log: Logger;
  readonly #partitions = new Map<string, PartitionState>();
  readonly #pendingCommits = new Map<string, { topic: string; partition: number; offset: string }>();
  #commitChain: Promise<void> = Promise.resolve();
  #assignment = new Map<string, Set<number>>();
  #generation = 0;
  #activeBatches = 0;
  #running = false;
  #joined = false;
  #stopping: Promise<void> | undefined;
  readonly #metrics;

  constructor(kafka: Kafka, bus: Bus, options: ConsumerOptions<T>) {
    this.name = `kafka-consumer:${options.groupId}`;
    this.#opts = options;
    this.#log = bus.logger.child({ component: 'consumer', group: options.groupId });
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: options.heartbeatIntervalMs ?? 3_000,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 1 << 20,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? 500,
      allowAutoTopicCreation: false,
    });
    this.#producer = bus.producer();
    const registry = bus.registry;
    const group = options.groupId;
    this.#metrics = registry
      ? {
          records: counter(registry, { name: 'bkstream_consumer_records_total', help: 'Records consumed (decoded and dead-lettered)', labelNames: ['group', 'topic'] }),
          dlq: counter(registry, { name: 'bkstream_dlq_records_total', help: 'Records sent to the dead-letter topic', labelNames: ['group', 'topic', 'error'] }),
          lag: gauge(registry, { name: 'bkstream_consumer_lag', help: 'Records between the last consumed offset and the high watermark', labelNames: ['group', 'topic', 'partition'] }),
          inFlight: gauge(registry, { name: 'bkstream_consumer_inflight_records', help: 'Records accepted by the handler but not yet durable', labelNames: ['group'] }),
          paused: gauge(registry, { name: 'bkstream_consumer_paused_partitions', help: 'Partitions paused for back-pressure', labelNames: ['group'] }),
          commits: counter(registry, { name: 'bkstream_consumer_commits_total', help: 'Offset commits by result', labelNames: ['group', 'result'] }),
          handle: histogram(registry, { name: 'bkstream_consumer_handle_seconds', help: 'Time the handler took per batch', labelNames: ['group'] }),
          group,
        }
      : undefined;

    const { GROUP_JOIN, CRASH } = this.#consumer.events;
    this.#consumer.on(GROUP_JOIN, (event) => this.#onGroupJoin(event.payload.memberAssignment));
    this.#consumer.on(CRASH, (event) => {
      this.#log.error('consumer crashed', { err: event.payload.error, restart: event.payload.restart });
    });
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
    await this.#producer.start();
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: [...this.#opts.topics], fromBeginning: this.#opts.fromBeginning ?? true });
    this.#running = true;
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#opts.partitionsConsumedConcurrently ?? 1,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    this.#log.info('started', { topics: this.#opts.topics });
  }

  /**
   * Stops intake (pauses every partition), waits up to `drainMs` for in-flight work to become durable,
   * commits it, then leaves the group.
   */
  stop(drainMs = 10_000): Promise<void> {
    this.#stopping ??= (async () => {
      if (!this.#running) {
        // never started, or start failed part-way: close whatever connect() opened
        await this.#consumer.disconnect().catch(() => undefined);
        await this.#producer.stop();
        return;
      }
      this.#consumer.pause(this.#opts.topics.map((topic) => ({ topic })));
      const deadline = Date.now() + drainMs;
      while ((this.#activeBatches > 0 || this.#inFlightTotal() > 0) && Date.now() < deadline) await sleep(20);
      await this.#commitChain;
      await this.#flushCommits();
      this.#running = false;
      await this.#consumer.disconnect();
      await this.#producer.stop();
      this.#log.info('stopped');
    })();
    return this.#stopping;
  }

  #inFlightTotal(): number {
    let n = 0;
    for (const p of this.#partitions.values()) n += p.inFlight;
    return n;
  }

  #state(topic: string, partition: number): PartitionState {
    const key = `${topic}:${partition}`;
    let s = this.#partitions.get(key);
    if (!s) this.#partitions.set(key, (s = { slots: [], inFlight: 0, epoch: 0 }));
    return s;
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
    for (const s of this.#partitions.values()) {
      s.slots = [];
      s.inFlight = 0;
      s.resume = undefined;
      s.epoch++;
    }
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
      const state = this.#state(topic, partition);
      const epoch = state.epoch;
      const stale = (): boolean => isStale() || !isRunning() || generation !== this.#generation || epoch !== state.epoch;

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
      this.#metrics?.records.inc({ group: this.#metrics.group, topic }, batch.messages.length);
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
      if (this.#metrics && Number.isFinite(lag)) this.#metrics.lag.set({ group: this.#metrics.group, topic, partition }, lag);

      const slot: Slot = { commitOffset: (BigInt(lastOffset) + 1n).toString(), firstOffset: batch.firstOffset() ?? lastOffset, records: records.length, done: false };
      state.slots.push(slot);
      state.inFlight += slot.records;
      if (state.inFlight > (this.#opts.maxInFlightRecords ?? 20_000) && !state.resume) {
        state.resume = payload.pause();
        this.#log.debug('partition paused for back-pressure', { topic, partition, inFlight: state.inFlight });
      }
      this.#updateGauges();
      this.#whenDurable(durable, topic, partition, state, epoch, slot);
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
      this.#metrics?.handle.observe({ group: this.#metrics.group }, (performance.now() - started) / 1000);
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
        [DLQ_HEADERS.group]: this.#opts.groupId,
        [DLQ_HEADERS.errorClass]: errorClass(err),
        [DLQ_HEADERS.errorMessage]: errorMessage(err).slice(0, 1000),
        [DLQ_HEADERS.failedAt]: now,
      });
      return { key: message.key, value: message.value ?? Buffer.alloc(0), headers };
    });
    await this.#producer.send(this.#opts.dlqTopic, messages);
    for (const { message, err } of items) {
      this.#metrics?.dlq.inc({ group: this.#opts.groupId, topic, error: errorClass(err) });
      this.#log.warn('record dead-lettered', { topic, partition, offset: message.offset, error: errorClass(err), message: errorMessage(err) });
    }
  }

  /**
   * Waits for a batch's work to become durable. A method of its own so that the callbacks' closure does
   * not share {@link #eachBatch}'s scope: that scope holds the kafkajs payload, whose messages are slices
   * of the whole fetch response (up to 10 MB), and a batch can wait seconds (its window entries, then the
   * next flush). Closures there kept ~100 MB of responses alive in the discovery benchmark.
   */
  #whenDurable(durable: Promise<void>, topic: string, partition: number, state: PartitionState, epoch: number, slot: Slot): void {
    durable.then(
      () => this.#onDurable(topic, partition, state, epoch, slot),
      (err: unknown) => this.#onDurableFailed(topic, partition, state, epoch, slot, err),
    );
  }

  #onDurable(topic: string, partition: number, state: PartitionState, epoch: number, slot: Slot): void {
    if (epoch !== state.epoch) return;
    slot.done = true;
    let commit: string | undefined;
    while (state.slots[0]?.done) {
      const head = state.slots.shift() as Slot;
      state.inFlight -= head.records;
      commit = head.commitOffset;
    }
    if (state.resume && state.inFlight <= (this.#opts.maxInFlightRecords ?? 20_000) / 2) {
      state.resume();
      state.resume = undefined;
      this.#log.debug('partition resumed', { topic, partition, inFlight: state.inFlight });
    }
    this.#updateGauges();
    if (commit !== undefined) {
      this.#pendingCommits.set(`${topic}:${partition}`, { topic, partition, offset: commit });
      this.#commitChain = this.#commitChain.then(() => this.#flushCommits());
    }
  }

  #onDurableFailed(topic: string, partition: number, state: PartitionState, epoch: number, slot: Slot, err: unknown): void {
    if (epoch !== state.epoch) return;
    // Everything from the first non-durable slot on is read again; later slots are void.
    const first = state.slots.find((s) => !s.done) ?? slot;
    this.#log.error('work did not become durable; re-reading the partition', { topic, partition, offset: first.firstOffset, err });
    state.epoch++;
    state.slots = [];
    state.inFlight = 0;
    state.resume?.();
    state.resume = undefined;
    this.#updateGauges();
    if (this.#running) this.#consumer.seek({ topic, partition, offset: first.firstOffset });
  }

  async #flushCommits(): Promise<void> {
    if (this.#pendingCommits.size === 0 || !this.#running) return;
    const offsets = [...this.#pendingCommits.values()];
    this.#pendingCommits.clear();
    const generation = this.#generation;
    try {
      await this.#consumer.commitOffsets(offsets);
      this.#metrics?.commits.inc({ group: this.#opts.groupId, result: 'ok' });
    } catch (err) {
      this.#metrics?.commits.inc({ group: this.#opts.groupId, result: 'failed' });
      // A rebalance makes the commit fail; the new owner re-reads from the last commit.
      this.#log.warn('offset commit failed', { offsets, err, stale: generation !== this.#generation });
    }
  }

  #updateGauges(): void {
    if (!this.#metrics) return;
    let paused = 0;
    for (const s of this.#partitions.values()) if (s.resume) paused++;
    this.#metrics.inFlight.set({ group: this.#metrics.group }, this.#inFlightTotal());
    this.#metrics.paused.set({ group: this.#metrics.group }, paused);
  }

  /** Partitions paused for back-pressure right now. */
  pausedPartitions(): TopicPartitions[] {
    const byTopic = new Map<string, number[]>();
    for (const [key, s] of this.#partitions) {
      if (!s.resume) continue;
      const i = key.lastIndexOf(':');
      const topic = key.slice(0, i);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), Number(key.slice(i + 1))]);
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Admin

export class BusAdmin implements Component {
  readonly name = 'kafka-admin';
  readonly #admin: Admin;
  #connected = false;

  constructor(admin: Admin) {
    this.#admin = admin;
  }

  async start(): Promise<void> {
    if (this.#connected) return;
    // Marked before connecting: a failed connect can leave sockets behind that stop() must close.
    this.#connected = true;
    await this.#admin.connect();
  }

  async stop(): Promise<void> {
    if (!this.#connected) return;
    this.#connected = false;
    await this.#admin.disconnect();
  }

  /**
   * Creates the topics that do not exist yet and waits until every partition of them has a leader;
   * returns the names created. (kafkajs's own `waitForLeaders` gives up on UNKNOWN_TOPIC_OR_PARTITION,
   * which a busy KRaft broker answers for a moment after CreateTopics.)
   */
  async ensureTopics(plans: readonly TopicPlan[], timeoutMs = 30_000): Promise<string[]> {
    const existing = new Set(await this.#admin.listTopics());
    const missing = plans.filter((p) => !existing.has(p.topic));
    if (missing.length === 0) return [];
    try {
      await this.#admin.createTopics({
        waitForLeaders: false,
        topics: missing.map((p) => ({
          topic: p.topic,
          numPartitions: p.numPartitions,
          configEntries: [{ name: 'retention.ms', value: String(p.retentionMs) }],
        })),
      });
    } catch (err) {
      // Another instance created them at the same time: fine, we only wait for leaders below.
      if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err;
    }
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const meta = await this.#admin.fetchTopicMetadata({ topics: missing.map((p) => p.topic) });
        const ready = missing.every((p) => {
          const t = meta.topics.find((x) => x.name === p.topic);
          return t !== undefined && t.partitions.length === p.numPartitions && t.partitions.every((x) => x.leader >= 0);
        });
        if (ready) return missing.map((p) => p.topic);
      } catch (err) {
        if (!isRetriable(err)) throw err;
      }
      if (Date.now() > deadline) throw new UnavailableError(`topics ${missing.map((p) => p.topic).join(', ')} have no leaders after ${timeoutMs} ms`);
      await sleep(backoffDelay(attempt, { initialDelayMs: 50, maxDelayMs: 500 }));
    }
  }

  /** Throws {@link MissingTopicsError} naming every topic that does not exist. */
  async checkTopics(topics: readonly string[]): Promise<void> {
    const existing = new Set(await this.#admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) throw new MissingTopicsError(missing);
  }

  async deleteTopics(topics: readonly string[]): Promise<void> {
    const existing = new Set(await this.#admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0) await this.#admin.deleteTopics({ topics: present });
  }

  async listTopics(): Promise<string[]> {
    return this.#admin.listTopics();
  }

  async partitionCount(topic: string): Promise<number> {
    const meta = await this.#admin.fetchTopicMetadata({ topics: [topic] });
    const t = meta.topics[0];
    if (!t) throw new MissingTopicsError([topic]);
    return t.partitions.length;
  }

  /** Low and high watermarks per partition. */
  async watermarks(topic: string): Promise<{ partition: number; low: string; high: string }[]> {
    const offsets = await this.#admin.fetchTopicOffsets(topic);
    return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high })).sort((a, b) => a.partition - b.partition);
  }

  /** Per partition, the first offset whose timestamp is >= `timestampMs` (the high watermark if none). */
  async offsetsForTime(topic: string, timestampMs: number): Promise<{ partition: number; offset: string }[]> {
    const [byTime, marks] = await Promise.all([this.#admin.fetchTopicOffsetsByTimestamp(topic, timestampMs), this.watermarks(topic)]);
    return marks.map((w) => {
      const o = byTime.find((x) => x.partition === w.partition)?.offset;
      return { partition: w.partition, offset: o === undefined || BigInt(o) < 0n ? w.high : o };
    });
  }

  /** Committed offsets of a group for a topic (-1 when none). */
  async committedOffsets(groupId: string, topic: string): Promise<{ partition: number; offset: string }[]> {
    const res = await this.#admin.fetchOffsets({ groupId, topics: [topic] });
    return (res[0]?.partitions ?? []).map((p) => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition);
  }

  /** Total records between a group's committed offsets and the high watermarks. */
  async groupLag(groupId: string, topic: string): Promise<number> {
    const [high, committed] = await Promise.all([this.watermarks(topic), this.committedOffsets(groupId, topic)]);
    let lag = 0;
    for (const h of high) {
      const c = committed.find((x) => x.partition === h.partition)?.offset ?? '-1';
      const from = BigInt(c) < 0n ? BigInt(h.low) : BigInt(c);
      lag += Number(BigInt(h.high) - from);
    }
    return lag;
  }

  /** The group's state (`Empty`, `Stable`, `Dead`, ...); needs the group coordinator. */
  async describeGroup(groupId: string): Promise<string> {
    const { groups } = await this.#admin.describeGroups([groupId]);
    return groups[0]?.state ?? 'Dead';
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.#admin.deleteGroups([groupId]).catch(() => undefined);
  }

  /** Ids of the consumer groups the broker knows. */
  async listGroups(): Promise<string[]> {
    return (await this.#admin.listGroups()).groups.map((g) => g.groupId);
  }
}

/**
 * Waits until the broker answers a metadata request — and, with `coordinator`, until it can serve
 * consumer groups (on a fresh broker the first group request creates `__consumer_offsets`, and groups
 * see "coordinator not available" until it exists) — or throws after `timeoutMs`.
 */
export async function waitForBroker(bus: Bus, timeoutMs = 30_000, options: { coordinator?: boolean } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let attempt = 0;
  for (;;) {
    const admin = bus.admin();
    try {
      await admin.start();
      await admin.listTopics();
      if (options.coordinator) await admin.describeGroup('bkstream-readiness-probe');
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new UnavailableError(`Kafka at ${bus.brokers.join(',')} did not answer within ${timeoutMs} ms: ${errorMessage(err)}`, { cause: err });
      }
      await sleep(backoffDelay(++attempt, { initialDelayMs: 100, maxDelayMs: 1_000 }));
    } finally {
      await admin.stop().catch(() => undefined);
    }
  }
}
