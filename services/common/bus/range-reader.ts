/**
 * Reads fixed offset ranges of a topic once, raw, through throwaway consumer groups: what replay uses.
 *
 * kafkajs has no manual partition assignment, so a round joins a new group, seeks each partition of a
 * range to where it continues and pauses the others. A reader that waits for records must not wait
 * forever: records of a range can be deleted by retention before they are read (the log start offset
 * moves past them), so each round first moves every range past what is gone, logging it. kafkajs's own
 * restart is off, and a round that crashes or fetches nothing for {@link READ_STALL_MS} ends: the next
 * round (a new group) reads each unfinished partition from the offset after the last record delivered.
 */
import type { Kafka } from 'kafkajs';
import type { Logger } from '../log.ts';
import type { OffsetRange, RawRecord } from './types.ts';

/** Rounds {@link readRange} tries before a consumer crash fails the read. */
const READ_ROUNDS = 5;
/** A range-reader round that fetches nothing for this long (group join included) is given up. */
const READ_STALL_MS = 15_000;

/** A range reader's consumer crashed (the round ends; {@link readRange} reads the rest again). */
class ReaderCrash extends Error {
  override readonly cause: Error;

  constructor(cause: Error) {
    super(`range reader crashed: ${cause.message}`);
    this.cause = cause;
  }
}

type Pending = Map<number, { next: bigint; end: bigint }>;

/**
 * Reads offsets [start, end) of the given partitions of `topic` once, calling `onBatch` for each fetched
 * batch (in offset order per partition); resolves when every range is read. Commits nothing.
 */
export async function readRange(kafka: Kafka, logger: Logger, topic: string, ranges: readonly OffsetRange[], onBatch: (records: RawRecord[]) => Promise<void>): Promise<void> {
  const pending: Pending = new Map();
  for (const r of ranges) if (BigInt(r.start) < BigInt(r.end)) pending.set(r.partition, { next: BigInt(r.start), end: BigInt(r.end) });
  for (let round = 1; pending.size > 0; round++) {
    try {
      await readRound(kafka, logger, topic, pending, onBatch);
    } catch (err) {
      if (!(err instanceof ReaderCrash) || round >= READ_ROUNDS) throw err instanceof ReaderCrash ? err.cause : err;
      logger.warn('range reader crashed; reading the rest again with a new group', { topic, round, partitions: [...pending.keys()], err: err.cause });
    }
  }
}

/** One throwaway group reading what is left of `pending`; entries are advanced and removed as read. */
async function readRound(kafka: Kafka, logger: Logger, topic: string, pending: Pending, onBatch: (records: RawRecord[]) => Promise<void>): Promise<void> {
  const groupId = `bkstream-reader-${process.pid}-${Date.now().toString(36)}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 250, allowAutoTopicCreation: false, retry: { restartOnFailure: async () => false } });
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
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const { partition, low } of await admin.fetchTopicOffsets(topic)) {
      const range = pending.get(partition);
      if (!range || BigInt(low) <= range.next) continue;
      logger.warn('records deleted by retention before they were read', { topic, partition, from: String(range.next), to: String(BigInt(low) < range.end ? BigInt(low) : range.end) });
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
