/**
 * The streaming core: the batch handler of the span consumers.
 *
 * For each consumed batch: load what its apps need (lookups), classify each span once, run the
 * per-span discoverers into the dedupe sink, put the spans that need a partner into the partition's
 * window, and return `{ durable }` — the batch's ticket, which resolves once the batch's window entries
 * are settled and the flush covering its rows has completed. The bus commits offsets only then.
 *
 * Partition state is dropped on revoke. After a rebalance the bus reads every partition again from its
 * last commit; where this member kept a partition, the records it had already processed in its current
 * reading are skipped, and the new batch's ticket waits for the tickets of that first reading (its rows,
 * window entries and flush are still under way, whatever the bus forgot). A partition read again from
 * before its current reading, or after a batch failed, drops its window and is processed anew.
 */
import type { Batch, HandleResult, TopicPartitions } from '../common/bus/index.ts';
import type { Logger } from '../common/log.ts';
import { retry } from '../common/retry.ts';
import { classify } from './classify.ts';
import type { NodeKinds } from './dedupe.ts';
import { discoverEndpoint } from './discoverers/endpoint.ts';
import { discoverHost, type CmdbHost, type CmdbLookup } from './discoverers/host.ts';
import { discoverInstance } from './discoverers/instance.ts';
import { discoverNode } from './discoverers/node.ts';
import { discoverSingleSpanRelation, pairRelation, type NodeKindLookup } from './discoverers/relation.ts';
import { pairRemote } from './discoverers/remote-service-relation.ts';
import { emitRoot, type RootSighting } from './discoverers/root-endpoint.ts';
import type { Flusher, Ticket } from './flusher.ts';
import { Hasher } from './hash.ts';
import { SEP, type Sink } from './records.ts';
import type { RuleSet } from './rules.ts';
import { BoundedIdMap } from './id-table.ts';
import { hashShape, ResourceMemo, ShapeCache, shapeFacts, shapeSpan } from './shape.ts';
import { Slot, type SpanView } from './span-view.ts';
import { PartitionWindow, type ChildFacts, type DropReason, type ParentFacts, type WindowEvents, type WindowOptions } from './window.ts';

export interface PipelineStats {
  spans: number;
  /** Spans read again after a rebalance that this member had processed already (skipped). */
  reread: number;
  /** Spans whose shape was not cached (the discoverers ran for them). */
  shapeMisses: number;
  paired: number;
  dropped: Record<DropReason, number>;
}

/** What the pipeline reads of the lookups (lookups.ts's {@link Lookups} in production). */
export interface PipelineLookups extends CmdbLookup, NodeKindLookup {
  /** Loads what the given apps need; undefined when nothing has to be waited for. */
  ensure(apps: Iterable<readonly [number, string]>): Promise<void> | undefined;
  /** The rule set of an app that {@link ensure} loaded. */
  rules(bkBizId: number, appName: string): RuleSet;
  /** Changes whenever the host map of some business changes. */
  readonly cmdbVersion: number;
}

export interface PipelineOptions {
  lookups: PipelineLookups;
  /** Where the discoverers emit (the dedupe sink in production). */
  sink: Sink;
  nodeKinds: NodeKinds;
  /** Tickets for batches, and a hint that rows were queued (the flusher in production). */
  flusher: Pick<Flusher, 'ticket' | 'nudge'>;
  window: WindowOptions;
  /** See {@link DedupeOptions.touchIntervalMs}. */
  touchIntervalMs: number;
  /** Entries of the span-shape cache. */
  maxShapes: number;
  /** Batches accepted but not yet processed before the handler waits (back-pressure). */
  maxQueuedBatches: number;
  logger: Logger;
  now?: () => number;
}

/** What a memo entry is about (the low bits of its second lane). */
const MEMO_RELATION = 1;
const MEMO_REMOTE = 2;
const MEMO_ROOT = 3;

/** A batch of a partition's current reading whose ticket is not done yet. */
interface Unsettled {
  first: bigint;
  last: bigint;
  done: Promise<void>;
  settled: boolean;
}

