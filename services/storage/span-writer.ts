/**
 * Writes span rows, merges the per-trace summaries and the per-minute rollups, in one transaction per batch.
 *
 * One statement does it all: the spans are inserted with `ON CONFLICT DO NOTHING` (a replayed span is
 * stored once), and only the rows actually inserted (`RETURNING`) are folded into the summaries — per
 * trace, a piece (counts, times, services, categories, root and entry-service candidates) that is
 * inserted or merged into the trace's row (sums, LEAST/GREATEST, the better root candidate), so a trace
 * arriving in pieces over minutes ends with the same summary as one arriving at once, and a replay
 * changes nothing. A trace's existing row is found by its key near the piece's time (a lateral index
 * probe), so the merge lands on the row whatever day partition holds it. The same inserted rows feed the
 * per-minute RED rollups (`storage_span_minute`, see rollup.ts): per application, service, span name, kind
 * and minute of end time, a count, an error count, the sum, minimum and maximum of elapsed_time and a
 * log-bucket histogram, merged into the minute's row (counts add, buckets add) — a replay adds nothing.
 *
 * The rows reach the statement by COPY into a temporary staging table on PostgreSQL (pg-copy-streams,
 * services/common/store/copy.ts) — rows transcoded from the Avro bytes (span-copy.ts) or made from span
 * objects, in one Buffer per write — and as `unnest` arrays on embedded PGlite (its COPY needs a blob the
 * store's worker protocol does not carry; see the README's "How it works").
 */
import { isRetriable } from '../common/errors.ts';
import type { CopyPool } from '../common/store/copy.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import { DAY_US } from './partitions.ts';
import { factsOfRows, rollupPieces, ROLLUP_PIECE_PARAMS, TRACE_PIECE_PARAMS, tracePieces } from './pieces.ts';
import { rollupInsert, rollupPendingCte, ROLLUP_COLUMNS } from './rollup.ts';
import { F, SpanLine, type StoredSpan } from './span-copy.ts';
import { copyRowBody, SPAN_COLUMNS, SPAN_COPY_COLUMNS, type SpanRow } from './span-rows.ts';

export interface SpanWriteResult {
  /** Rows given. */
  rows: number;
  /** Spans newly stored (the rest were already there). */
  inserted: number;
  /** Trace summaries created and merged into. */
  tracesCreated: number;
  tracesMerged: number;
}

const COLS = SPAN_COLUMNS.map(([c]) => c).join(', ');
const COPY_COLS = SPAN_COPY_COLUMNS.join(', ');
const STAGE = 'storage_span_stage';

/** Summary columns a piece carries (named as in storage_trace). */
const SUM = ['span_count', 'error_count', 'cat_http', 'cat_rpc', 'cat_db', 'cat_messaging', 'cat_async_backend', 'cat_other', 'kind_unspecified', 'kind_interval', 'kind_sync', 'kind_async'];
const ROOT = ['root_span_id', 'root_span_name', 'root_span_service', 'root_span_kind', 'root_span_has_parent', 'root_span_start'];
const ENTRY = ['root_service', 'root_service_span_id', 'root_service_span_name', 'root_service_kind', 'root_service_status_code', 'root_service_category', 'root_service_start'];
const TRACE_COLS = ['bk_biz_id', 'app_name', 'retention_days', 'anchor_time', 'trace_id', 'min_start_time', 'max_end_time', 'services', 'span_max_duration', 'span_min_duration', ...SUM, ...ROOT, ...ENTRY];

/** SET list merging the new piece `n` into the existing row `t`. */
function mergeSet(n: string): string {
  const rootWins = `ROW(${n}.root_span_has_parent, ${n}.root_span_start, ${n}.root_span_id) < ROW(t.root_span_has_parent, t.root_span_start, t.root_span_id)`;
  const entryWins = `(${n}.root_service_start IS NOT NULL AND (t.root_service_start IS NULL OR ROW(${n}.root_service_start, ${n}.root_service_span_id) < ROW(t.root_service_start, t.root_service_span_id)))`;
  return [
    `min_start_time = LEAST(t.min_start_time, ${n}.min_start_time)`,
    `max_end_time = GREATEST(t.max_end_time, ${n}.max_end_time)`,
    `services = ARRAY(SELECT DISTINCT s FROM unnest(t.services || ${n}.services) AS u(s) ORDER BY s)`,
    `span_max_duration = GREATEST(t.span_max_duration, ${n}.span_max_duration)`,
    `span_min_duration = LEAST(t.span_min_duration, ${n}.span_min_duration)`,
    ...SUM.map((c) => `${c} = t.${c} + ${n}.${c}`),
    ...ROOT.map((c) => `${c} = CASE WHEN ${rootWins} THEN ${n}.${c} ELSE t.${c} END`),
    ...ENTRY.map((c) => `${c} = CASE WHEN ${entryWins} THEN ${n}.${c} ELSE t.${c} END`),
    'updated_at = now()',
  ].join(',\n      ');
}

