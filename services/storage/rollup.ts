/**
 * Per-minute RED rollups of spans (`storage_span_minute`, migration 0402_storage_rollups.sql).
 *
 * One row per application, retention class, service, span name, kind and minute of end time: the span
 * count, the error count (status code 2), the sum, minimum and maximum of `elapsed_time`, and a sparse
 * log-bucket histogram of `elapsed_time` (`buckets` indexes ascending, `counts` beside them). Bucket `i > 0`
 * holds durations in [γ^(i−1), γ^i) µs with γ = 2^(1/16) (16 buckets per doubling, as a Prometheus
 * native histogram of schema 4), bucket 0 holds 0, bucket `−i` the negative durations mirrored
 * (`storage_latency_bucket` in SQL, {@link latencyBucket} here: the same integer bounds). Histograms of any rows merge by adding counts per bucket, so an hour
 * is the merge of its minutes, and a percentile read from the merged buckets is within
 * {@link LATENCY_RELATIVE_ERROR} (2.2 %) of the exact one (`percentile_cont` over the spans) for
 * non-negative durations: each rank's value is taken as its bucket's midpoint (relative), clamped to the
 * group's minimum and maximum (the first and last ranks are those exactly), and interpolated between ranks
 * as `percentile_cont` interpolates.
 *
 * The span writer feeds the rollups from the rows it actually inserted (span-writer.ts), in the same
 * statement, so they always agree with the span table and a replay adds nothing. Rollups are partitioned
 * like the spans (retention class, then day of `minute`) and dropped with them (partitions.ts).
 */

import type { Store } from '../common/store/index.ts';

export const MINUTE_US = 60_000_000;
/**
 * Bucket bounds: `LATENCY_BOUNDS[k]` = ceil(2^(k/16)) (the smallest n with n^16 ≥ 2^k), k = 0..848, exact
 * (migration 0403 holds the same list): the bucket of a duration e ≥ 1 µs is the number of bounds ≤ e.
 */
export const LATENCY_BOUNDS: readonly number[] = (() => {
  const out: number[] = [];
  for (let k = 0; k <= 848; k++) {
    const target = 1n << BigInt(k);
    let lo = 1n;
    let hi = 1n << BigInt(Math.ceil(k / 16) + 1);
    while (lo < hi) {
      const mid = (lo + hi) >> 1n;
      if (mid ** 16n >= target) hi = mid;
      else lo = mid + 1n;
    }
    out.push(Number(lo));
  }
  return out;
})();
const LAST_BOUND = LATENCY_BOUNDS.length - 1;

/** `storage_latency_bucket` (migration 0403): signed bucket of a duration in µs, 0 for 0. */
export function latencyBucket(e: number): number {
  if (e === 0) return 0;
  const a = Math.abs(e);
  // the estimate is at most one off either way; the bounds decide
  let k = Math.min(LAST_BOUND, Math.max(0, Math.floor(Math.log2(a) * 16)));
  while (k < LAST_BOUND && (LATENCY_BOUNDS[k + 1] as number) <= a) k++;
  while (k > 0 && (LATENCY_BOUNDS[k] as number) > a) k--;
  return e > 0 ? k + 1 : -(k + 1);
}

/** Bucket growth factor: 2^(1/16). */
export const LATENCY_GAMMA = 2 ** (1 / 16);
/** Largest relative error of a percentile read from the buckets: (γ − 1) / (γ + 1). */
export const LATENCY_RELATIVE_ERROR = (LATENCY_GAMMA - 1) / (LATENCY_GAMMA + 1);

const KEY = 'bk_biz_id, app_name, retention_days, service_name, span_name, kind, minute';
const COLUMNS = `${KEY}, span_count, error_count, elapsed_sum, elapsed_min, elapsed_max, buckets, counts`;
/**
 * The key in the order rows are merged in (locks taken in one order by every writer), text compared
 * bytewise: under a libc collation other than "C" (C.UTF-8, en_US…) every text comparison of a sort is a
 * strcoll with no abbreviated keys, and sorting a fold's ~25 000 bucket rows by it took ~150 ms of
 * PostgreSQL CPU every fold (auto_explain). Equality, and so the unique key, is the same either way.
 */
const MERGE_KEY = ['bk_biz_id', 'app_name', 'minute', 'service_name', 'span_name', 'kind', 'retention_days'];
const TEXT_KEY = new Set(['app_name', 'service_name', 'span_name']);
const MERGE_ORDER = MERGE_KEY.map((c) => (TEXT_KEY.has(c) ? `${c} COLLATE "C"` : c)).join(', ');

