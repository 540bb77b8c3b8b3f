/**
 * The default topics of the fed data ids: `0bkmonitor_{dataid}0` is created (1 partition, 1 day) the first
 * time a feed of that data id goes there — as the reference's metadata creates a data id's topic with the
 * data id — so switching tail sampling or virtual metrics on does not leave the application's Exports
 * failing for want of a topic. A data id with an explicit GSE route goes where its route says, and nothing
 * is created for it. Connects at the first use; after a failure the next feed tries again.
 */
import type { Component } from '../../common/lifecycle.ts';
import type { TopicPlan } from '../../common/topics.ts';
import { dataIdTopic } from './bus-sender.ts';

/** Partitions of a created data id topic (the reference's metadata default). */
export const DATA_ID_TOPIC_PARTITIONS = 1;
/** Retention of a created data id topic: the flows read them as they come. */
export const DATA_ID_TOPIC_RETENTION_MS = 86_400_000;

/** What it needs of a bus admin (BusAdmin). */
export interface TopicAdmin {
  start(): Promise<void>;
  stop(): Promise<void>;
  ensureTopics(plans: readonly TopicPlan[]): Promise<string[]>;
}

export class DefaultTopics implements Component {
  readonly name = 'feed-topics';
  readonly #admin: TopicAdmin;
  readonly #ensured = new Set<number>();
  readonly #pending = new Map<number, Promise<void>>();
  #connecting: Promise<void> | undefined;

  constructor(admin: TopicAdmin) {
    this.#admin = admin;
  }

  async start(): Promise<void> {}

  /** Resolves once `0bkmonitor_{dataId}0` exists (at once when it was seen before). */
  ensure(dataId: number): Promise<void> {
    if (this.#ensured.has(dataId)) return Promise.resolve();
    let p = this.#pending.get(dataId);
    if (!p) {
      p = this.#create(dataId).finally(() => this.#pending.delete(dataId));
      this.#pending.set(dataId, p);
    }
    return p;
  }

  async #create(dataId: number): Promise<void> {
    try {
      this.#connecting ??= this.#admin.start();
      await this.#connecting;
      await this.#admin.ensureTopics([{ topic: dataIdTopic(dataId), numPartitions: DATA_ID_TOPIC_PARTITIONS, retentionMs: DATA_ID_TOPIC_RETENTION_MS }]);
      this.#ensured.add(dataId);
    } catch (err) {
      this.#connecting = undefined;
      await this.#admin.stop().catch(() => {});
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.#connecting = undefined;
    await this.#admin.stop();
  }
}
