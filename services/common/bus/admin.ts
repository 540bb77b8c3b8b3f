/** Kafka admin: topics (create, check, delete), partition counts, watermarks, offsets by time, groups. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, ConfigResourceTypes } from 'kafkajs';
import { errorMessage, isRetriable, MissingTopicsError, UnavailableError } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import { backoffDelay } from '../retry.ts';
import type { TopicPlan } from '../topics.ts';

/** kafkajs's ConfigResourceTypes.TOPIC (its CommonJS export is not visible to an ES import). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

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
          configEntries: [{ name: 'retention.ms', value: String(p.retentionMs) }, ...(p.cleanupPolicy ? [{ name: 'cleanup.policy', value: p.cleanupPolicy }] : [])],
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

    /** A topic's configuration values (e.g. `cleanup.policy`, `retention.ms`), by name. */
  async topicConfig(topic: string, names: readonly string[]): Promise<Record<string, string>> {
    const res = await this.#admin.describeConfigs({ includeSynonyms: false, resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: [...names] }] });
    const entries = res.resources[0]?.configEntries ?? [];
    return Object.fromEntries(entries.map((e) => [e.configName, e.configValue]));
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

/** What {@link waitForBroker} needs: a way to open an admin client, and the brokers for the message. */
export interface AdminSource {
  readonly brokers: readonly string[];
  admin(): BusAdmin;
}

/**
 * Waits until the broker answers a metadata request — and, with `coordinator`, until it can serve
 * consumer groups (on a fresh broker the first group request creates `__consumer_offsets`, and groups
 * see "coordinator not available" until it exists) — or throws after `timeoutMs`.
 */
export async function waitForBroker(bus: AdminSource, timeoutMs = 30_000, options: { coordinator?: boolean } = {}): Promise<void> {
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
