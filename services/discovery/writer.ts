/**
 * Writes pending rows to the store: one multi-row upsert per table written by upsert (tables.ts: its
 * key columns and their SQL types; `unnest` arrays, on PGlite and PostgreSQL alike), `ON CONFLICT ON CONSTRAINT <table>_natural_key DO UPDATE` with
 * `last_seen = GREATEST(...)` and `first_seen = LEAST(...)`, so a write is idempotent and a replay of
 * older spans never moves `last_seen` back.
 *
 * Values are made storable first: NUL characters are removed and text is cut to the column's length in
 * characters (code points, as PostgreSQL and the reference's MySQL count them; a surrogate pair is never
 * split), a column naming a topo node to the node key's length (tables.ts `textLength`), so a node whose
 * key was cut keeps its data and is named alike everywhere (the reference fails the whole round on an
 * over-long value). Rows are sorted by key so concurrent
 * instances lock rows in the same order. Topo nodes are merged with the stored JSON in a transaction
 * (`SELECT … FOR UPDATE`), with the commutative merge of node-merge.ts.
 *
 * If a table's upsert fails for a reason that retrying cannot fix (bad data), its rows are written one
 * by one and the rows that still fail are dropped, logged and counted: one bad row never blocks the
 * partition. Retriable failures (store unavailable) propagate so the flusher retries.
 */
import { isRetriable } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { Queryable, Store } from '../common/store/index.ts';
import type { PendingRow, Snapshot } from './dedupe.ts';
import { mergeIntoStored, mergeNode, type StoredNode } from './node-merge.ts';
import { SEP, type NodeRow } from './records.ts';
import { storable } from './storable.ts';
import { APP_NAME_MAX, DISCOVERED, textLength, UPSERT_TABLES, type Column, type Table, type UpsertTable } from './tables.ts';

/** What an upsert writes: a table and its key columns. */
export interface UpsertSpec {
  table: string;
  columns: readonly Column[];
}

/** The upsert of each table written by upsert, from its declaration. */
export const UPSERTS = {} as Record<UpsertTable, UpsertSpec>;
for (const t of UPSERT_TABLES) UPSERTS[t] = { table: DISCOVERED[t].sql, columns: DISCOVERED[t].key };

const NODES = DISCOVERED.node.sql;
const TOPO_KEY_MAX = textLength(DISCOVERED.node.key[0]);
const EPOCH = `'1970-01-01 00:00:00+00'::timestamptz`;
const atMicros = (col: string): string => `${EPOCH} + ${col} * interval '1 microsecond'`;
/** A timestamptz column as µs since the epoch (bigint). */
const micros = (col: string): string => `(extract(epoch from ${col}) * 1000000)::bigint`;

function storableValue(v: unknown, col: Column): string | number | null {
  if (v === null || v === undefined) return null;
  return col.type === 'text' ? storable(typeof v === 'string' ? v : JSON.stringify(v), textLength(col)) : (v as number);
}

interface Prepared {
  bk_biz_id: number;
  app_name: string;
  values: (string | number | null)[];
  first: number;
  last: number;
  key: string;
}

