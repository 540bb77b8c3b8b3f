/**
 * Writes agent metric samples: new series first (`ON CONFLICT DO NOTHING`; series known to have been
 * written are skipped), then the samples into their day partitions, idempotently (`(series_id, ts)` is
 * the key: a replayed sample is stored once). Samples go by COPY into a staging table on PostgreSQL, as
 * `unnest` arrays on PGlite, like spans.
 */
import type { Batch, HandleResult } from '../common/bus/index.ts';
import type { MetricBatch } from '../common/records.ts';
import type { CopyPool } from '../common/store/copy.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import type { Flusher } from './flusher.ts';
import { dayOfMs, type PartitionManager } from './partitions.ts';
import { metricRows, type MetricRow, type SampleRow, type SeriesRow } from './series.ts';

export interface MetricWriteResult {
  samples: number;
  inserted: number;
  newSeries: number;
}

const STAGE = 'storage_sample_stage';
const INSERT_SERIES = `INSERT INTO storage_metric_series (series_id, name, labels, bk_biz_id)
  SELECT u.series_id, u.name, u.labels::jsonb, u.bk_biz_id FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS u(series_id, name, labels, bk_biz_id)
  ON CONFLICT DO NOTHING`;
const INSERT_SAMPLES_UNNEST = `INSERT INTO storage_metric_sample (series_id, ts, value)
  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[]) ON CONFLICT DO NOTHING`;
const INSERT_SAMPLES_STAGE = `INSERT INTO storage_metric_sample (series_id, ts, value) SELECT series_id, ts, value FROM ${STAGE} ON CONFLICT DO NOTHING`;
/** Series ids remembered as written; the set is cleared when it reaches this size. */
const MAX_KNOWN_SERIES = 1_000_000;

export interface MetricWriterOptions {
  store: Store;
  copy?: CopyPool | undefined;
  partitions: PartitionManager;
  retentionDays: number;
  aheadDays: number;
  now?: () => number;
  onDropped?: (reason: 'expired' | 'future', n: number) => void;
}

export class MetricWriter {
  readonly #o: MetricWriterOptions;
  readonly #now: () => number;
  readonly #known = new Set<number>();
  flusher: Flusher<MetricRow, MetricWriteResult> | undefined;

  constructor(options: MetricWriterOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Rows of the batches inside the retention and the partitions ahead. */
  rows(batches: readonly MetricBatch[]): MetricRow[] {
    return this.keep(batches.flatMap((b) => metricRows(b)));
  }

  /** The rows inside the retention and the partitions ahead (the others are counted as dropped). */
  keep(rows: readonly MetricRow[]): MetricRow[] {
    const today = dayOfMs(this.#now());
    const out: MetricRow[] = [];
    let expired = 0;
    let future = 0;
    for (const row of rows) {
      const day = dayOfMs(row.sample.ts);
      if (day < today - this.#o.retentionDays) expired++;
      else if (day > today + this.#o.aheadDays) future++;
      else out.push(row);
    }
    if (expired) this.#o.onDropped?.('expired', expired);
    if (future) this.#o.onDropped?.('future', future);
    return out;
  }

  readonly handle = async (batch: Batch<MetricBatch>): Promise<HandleResult> => {
    if (!this.flusher) throw new Error('metric writer has no flusher');
    return { durable: this.flusher.add(this.rows(batch.records.map((r) => r.value))) };
  };

  readonly write = async (rows: MetricRow[]): Promise<MetricWriteResult> => {
    const days = new Set(rows.map((r) => dayOfMs(r.sample.ts)));
    await this.#o.partitions.ensure([...days].map((day) => ({ kind: 'sample' as const, day })));
    const fresh = new Map<number, SeriesRow>();
    for (const r of rows) if (!this.#known.has(r.series.series_id)) fresh.set(r.series.series_id, r.series);
    const series = [...fresh.values()];
    const samples = rows.map((r) => r.sample);
    const inserted = await this.#o.partitions.writing(() => this.#insert(series, samples));
    if (this.#known.size + series.length > MAX_KNOWN_SERIES) this.#known.clear();
    for (const s of series) this.#known.add(s.series_id);
    return { samples: rows.length, inserted, newSeries: series.length };
  };

  async #insert(series: SeriesRow[], samples: SampleRow[]): Promise<number> {
    let inserted: number;
    if (this.#o.copy) {
      inserted = await this.#o.copy.transaction(async (tx) => {
        await insertSeries(tx, series);
        await tx.exec(`CREATE TEMP TABLE IF NOT EXISTS ${STAGE} (series_id bigint, ts bigint, value float8) ON COMMIT DELETE ROWS`);
        await tx.copyFrom(`COPY ${STAGE} (series_id, ts, value) FROM STDIN`, samples.map((s) => `${s.series_id}\t${s.ts}\t${s.value}\n`).join(''));
        return (await tx.query(INSERT_SAMPLES_STAGE)).rowCount;
      });
    } else {
      inserted = await this.#o.store.transaction(async (tx) => {
        await insertSeries(tx, series);
        return (await tx.query(INSERT_SAMPLES_UNNEST, [samples.map((s) => s.series_id), samples.map((s) => s.ts), samples.map((s) => s.value)])).rowCount;
      });
    }
    return inserted;
  }
}

async function insertSeries(tx: Queryable, series: SeriesRow[]): Promise<void> {
  if (series.length === 0) return;
  await tx.query(INSERT_SERIES, [series.map((s) => s.series_id), series.map((s) => s.name), series.map((s) => s.labels), series.map((s) => s.bk_biz_id)]);
}
