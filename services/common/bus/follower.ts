/**
 * Following a topic from its beginning, raw, committing nothing: how a table kept on a compacted topic
 * (key → latest value, a null value deleting the key) is rebuilt and then kept current.
 *
 * - Each follower joins a group of its own (a unique id, deleted at stop), so it has no committed offsets
 *   and reads every partition from the earliest retained record; it never commits.
 * - Tombstones are delivered (`value: null`); nothing is dead-lettered: interpreting values is the caller's.
 * - `start()` reads the high watermarks first and resolves once every partition has been read up to them
 *   (at once for an empty topic), so the caller has the whole table before it goes on; then it keeps
 *   following. It rejects when the topic does not exist, or when it has not caught up within
 *   `catchUpTimeoutMs`.
 * - After a rebalance or a restart of the kafkajs consumer (a broker outage), each partition is sought to
 *   the offset after the last record delivered, so records are delivered once and in order per partition
 *   and a table never goes back to older values. A crash kafkajs does not restart from is followed, with
 *   backoff, by a new consumer that continues there; a partition whose log now ends before what was read
 *   (the topic was deleted and made again) is read again from its start.
 */
import type { Consumer, Kafka } from 'kafkajs';
import { MissingTopicsError, UnavailableError } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { backoffDelay } from '../retry.ts';
import { keepRetiredDisconnected } from './kafkajs-fixes.ts';

/** Session timeout of a follower's group: the broker's default minimum (group.min.session.timeout.ms). */
const FOLLOWER_SESSION_TIMEOUT_MS = 6_000;

export interface FollowedRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  /** null: a tombstone. */
  value: Buffer | null;
  /** ms */
  timestamp: number;
}

export interface FollowerOptions {
  topic: string;
  /** Called for each fetched batch, in offset order per partition; an error is logged and the batch is not read again. */
  onRecords: (records: readonly FollowedRecord[]) => void | Promise<void>;
  /** Prefix of the throwaway group id. Default `bkstream-follower`. */
  groupPrefix?: string;
  /** How long `start()` waits to catch up. Default 60 000 ms. */
  catchUpTimeoutMs?: number;
  /** Longest wait of an empty fetch (how soon a new record is seen). Default 250 ms. */
  maxWaitTimeMs?: number;
}

export class TopicFollower implements Component {
  readonly name: string;
  readonly #kafka: Kafka;
  readonly #log: Logger;
  readonly #opts: FollowerOptions;
  readonly #groupId: string;
  /** Offset after the last record delivered, per partition. */
  readonly #next = new Map<number, bigint>();
  #consumer: Consumer | undefined;
  /** Consumers this follower has disconnected (stopped, or replaced after a crash). */
  readonly #retired = new WeakSet<Consumer>();
  #stopping: Promise<void> | undefined;

  constructor(kafka: Kafka, logger: Logger, options: FollowerOptions) {
    this.#kafka = kafka;
    this.#opts = options;
    this.#groupId = `${options.groupPrefix ?? 'bkstream-follower'}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.name = `topic-follower:${options.topic}`;
    this.#log = logger.child({ component: 'follower', topic: options.topic, group: this.#groupId });
  }

  /** Offset after the last record delivered, per partition (what has been read). */
  positions(): ReadonlyMap<number, bigint> {
    return this.#next;
  }