/**
 * The end of both write statements: each piece (of `pieces`, a CTE with the summary, root and entry
 * columns) found by key near its time among the trace rows, then inserted or merged (in key order, text
 * compared bytewise — the same order in every writer, without a strcoll per comparison); the counts.
 */
function mergeTail(pieces: string, inserted: string): string {
  return `p AS (
  SELECT piece.*, COALESCE(found.anchor_time, piece.min_start_time) AS anchor_time, found.anchor_time IS NULL AS created,
    COALESCE(found.retention_days, piece.retention_days) AS found_retention_days
  FROM ${pieces} piece
  LEFT JOIN LATERAL (
    SELECT t.anchor_time, t.retention_days FROM storage_trace t
    WHERE t.bk_biz_id = piece.bk_biz_id AND t.app_name = piece.app_name AND t.trace_id = piece.trace_id
      AND t.anchor_time >= piece.min_start_time - ${DAY_US} AND t.anchor_time <= piece.max_end_time + ${DAY_US}
    LIMIT 1
  ) found ON true
), traces AS (
  INSERT INTO storage_trace AS t (${TRACE_COLS.join(', ')})
  SELECT ${TRACE_COLS.map((c) => (c === 'retention_days' ? 'found_retention_days' : c)).join(', ')} FROM p
  ORDER BY bk_biz_id, app_name COLLATE "C", trace_id COLLATE "C"
  ON CONFLICT ON CONSTRAINT storage_trace_key DO UPDATE SET
      ${mergeSet('excluded')}
  RETURNING 1
)
SELECT ${inserted} AS inserted,
  (SELECT count(*) FROM p WHERE created)::int AS created,
  (SELECT count(*) FROM p WHERE NOT created)::int AS merged,
  (SELECT count(*) FROM traces)::int AS traces`;
}

/** The whole write, reading the rows from `source` (a table or a sub-select with the span columns). */
export function writeStatement(source: string): string {
  return `WITH ins AS (
  INSERT INTO storage_span (${COLS})
  SELECT ${COLS} FROM ${source}
  ON CONFLICT DO NOTHING
  RETURNING bk_biz_id, app_name, retention_days, trace_id, span_id, parent_span_id, span_name, kind, start_time, end_time, elapsed_time,
    status_code, service_name, category, COALESCE(attributes->>'http.status_code', attributes->>'rpc.grpc.status_code') AS status_attr
), ${rollupInsert('ins')}, piece AS (
  SELECT bk_biz_id, app_name, trace_id, max(retention_days) AS retention_days,
    min(start_time) AS min_start_time, max(end_time) AS max_end_time,
    COALESCE(array_agg(DISTINCT service_name) FILTER (WHERE service_name <> ''), '{}'::text[]) AS services,
    max(end_time - start_time) AS span_max_duration, min(end_time - start_time) AS span_min_duration,
    count(*)::int AS span_count, (count(*) FILTER (WHERE status_code = 2))::int AS error_count,
    (count(*) FILTER (WHERE category = 'http'))::int AS cat_http, (count(*) FILTER (WHERE category = 'rpc'))::int AS cat_rpc,
    (count(*) FILTER (WHERE category = 'db'))::int AS cat_db, (count(*) FILTER (WHERE category = 'messaging'))::int AS cat_messaging,
    (count(*) FILTER (WHERE category = 'async_backend'))::int AS cat_async_backend, (count(*) FILTER (WHERE category = 'other'))::int AS cat_other,
    (count(*) FILTER (WHERE kind = 0))::int AS kind_unspecified, (count(*) FILTER (WHERE kind = 1))::int AS kind_interval,
    (count(*) FILTER (WHERE kind IN (2, 3)))::int AS kind_sync, (count(*) FILTER (WHERE kind IN (4, 5)))::int AS kind_async
  FROM ins GROUP BY bk_biz_id, app_name, trace_id
), root AS (
  SELECT DISTINCT ON (bk_biz_id, app_name, trace_id) bk_biz_id, app_name, trace_id,
    span_id AS root_span_id, span_name AS root_span_name, service_name AS root_span_service, kind AS root_span_kind,
    parent_span_id <> '' AS root_span_has_parent, start_time AS root_span_start
  FROM ins ORDER BY bk_biz_id, app_name, trace_id, parent_span_id <> '', start_time, span_id
), entry AS (
  SELECT DISTINCT ON (bk_biz_id, app_name, trace_id) bk_biz_id, app_name, trace_id,
    service_name AS root_service, span_id AS root_service_span_id, span_name AS root_service_span_name, kind AS root_service_kind,
    CASE WHEN status_attr ~ '^-?[0-9]{1,9}$' THEN status_attr::int END AS root_service_status_code,
    category AS root_service_category, start_time AS root_service_start
  FROM ins WHERE kind IN (2, 5) ORDER BY bk_biz_id, app_name, trace_id, start_time, span_id
), pieces AS (
  SELECT piece.*, ${ROOT.map((c) => `root.${c}`).join(', ')}, ${ENTRY.map((c) => `entry.${c}`).join(', ')}
  FROM piece
  JOIN root USING (bk_biz_id, app_name, trace_id)
  LEFT JOIN entry USING (bk_biz_id, app_name, trace_id)
), ${mergeTail('pieces', '(SELECT count(*) FROM ins)::int')}`;
}

