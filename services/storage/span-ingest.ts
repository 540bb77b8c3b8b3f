/**
 * The span consumers' handlers: SpanBatch records → span rows (in their application's retention class)
 * → the span flusher; they return `{ durable }` so offsets are committed only after the write. On
 * PostgreSQL the records arrive transcoded to COPY rows (span-copy.ts, {@link SpanIngest.handleCopy});
 * on PGlite decoded into span objects that become {@link SpanRow}s ({@link SpanIngest.handle}).
 *
 * Spans that would land in an already expired day (start before the class's earliest retained day) or
 * further ahead than the partitions are created (`STORAGE_PARTITIONS_AHEAD_DAYS`) are dropped and
 * counted: they would be deleted at once, or need partitions for a clock gone wrong.
 */
import type { Batch, HandleResult } from '../common/bus/index.ts';
import type { SpanBatch } from '../common/records.ts';
import type { Flusher } from './flusher.ts';
import { dayOfMs, dayOfUs, type PartitionManager, type PartitionNeed } from './partitions.ts';
import type { Retention } from './retention.ts';
import { F, SpanLine, type SpanCopyBatch, type StoredSpan } from './span-copy.ts';
import { spanRow, type SpanRow } from './span-rows.ts';
import type { SpanWriter, SpanWriteResult } from './span-writer.ts';

export interface SpanIngestOptions {
  retention: Retention;
  partitions: PartitionManager;
  writer: SpanWriter;
  aheadDays: number;
  now?: () => number;
  /** Spans dropped before writing, by reason (`expired`, `future`). */
  onDropped?: (reason: 'expired' | 'future', n: number) => void;
}

export class SpanIngest {
  readonly #o: SpanIngestOptions;
  readonly #now: () => number;
  /** Set once the flusher exists (the flusher's write is {@link write}). */
  flusher: Flusher<StoredSpan, SpanWriteResult> | undefined;

  constructor(options: SpanIngestOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Rows of the batch's spans that are inside their retention and the partitions ahead. */
  async rows(batches: readonly SpanBatch[]): Promise<SpanRow[]> {
    await this.#o.retention.refresh();
    const today = dayOfMs(this.#now());
    const lastDay = today + this.#o.aheadDays;
    const rows: SpanRow[] = [];
    let expired = 0;
    let future = 0;
    for (const batch of batches) {
      for (const span of batch.spans) {
        const days = this.#o.retention.days(span.bk_biz_id, span.app_name);
        if (dayOfUs(Math.min(span.start_time, span.end_time)) < today - days) {
          expired++;
          continue;
        }
        if (dayOfUs(Math.max(span.start_time, span.end_time)) > lastDay) {
          future++;
          continue;
        }
        rows.push(spanRow(span, days));
      }
    }
    if (expired) this.#o.onDropped?.('expired', expired);
    if (future) this.#o.onDropped?.('future', future);
    return rows;
  }

  /** The transcoded rows of the records' spans that are inside their retention and the partitions ahead (as {@link rows}). */
  async lines(batches: readonly SpanCopyBatch[]): Promise<SpanLine[]> {
    await this.#o.retention.refresh();
    const today = dayOfMs(this.#now());
    const lastDay = today + this.#o.aheadDays;
    const lines: SpanLine[] = [];
    let expired = 0;
    let future = 0;
    let biz = NaN;
    let app: string | undefined;
    let days = 0;
    for (const batch of batches) {
      for (let i = 0; i < batch.count; i++) {
        const spanBiz = batch.num(i, F.BIZ);
        const spanApp = batch.apps[batch.num(i, F.APP)] as string;
        if (spanBiz !== biz || spanApp !== app) {
          biz = spanBiz;
          app = spanApp;
          days = this.#o.retention.days(biz, app);
        }
        const start = batch.num(i, F.START);
        const end = batch.num(i, F.END);
        if (dayOfUs(Math.min(start, end)) < today - days) {
          expired++;
          continue;
        }
        if (dayOfUs(Math.max(start, end)) > lastDay) {
          future++;
          continue;
        }
        batch.setRetention(i, days);
        lines.push(new SpanLine(batch, i));
      }
    }
    if (expired) this.#o.onDropped?.('expired', expired);
    if (future) this.#o.onDropped?.('future', future);
    return lines;
  }

  readonly handle = async (batch: Batch<SpanBatch>): Promise<HandleResult> => {
    const rows = await this.rows(batch.records.map((r) => r.value));
    if (!this.flusher) throw new Error('span ingest has no flusher');
    return { durable: this.flusher.add(rows) };
  };

  /** The handler of records transcoded by span-copy.ts's decoder (PostgreSQL). */
  readonly handleCopy = async (batch: Batch<SpanCopyBatch>): Promise<HandleResult> => {
    const lines = await this.lines(batch.records.map((r) => r.value));
    if (!this.flusher) throw new Error('span ingest has no flusher');
    return { durable: this.flusher.add(lines) };
  };

  /** The flusher's write: the partitions the rows need, then the rows. */
  readonly write = async (rows: StoredSpan[]): Promise<SpanWriteResult> => {
    await this.#o.partitions.ensure(spanPartitions(rows));
    return this.#o.partitions.writing(() => this.#o.writer.write(rows));
  };
}

/** Span and rollup partitions (day of end time) and trace partitions (day of start time) of the rows. */
export function spanPartitions(rows: readonly StoredSpan[]): PartitionNeed[] {
  const seen = new Set<string>();
  const needs: PartitionNeed[] = [];
  const add = (kind: 'span' | 'trace' | 'minute', day: number, retentionDays: number): void => {
    const k = `${kind}:${day}:${retentionDays}`;
    if (seen.has(k)) return;
    seen.add(k);
    needs.push({ kind, day, retentionDays });
  };
  let endDay = NaN;
  let startDay = NaN;
  let retention = NaN;
  for (const r of rows) {
    const e = dayOfUs(r.end_time);
    const s = dayOfUs(r.start_time);
    if (e === endDay && s === startDay && r.retention_days === retention) continue;
    endDay = e;
    startDay = s;
    retention = r.retention_days;
    add('span', e, retention);
    add('minute', e, retention);
    add('trace', s, retention);
  }
  return needs;
}
