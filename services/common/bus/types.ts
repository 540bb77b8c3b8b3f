/**
 * Shapes the bus hands to services: messages out, records and batches in, the handler contract, the
 * dead-letter headers. No kafkajs types leak past this folder.
 */

/** Record headers as they arrive (kafkajs's IHeaders without the import). */
export type RecordHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

export interface OutMessage {
  key?: string | Buffer | null;
  value: Buffer;
  headers?: Record<string, string | Buffer>;
  /** Explicit partition; otherwise the Java-compatible hash of `key`. */
  partition?: number;
  /** Record timestamp, ms since the epoch (default: now). */
  timestamp?: number;
}

/** A message whose value may be null: a tombstone, deleting its key from a compacted topic. */
export type OutRecord = Omit<OutMessage, 'value'> & { value: Buffer | null };

export interface ConsumedRecord<T> {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: T;
  /** Kafka record timestamp, ms. */
  timestamp: number;
  headers: RecordHeaders;
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
  headers: RecordHeaders;
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