/** The rows as `unnest` arrays: a sub-select with the span columns (PGlite). */
function unnestSource(): string {
  const args = SPAN_COLUMNS.map(([, type], i) => `$${i + 1}::${type === 'jsonb' ? 'text' : type}[]`).join(', ');
  const select = SPAN_COLUMNS.map(([c, type]) => (type === 'jsonb' ? `u.${c}::jsonb AS ${c}` : `u.${c}`)).join(', ');
  return `(SELECT ${select} FROM unnest(${args}) AS u(${COLS})) AS src`;
}

const UNNEST_STATEMENT = writeStatement(unnestSource());
const COPY_STATEMENT = writeStatement(STAGE);

type ParamDefs = readonly (readonly [string, string])[];

/** `unnest` of column arrays $from…: arguments and a select list casting what travels as text (numeric, arrays). */
function unnestOf(defs: ParamDefs, from: number, alias: string, ordinality = false): { sql: string; next: number } {
  const travels = (t: string): string => (t === 'numeric' || t.endsWith('[]') ? 'text' : t);
  const args = defs.map(([, t], i) => `$${from + i}::${travels(t)}[]`).join(', ');
  const select = defs.map(([c, t]) => (travels(t) === t ? `${alias}.${c}` : `${alias}.${c}::${t} AS ${c}`)).join(', ');
  const names = defs.map(([c]) => c).join(', ');
  return {
    sql: ordinality
      ? `SELECT ${select}, ${alias}.idx FROM unnest(${args}) WITH ORDINALITY AS ${alias}(${names}, idx)`
      : `SELECT ${select} FROM unnest(${args}) AS ${alias}(${names})`,
    next: from + defs.length,
  };
}

/**
 * The write of rows all newly stored (COPYed straight into storage_span just before, in the same
 * transaction): the trace pieces and rollup pieces computed by pieces.ts arrive as column arrays; the
 * trace pieces are merged as {@link writeStatement} merges the pieces it computes, the rollup pieces
 * appended to `storage_span_minute_pending` (folded in by rollup.ts `foldRollups`).
 */
export function piecesStatement(): string {
  const traces = unnestOf(TRACE_PIECE_PARAMS, 1, 'u');
  const rollups = unnestOf(ROLLUP_PIECE_PARAMS, traces.next, 'u');
  // the first candidate by span id, when there are several (rare)
  const first = (ids: string): string => `CASE WHEN cardinality(${ids}) < 2 THEN cardinality(${ids}) ELSE (SELECT i FROM unnest(${ids}) WITH ORDINALITY AS x(id, i) ORDER BY id LIMIT 1) END`;
  return `WITH u AS MATERIALIZED (
  ${traces.sql}
), c AS (
  SELECT u.*, ${first('root_span_ids')} AS ri, ${first('entry_span_ids')} AS ei FROM u
), pieces AS (
  SELECT bk_biz_id, app_name, trace_id, retention_days, min_start_time, max_end_time,
    ARRAY(SELECT DISTINCT s FROM unnest(service_set) AS x(s) ORDER BY s) AS services,
    span_max_duration, span_min_duration, ${SUM.join(', ')},
    root_span_ids[ri] AS root_span_id, root_span_names[ri] AS root_span_name, root_span_services[ri] AS root_span_service,
    root_span_kinds[ri] AS root_span_kind, root_span_has_parent, root_span_start,
    entry_services[ei] AS root_service, entry_span_ids[ei] AS root_service_span_id, entry_span_names[ei] AS root_service_span_name,
    entry_kinds[ei] AS root_service_kind, entry_status_codes[ei] AS root_service_status_code, entry_categories[ei] AS root_service_category,
    CASE WHEN ei > 0 THEN root_service_start END AS root_service_start
  FROM c
), ${rollupPendingCte(`SELECT ${ROLLUP_COLUMNS} FROM (${rollups.sql}) r`)}, ${mergeTail('pieces', `$${rollups.next}::int`)}`;
}