/** Rollup rows of span rows `source` (a table or CTE with the span columns): per key, histogram arrays ascending. */
function rollupSelect(source: string): string {
  return `SELECT ${KEY}, sum(n)::int AS span_count, sum(errors)::int AS error_count, sum(total) AS elapsed_sum, min(lo) AS elapsed_min,
    max(hi) AS elapsed_max, array_agg(bucket::smallint ORDER BY bucket) AS buckets, array_agg(n ORDER BY bucket) AS counts
  FROM (
    SELECT bk_biz_id, app_name, retention_days, service_name, span_name, kind,
      end_time - ((end_time % ${MINUTE_US}) + ${MINUTE_US}) % ${MINUTE_US} AS minute, storage_latency_bucket(elapsed_time) AS bucket,
      count(*)::int AS n, (count(*) FILTER (WHERE status_code = 2))::int AS errors, sum(elapsed_time) AS total, min(elapsed_time) AS lo, max(elapsed_time) AS hi
    FROM ${source} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
  ) b
  GROUP BY ${KEY}`;
}

/**
 * A CTE (`rollup AS (…)`) merging the rollups of the span rows in `source` (the writer's inserted rows)
 * into `storage_span_minute`: new minutes inserted, existing ones added to. Rows are merged in key order,
 * so concurrent writers take the rows' locks in one order.
 */
export function rollupInsert(source: string): string {
  return rollupMergeCte(rollupSelect(source));
}

/** The same CTE for rollup rows already computed: `rows` selects {@link ROLLUP_COLUMNS} (one row per key). */
function rollupMergeCte(rows: string): string {
  return `rollup AS (
  ${rollupMerge(rows)}
  RETURNING 1
)`;
}

/** Columns of a rollup row, in the order rollup rows are given in. */
export const ROLLUP_COLUMNS = COLUMNS;

/** The statement merging rollup rows (`rows` selects {@link COLUMNS}, one row per key) into `storage_span_minute`. */
function rollupMerge(rows: string): string {
  return `INSERT INTO storage_span_minute AS m (${COLUMNS})
  SELECT ${COLUMNS} FROM (${rows}) r
  ORDER BY ${MERGE_ORDER}
  ON CONFLICT ON CONSTRAINT storage_span_minute_key DO UPDATE SET
    span_count = m.span_count + excluded.span_count,
    error_count = m.error_count + excluded.error_count,
    elapsed_sum = m.elapsed_sum + excluded.elapsed_sum,
    elapsed_min = LEAST(m.elapsed_min, excluded.elapsed_min),
    elapsed_max = GREATEST(m.elapsed_max, excluded.elapsed_max),
    (buckets, counts) = (
      SELECT array_agg(b ORDER BY b), array_agg(c ORDER BY b)
      FROM (SELECT b, sum(c)::int AS c FROM unnest(m.buckets || excluded.buckets, m.counts || excluded.counts) AS u(b, c) GROUP BY b) x
    )`;
}

/**
 * A CTE (`rollup AS (…)`) appending rollup rows (`rows` selects {@link ROLLUP_COLUMNS}) to
 * `storage_span_minute_pending` (migration 0404), for {@link foldRollups} to merge later.
 */
export function rollupPendingCte(rows: string): string {
  return `rollup AS (
  INSERT INTO storage_span_minute_pending (${COLUMNS}) ${rows}
)`;
}

/** The merge order's columns, for grouping rows whose text keys are already in the "C" collation. */
const FOLD_ORDER = MERGE_KEY.join(', ');
/** The pending pieces' columns, text keys in the "C" collation. */
const LIVE_COLUMNS = COLUMNS.split(', ').map((c) => (TEXT_KEY.has(c) ? `m.${c} COLLATE "C" AS ${c}` : `m.${c}`)).join(', ');

/**
 * Per key (and bucket): the pending pieces of live partitions, each piece's totals counted on its first
 * bucket. Grouped in the merge order with the text keys in the "C" collation, so one bytewise sort serves
 * both groupings and the merge's ORDER BY.
 */