/** Storable rows, coalesced again (cutting may make two keys equal) and sorted by key. */
function prepare(spec: UpsertSpec, rows: readonly PendingRow[]): Prepared[] {
  const byKey = new Map<string, Prepared>();
  for (const p of rows) {
    const record = p.row as unknown as Record<string, unknown>;
    const values = spec.columns.map((c) => storableValue(record[c.name], c));
    const app = storable(p.app_name, APP_NAME_MAX);
    const key = p.bk_biz_id + SEP + app + SEP + values.map((v) => (v === null ? '\\N' : String(v))).join(SEP);
    const seen = byKey.get(key);
    if (seen) {
      seen.first = Math.min(seen.first, p.first);
      seen.last = Math.max(seen.last, p.last);
    } else {
      byKey.set(key, { bk_biz_id: p.bk_biz_id, app_name: app, values, first: p.first, last: p.last, key });
    }
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function upsertSql(spec: UpsertSpec): string {
  const cols = spec.columns.map((c) => c.name);
  const n = cols.length;
  const arrays = ['$1::bigint[]', '$2::text[]', ...spec.columns.map((c, i) => `$${i + 3}::${c.type}[]`), `$${n + 3}::bigint[]`, `$${n + 4}::bigint[]`];
  return `INSERT INTO ${spec.table} AS t (bk_biz_id, app_name, ${cols.join(', ')}, first_seen, last_seen)
SELECT u.bk_biz_id, u.app_name, ${cols.map((c) => `u.${c}`).join(', ')}, ${atMicros('u.f')}, ${atMicros('u.l')}
FROM unnest(${arrays.join(', ')}) AS u(bk_biz_id, app_name, ${cols.join(', ')}, f, l)
ON CONFLICT ON CONSTRAINT ${spec.table}_natural_key DO UPDATE SET
  first_seen = LEAST(t.first_seen, EXCLUDED.first_seen),
  last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen),
  updated_at = now()
WHERE EXCLUDED.last_seen > t.last_seen + $${n + 5} * interval '1 microsecond'
   OR EXCLUDED.first_seen < t.first_seen - $${n + 5} * interval '1 microsecond'`;
}

const SQL = {} as Record<UpsertTable, string>;
for (const t of UPSERT_TABLES) SQL[t] = upsertSql(UPSERTS[t]);

/** Upserts rows; returns how many the store inserted or changed. */
async function upsert(db: Queryable, table: UpsertTable, rows: readonly Prepared[], touchUs: number): Promise<number> {
  const spec = UPSERTS[table];
  const params: unknown[] = [rows.map((r) => r.bk_biz_id), rows.map((r) => r.app_name)];
  spec.columns.forEach((_, i) => params.push(rows.map((r) => r.values[i])));
  params.push(rows.map((r) => r.first), rows.map((r) => r.last), touchUs);
  return (await db.query(SQL[table], params)).rowCount;
}

/** Whether two JSON values are equal, whatever the order of their objects' keys (jsonb reorders them). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => sameJson(x, (b as unknown[])[i]));
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

export interface WriteResult {
  /** Rows the store inserted or changed, per table. */
  written: Partial<Record<Table, number>>;
  /**
   * Rows sent that changed nothing, per table: already stored with their data and with seen times within
   * the touch interval of these (another instance, or this one before its dedupe entry was evicted, wrote
   * them first).
   */
  unchanged: Partial<Record<Table, number>>;
  /** Rows dropped because the store refused them individually. */
  rejected: Partial<Record<Table, number>>;
}

export interface WriterOptions {
  store: Store;
  logger: Logger;
  /** Rows per statement. Default 2 000. */
  chunkRows?: number;
}

/** What a write of some rows did: rows inserted or changed, and rows dropped. */
interface Outcome {
  changed: number;
  rejected: number;
}

export class Writer {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #chunk: number;

  constructor(options: WriterOptions) {
    this.#store = options.store;
    this.#log = options.logger.child({ component: 'discovery.writer' });
    this.#chunk = options.chunkRows ?? 2_000;
  }

  /**
   * Writes a snapshot; throws (retriable) when the store is unavailable. A stored row is updated only when
   * its data changes or its seen times move by more than the snapshot's touch interval (the dedupe's
   * DISCOVERY_TOUCH_INTERVAL_MS), so instances that see the same rows do not write them again and again.
   */
  async write(snapshot: Snapshot): Promise<WriteResult> {
    const touchUs = snapshot.touchIntervalMs * 1000;
    const result: WriteResult = { written: {}, unchanged: {}, rejected: {} };
    const add = (table: Table, sent: number, o: Outcome): void => {
      if (o.changed > 0) result.written[table] = (result.written[table] ?? 0) + o.changed;
      const unchanged = sent - o.changed - o.rejected;
      if (unchanged > 0) result.unchanged[table] = (result.unchanged[table] ?? 0) + unchanged;
      if (o.rejected > 0) result.rejected[table] = (result.rejected[table] ?? 0) + o.rejected;
    };
    for (const table of UPSERT_TABLES) {
      const rows = prepare(UPSERTS[table], snapshot[table]);
      for (let i = 0; i < rows.length; i += this.#chunk) {
        const chunk = rows.slice(i, i + this.#chunk);
        add(table, chunk.length, await this.#guarded(table, chunk, (part) => upsert(this.#store, table, part, touchUs)));
      }
    }
    const nodes = snapshot.node;
    for (let i = 0; i < nodes.length; i += this.#chunk) {
      const chunk = nodes.slice(i, i + this.#chunk);
      add('node', chunk.length, await this.#guarded('node', chunk, (part) => this.#writeNodes(part, touchUs)));
    }
    return result;
  }

  /** Runs `write` (which returns the rows it changed) on all rows; on a non-retriable failure, row by row. */
  async #guarded<R>(table: Table, rows: readonly R[], write: (rows: readonly R[]) => Promise<number>): Promise<Outcome> {
    if (rows.length === 0) return { changed: 0, rejected: 0 };
    try {
      return { changed: await write(rows), rejected: 0 };
    } catch (err) {
      if (isRetriable(err)) throw err;
      if (rows.length === 1) {
        this.#log.warn('row rejected by the store; dropped', { table, err });
        return { changed: 0, rejected: 1 };
      }
    }
    const total: Outcome = { changed: 0, rejected: 0 };
    for (const row of rows) {
      const o = await this.#guarded(table, [row], write);
      total.changed += o.changed;
      total.rejected += o.rejected;
    }
    return total;
  }

  /**
   * Read-merge-write of topo nodes, so instances writing the same node at once merge instead of
   * overwrite. Only nodes that are new, whose merged data differs from the stored data, or whose seen
   * times move past the touch interval are locked (`FOR UPDATE`, in id order), read again and updated;
   * returns how many.
   */
  async #writeNodes(rows: readonly PendingRow[], touchUs: number): Promise<number> {
    const byKey = new Map<string, { p: PendingRow; row: NodeRow; app: string; topoKey: string }>();
    for (const p of rows) {
      const row = p.row as NodeRow;
      const app = storable(p.app_name, APP_NAME_MAX);
      const topoKey = storable(row.topo_key, TOPO_KEY_MAX);
      const key = p.bk_biz_id + SEP + app + SEP + topoKey;
      // Keys that are equal once cut name one node: what they say is merged, as for one key.
      const seen = byKey.get(key);
      if (seen) {
        seen.row = mergeNode(seen.row, row);
        seen.p = { ...seen.p, first: Math.min(seen.p.first, p.first), last: Math.max(seen.p.last, p.last) };
      } else {
        byKey.set(key, { p, row, app, topoKey });
      }
    }
    const items = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    const biz = items.map((x) => x.p.bk_biz_id);
    const apps = items.map((x) => x.app);
    const keys = items.map((x) => x.topoKey);
    type Stored = StoredNode & { id: number; bk_biz_id: number; app_name: string; topo_key: string; f: string; l: string };
    const select = (lock: boolean): string =>
      `SELECT n.id, n.bk_biz_id, n.app_name, n.topo_key, n.extra_data, n.system, n.platform, n.sdk, n.source,
         ${micros('n.first_seen')} AS f, ${micros('n.last_seen')} AS l
       FROM ${NODES} n JOIN unnest($1::bigint[], $2::text[], $3::text[]) AS u(b, a, k)
         ON n.bk_biz_id = u.b AND n.app_name = u.a AND n.topo_key = u.k
       ORDER BY n.id${lock ? ' FOR UPDATE OF n' : ''}`;
    /** The nodes whose stored row the contributions change: new, different data, or seen times past the touch interval. */
    const changes = (stored: readonly Stored[], fresh: ReadonlySet<number>): { x: (typeof items)[number]; s: Stored; merged: StoredNode; changed: boolean }[] => {
      const byStored = new Map(stored.map((s) => [s.bk_biz_id + SEP + s.app_name + SEP + s.topo_key, s]));
      const out: { x: (typeof items)[number]; s: Stored; merged: StoredNode; changed: boolean }[] = [];
      for (const x of items) {
        const s = byStored.get(x.p.bk_biz_id + SEP + x.app + SEP + x.topoKey);
        if (!s) continue;
        const merged = mergeIntoStored(s, x.row);
        const changed = fresh.has(Number(s.id)) || !sameJson(merged.extra_data, s.extra_data) || !sameJson(merged.system, s.system) ||
          !sameJson(merged.platform, s.platform) || !sameJson(merged.sdk, s.sdk) || !sameJson(merged.source, s.source);
        if (changed || x.p.last > Number(s.l) + touchUs || x.p.first < Number(s.f) - touchUs) out.push({ x, s, merged, changed });
      }
      return out;
    };
    return this.#store.transaction(async (tx) => {
      const { rows: inserted } = await tx.query<{ id: number }>(
        `INSERT INTO ${NODES} (bk_biz_id, app_name, topo_key, first_seen, last_seen)
         SELECT u.b, u.a, u.k, ${atMicros('u.f')}, ${atMicros('u.l')}
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS u(b, a, k, f, l)
         ON CONFLICT ON CONSTRAINT ${NODES}_natural_key DO NOTHING
         RETURNING id`,
        [biz, apps, keys, items.map((x) => x.p.first), items.map((x) => x.p.last)],
      );
      const fresh = new Set(inserted.map((r) => Number(r.id)));
      // Read without locks first: instances that see the same nodes mostly have nothing to change, and
      // then take no row lock at all. Only the nodes to change are locked, read again and merged.
      const seen = changes((await tx.query<Stored>(select(false), [biz, apps, keys])).rows, fresh);
      if (seen.length === 0) return 0;
      const locked = changes((await tx.query<Stored>(select(true), [seen.map((c) => c.x.p.bk_biz_id), seen.map((c) => c.x.app), seen.map((c) => c.x.topoKey)])).rows, fresh);
      if (locked.length === 0) return 0;
      const columns: string[][] = [[], [], [], [], []];
      for (const { merged } of locked) [merged.extra_data, merged.system, merged.platform, merged.sdk, merged.source].forEach((v, i) => columns[i]?.push(JSON.stringify(v)));
      const { rowCount } = await tx.query(
        `UPDATE ${NODES} t SET extra_data = u.e::jsonb, system = u.s::jsonb, platform = u.p::jsonb, sdk = u.k::jsonb, source = u.src::jsonb,
           first_seen = LEAST(t.first_seen, ${atMicros('u.f')}), last_seen = GREATEST(t.last_seen, ${atMicros('u.l')}), updated_at = now()
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) AS u(id, e, s, p, k, src, f, l)
         WHERE t.id = u.id`,
        [locked.map((c) => c.s.id), ...columns, locked.map((c) => c.x.p.first), locked.map((c) => c.x.p.last)],
      );
      return rowCount;
    });
  }
}
