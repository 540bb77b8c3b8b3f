/**
 * Publishing by data id (GSE's job in the reference: bk-collector and bkmonitorbeat hand records to GSE
 * by data id, GSE delivers each to the Kafka cluster and topic the data id's route names).
 *
 * Each send resolves its data ids through the {@link RouteSource} at that moment, so a route change applies
 * to the next record, without a restart:
 * - no route (`undefined`): the caller's default topic on the default producer (the service's own cluster);
 * - a route: every target, each on its receiver's producer ({@link ReceiverProducers}), with the target's
 *   partition when it names one (else the producer's key partitioning);
 * - a route with no usable target (`[]`: every target names an unknown stream_to): an error, retriable,
 *   and nothing is sent — never a silent fallback to the default.
 *
 * A send resolves once every target acknowledged (acks from all in-sync replicas, the bus producer's
 * `acks: -1`) and rejects, retriable, if any failed. The caller retries the send: the targets that had
 * succeeded then get those records again — at-least-once, like a retried produce request — unless the
 * caller passes a {@link SendProgress} along, which skips them (the agent does; a record is still sent
 * twice when the process dies between an acknowledgement and the caller's own). The records of one send
 * keep their order per target topic (one produce request per receiver).
 *
 * Metrics: `bkstream_gse_records_sent_total{receiver, topic}` (acknowledged), `bkstream_gse_records_failed_total
 * {receiver, topic}` (in sends that failed), `bkstream_gse_unroutable_total{data_id}` (records whose route
 * has no usable target); `receiver` is the stream_to id, or `default`.
 */
import type { OutMessage } from '../bus/index.ts';
import { BkError, errorMessage } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { counter, type Counter, type Registry } from '../metrics.ts';
import type { ReceiverProducers } from './producers.ts';
import type { KafkaReceiver, RouteSource } from './routes.ts';

/** Records of one data id, and the topic they go to when the data id has no route. */
export interface DataIdRecords {
  readonly dataId: number;
  readonly defaultTopic: string;
  readonly messages: readonly OutMessage[];
  /** Names these records in a {@link SendProgress} (default: their index in the send). */
  readonly id?: string;
}

/**
 * What a send that is retried has already delivered: `<id>/<receiver>/<topic>/<partition>` of each item
 * and target that acknowledged. Passing the same set to the retry of the same records skips those, so a
 * long outage of one target does not copy the records to the others at every attempt; a target the
 * records resolve to only now (a route change between attempts) still gets them.
 */
export type SendProgress = Set<string>;

/** A data id's route names no receiver the table knows: nowhere to send (retriable: a receiver may come). */
export class NoRouteTargetError extends BkError {
  readonly dataId: number;
  constructor(dataId: number) {
    super('gse_no_target', `the route of data id ${dataId} names no known receiver (stream_to); its records wait`, true);
    this.dataId = dataId;
  }
}

/** Some targets did not acknowledge (retriable; those that did may get the records again on the retry). */
export class RoutedSendError extends BkError {
  /** `receiver/topic` of each failed target. */
  readonly failed: readonly string[];
  constructor(failed: readonly { receiver: string; topic: string; err: unknown }[]) {
    const first = failed[0];
    super(
      'gse_send_failed',
      `sending to ${failed.map((f) => `${f.receiver === 'default' ? 'the default cluster' : `stream_to ${f.receiver}`} topic ${f.topic}`).join(', ')} failed: ${errorMessage(first?.err)}`,
      true,
      first ? { cause: first.err } : {},
    );
    this.failed = failed.map((f) => `${f.receiver}/${f.topic}`);
  }
}

export interface GseMetrics {
  readonly sent: Counter<'receiver' | 'topic'>;
  readonly failed: Counter<'receiver' | 'topic'>;
  readonly unroutable: Counter<'data_id'>;
}

export function gseMetrics(registry: Registry): GseMetrics {
  return {
    sent: counter(registry, { name: 'bkstream_gse_records_sent_total', help: 'Records published by data id and acknowledged, by receiver (stream_to id, or default) and topic', labelNames: ['receiver', 'topic'] }),
    failed: counter(registry, { name: 'bkstream_gse_records_failed_total', help: 'Records of publish requests that failed (retried by the caller), by receiver and topic', labelNames: ['receiver', 'topic'] }),
    unroutable: counter(registry, { name: 'bkstream_gse_unroutable_total', help: 'Records held back because their data id\'s route names no known receiver, by data id', labelNames: ['data_id'] }),
  };
}