  async start(): Promise<void> {
    if (this.#consumer) return;
    this.#stopping = undefined;
    const { topic } = this.#opts;
    const admin = this.#kafka.admin();
    const targets = new Map<number, bigint>();
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(topic)) throw new MissingTopicsError([topic]);
      for (const o of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(o.high) > BigInt(o.low)) targets.set(o.partition, BigInt(o.high));
      }
    } finally {
      await admin.disconnect();
    }
    const caughtUp = Promise.withResolvers<void>();
    caughtUp.promise.catch(() => undefined);
    let isCaughtUp = false;
    const check = (): void => {
      if (isCaughtUp) return;
      for (const [partition, high] of targets) if ((this.#next.get(partition) ?? 0n) < high) return;
      isCaughtUp = true;
      caughtUp.resolve();
    };
    check();
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.#run(check, (err) => {
        // A crash kafkajs does not restart from: before catching up, the start fails; after, a new consumer takes over.
        if (!isCaughtUp) caughtUp.reject(err);
        else this.#recover(check, 1);
      });
      const timeoutMs = this.#opts.catchUpTimeoutMs ?? 60_000;
      await Promise.race([
        caughtUp.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new UnavailableError(`${topic}: not read up to its end within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      this.#log.debug('caught up', { partitions: [...targets.keys()] });
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Creates, connects and runs a consumer of the follower's group. */
  async #run(onBatchDone: () => void, onFatal: (err: Error) => void): Promise<void> {
    const { topic } = this.#opts;
    // The group is this follower alone: a short session (the broker's minimum) bounds how long a rejoin
    // after a broker restart waits for the member the broker remembers from before it (which holds up
    // the rejoin, and a stop during it, for the rest of that member's session: ~22 s with 30 s).
    const consumer = this.#kafka.consumer({
      groupId: this.#groupId,
      maxWaitTimeInMs: this.#opts.maxWaitTimeMs ?? 250,
      allowAutoTopicCreation: false,
      sessionTimeout: FOLLOWER_SESSION_TIMEOUT_MS,
      heartbeatInterval: 1_000,
      rebalanceTimeout: FOLLOWER_SESSION_TIMEOUT_MS,
    });
    this.#consumer = consumer;
    keepRetiredDisconnected(consumer, () => this.#retired.has(consumer));
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      if (this.#retired.has(consumer)) return;
      // A new generation restarts each partition where nothing was committed (the beginning): continue instead.
      for (const partition of e.payload.memberAssignment[topic] ?? []) {
        const next = this.#next.get(partition);
        if (next !== undefined) consumer.seek({ topic, partition, offset: String(next) });
      }
    });
    consumer.on(consumer.events.CRASH, (e) => {
      if (this.#retired.has(consumer)) return;
      this.#log.warn('follower crashed', { err: e.payload.error, restart: e.payload.restart });
      if (!e.payload.restart && this.#consumer === consumer) onFatal(e.payload.error);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async (payload) => {
        const { batch } = payload;
        let from = this.#next.get(batch.partition) ?? 0n;
        if (BigInt(batch.highWatermark) < from) {
          // The log ends before what was read: the topic was deleted and made again (or truncated). Read it anew.
          this.#log.warn('topic ends before the offset already read: reading it again from its start', { partition: batch.partition, read: String(from), high: batch.highWatermark });
          from = 0n;
          this.#next.set(batch.partition, 0n);
        }
        const records: FollowedRecord[] = [];
        for (const m of batch.messages) {
          if (BigInt(m.offset) < from) continue; // read again after a seek that did not take
          records.push({ partition: batch.partition, offset: m.offset, key: m.key, value: m.value, timestamp: Number(m.timestamp) });
        }
        if (records.length > 0) {
          try {
            await this.#opts.onRecords(records);
          } catch (err) {
            this.#log.error('records not applied', { partition: batch.partition, from: records[0]?.offset, err });
          }
        }
        const after = BigInt(batch.lastOffset()) + 1n;
        if (after > from) this.#next.set(batch.partition, after);
        await payload.heartbeat();
        onBatchDone();
      },
    });
  }

  /** After a crash kafkajs gives up on: a new consumer continues where the last one was, with backoff. */
  #recover(onBatchDone: () => void, attempt: number): void {
    const old = this.#consumer;
    const delayMs = backoffDelay(attempt, { initialDelayMs: 500, maxDelayMs: 30_000 });
    this.#log.error('follower stopped by an error kafkajs does not retry; starting a new consumer', { delayMs, attempt });
    setTimeout(() => {
      if (this.#stopping || this.#consumer !== old) return;
      void (async () => {
        if (old) this.#retired.add(old);
        await old?.disconnect().catch(() => undefined);
        if (this.#stopping) return;
        await this.#run(onBatchDone, () => this.#recover(onBatchDone, 1));
      })().catch((err: unknown) => {
        this.#log.warn('follower restart failed', { err });
        if (!this.#stopping) this.#recover(onBatchDone, attempt + 1);
      });
    }, delayMs).unref();
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const consumer = this.#consumer;
      if (!consumer) return;
      this.#consumer = undefined;
      this.#retired.add(consumer);
      await consumer.disconnect().catch((err: unknown) => this.#log.warn('disconnect failed', { err }));
      const admin = this.#kafka.admin();
      try {
        await admin.connect();
        await admin.deleteGroups([this.#groupId]);
      } catch {
        // an empty group expires on its own
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    })();
    return this.#stopping;
  }
}
