/** The Kafka producer: sends records and waits for all in-sync replicas (acks = -1). */
import { CompressionTypes, Partitioners, type IHeaders, type Kafka, type Producer } from 'kafkajs';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { partitionOf } from '../murmur2.ts';
import type { OutRecord } from './types.ts';

/** The partition a keyed record lands on, exactly as the Java client's (and kafkajs's) default partitioner picks it. */
export function partitionFor(key: string | Buffer, numPartitions: number): number {
  return partitionOf(typeof key === 'string' ? Buffer.from(key) : key, numPartitions);
}

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

  constructor(kafka: Kafka, logger: Logger, options: ProducerOptions) {
    this.#log = logger.child({ component: 'producer' });
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

  /** Sends messages to one topic and waits for all in-sync replicas to acknowledge (a null value is a tombstone). */
  async send(topic: string, messages: readonly OutRecord[]): Promise<void> {
    if (messages.length === 0) return;
    await this.#producer.send({ topic, acks: -1, compression: this.#compression, messages: messages.map(toKafkaMessage) });
  }

  /** Sends to several topics in one request per broker. */
  async sendBatch(batches: readonly { topic: string; messages: readonly OutRecord[] }[]): Promise<void> {
    const topicMessages = batches.filter((b) => b.messages.length > 0).map((b) => ({ topic: b.topic, messages: b.messages.map(toKafkaMessage) }));
    if (topicMessages.length === 0) return;
    await this.#producer.sendBatch({ acks: -1, compression: this.#compression, topicMessages });
  }
}

function toKafkaMessage(m: OutRecord): { key: string | Buffer | null; value: Buffer | null; headers?: IHeaders; partition?: number; timestamp?: string } {
  return {
    key: m.key ?? null,
    value: m.value,
    ...(m.headers ? { headers: m.headers } : {}),
    ...(m.partition === undefined ? {} : { partition: m.partition }),
    ...(m.timestamp === undefined ? {} : { timestamp: String(m.timestamp) }),
  };
}
