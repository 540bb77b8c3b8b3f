/**
 * The sampling stage (README: How it works): SpanBatch records of `spans` in, the kept spans out to
 * `spans.sampled`. Each partition of the input has its own state (a trace meets on one partition), one
 * {@link TraceTable} per application with a policy; spans of applications without a running
 * tail-sampling flow are not forwarded. The kept spans of a batch are written as SpanBatch records, one
 * or more per output partition (chosen by trace id, as the collector partitions `spans`), and the batch
 * is durable when Kafka acknowledged them: the consumer commits its offsets only then.
 */
import type { Batch, HandleResult, OutMessage, TopicPartitions } from '../common/bus/index.ts';
import { partitionOf } from '../common/murmur2.ts';
import type { PolicyEntry } from './policies.ts';
import { TraceTable, type Emitted, type Outcome, type StateBudget } from './sampler.ts';
import type { SampledBatchWriter, SpanBatchView } from './span-batch.ts';

/** Why spans were not offered to a sampler. */
export type Skipped = 'unconfigured' | 'config_invalid';

export interface StageCounts {
  outcomes: Record<Outcome, number>;
  skipped: Record<Skipped, number>;
  /** Spans written to spans.sampled, and the records holding them. */
  spansOut: number;
  recordsOut: number;
  /** Buffered spans dropped with a revoked partition's or an unconfigured application's state. */
  droppedWithState: number;
  /** Buffered spans that reached their TTL without a match. */
  expired: number;
}

export interface StageOptions {
  policies: { get(bkBizId: number, appName: string): PolicyEntry | undefined };
  budget: StateBudget;
  writer: SampledBatchWriter;
  /** Partitions of spans.sampled. */
  outputPartitions: number;
  /** Sends to spans.sampled; resolves when Kafka acknowledged. */
  send: (messages: OutMessage[]) => Promise<void>;
  /** The processing clock, ms. Default Date.now. */
  now?: () => number;
}

interface OutputGroup {
  spans: Buffer[];
  keys: string[];
}

const copy = (b: Buffer): Buffer => Buffer.from(b);

export class SamplerStage {
  readonly counts: StageCounts = {
    outcomes: { sampled: 0, marked: 0, matched: 0, buffered: 0, timeout: 0, max_spans: 0, rejected: 0 },
    skipped: { unconfigured: 0, config_invalid: 0 },
    spansOut: 0,
    recordsOut: 0,
    droppedWithState: 0,
    expired: 0,
  };
  readonly #o: StageOptions;
  readonly #now: () => number;
  /** Input partition → bk_biz_id → app_name → table. */
  readonly #state = new Map<number, Map<number, Map<string, TraceTable<Buffer>>>>();
  // Where emitted spans of the span being decided go (one emit function, no closure per span).
  #groups = new Map<number, OutputGroup>();
  #outPartition = 0;
  #traceId = '';
  readonly #emit = (e: Emitted<Buffer>): void => {
    let g = this.#groups.get(this.#outPartition);
    if (!g) this.#groups.set(this.#outPartition, (g = { spans: [], keys: [] }));
    g.spans.push(e.payload);
    g.keys.push(this.#traceId);
  };

  constructor(options: StageOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** The consumer's handler. */
  readonly handle = async (batch: Batch<SpanBatchView>): Promise<HandleResult> => {
    const now = this.#now();
    this.#groups = new Map();
    const { outcomes, skipped } = this.counts;
    for (const record of batch.records) {
      const view = record.value;
      let table: TraceTable<Buffer> | Skipped = 'unconfigured';
      for (let i = 0; i < view.count; i++) {
        if (i === 0 || !view.sameApp(i, i - 1)) table = this.#tableFor(batch.partition, view.bizId(i), view.appName(i));
        if (typeof table === 'string') {
          skipped[table]++;
          continue;
        }
        const [from, to] = view.traceIdRange(i);
        this.#outPartition = partitionOf(view.buf, this.#o.outputPartitions, from, to);
        this.#traceId = view.traceId(i);
        const bytes = view.bytes(i);
        const outcome = table.offer(
          { traceId: this.#traceId, spanId: view.spanId(i), time: record.timestamp, payload: bytes, bytes: bytes.length, document: () => view.document(i) },
          now,
          this.#emit,
        );
        outcomes[outcome]++;
      }
    }
    const messages: OutMessage[] = [];
    for (const [partition, g] of this.#groups) {
      this.counts.spansOut += g.spans.length;
      this.#o.writer.write(g.spans, (value, first) => messages.push({ key: g.keys[first] ?? null, value, partition }));
    }
    this.#groups = new Map();
    if (messages.length === 0) return undefined;
    this.counts.recordsOut += messages.length;
    return { durable: this.#o.send(messages) };
  };

  #tableFor(partition: number, bkBizId: number, appName: string): TraceTable<Buffer> | Skipped {
    const entry = this.#o.policies.get(bkBizId, appName);
    let apps = this.#state.get(partition);
    const existing = apps?.get(bkBizId)?.get(appName);
    if (!entry?.policy) {
      if (existing) this.#drop(partition, bkBizId, appName, existing);
      return entry ? 'config_invalid' : 'unconfigured';
    }
    if (existing) {
      if (existing.policy !== entry.policy) existing.setPolicy(entry.policy);
      return existing;
    }
    const table = new TraceTable<Buffer>(entry.policy, this.#o.budget, { retain: copy });
    if (!apps) this.#state.set(partition, (apps = new Map<number, Map<string, TraceTable<Buffer>>>()));
    let byName = apps.get(bkBizId);
    if (!byName) apps.set(bkBizId, (byName = new Map<string, TraceTable<Buffer>>()));
    byName.set(appName, table);
    return table;
  }

  #drop(partition: number, bkBizId: number, appName: string, table: TraceTable<Buffer>): void {
    this.counts.droppedWithState += table.clear();
    const apps = this.#state.get(partition);
    const byName = apps?.get(bkBizId);
    byName?.delete(appName);
    if (byName?.size === 0) apps?.delete(bkBizId);
    if (apps?.size === 0) this.#state.delete(partition);
  }

  /** A rebalance took these partitions away: their state goes (the new owner starts them afresh). */
  revoke(partitions: readonly TopicPartitions[]): void {
    for (const { partitions: ps } of partitions) {
      for (const p of ps) {
        for (const [biz, byName] of this.#state.get(p) ?? []) {
          for (const [app, table] of byName) this.#drop(p, biz, app, table);
        }
      }
    }
  }

  /**
   * Frees state past its TTLs, and the state of applications whose policy is gone or now invalid;
   * empty tables are dropped.
   */
  expire(now = this.#now()): void {
    for (const [p, apps] of [...this.#state]) {
      for (const [biz, byName] of [...apps]) {
        for (const [app, table] of [...byName]) {
          if (!this.#o.policies.get(biz, app)?.policy) {
            this.#drop(p, biz, app, table);
            continue;
          }
          this.counts.expired += table.expire(now);
          if (table.size === 0) this.#drop(p, biz, app, table);
        }
      }
    }
  }
}
