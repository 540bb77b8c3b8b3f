/**
 * The default {@link FeedSender} until data ids are routed (services/common/gse): every data id's messages
 * go to the topic `0bkmonitor_{dataid}0` on the bus — the topic the reference's metadata names for a data
 * id, and the one the orchestrator's flows deploy as their raw data — with a producer of their own,
 * connected at the first send (Kafka may be away when the collector starts) and again after a failure.
 */
import type { OutRecord } from '../../common/bus/index.ts';
import type { Component } from '../../common/lifecycle.ts';
import type { FeedSender } from './feeds.ts';

/** The default topic of a data id. */
export function dataIdTopic(dataId: number): string {
  return `0bkmonitor_${dataId}0`;
}

/** What the sender needs of a producer (the bus's BusProducer). */
export interface FeedProducer {
  start(): Promise<void>;
  stop(): Promise<void>;
  send(topic: string, messages: readonly OutRecord[]): Promise<void>;
}

export class BusFeedSender implements FeedSender, Component {
  readonly name = 'feed-producer';
  readonly #producer: FeedProducer;
  #connecting: Promise<void> | undefined;
  #stopped = false;

  constructor(producer: FeedProducer) {
    this.#producer = producer;
  }

  async start(): Promise<void> {
    this.#stopped = false;
  }

  async send(dataId: number, messages: readonly Buffer[]): Promise<void> {
    if (this.#stopped) throw new Error('the feed producer is stopped');
    this.#connecting ??= this.#producer.start();
    try {
      await this.#connecting;
      await this.#producer.send(dataIdTopic(dataId), messages.map((value) => ({ value })));
    } catch (err) {
      // Reconnect at the next send: a failed connect leaves the producer unusable.
      this.#connecting = undefined;
      await this.#producer.stop().catch(() => {});
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#connecting = undefined;
    await this.#producer.stop();
  }
}
