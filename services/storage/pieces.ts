/**
 * Per-trace summary pieces and per-minute rollup pieces of a write, computed here from the rows when
 * every row of the write is new (the span writer's COPY path, span-writer.ts), so the database only merges
 * them. They are what the write statement's SQL computes from the rows it inserted — the same sums,
 * counts, minimums and maximums, the same latency buckets (rollup.ts {@link latencyBucket}, exact integer
 * bounds shared with SQL) — except where text order decides: the services of a trace are sent as a set
 * (SQL sorts them), and the root and entry span candidates tied on everything but the span id are all sent
 * (SQL breaks the tie by span id in its collation), so the result does not depend on JavaScript's order.
 */
import { latencyBucket, MINUTE_US } from './rollup.ts';
import { SpanLine, type StoredSpan } from './span-copy.ts';
import { rowFacts, type SpanFacts } from './span-rows.ts';

export type { SpanFacts } from './span-rows.ts';

export function factsOf(r: StoredSpan): SpanFacts {
  return r instanceof SpanLine ? r.batch.facts(r.i) : rowFacts(r);
}

/** The values of each row (strings shared between consecutive transcoded spans where their bytes are the same). */
export function factsOfRows(rows: readonly StoredSpan[]): SpanFacts[] {
  const out: SpanFacts[] = [];
  let prev: SpanLine | undefined;
  let before: SpanFacts | undefined;
  for (const r of rows) {
    let f: SpanFacts;
    if (r instanceof SpanLine) {
      f = prev?.batch === r.batch ? r.batch.facts(r.i, prev.i, before) : r.batch.facts(r.i);
      prev = r;
      before = f;
    } else {
      f = rowFacts(r);
      prev = undefined;
    }
    out.push(f);
  }
  return out;
}

const CATEGORIES = ['http', 'rpc', 'db', 'messaging', 'async_backend', 'other'] as const;

interface TracePiece {
  bk_biz_id: number;
  app_name: string;
  trace_id: string;
  retention_days: number;
  min_start_time: number;
  max_end_time: number;
  span_max_duration: number;
  span_min_duration: number;
  span_count: number;
  error_count: number;
  /** Per category of CATEGORIES. */
  categories: number[];
  kinds: [number, number, number, number];
  services: Set<string>;
  /** Spans tied for root (no parent first, then earliest start); the span id decides in SQL. */
  roots: SpanFacts[];
  /** SERVER/CONSUMER spans tied for earliest start. */
  entries: SpanFacts[];
}

/** Parameters of the trace pieces ($1…): column arrays, in the order of {@link TRACE_PIECE_PARAMS}. */
export const TRACE_PIECE_PARAMS = [
  ['bk_biz_id', 'bigint'], ['app_name', 'text'], ['trace_id', 'text'], ['retention_days', 'integer'], ['min_start_time', 'bigint'], ['max_end_time', 'bigint'],
  ['span_max_duration', 'bigint'], ['span_min_duration', 'bigint'], ['span_count', 'integer'], ['error_count', 'integer'],
  ['cat_http', 'integer'], ['cat_rpc', 'integer'], ['cat_db', 'integer'], ['cat_messaging', 'integer'], ['cat_async_backend', 'integer'], ['cat_other', 'integer'],
  ['kind_unspecified', 'integer'], ['kind_interval', 'integer'], ['kind_sync', 'integer'], ['kind_async', 'integer'],
  // the trace's distinct services (unordered; SQL sorts them), as an array literal
  ['service_set', 'text[]'],
  // the root candidates: tied on (has a parent, start), told apart by span id in SQL
  ['root_span_has_parent', 'boolean'], ['root_span_start', 'bigint'],
  ['root_span_ids', 'text[]'], ['root_span_names', 'text[]'], ['root_span_services', 'text[]'], ['root_span_kinds', 'smallint[]'],
  // the entry-service candidates (SERVER/CONSUMER spans tied on start; none: empty arrays)
  ['root_service_start', 'bigint'],
  ['entry_services', 'text[]'], ['entry_span_ids', 'text[]'], ['entry_span_names', 'text[]'], ['entry_kinds', 'smallint[]'], ['entry_status_codes', 'integer[]'], ['entry_categories', 'text[]'],
] as const;

function kindSlot(kind: number): number {
  return kind === 0 ? 0 : kind === 1 ? 1 : kind === 2 || kind === 3 ? 2 : kind === 4 || kind === 5 ? 3 : -1;
}

