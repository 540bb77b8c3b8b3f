/**
 * The per-partition window where spans that need another span meet: a CLIENT/PRODUCER span and the
 * SERVER/CONSUMER spans it is the parent of (relations), a span and its child that has `peer.service`
 * (remote-service relations), and all the spans of a trace (root endpoint). Spans of a trace share a
 * partition (the topic is keyed by trace id), so a window per partition sees every pair.
 *
 * Like the OpenTelemetry service-graph store, the window is bounded by a TTL (from the last update) and a
 * maximum number of entries; children that never meet their parent and entries pushed out by the bound
 * are counted. Every entry holds the {@link Hold} of the batch that created it, so that batch's offsets
 * are committed only once the entry is settled (paired, expired or evicted) and flushed: a crash never
 * loses a span that is still waiting for its partner.
 *
 * Span and trace ids are keyed by two 32-bit hash lanes of their bytes (hash.ts; a false match needs a
 * 64-bit collision among the ids live in one partition's window), in {@link IdTable}s that allocate
 * nothing per entry.
 */
import type { RelationChild, RelationParent } from './discoverers/relation.ts';
import type { RemoteParent } from './discoverers/remote-service-relation.ts';
import { replaceCandidate, rootCandidate, spanBefore, type RootCandidate, type RootSighting } from './discoverers/root-endpoint.ts';
import { IdTable } from './id-table.ts';
import type { RootEndpointRow } from './records.ts';

/** Keeps a batch from being committed: every `hold()` needs a `release()`. */
export interface Hold {
  hold(): void;
  release(): void;
}

/** What a span brings as a parent (shared by all spans of one shape). */
export interface ParentFacts {
  /** Tells facts objects apart (a positive integer, unique per object). */
  serial: number;
  bk_biz_id: number;
  app_name: string;
  relParent: RelationParent | undefined;
  remoteParent: RemoteParent | undefined;
}

/** What a span brings as a child (shared by all spans of one shape). */
export interface ChildFacts {
  /** Tells facts objects apart (a positive integer, unique per object). */
  serial: number;
  bk_biz_id: number;
  app_name: string;
  relChild: RelationChild | undefined;
  /** The remote-service node of a child with `peer.service`. */
  remoteChild: string | undefined;
}

export type DropReason = 'parent_evicted' | 'child_unpaired' | 'child_evicted' | 'trace_evicted';

export interface WindowEvents {
  /** A parent and a child met; `timeUs` is the event time of the later of the two to arrive. */
  pair(parent: ParentFacts, child: ChildFacts, timeUs: number): void;
  /** A trace went quiet (or was evicted): its root candidate is final. */
  root(candidate: RootCandidate): void;
  dropped(reason: DropReason, count: number): void;
}

export interface WindowOptions {
  ttlMs: number;
  maxItems: number;
}

interface Bucket {
  /** Stamps the table entries this bucket owns (entries of dropped buckets are dead). */
  readonly serial: number;
  /** When the bucket became the current one. */
  readonly createdAt: number;
  /** Parents added while this bucket was current. */
  parents: number;
  /** Waiting lists this bucket created and that are still waiting, and the children in them. */
  waiting: number;
  waitingChildren: number;
  /** Traces whose latest sighting fell in this bucket. */
  traces: number;
  /** The waiting children of the lists this bucket created, as linked lists (`next` -1 ends one). */
  readonly childFacts: ChildFacts[];
  readonly childTime: number[];
  readonly childNext: number[];
  /** The holds of the batches that added entries to this bucket, released when it is dropped. */
  readonly holds: Hold[];
  lastHold: Hold | undefined;
}

/**
 * Entries live in time buckets: new entries (and refreshed traces) go into the current bucket, a new
 * bucket starts every half TTL, and a bucket is dropped — its traces' root candidates emitted, its
 * waiting children counted as unpaired, its batches' holds released — once it is a TTL older than its
 * last possible entry. When the window holds more than `maxItems` entries the oldest bucket is dropped
 * early (evicted). A bucket takes one hold per batch, whatever the number of entries.
 */
export class PartitionWindow {
  readonly #opts: WindowOptions;
  readonly #sliceMs: number;
  readonly #events: WindowEvents;
  #buckets: Bucket[] = [];
  #nextSerial = 1;
  /** Every parent (span id → facts), stamped with the bucket it was last added in. */
  readonly #parents = new IdTable<ParentFacts>();
  /** Children waiting for a parent (parent span id → head of the list in the stamping bucket). */
  readonly #waiting = new IdTable<number>();
  /** Every trace with a root candidate (trace id → best candidate), stamped with its latest bucket. */
  readonly #traces = new IdTable<RootCandidate>();
  #parentCount = 0;
  #waitingCount = 0;
  #traceCount = 0;

  constructor(opts: WindowOptions, events: WindowEvents) {
    this.#opts = opts;
    this.#sliceMs = Math.max(1, Math.floor(opts.ttlMs / 2));
    this.#events = events;
  }

  /** Entries held right now (parents + waiting lists + traces; a parent added twice counts twice). */
  size(): number {
    return this.#parentCount + this.#waitingCount + this.#traceCount;
  }

