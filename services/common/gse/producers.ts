/**
 * The producers a GSE publisher sends through: the default one (the service's own cluster, KAFKA_BROKERS)
 * and one per {@link KafkaReceiver} (a stream_to: its brokers, SASL and TLS), each made on the first
 * send that needs it.
 *
 * - Lazy: nothing connects before a send asks for it; concurrent sends share one connection attempt; a
 *   failed attempt is forgotten (its sockets closed), so the next send tries again.
 * - Replaced: a producer remembers the receiver settings it was made with; when the table holds other
 *   settings for that stream_to (addresses, SASL, TLS), the old producer is closed and the next send makes
 *   a new one. A receiver that left the table has its producer closed ({@link ReceiverProducers.sync}).
 *   Sends in flight on a closed producer fail, and their caller retries them against the new table.
 * - {@link ReceiverProducers.disconnect} closes every connection (the agent does so when it has been idle);
 *   the next send reconnects. {@link ReceiverProducers.stop} does the same for good.
 */
import { Bus, type OutMessage, type ProducerOptions } from '../bus/index.ts';
import { UnavailableError } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { KafkaReceiver, RouteTable } from './routes.ts';

/** Records for one topic. */
export interface TopicMessages {
  readonly topic: string;
  readonly messages: readonly OutMessage[];
}

/** The part of a bus producer a publisher uses (a BusProducer, or a test double). */
export interface PoolProducer {
  start(): Promise<void>;
  stop(): Promise<void>;
  sendBatch(batches: readonly TopicMessages[]): Promise<void>;
}

export interface ReceiverProducersOptions {
  /** The default cluster's producer (the service's bus); started and stopped by the pool. */
  defaultProducer: PoolProducer;
  logger: Logger;
  /** kafkajs client id of the receivers' clients. Default `bkstream-gse`. */
  clientId?: string;
  /** Options of each receiver's producer (the same as the default one's, usually). */
  producerOptions?: ProducerOptions;
  /** Connection timeout of the receivers' clients, ms. Default 3 000. */
  connectionTimeoutMs?: number;
  /** Request timeout of the receivers' clients, ms. Default 30 000. */
  requestTimeoutMs?: number;
  /** kafkajs's own retries for the receivers' clients. Default 8. */
  retries?: number;
  /** How a receiver's producer is made (tests); default a bus on its brokers with its SASL and TLS. */
  createProducer?: (receiver: KafkaReceiver) => PoolProducer;
}

/** The settings a receiver's producer depends on (not its name). */
export function receiverFingerprint(r: KafkaReceiver): string {
  return JSON.stringify([r.brokers, r.ssl, r.sasl ? [r.sasl.mechanism, r.sasl.username, r.sasl.password] : null]);
}

interface Entry {
  readonly fingerprint: string;
  readonly producer: PoolProducer;
  /** Set while connected or connecting. */
  connecting: Promise<void> | undefined;
}

export class ReceiverProducers implements Component {
  readonly name = 'gse-producers';
  readonly #o: ReceiverProducersOptions;
  readonly #log: Logger;
  readonly #default: Entry;
  readonly #receivers = new Map<number, Entry>();
  /** Producers being closed in the background (stop waits for them). */
  readonly #closing = new Set<Promise<void>>();
  #stopped = false;

  constructor(options: ReceiverProducersOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'gse.producers' });
    this.#default = { fingerprint: 'default', producer: options.defaultProducer, connecting: undefined };
  }

  /** Nothing to do: producers connect on the first send that needs them. */
  async start(): Promise<void> {}

  /** How many receivers have a producer (connected or connecting). */
  get size(): number {
    return this.#receivers.size;
  }

  /**
   * The connected producer of `receiver` (undefined: the default cluster's), made and connected on first
   * use, replaced when the receiver's settings changed. Rejects when the connection fails (retriable).
   */
  async get(receiver: KafkaReceiver | undefined): Promise<PoolProducer> {
    if (this.#stopped) throw new UnavailableError('the GSE producers are stopped');
    const entry = receiver ? this.#entryOf(receiver) : this.#default;
    entry.connecting ??= this.#connect(entry, receiver);
    await entry.connecting;
    return entry.producer;
  }

  /** Closes the producers of receivers that left `table` or whose settings changed there. */
  sync(table: RouteTable): void {
    for (const [id, entry] of this.#receivers) {
      const now = table.receiver(id);
      if (now && receiverFingerprint(now) === entry.fingerprint) continue;
      this.#receivers.delete(id);
      this.#retire(entry, id, now ? 'receiver settings changed' : 'receiver removed');
    }
  }

  /** Closes every connection (the default one included); the next send reconnects. */
  async disconnect(): Promise<void> {
    const entries = [...this.#receivers];
    this.#receivers.clear();
    for (const [id, entry] of entries) this.#retire(entry, id, 'disconnect');
    await Promise.allSettled([this.#disconnect(this.#default), ...this.#closing]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.disconnect();
  }

  #entryOf(receiver: KafkaReceiver): Entry {
    const fingerprint = receiverFingerprint(receiver);
    const have = this.#receivers.get(receiver.streamToId);
    if (have?.fingerprint === fingerprint) return have;
    if (have) this.#retire(have, receiver.streamToId, 'receiver settings changed');
    const entry: Entry = { fingerprint, producer: this.#create(receiver), connecting: undefined };
    this.#receivers.set(receiver.streamToId, entry);
    return entry;
  }

  #create(receiver: KafkaReceiver): PoolProducer {
    if (this.#o.createProducer) return this.#o.createProducer(receiver);
    const bus = new Bus({
      brokers: receiver.brokers,
      clientId: `${this.#o.clientId ?? 'bkstream-gse'}-${receiver.streamToId}`,
      logger: this.#o.logger,
      ...(receiver.sasl ? { sasl: receiver.sasl } : {}),
      ssl: receiver.ssl,
      ...(this.#o.connectionTimeoutMs === undefined ? {} : { connectionTimeoutMs: this.#o.connectionTimeoutMs }),
      ...(this.#o.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.#o.requestTimeoutMs }),
      ...(this.#o.retries === undefined ? {} : { retries: this.#o.retries }),
    });
    return bus.producer(this.#o.producerOptions ?? {});
  }

  async #connect(entry: Entry, receiver: KafkaReceiver | undefined): Promise<void> {
    try {
      await entry.producer.start();
      if (receiver) this.#log.info('connected to a GSE receiver', { stream_to_id: receiver.streamToId, receiver: receiver.name, brokers: receiver.brokers });
    } catch (err) {
      // Forgotten, so the next send tries again; the failed attempt's sockets are closed.
      entry.connecting = undefined;
      await entry.producer.stop().catch(() => undefined);
      throw err;
    }
  }

  async #disconnect(entry: Entry): Promise<void> {
    if (!entry.connecting) return;
    entry.connecting = undefined;
    await entry.producer.stop().catch((err: unknown) => this.#log.warn('closing a producer failed', { err }));
  }

  #retire(entry: Entry, streamToId: number, why: string): void {
    if (!entry.connecting) return;
    this.#log.info('closing the producer of a GSE receiver', { stream_to_id: streamToId, why });
    const p = this.#disconnect(entry).finally(() => this.#closing.delete(p));
    this.#closing.add(p);
  }
}