const PIECES_STATEMENT = piecesStatement();

const suffixes = new Map<number, Buffer>();
/** The end of a transcoded row: its retention class and the newline. */
function suffix(retentionDays: number): Buffer {
  let b = suffixes.get(retentionDays);
  if (!b) {
    b = Buffer.from(`\t${retentionDays}\n`, 'latin1');
    suffixes.set(retentionDays, b);
  }
  return b;
}

/** COPY text of the rows (columns in {@link SPAN_COPY_COLUMNS} order), as one Buffer. */
export function copyData(rows: readonly StoredSpan[]): Buffer {
  const made: (Buffer | undefined)[] = new Array<Buffer | undefined>(rows.length);
  let size = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as StoredSpan;
    if (r instanceof SpanLine) {
      size += r.batch.num(r.i, F.ROW_END) - r.batch.num(r.i, F.ROW_AT) + suffix(r.retention_days).length;
    } else {
      const b = Buffer.from(`${copyRowBody(r)}\t${r.retention_days}\n`, 'utf8');
      made[i] = b;
      size += b.length;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as StoredSpan;
    if (r instanceof SpanLine) {
      o += r.batch.text.copy(out, o, r.batch.num(r.i, F.ROW_AT), r.batch.num(r.i, F.ROW_END));
      o += suffix(r.retention_days).copy(out, o);
    } else {
      o += (made[i] as Buffer).copy(out, o);
    }
  }
  return out;
}

interface Counts {
  inserted: number;
  created: number;
  merged: number;
}

function result(rows: number, c: Counts | undefined): SpanWriteResult {
  return { rows, inserted: c?.inserted ?? 0, tracesCreated: c?.created ?? 0, tracesMerged: c?.merged ?? 0 };
}

export interface SpanWriterOptions {
  store: Store;
  /** PostgreSQL only: the COPY pool. Without it (PGlite) the rows go as unnest arrays. */
  copy?: CopyPool | undefined;
}

export class SpanWriter {
  readonly #store: Store;
  readonly #copy: CopyPool | undefined;

  constructor(options: SpanWriterOptions) {
    this.#store = options.store;
    this.#copy = options.copy;
  }

  /**
   * Writes `rows` (their partitions must exist) and merges their traces' summaries and minutes' rollups.
   * Transcoded rows ({@link SpanLine}) need the COPY pool (PostgreSQL).
   *
   * On PostgreSQL the rows are first COPYed straight into storage_span, with the trace and rollup pieces
   * computed here (pieces.ts), as the common case is rows none of which is stored yet. If the COPY fails —
   * a span already stored (a replay, a redelivery, the same span twice in the write) or any row the table
   * refuses — that transaction is rolled back and the rows go through the staging table and
   * {@link writeStatement}, which skips what is stored and merges only what it inserted (and fails as
   * before on rows the table refuses). Retriable failures are thrown as they are.
   */
  async write(rows: readonly StoredSpan[]): Promise<SpanWriteResult> {
    if (rows.length === 0) return result(0, undefined);
    if (this.#copy) {
      const data = copyData(rows);
      const copy = this.#copy;
      const facts = factsOfRows(rows);
      const params = [...tracePieces(facts), ...rollupPieces(facts), rows.length];
      try {
        return await copy.transaction(async (tx) => {
          await tx.copyFrom(`COPY storage_span (${COPY_COLS}) FROM STDIN`, data);
          const { rows: out } = await tx.query<Counts>(PIECES_STATEMENT, params);
          return result(rows.length, out[0]);
        });
      } catch (err) {
        if (isRetriable(err)) throw err;
      }
      return copy.transaction(async (tx) => {
        await tx.exec(`CREATE TEMP TABLE IF NOT EXISTS ${STAGE} (${SPAN_COLUMNS.map(([c, t]) => `${c} ${t}`).join(', ')}) ON COMMIT DELETE ROWS`);
        await tx.copyFrom(`COPY ${STAGE} (${COPY_COLS}) FROM STDIN`, data);
        const { rows: out } = await tx.query<Counts>(COPY_STATEMENT);
        return result(rows.length, out[0]);
      });
    }
    const spanRows: SpanRow[] = [];
    for (const r of rows) {
      if (r instanceof SpanLine) throw new TypeError('transcoded span rows are written by COPY: the span writer needs the COPY pool');
      spanRows.push(r);
    }
    return this.#store.transaction(async (tx) => result(rows.length, await unnestWrite(tx, spanRows)));
  }
}

async function unnestWrite(tx: Queryable, rows: readonly SpanRow[]): Promise<Counts | undefined> {
  const params = SPAN_COLUMNS.map(([c]) => rows.map((r) => r[c]));
  const { rows: out } = await tx.query<Counts>(UNNEST_STATEMENT, params);
  return out[0];
}
