/**
 * The span consumers' handler: SpanBatch records → span rows (in their application's retention class)
 * → the span flusher; returns `{ durable }` so offsets are committed only after the write.
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
  flusher: Flusher<SpanRow, SpanWriteResult> | undefined;

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

  readonly handle = async (batch: Batch<SpanBatch>): Promise<HandleResult> => {
    const rows = await this.rows(batch.records.map((r) => r.value));
    if (!this.flusher) throw new Error('span ingest has no flusher');
    return { durable: this.flusher.add(rows) };
  };

  /** The flusher's write: the partitions the rows need, then the rows. */
  readonly write = async (rows: SpanRow[]): Promise<SpanWriteResult> => {
    await this.#o.partitions.ensure(spanPartitions(rows));
    return this.#o.partitions.writing(() => this.#o.writer.write(rows));
  };
}

/** Span partitions (day of end time) and trace partitions (day of start time) of the rows. */
export function spanPartitions(rows: readonly SpanRow[]): PartitionNeed[] {
  const seen = new Set<string>();
  const needs: PartitionNeed[] = [];
  const add = (kind: 'span' | 'trace', day: number, retentionDays: number): void => {
    const k = `${kind}:${day}:${retentionDays}`;
    if (seen.has(k)) return;
    seen.add(k);
    needs.push({ kind, day, retentionDays });
  };
  for (const r of rows) {
    add('span', dayOfUs(r.end_time), r.retention_days);
    add('trace', dayOfUs(r.start_time), r.retention_days);
  }
  return needs;
}