  /** The stamp of the oldest live bucket: entries stamped before it are gone. */
  #minStamp(): number {
    return this.#buckets[0]?.serial ?? this.#nextSerial;
  }

  #bucket(serial: number): Bucket {
    return this.#buckets[serial - this.#minStamp()] as Bucket;
  }

  #current(now: number, hold: Hold): Bucket {
    let b = this.#buckets.at(-1);
    if (!b || now - b.createdAt >= this.#sliceMs) {
      b = { serial: this.#nextSerial++, createdAt: now, parents: 0, waiting: 0, waitingChildren: 0, traces: 0, childFacts: [], childTime: [], childNext: [], holds: [], lastHold: undefined };
      this.#buckets.push(b);
    }
    if (b.lastHold !== hold) {
      hold.hold();
      b.holds.push(hold);
      b.lastHold = hold;
    }
    return b;
  }

  /** A parent span, by the two hash lanes of its span id. */
  addParent(idA: number, idB: number, facts: ParentFacts, timeUs: number, hold: Hold, now: number): void {
    const current = this.#current(now, hold);
    const minStamp = this.#minStamp();
    this.#parents.set(idA, idB, facts, current.serial, minStamp);
    current.parents++;
    this.#parentCount++;
    if (this.#waitingCount === 0) return;
    const slot = this.#waiting.find(idA, idB, minStamp);
    if (slot < 0) return;
    const owner = this.#bucket(this.#waiting.stampAt(slot));
    let children = 0;
    for (let n = this.#waiting.valueAt(slot); n >= 0; n = owner.childNext[n] as number) {
      this.#events.pair(facts, owner.childFacts[n] as ChildFacts, Math.max(timeUs, owner.childTime[n] as number));
      children++;
    }
    this.#waiting.remove(slot);
    owner.waiting--;
    owner.waitingChildren -= children;
    this.#waitingCount--;
  }

  /** A child span, by the two hash lanes of its parent's span id. */
  addChild(parentA: number, parentB: number, facts: ChildFacts, timeUs: number, hold: Hold, now: number): void {
    const minStamp = this.#minStamp();
    const parent = this.#parents.get(parentA, parentB, minStamp);
    if (parent) {
      this.#events.pair(parent, facts, timeUs);
      return;
    }
    const slot = this.#waiting.find(parentA, parentB, minStamp);
    if (slot >= 0) {
      // The list stays with the bucket that created it (whose hold covers the first child; later
      // children's batches commit after it anyway, offsets being committed in order).
      const owner = this.#bucket(this.#waiting.stampAt(slot));
      this.#waiting.setValueAt(slot, this.#push(owner, facts, timeUs, this.#waiting.valueAt(slot)));
      owner.waitingChildren++;
      return;
    }
    const current = this.#current(now, hold);
    this.#waiting.set(parentA, parentB, this.#push(current, facts, timeUs, -1), current.serial, this.#minStamp());
    current.waiting++;
    current.waitingChildren++;
    this.#waitingCount++;
  }

  #push(b: Bucket, facts: ChildFacts, timeUs: number, next: number): number {
    b.childFacts.push(facts);
    b.childTime.push(timeUs);
    return b.childNext.push(next) - 1;
  }

  /**
   * Offers a SERVER/PRODUCER span as its trace's root (the trace by the two hash lanes of its id); a
   * candidate object is made only when it is the best so far (`span` is not kept, so callers may reuse
   * one object). `source` names what made `row` (RootCandidate `source`).
   */
  addRootCandidate(traceA: number, traceB: number, span: RootSighting, row: RootEndpointRow, source: number, hold: Hold, now: number): void {
    const current = this.#current(now, hold);
    const minStamp = this.#minStamp();
    const slot = this.#traces.find(traceA, traceB, minStamp);
    if (slot < 0) {
      this.#traces.set(traceA, traceB, rootCandidate(span, row, source), current.serial, minStamp);
      current.traces++;
      this.#traceCount++;
      return;
    }
    const candidate = this.#traces.valueAt(slot);
    if (spanBefore(span, candidate)) replaceCandidate(candidate, span, row, source);
    const stamp = this.#traces.stampAt(slot);
    if (stamp !== current.serial) {
      this.#bucket(stamp).traces--;
      current.traces++;
      this.#traces.setStampAt(slot, current.serial);
    }
  }

  /** Drops buckets that have been quiet for the TTL, then evicts while over `maxItems`. */
  expire(now: number): void {
    while (this.#buckets.length > 0 && (this.#buckets[0] as Bucket).createdAt + this.#sliceMs + this.#opts.ttlMs <= now) {
      this.#drop(false);
    }
    while (this.#buckets.length > 0 && this.size() > this.#opts.maxItems) this.#drop(true);
  }

  /** Forgets everything without settling it (the partition will be read again). */
  clear(): void {
    this.#buckets = [];
    this.#parents.clear();
    this.#waiting.clear();
    this.#traces.clear();
    this.#parentCount = 0;
    this.#waitingCount = 0;
    this.#traceCount = 0;
  }

  /** Drops the oldest bucket: its entries die with it (their stamps fall below the oldest live one). */
  #drop(evicted: boolean): void {
    const b = this.#buckets.shift() as Bucket;
    const e = this.#events;
    // A span id added again in a later bucket lives on with that bucket (it is counted in both).
    this.#parentCount -= b.parents;
    if (evicted && b.parents > 0) e.dropped('parent_evicted', b.parents);
    this.#waitingCount -= b.waiting;
    if (b.waitingChildren > 0) e.dropped(evicted ? 'child_evicted' : 'child_unpaired', b.waitingChildren);
    if (b.traces > 0) {
      this.#traceCount -= b.traces;
      this.#traces.drain(b.serial, (candidate) => e.root(candidate));
      if (evicted) e.dropped('trace_evicted', b.traces);
    }
    for (const h of b.holds) h.release();
  }
}