export interface RoutedPublisherOptions {
  source: RouteSource;
  producers: ReceiverProducers;
  logger: Logger;
  registry?: Registry;
}

/** One producer's share of a send. */
interface Leg {
  readonly receiver: KafkaReceiver | undefined;
  readonly label: string;
  readonly byTopic: Map<string, OutMessage[]>;
  /** Progress keys of what this leg carries. */
  readonly done: string[];
}

export class RoutedPublisher implements Component {
  readonly name = 'gse-publisher';
  readonly #source: RouteSource;
  readonly #producers: ReceiverProducers;
  readonly #log: Logger;
  readonly #metrics: GseMetrics | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: RoutedPublisherOptions) {
    this.#source = options.source;
    this.#producers = options.producers;
    this.#log = options.logger.child({ component: 'gse.publisher' });
    this.#metrics = options.registry ? gseMetrics(options.registry) : undefined;
  }

  /** Follows the table: producers of receivers that left it or changed are closed. */
  async start(): Promise<void> {
    this.#unsubscribe ??= this.#source.onChange((table) => this.#producers.sync(table));
    this.#producers.sync(this.#source.current());
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    await this.#producers.stop();
  }

  /** Publishes one data id's records; resolves once every target acknowledged. */
  send(dataId: number, defaultTopic: string, messages: readonly OutMessage[]): Promise<void> {
    return this.sendAll([{ dataId, defaultTopic, messages }]);
  }

  /**
   * Publishes the records of several data ids in one request per producer; resolves once every target of
   * every data id acknowledged. Order is kept per target topic as given. With `progress` (the same set for
   * every attempt of the same records), targets that acknowledged an earlier attempt are skipped.
   */
  async sendAll(items: readonly DataIdRecords[], progress?: SendProgress): Promise<void> {
    const table = this.#source.current();
    const legs = new Map<number | 'default', Leg>();
    const leg = (receiver: KafkaReceiver | undefined): Leg => {
      const id = receiver ? receiver.streamToId : 'default';
      let l = legs.get(id);
      if (!l) legs.set(id, (l = { receiver, label: String(id), byTopic: new Map(), done: [] }));
      return l;
    };
    const add = (l: Leg, topic: string, partition: number | undefined, item: DataIdRecords, index: number): void => {
      const done = `${item.id ?? index}/${l.label}/${topic}/${partition ?? ''}`;
      if (progress?.has(done)) return;
      let list = l.byTopic.get(topic);
      if (!list) l.byTopic.set(topic, (list = []));
      list.push(...(partition === undefined ? item.messages : item.messages.map((m) => ({ ...m, partition }))));
      l.done.push(done);
    };
    for (const [index, item] of items.entries()) {
      if (item.messages.length === 0) continue;
      const targets = table.resolve(item.dataId);
      if (!targets) {
        add(leg(undefined), item.defaultTopic, undefined, item, index);
        continue;
      }
      if (targets.length === 0) {
        this.#metrics?.unroutable.inc({ data_id: String(item.dataId) }, item.messages.length);
        throw new NoRouteTargetError(item.dataId);
      }
      for (const t of targets) add(leg(t.receiver), t.topic, t.partition, item, index);
    }
    const failed: { receiver: string; topic: string; err: unknown }[] = [];
    await Promise.all([...legs.values()].map(async (l) => {
      const batches = [...l.byTopic].map(([topic, messages]) => ({ topic, messages }));
      if (batches.length === 0) return;
      try {
        const producer = await this.#producers.get(l.receiver);
        await producer.sendBatch(batches);
        for (const b of batches) this.#metrics?.sent.inc({ receiver: l.label, topic: b.topic }, b.messages.length);
        for (const d of l.done) progress?.add(d);
      } catch (err) {
        for (const b of batches) {
          this.#metrics?.failed.inc({ receiver: l.label, topic: b.topic }, b.messages.length);
          failed.push({ receiver: l.label, topic: b.topic, err });
        }
      }
    }));
    if (failed.length > 0) {
      const err = new RoutedSendError(failed);
      this.#log.debug('publish by data id failed', { err: err.message });
      throw err;
    }
  }
}