interface PartitionState {
  window: PartitionWindow;
  /** The offset after the last record handled; a batch starting before it is a re-read. */
  next: bigint | undefined;
  /** Where the current reading began: every record from here to `next` was processed in it (undefined after a failure). */
  from: bigint | undefined;
  /** The current reading's batches whose work is not durable yet, in offset order. */
  unsettled: Unsettled[];
}

export class SpanPipeline {
  readonly #opts: PipelineOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #partitions = new Map<string, PartitionState>();
  readonly #events: WindowEvents;
  #stats: PipelineStats = SpanPipeline.#zero();
  #processed = 0;
  readonly #shapes: ShapeCache;
  /**
   * Pairs and roots emitted lately (event time, s), keyed by the serials of the facts they came from:
   * equal shapes share facts, so a pair of shapes met again within the touch interval emits nothing.
   */
  readonly #memo: BoundedIdMap<number>;
  #queue: { batch: Batch<SpanView>; ticket: Ticket }[] = [];
  readonly #room: (() => void)[] = [];
  #draining: Promise<void> | undefined;
  #memoVersion = -1;
  readonly #touchS: number;
  readonly #reads: LookupReads;
  /** The root sighting handed to the window (reused: the window copies what it keeps). */
  readonly #sighting = new Sighting();
  /** Hashes shape keys and span/trace ids (reused for every span; its lanes are an id's key). */
  readonly #hash = new Hasher();
  /** The hash of the resource map last seen (consecutive spans of an SDK batch share it). */
  readonly #resources = new ResourceMemo();

