/**
 * The consumer's commit bookkeeping, without a broker: which offsets of a partition may be committed
 * (a contiguous durable prefix of handled batches), when a partition must pause for back-pressure and
 * when it may resume, and what to re-read when work fails to become durable.
 *
 * Each handled batch is a {@link Slot}. Slots become durable in any order; the commit offset advances
 * only over the durable head of the partition's queue. A partition with more than `maxInFlightRecords`
 * records accepted but not durable pauses; it resumes when that drops to half. A failure, a seek or a
 * rebalance bumps the partition's epoch: later news about slots of an older epoch is ignored.
 */
import type { TopicPartitions } from './types.ts';

export interface Slot {
  /** Offset to commit once this slot and all before it are durable (last offset + 1). */
  readonly commitOffset: string;
  /** Where to re-read from if this slot's work fails. */
  readonly firstOffset: string;
  readonly records: number;
  done: boolean;
}

interface PartitionTrack {
  slots: Slot[];
  inFlight: number;
  paused: boolean;
  epoch: number;
}

/** A handle on one accepted batch: pass it back to {@link CommitTracker.durable} or {@link CommitTracker.failed}. */
export interface Ticket {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly slot: Slot;
}

export class CommitTracker {
  readonly #parts = new Map<string, PartitionTrack>();
  readonly #maxInFlight: number;

  /** @param maxInFlightRecords records accepted but not durable above which a partition pauses. */
  constructor(maxInFlightRecords: number) {
    this.#maxInFlight = maxInFlightRecords;
  }

  #track(topic: string, partition: number): PartitionTrack {
    const key = `${topic}:${partition}`;
    let t = this.#parts.get(key);
    if (!t) this.#parts.set(key, (t = { slots: [], inFlight: 0, paused: false, epoch: 0 }));
    return t;
  }

  /** The partition's current epoch: work started under an older one is stale. */
  epoch(topic: string, partition: number): number {
    return this.#track(topic, partition).epoch;
  }

  /**
   * Records a handled batch [firstOffset, lastOffset] of `records` records, taken under `epoch`.
   * `pause` is true when the partition just went over the in-flight bound and must be paused.
   * Returns undefined when the epoch is stale (nothing recorded).
   */
  accept(topic: string, partition: number, epoch: number, firstOffset: string, lastOffset: string, records: number): { ticket: Ticket; pause: boolean } | undefined {
    const t = this.#track(topic, partition);
    if (epoch !== t.epoch) return undefined;
    const slot: Slot = { commitOffset: (BigInt(lastOffset) + 1n).toString(), firstOffset, records, done: false };
    t.slots.push(slot);
    t.inFlight += records;
    let pause = false;
    if (t.inFlight > this.#maxInFlight && !t.paused) {
      t.paused = true;
      pause = true;
    }
    return { ticket: { topic, partition, epoch, slot }, pause };
  }

  /**
   * The ticket's work is durable. `commit` is the offset to commit when the durable prefix advanced;
   * `resume` is true when the partition may resume. Undefined when the ticket is stale.
   */
  durable(ticket: Ticket): { commit: string | undefined; resume: boolean } | undefined {
    const t = this.#track(ticket.topic, ticket.partition);
    if (ticket.epoch !== t.epoch) return undefined;
    ticket.slot.done = true;
    let commit: string | undefined;
    while (t.slots[0]?.done) {
      const head = t.slots.shift() as Slot;
      t.inFlight -= head.records;
      commit = head.commitOffset;
    }
    let resume = false;
    if (t.paused && t.inFlight <= this.#maxInFlight / 2) {
      t.paused = false;
      resume = true;
    }
    return { commit, resume };
  }

  /**
   * The ticket's work failed: everything from the partition's first non-durable slot on must be read
   * again (later slots are void). Returns that offset, and whether the partition was paused (resume it);
   * undefined when the ticket is stale.
   */
  failed(ticket: Ticket): { seekTo: string; resume: boolean } | undefined {
    const t = this.#track(ticket.topic, ticket.partition);
    if (ticket.epoch !== t.epoch) return undefined;
    const first = t.slots.find((s) => !s.done) ?? ticket.slot;
    const resume = t.paused;
    t.epoch++;
    t.slots = [];
    t.inFlight = 0;
    t.paused = false;
    return { seekTo: first.firstOffset, resume };
  }

  /** A rebalance: every partition restarts from its committed offset; all in-flight work is void. */
  reset(): void {
    for (const t of this.#parts.values()) {
      t.slots = [];
      t.inFlight = 0;
      t.paused = false;
      t.epoch++;
    }
  }

  /** Records accepted and not yet durable, over all partitions. */
  inFlight(): number {
    let n = 0;
    for (const t of this.#parts.values()) n += t.inFlight;
    return n;
  }

  /** Partitions paused for back-pressure right now. */
  paused(): TopicPartitions[] {
    const byTopic = new Map<string, number[]>();
    for (const [key, t] of this.#parts) {
      if (!t.paused) continue;
      const i = key.lastIndexOf(':');
      const topic = key.slice(0, i);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), Number(key.slice(i + 1))]);
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
  }

  /** Number of paused partitions. */
  pausedCount(): number {
    let n = 0;
    for (const t of this.#parts.values()) if (t.paused) n++;
    return n;
  }
}