const FOLD = `WITH moved AS (
  DELETE FROM storage_span_minute_pending RETURNING *
), live AS (
  SELECT ${LIVE_COLUMNS}
  FROM moved m JOIN unnest($1::integer[], $2::bigint[]) AS p(retention_days, day)
    ON p.retention_days = m.retention_days AND p.day = floor(m.minute / ${86_400_000_000}::numeric)
), b AS (
  SELECT ${KEY}, u.b, sum(u.n)::int AS n,
    sum(CASE WHEN u.i = 1 THEN span_count END) AS span_count, sum(CASE WHEN u.i = 1 THEN error_count END) AS error_count,
    sum(CASE WHEN u.i = 1 THEN elapsed_sum END) AS elapsed_sum, min(CASE WHEN u.i = 1 THEN elapsed_min END) AS elapsed_min,
    max(CASE WHEN u.i = 1 THEN elapsed_max END) AS elapsed_max
  FROM live, unnest(live.buckets, live.counts) WITH ORDINALITY AS u(b, n, i)
  GROUP BY ${FOLD_ORDER}, u.b
), merged AS (
  ${rollupMerge(`SELECT ${KEY}, sum(span_count)::int AS span_count, sum(error_count)::int AS error_count, sum(elapsed_sum) AS elapsed_sum,
    min(elapsed_min) AS elapsed_min, max(elapsed_max) AS elapsed_max, array_agg(b ORDER BY b) AS buckets, array_agg(n ORDER BY b) AS counts
  FROM b GROUP BY ${FOLD_ORDER}`)}
  RETURNING 1
)
SELECT (SELECT count(*) FROM moved)::int AS pieces, (SELECT count(*) FROM live)::int AS live, (SELECT count(*) FROM merged)::int AS minutes`;

export interface FoldResult {
  /** Pending pieces taken. */
  pieces: number;
  /** Of those, pieces whose day partition is gone (past retention): dropped. */
  dropped: number;
  /** Minute rows inserted or merged into. */
  minutes: number;
}

/** Sort memory of a fold: a fold's bucket rows (~3 MB for 25 000) sorted in memory, not spilled to disk at the default 4 MB. */
const FOLD_WORK_MEM = '32MB';

/**
 * Folds the pending rollup pieces into `storage_span_minute`, in one statement (atomic: a query sees the
 * pieces either pending or folded) in a transaction of its own with {@link FOLD_WORK_MEM}. `partitions`:
 * the existing rollup day partitions; pieces of any other day (dropped past retention meanwhile) are
 * dropped with them. Safe to run from several instances.
 */
export async function foldRollups(store: Store, partitions: readonly { retentionDays: number; day: number }[]): Promise<FoldResult> {
  const { rows } = await store.transaction(async (tx) => {
    await tx.exec(`SET LOCAL work_mem = '${FOLD_WORK_MEM}'`);
    return tx.query<{ pieces: number; live: number; minutes: number }>(FOLD, [partitions.map((p) => p.retentionDays), partitions.map((p) => p.day)]);
  });
  const r = rows[0] ?? { pieces: 0, live: 0, minutes: 0 };
  return { pieces: r.pieces, dropped: r.pieces - r.live, minutes: r.minutes };
}

/**
 * Rollup rows computed from stored spans (`where`: a condition on `storage_span`), as the writer merges
 * them: to check the writer's.
 */
export function rollupQuery(where: string): string {
  return rollupSelect(`(SELECT * FROM storage_span WHERE ${where}) s`);
}

/**
 * Merges into the rollups the stored spans (`where`) that were loaded without the writer (the benchmark's
 * generated spans); each span must be given once.
 */
export function rollupFromSpans(where: string): string {
  return rollupMerge(rollupQuery(where));
}

/** The value a bucket stands for: the midpoint (relative) of its range, so within the relative error of any value in it. */
export function bucketValue(index: number): number {
  if (index === 0) return 0;
  const v = (LATENCY_GAMMA ** (Math.abs(index) - 1) * 2 * LATENCY_GAMMA) / (LATENCY_GAMMA + 1);
  return index > 0 ? v : -v;
}

/** A histogram (bucket indexes ascending, counts beside them) with the exact count, minimum and maximum of its values. */
export interface LatencyHistogram {
  buckets: readonly number[];
  counts: readonly number[];
  count: number;
  min: number;
  max: number;
}

/**
 * The `q` percentile of the histogram's values as `percentile_cont(q)` defines it (interpolating between
 * the ranks around q·(n − 1)), each rank's value read as its bucket's value clamped to [min, max]; null
 * for no values.
 */
export function histogramQuantile(h: LatencyHistogram, q: number): number | null {
  if (h.count <= 0) return null;
  const at = q * (h.count - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const valueAt = (rank: number): number => {
    if (rank === 0) return h.min;
    if (rank === h.count - 1) return h.max;
    let seen = 0;
    for (let i = 0; i < h.buckets.length; i++) {
      seen += h.counts[i] as number;
      if (seen > rank) return Math.min(h.max, Math.max(h.min, bucketValue(h.buckets[i] as number)));
    }
    return h.max;
  };
  const a = valueAt(lo);
  return hi === lo ? a : a + (at - lo) * (valueAt(hi) - a);
}