  constructor(options: PipelineOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'discovery.pipeline' });
    this.#now = options.now ?? Date.now;
    this.#shapes = new ShapeCache(options.maxShapes);
    this.#memo = new BoundedIdMap<number>(options.maxShapes);
    this.#reads = new LookupReads(options.lookups, options.nodeKinds);
    this.#touchS = Math.floor(options.touchIntervalMs / 1000);
    const { sink } = options;
    this.#events = {
      pair: (parent, child, timeUs) => this.#pair(parent, child, timeUs),
      root: (candidate) => {
        if (candidate.source === 0 || !this.#recent(candidate.source, MEMO_ROOT, candidate.timeUs)) emitRoot(candidate, sink);
      },
      dropped: (reason, count) => {
        this.#stats.dropped[reason] += count;
      },
    };
  }

  static #zero(): PipelineStats {
    return { spans: 0, reread: 0, shapeMisses: 0, paired: 0, dropped: { parent_evicted: 0, child_unpaired: 0, child_evicted: 0, trace_evicted: 0 } };
  }

  /** Counts since the previous call. */
  stats(): PipelineStats {
    const s = this.#stats;
    this.#stats = SpanPipeline.#zero();
    return s;
  }

  /** Spans processed since start (never reset). */
  processedSpans(): number {
    return this.#processed;
  }

  /** The offset after the last record handled, per partition this member holds (`topic:partition` → offset). */
  positions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, p] of this.#partitions) if (p.next !== undefined) out[key] = p.next.toString();
    return out;
  }

  /** Entries in all partition windows. */
  windowItems(): number {
    let n = 0;
    for (const p of this.#partitions.values()) n += p.window.size();
    return n;
  }

  /**
   * The bus handler: queues the batch and returns at once with its durability promise, so kafkajs
   * fetches the next batches while this one is processed (kafkajs issues the next fetch only once every
   * handler of the previous one returned). At most `maxQueuedBatches` wait; beyond that the handler waits
   * for room, which stops fetching (back-pressure).
   */
  handle = async (batch: Batch<SpanView>): Promise<HandleResult> => {
    while (this.#queue.length >= this.#opts.maxQueuedBatches) await new Promise<void>((resolve) => this.#room.push(resolve));
    const ticket = this.#opts.flusher.ticket();
    this.#queue.push({ batch, ticket });
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
    return { durable: ticket.done };
  };

  /** Processes queued batches in order, yielding to I/O between them. */
  async #drain(): Promise<void> {
    for (;;) {
      const item = this.#queue.shift();
      if (!item) return;
      this.#room.shift()?.();
      const { batch, ticket } = item;
      const views = batch.records.map((r) => r.value);
      try {
        const apps = distinctApps(views);
        // Lookups load from the store; retried with backoff so an outage is not a tight re-read loop.
        await retry(async () => this.#opts.lookups.ensure(apps), { retries: 5, maxDelayMs: 5_000 });
        if (!batch.isStale()) this.#processBatch(batch, views, ticket);
        ticket.release();
      } catch (err) {
        this.#log.error('batch processing failed; the partition will be read again', { topic: batch.topic, partition: batch.partition, err });
        // The bus reads the partition again from this batch, which was not processed: nothing may be skipped.
        const state = this.#partitions.get(`${batch.topic}:${batch.partition}`);
        if (state) state.from = undefined;
        ticket.fail(err);
      } finally {
        // Nothing reads a batch's views after this (the window keeps facts and hash lanes, not views).
        for (const v of views) v.release();
      }
      this.#opts.flusher.nudge();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #processBatch(batch: Batch<SpanView>, views: readonly SpanView[], ticket: Ticket): void {
    const state = this.#state(batch.topic, batch.partition);
    const { records } = batch;
    const last = BigInt(batch.lastOffset);
    const first = records[0] ? BigInt(records[0].offset) : undefined;
    let skip = 0;
    if (first !== undefined && state.next !== undefined && first < state.next && state.from !== undefined && first >= state.from) {
      // Read again (the partition stayed here across a rebalance): the records before `next` were
      // processed in this reading; their work becomes durable with that reading's tickets.
      const next = state.next;
      while (skip < records.length && BigInt((records[skip] as (typeof records)[number]).offset) < next) {
        this.#stats.reread += (views[skip] as SpanView).count;
        skip++;
      }
      this.#awaitFirstReading(state, first, BigInt((records[skip - 1] as (typeof records)[number]).offset), ticket);
    } else if (first !== undefined && (state.next === undefined || first !== state.next)) {
      if (state.next !== undefined && first < state.next) {
        this.#log.debug('partition read again from before its current reading; its window is reset', { topic: batch.topic, partition: batch.partition, offset: String(first) });
        state.window.clear();
      }
      state.from = first;
      state.unsettled = [];
    }
    if (state.next === undefined || last + 1n > state.next) state.next = last + 1n;
    if (skip < records.length) {
      this.process(skip === 0 ? views : views.slice(skip), state.window, ticket);
      this.#unsettled(state, BigInt((records[skip] as (typeof records)[number]).offset), last, ticket);
    }
    state.window.expire(this.#now());
  }

  /** Notes a batch of the current reading until its ticket is done (dropping those done before it). */
  #unsettled(state: PartitionState, first: bigint, last: bigint, ticket: Ticket): void {
    const list = state.unsettled;
    while (list[0]?.settled) list.shift();
    const entry: Unsettled = { first, last, done: ticket.done, settled: false };
    const settle = (): void => {
      entry.settled = true;
    };
    ticket.done.then(settle, settle);
    list.push(entry);
  }

  /** Holds `ticket` until every batch of the current reading overlapping [from, to] is durable. */
  #awaitFirstReading(state: PartitionState, from: bigint, to: bigint, ticket: Ticket): void {
    const waits: Promise<void>[] = [];
    for (const u of state.unsettled) {
      if (u.first > to) break;
      if (!u.settled && u.last >= from) waits.push(u.done);
    }
    if (waits.length === 0) return;
    ticket.hold();
    Promise.all(waits).then(
      () => ticket.release(),
      (err: unknown) => ticket.fail(err),
    );
  }

  /** Waits until every queued batch has been processed. */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /**
   * Runs the discoverers over the spans whose shape was not processed within the touch interval, and
   * feeds every span's pairing facts to the window. Only those spans are decoded into objects; the rest
   * is read from the views' offsets. Synchronous.
   */
  process(views: readonly SpanView[], window: PartitionWindow, ticket: Ticket): void {
    const { lookups, sink, nodeKinds } = this.#opts;
    const touchS = this.#touchS;
    const shapes = this.#shapes;
    const now = this.#now();
    const reads = this.#reads;
    const root = this.#sighting;
    const h = this.#hash;
    const resources = this.#resources;
    let lastBiz = NaN;
    let lastApp = '';
    let rules: RuleSet | undefined;
    let count = 0;
    for (const view of views) {
      const apps = view.apps;
      for (let i = 0; i < view.count; i++) {
        const biz = view.at(i, Slot.BIZ);
        const app = apps[i] as string;
        if (biz !== lastBiz || app !== lastApp || !rules) {
          lastBiz = biz;
          lastApp = app;
          rules = lookups.rules(biz, app);
        }
        hashShape(view, i, rules, h, resources);
        // Lanes are handed on shifted to 31 bits: small integers V8 passes and stores without boxing.
        const keyA = h.a >> 1;
        const keyB = h.b >> 1;
        const endTime = view.at(i, Slot.END_TIME);
        const seconds = Math.floor(endTime / 1_000_000);
        let shape = shapes.get(keyA, keyB);
        if (
          !shape ||
          seconds > shape.seenS + touchS ||
          (shape.cmdbVersion !== -1 && shape.cmdbVersion !== lookups.cmdbVersion) ||
          (shape.kindsVersion !== -1 && shape.kindsVersion !== nodeKinds.version)
        ) {
          const c = classify(shapeSpan(view, i, rules), rules);
          reads.reset();
          discoverEndpoint(c, sink);
          discoverHost(c, reads, sink);
          discoverInstance(c, sink);
          discoverNode(c, sink);
          discoverSingleSpanRelation(c, reads, sink);
          shape = shapeFacts(c, shape ? Math.max(shape.seenS, seconds) : seconds, reads);
          shapes.set(keyA, keyB, shape);
          this.#stats.shapeMisses++;
        }

        // Ids go to the window as hash lanes of their bytes: no string is made for them.
        if (shape.relParent || shape.remoteParent) {
          view.hashId(i, Slot.SPAN_AT, h);
          window.addParent(h.a >> 1, h.b >> 1, shape, endTime, ticket, now);
        }
        if (view.at(i, Slot.PARENT_LEN) !== 0 && (shape.relChild || shape.remoteChild !== undefined)) {
          view.hashId(i, Slot.PARENT_AT, h);
          window.addChild(h.a >> 1, h.b >> 1, shape, endTime, ticket, now);
        }
        if (shape.root) {
          root.bk_biz_id = biz;
          root.app_name = app;
          root.view = view;
          root.index = i;
          root.start_time = view.at(i, Slot.START_TIME);
          root.elapsed_time = view.at(i, Slot.ELAPSED);
          root.end_time = endTime;
          view.hashId(i, Slot.TRACE_AT, h);
          window.addRootCandidate(h.a >> 1, h.b >> 1, root, shape.root, shape.serial, ticket, now);
        }
      }
      count += view.count;
    }
    this.#stats.spans += count;
    this.#processed += count;
  }

  /**
   * Whether a pair (of the facts with serials `first` and `second`, of kind `what`) or a root (of the
   * facts `first`) was emitted within the touch interval (facts belong to shapes, so equal shapes share
   * them). Cleared when node kinds change, as pairing reads them. Allocates nothing.
   */
  #recent(first: number, what: number, timeUs: number, second = 0): boolean {
    const memo = this.#memo;
    if (this.#memoVersion !== this.#opts.nodeKinds.version) {
      this.#memoVersion = this.#opts.nodeKinds.version;
      memo.clear();
    }
    // Serials are unique per facts object; lanes wrap at 30 bits (entries that far apart never coexist).
    const a = first & 0x3fffffff;
    const b = (second * 4 + what) & 0x3fffffff;
    const seconds = Math.floor(timeUs / 1_000_000);
    const seen = memo.get(a, b);
    if (seen !== undefined && seconds <= seen + this.#touchS) return true;
    memo.set(a, b, seen === undefined ? seconds : Math.max(seen, seconds));
    return false;
  }

  #pair(parent: ParentFacts, child: ChildFacts, timeUs: number): void {
    const { sink, lookups } = this.#opts;
    const biz = child.bk_biz_id;
    const app = child.app_name;
    if (parent.relParent && child.relChild) {
      this.#stats.paired++;
      if (!this.#recent(parent.serial, MEMO_RELATION, timeUs, child.serial)) sink.emit('relation', biz, app, pairRelation(parent.relParent, child.relChild, lookups, biz, app), timeUs);
    }
    if (parent.remoteParent && child.remoteChild !== undefined) {
      this.#stats.paired++;
      if (!this.#recent(parent.serial, MEMO_REMOTE, timeUs, child.serial)) sink.emit('remote_service_relation', biz, app, pairRemote(parent.remoteParent, child.remoteChild), timeUs);
    }
  }

  #state(topic: string, partition: number): PartitionState {
    const key = `${topic}:${partition}`;
    let s = this.#partitions.get(key);
    if (!s) this.#partitions.set(key, (s = { window: new PartitionWindow(this.#opts.window, this.#events), next: undefined, from: undefined, unsettled: [] }));
    return s;
  }

  /** Settles window entries that have been quiet for the TTL. */
  expire(): void {
    const now = this.#now();
    for (const p of this.#partitions.values()) p.window.expire(now);
  }

  /** Forgets the state of partitions this member lost. */
  revoke(partitions: readonly TopicPartitions[]): void {
    for (const { topic, partitions: ps } of partitions) for (const p of ps) this.#partitions.delete(`${topic}:${p}`);
  }
}

/**
 * The lookups as the discoverers see them, noting which of them a span's discovery read (and at which
 * version), so its shape can be voided when exactly those change.
 */
class LookupReads implements CmdbLookup, NodeKindLookup {
  readonly #lookups: PipelineLookups;
  readonly #nodeKinds: NodeKinds;
  cmdbVersion = -1;
  kindsVersion = -1;

  constructor(lookups: PipelineLookups, nodeKinds: NodeKinds) {
    this.#lookups = lookups;
    this.#nodeKinds = nodeKinds;
  }

  reset(): void {
    this.cmdbVersion = -1;
    this.kindsVersion = -1;
  }

  host(bkBizId: number, ip: string): CmdbHost | undefined {
    this.cmdbVersion = this.#lookups.cmdbVersion;
    return this.#lookups.host(bkBizId, ip);
  }

  nodeKind(bkBizId: number, appName: string, topoKey: string): { kind: string; category: string } | undefined {
    this.kindsVersion = this.#nodeKinds.version;
    return this.#lookups.nodeKind(bkBizId, appName, topoKey);
  }
}

/**
 * The root sighting handed to the window: one object, reused for every span. Its span id, which the
 * window reads only for a new best candidate or a tie, is made from the view when read.
 */
class Sighting implements RootSighting {
  bk_biz_id = 0;
  app_name = '';
  start_time = 0;
  elapsed_time = 0;
  end_time = 0;
  view: SpanView | undefined;
  index = 0;

  get span_id(): string {
    return this.view ? this.view.latin1(this.index, Slot.SPAN_AT) : '';
  }
}

/** The distinct (biz, app) pairs of the spans of some views (consecutive spans are usually of one app). */
export function distinctApps(views: readonly SpanView[]): [number, string][] {
  const seen = new Map<string, [number, string]>();
  let lastBiz = NaN;
  let lastApp = '';
  for (const view of views) {
    for (let i = 0; i < view.count; i++) {
      const biz = view.at(i, Slot.BIZ);
      const app = view.apps[i] as string;
      if (biz === lastBiz && app === lastApp) continue;
      lastBiz = biz;
      lastApp = app;
      const key = biz + SEP + app;
      if (!seen.has(key)) seen.set(key, [biz, app]);
    }
  }
  return [...seen.values()];
}
