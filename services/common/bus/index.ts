/**
 * The Kafka bus over kafkajs, the only module that imports it. {@link Bus} holds one kafkajs client and
 * hands out the parts, each a file of its own:
 *
 * - `producer.ts`: sends with acks from every in-sync replica; Java-compatible partitioning;
 * - `consumer.ts`: at-least-once intake, dead letters, back-pressure, rebalances;
 * - `commit-tracker.ts`: the consumer's durable-prefix bookkeeping, pure (unit-tested without a broker);
 * - `admin.ts`: topics, offsets, groups, and {@link waitForBroker};
 * - `range-reader.ts`: reading fixed offset ranges once (replay);
 * - `follower.ts`: following a (compacted) topic from its beginning without committing (tables kept on a topic);
 * - `kafkajs-fixes.ts`: fixes for kafkajs bugs that cost us (an idle connection polling every 1 ms).
 */
import { Kafka, logLevel as KafkaLogLevel, type SASLOptions } from 'kafkajs';
import { kafkaLogCreator, type Logger } from '../log.ts';
import type { Registry } from '../metrics.ts';
import { BusAdmin } from './admin.ts';
import { BusConsumer, type ConsumerOptions } from './consumer.ts';
import { applyKafkajsFixes } from './kafkajs-fixes.ts';
import { TopicFollower, type FollowerOptions } from './follower.ts';
import { BusProducer, type ProducerOptions } from './producer.ts';
import { readRange } from './range-reader.ts';
import type { OffsetRange, RawRecord } from './types.ts';

export { BusAdmin, waitForBroker } from './admin.ts';
export { BusConsumer, type ConsumerOptions } from './consumer.ts';
export { TopicFollower, type FollowedRecord, type FollowerOptions } from './follower.ts';
export { BusProducer, partitionFor, type ProducerOptions } from './producer.ts';
export * from './types.ts';

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
  /** SASL authentication (a GSE receiver's cluster); unset = none. */
  sasl?: BusSasl;
  /** TLS to the brokers (system CAs). Default false. */
  ssl?: boolean;
}

/** SASL settings of a cluster (kafkajs's mechanisms: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). */
export interface BusSasl {
  readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username: string;
  readonly password: string;
}

export class Bus {
  readonly #kafka: Kafka;
  readonly logger: Logger;
  readonly registry: Registry | undefined;
  readonly brokers: readonly string[];

  constructor(options: BusOptions) {
    applyKafkajsFixes();
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
      ...(options.ssl ? { ssl: true } : {}),
      ...(options.sasl ? { sasl: { mechanism: options.sasl.mechanism, username: options.sasl.username, password: options.sasl.password } as SASLOptions } : {}),
    });
  }

  producer(options: ProducerOptions = {}): BusProducer {
    return new BusProducer(this.#kafka, this.logger, options);
  }

  consumer<T>(options: ConsumerOptions<T>): BusConsumer<T> {
    return new BusConsumer<T>(this.#kafka, this.producer(), this.logger, this.registry, options);
  }

  /** Follows a topic from its beginning without committing (see follower.ts). */
  follower(options: FollowerOptions): TopicFollower {
    return new TopicFollower(this.#kafka, this.logger, options);
  }

  admin(): BusAdmin {
    return new BusAdmin(this.#kafka.admin());
  }

  /**
   * Reads offsets [start, end) of the given partitions of `topic` once, raw, calling `onBatch` for each
   * fetched batch (in offset order per partition); resolves when every range is read. See range-reader.ts.
   */
  readRange(topic: string, ranges: readonly OffsetRange[], onBatch: (records: RawRecord[]) => Promise<void>): Promise<void> {
    return readRange(this.#kafka, this.logger, topic, ranges, onBatch);
  }
}