const QUOTED = /["\\]/;
const QUOTE = /["\\]/g;

/** A string as a quoted element of an array literal. */
function element(v: string): string {
  return QUOTED.test(v) ? `"${v.replace(QUOTE, '\\$&')}"` : `"${v}"`;
}

/** An array literal of strings (built by join: a flat string, which the driver measures and writes at once). */
function texts(values: Iterable<string>): string {
  const out: string[] = [];
  for (const v of values) out.push(element(v));
  return `{${out.join(',')}}`;
}

/** An array literal of numbers (null: NULL) or booleans. */
function scalars(values: readonly (number | boolean | null)[]): string {
  const out: string[] = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = v === null || v === undefined ? 'NULL' : String(v);
  }
  return `{${out.join(',')}}`;
}

/**
 * Column arrays as PostgreSQL array literals, one string per column ({@link TRACE_PIECE_PARAMS} and
 * {@link ROLLUP_PIECE_PARAMS} types: `text[]` columns hold literals of their own).
 */
class Columns {
  readonly #types: readonly string[];
  readonly #values: (number | boolean | string | null)[][];

  constructor(defs: readonly (readonly [string, string])[]) {
    this.#types = defs.map(([, t]) => t);
    this.#values = defs.map(() => []);
  }

  row(values: readonly (number | boolean | string | null)[]): void {
    for (let i = 0; i < values.length; i++) (this.#values[i] as unknown[]).push(values[i]);
  }

  literals(): string[] {
    return this.#values.map((column, i) => (this.#types[i] === 'text' || this.#types[i]?.endsWith('[]') ? texts(column as string[]) : scalars(column as (number | boolean | null)[])));
  }
}

/** The trace pieces of the rows (all of them newly stored): one array literal per column of {@link TRACE_PIECE_PARAMS}, one element per trace. */
export function tracePieces(rows: readonly SpanFacts[]): string[] {
  const byApp = new Map<string, Map<string, TracePiece>>();
  const pieces: TracePiece[] = [];
  let traces: Map<string, TracePiece> | undefined;
  let lastBiz = NaN;
  let lastApp: string | undefined;
  for (const r of rows) {
    if (r.bk_biz_id !== lastBiz || r.app_name !== lastApp) {
      lastBiz = r.bk_biz_id;
      lastApp = r.app_name;
      const appKey = `${r.bk_biz_id}\u0000${r.app_name}`;
      traces = byApp.get(appKey);
      if (!traces) {
        traces = new Map();
        byApp.set(appKey, traces);
      }
    }
    const duration = r.end_time - r.start_time;
    let p = (traces as Map<string, TracePiece>).get(r.trace_id);
    if (!p) {
      p = {
        bk_biz_id: r.bk_biz_id, app_name: r.app_name, trace_id: r.trace_id, retention_days: r.retention_days,
        min_start_time: r.start_time, max_end_time: r.end_time, span_max_duration: duration, span_min_duration: duration, span_count: 0, error_count: 0,
        categories: [0, 0, 0, 0, 0, 0], kinds: [0, 0, 0, 0], services: new Set(), roots: [r], entries: [],
      };
      (traces as Map<string, TracePiece>).set(r.trace_id, p);
      pieces.push(p);
    } else {
      if (r.retention_days > p.retention_days) p.retention_days = r.retention_days;
      if (r.start_time < p.min_start_time) p.min_start_time = r.start_time;
      if (r.end_time > p.max_end_time) p.max_end_time = r.end_time;
      if (duration > p.span_max_duration) p.span_max_duration = duration;
      if (duration < p.span_min_duration) p.span_min_duration = duration;
      const best = p.roots[0] as SpanFacts;
      if (r.has_parent === best.has_parent && r.start_time === best.start_time) p.roots.push(r);
      else if ((!r.has_parent && best.has_parent) || (r.has_parent === best.has_parent && r.start_time < best.start_time)) p.roots = [r];
    }
    p.span_count++;
    if (r.status_code === 2) p.error_count++;
    const c = CATEGORIES.indexOf(r.category as (typeof CATEGORIES)[number]);
    if (c >= 0) (p.categories[c] as number)++;
    const k = kindSlot(r.kind);
    if (k >= 0) (p.kinds[k] as number)++;
    if (r.service_name !== '') p.services.add(r.service_name);
    if (r.kind === 2 || r.kind === 5) {
      const best = p.entries[0];
      if (!best || r.start_time < best.start_time) p.entries = [r];
      else if (r.start_time === best.start_time) p.entries.push(r);
    }
  }
  const columns = new Columns(TRACE_PIECE_PARAMS);
  for (const p of pieces) {
    const root = p.roots[0] as SpanFacts;
    const [http, rpc, db, messaging, asyncBackend, other] = p.categories as [number, number, number, number, number, number];
    const [unspecified, interval, sync, async] = p.kinds;
    const e = p.entries;
    columns.row([
      p.bk_biz_id, p.app_name, p.trace_id, p.retention_days, p.min_start_time, p.max_end_time, p.span_max_duration, p.span_min_duration, p.span_count, p.error_count,
      http, rpc, db, messaging, asyncBackend, other, unspecified, interval, sync, async, texts(p.services),
      root.has_parent, root.start_time, texts(p.roots.map((r) => r.span_id)), texts(p.roots.map((r) => r.span_name)), texts(p.roots.map((r) => r.service_name)),
      scalars(p.roots.map((r) => r.kind)),
      e[0]?.start_time ?? null, texts(e.map((r) => r.service_name)), texts(e.map((r) => r.span_id)), texts(e.map((r) => r.span_name)),
      scalars(e.map((r) => r.kind)), scalars(e.map((r) => r.status_attr)), texts(e.map((r) => r.category)),
    ]);
  }
  return columns.literals();
}

/** Parameters of the rollup pieces: one per key and minute. */
export const ROLLUP_PIECE_PARAMS = [
  ['bk_biz_id', 'bigint'], ['app_name', 'text'], ['retention_days', 'integer'], ['service_name', 'text'], ['span_name', 'text'], ['kind', 'smallint'], ['minute', 'bigint'],
  ['span_count', 'integer'], ['error_count', 'integer'], ['elapsed_sum', 'numeric'], ['elapsed_min', 'bigint'], ['elapsed_max', 'bigint'], ['buckets', 'smallint[]'], ['counts', 'integer[]'],
] as const;

interface RollupPiece {
  r: SpanFacts;
  minute: number;
  span_count: number;
  error_count: number;
  sum: number;
  /** Set once the sum leaves the safe integers. */
  bigSum: bigint | undefined;
  min: number;
  max: number;
  /** Bucket, count, bucket, count… (few). */
  buckets: number[];
}

/** The rollup pieces of the rows (all of them newly stored): one array literal per column of {@link ROLLUP_PIECE_PARAMS}, one element per key and minute. */
export function rollupPieces(rows: readonly SpanFacts[]): string[] {
  // application and retention class → service → span name → kind and minute
  const byApp = new Map<string, Map<string, Map<string, Map<number | string, RollupPiece>>>>();
  const pieces: RollupPiece[] = [];
  let lastBiz = NaN;
  let lastApp: string | undefined;
  let lastRetention = NaN;
  let services: Map<string, Map<string, Map<number | string, RollupPiece>>> | undefined;
  for (const r of rows) {
    if (r.bk_biz_id !== lastBiz || r.app_name !== lastApp || r.retention_days !== lastRetention) {
      lastBiz = r.bk_biz_id;
      lastApp = r.app_name;
      lastRetention = r.retention_days;
      const key = `${r.bk_biz_id}\u0000${r.app_name}\u0000${r.retention_days}`;
      services = byApp.get(key);
      if (!services) {
        services = new Map();
        byApp.set(key, services);
      }
    }
    let names = (services as Map<string, Map<string, Map<number | string, RollupPiece>>>).get(r.service_name);
    if (!names) {
      names = new Map();
      (services as Map<string, Map<string, Map<number | string, RollupPiece>>>).set(r.service_name, names);
    }
    let minutes = names.get(r.span_name);
    if (!minutes) {
      minutes = new Map();
      names.set(r.span_name, minutes);
    }
    const minute = r.end_time - (((r.end_time % MINUTE_US) + MINUTE_US) % MINUTE_US);
    // minute number and kind in one exact number for the kinds there are (any other kind: a string)
    const key = r.kind >= 0 && r.kind < 65_536 ? (minute / MINUTE_US) * 65_536 + r.kind : `${r.kind}:${minute}`;
    let p = minutes.get(key);
    const e = r.elapsed_time;
    if (!p) {
      p = { r, minute, span_count: 0, error_count: 0, sum: 0, bigSum: undefined, min: e, max: e, buckets: [] };
      minutes.set(key, p);
      pieces.push(p);
    } else {
      if (e < p.min) p.min = e;
      if (e > p.max) p.max = e;
    }
    p.span_count++;
    if (r.status_code === 2) p.error_count++;
    if (p.bigSum !== undefined) p.bigSum += BigInt(e);
    else if (Number.isSafeInteger(p.sum + e)) p.sum += e;
    else p.bigSum = BigInt(p.sum) + BigInt(e);
    const b = latencyBucket(e);
    const bs = p.buckets;
    let i = 0;
    while (i < bs.length && bs[i] !== b) i += 2;
    if (i < bs.length) (bs[i + 1] as number)++;
    else bs.push(b, 1);
  }
  const columns = new Columns(ROLLUP_PIECE_PARAMS);
  for (const p of pieces) {
    const order: number[] = [];
    for (let i = 0; i < p.buckets.length; i += 2) order.push(i);
    order.sort((a, b) => (p.buckets[a] as number) - (p.buckets[b] as number));
    columns.row([
      p.r.bk_biz_id, p.r.app_name, p.r.retention_days, p.r.service_name, p.r.span_name, p.r.kind, p.minute, p.span_count, p.error_count,
      p.bigSum === undefined ? String(p.sum) : p.bigSum.toString(), p.min, p.max,
      `{${order.map((i) => p.buckets[i]).join(',')}}`, `{${order.map((i) => p.buckets[i + 1]).join(',')}}`,
    ]);
  }
  return columns.literals();
}
