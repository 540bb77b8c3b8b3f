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
 */
import type { RelationChild, RelationParent } from './discoverers/relation.ts';
import type { RemoteParent } from './discoverers/remote-service-relation.ts';
import { rootCandidate, spanBefore, type RootCandidate, type RootSighting } from './discoverers/root-endpoint.ts';
import type { RootEndpointRow } from './records.ts';

/** Keeps a batch from being committed: every `hold()` needs a `release()`. */
export interface Hold {
  hold(): void;
  release(): void;
}

/** What a span brings as a parent (shared by all spans of one shape). */
export interface ParentFacts {
  bk_biz_id: number;
  app_name: string;
  relParent: RelationParent | undefined;
  remoteParent: RemoteParent | undefined;
}

/** What a span brings as a child (shared by all spans of one shape). */
export interface ChildFacts {
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
  /** When the bucket became the current one. */
  readonly createdAt: number;
  /** Span ids of the parents added while this bucket was current (the facts live in one map of the window). */
  readonly parents: string[];
  /** Trace ids moved into this bucket (an id whose trace has moved on since is skipped when dropping). */
  readonly traces: string[];
  /** Parent ids whose waiting list this bucket created (the lists live in one map of the window). */
  readonly waiting: string[];
  /** The holds of the batches that added entries to this bucket, released when it is dropped. */
  readonly holds: Hold[];
  lastHold: Hold | undefined;
}

interface Trace {
  candidate: RootCandidate;
  /** The bucket the trace lives in: the one current at its latest sighting. */
  bucket: Bucket;
}

interface Waiting {
  bucket: Bucket;
  children: { facts: ChildFacts; timeUs: number }[];
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
  /** Every parent, whichever bucket it was added in (one lookup per child). */
  readonly #parents = new Map<string, ParentFacts>();
  readonly #waiting = new Map<string, Waiting>();
  /** Every trace with a root candidate, whichever bucket it lives in (one lookup per sighting). */
  readonly #traces = new Map<string, Trace>();

  constructor(opts: WindowOptions, events: WindowEvents) {
    this.#opts = opts;
    this.#sliceMs = Math.max(1, Math.floor(opts.ttlMs / 2));
    this.#events = events;
  }

  /** Entries held right now (parents + waiting children + traces). */
  size(): number {
    return this.#parents.size + this.#waiting.size + this.#traces.size;
  }

  #current(now: number, hold: Hold): Bucket {
    let b = this.#buckets.at(-1);
    if (!b || now - b.createdAt >= this.#sliceMs) {
      b = { createdAt: now, parents: [], traces: [], waiting: [], holds: [], lastHold: undefined };
      this.#buckets.push(b);
    }
    if (b.lastHold !== hold) {
      hold.hold();
      b.holds.push(hold);
      b.lastHold = hold;
    }
    return b;
  }

  addParent(spanId: string, facts: ParentFacts, timeUs: number, hold: Hold, now: number): void {
    this.#current(now, hold).parents.push(spanId);
    this.#parents.set(spanId, facts);
    if (this.#waiting.size === 0) return;
    const w = this.#waiting.get(spanId);
    if (!w) return;
    this.#waiting.delete(spanId);
    for (const child of w.children) this.#events.pair(facts, child.facts, Math.max(timeUs, child.timeUs));
  }

  addChild(parentSpanId: string, facts: ChildFacts, timeUs: number, hold: Hold, now: number): void {
    const parent = this.#parents.get(parentSpanId);
    if (parent) {
      this.#events.pair(parent, facts, timeUs);
      return;
    }
    const w = this.#waiting.get(parentSpanId);
    if (w) {
      w.children.push({ facts, timeUs });
      return;
    }
    const bucket = this.#current(now, hold);
    bucket.waiting.push(parentSpanId);
    this.#waiting.set(parentSpanId, { bucket, children: [{ facts, timeUs }] });
  }

  /**
   * Offers a SERVER/PRODUCER span as its trace's root; a candidate object is made only when it is the
   * best so far (`span` is not kept, so callers may reuse one object).
   */
  addRootCandidate(span: RootSighting, row: RootEndpointRow, hold: Hold, now: number): void {
    const current = this.#current(now, hold);
    const traceId = span.trace_id;
    const trace = this.#traces.get(traceId);
    if (!trace) {
      this.#traces.set(traceId, { candidate: rootCandidate(span, row), bucket: current });
      current.traces.push(traceId);
      return;
    }
    if (spanBefore(span, trace.candidate)) trace.candidate = rootCandidate(span, row);
    if (trace.bucket !== current) {
      trace.bucket = current;
      current.traces.push(traceId);
    }
  }

  /** Drops buckets that have been quiet for the TTL, then evicts while over `maxItems`. */
  expire(now: number): void {
    while (this.#buckets.length > 0 && (this.#buckets[0] as Bucket).createdAt + this.#sliceMs + this.#opts.ttlMs <= now) {
      this.#drop(this.#buckets.shift() as Bucket, false);
    }
    while (this.#buckets.length > 0 && this.size() > this.#opts.maxItems) this.#drop(this.#buckets.shift() as Bucket, true);
  }

  /** Forgets everything without settling it (the partition will be read again). */
  clear(): void {
    this.#buckets = [];
    this.#parents.clear();
    this.#waiting.clear();
    this.#traces.clear();
  }

  #drop(b: Bucket, evicted: boolean): void {
    const e = this.#events;
    // A span id added again later (a duplicate delivery) leaves with its first bucket: harmless, the
    // parent is only forgotten a little earlier.
    let parents = 0;
    for (const id of b.parents) if (this.#parents.delete(id)) parents++;
    if (evicted && parents > 0) e.dropped('parent_evicted', parents);
    let children = 0;
    for (const id of b.waiting) {
      const w = this.#waiting.get(id);
      if (w?.bucket !== b) continue;
      children += w.children.length;
      this.#waiting.delete(id);
    }
    if (children > 0) e.dropped(evicted ? 'child_evicted' : 'child_unpaired', children);
    let traces = 0;
    for (const id of b.traces) {
      const trace = this.#traces.get(id);
      if (trace?.bucket !== b) continue;
      this.#traces.delete(id);
      traces++;
      e.root(trace.candidate);
    }
    if (evicted && traces > 0) e.dropped('trace_evicted', traces);
    for (const h of b.holds) h.release();
  }
}
