/**
 * The dedupe cache and the rows waiting for the next flush.
 *
 * Every sighting's natural key (its table's key columns as tables.ts declares them, with table, business
 * and app) is looked up in an LRU (`lru-cache`, bounded by entry count, with a TTL) that maps it to the
 * event time (s) last written or queued for it.
 * A sighting is queued only when its key is unknown, or when its event time moved past that by more than
 * the touch interval; so store writes are bounded by distinct keys, not by span count. An entry lost to
 * eviction only costs a redundant upsert. Queued rows are coalesced per key (first_seen = min,
 * last_seen = max) until {@link DedupeSink.take} hands them to the writer; a failed write gives them
 * back with {@link DedupeSink.restore}, so nothing queued is lost while the process lives.
 *
 * Topo nodes are deduplicated on the whole contribution (node key plus what the span says about it);
 * contributions to one node are merged (node-merge.ts) and the best known kind/category of each node is
 * kept for the relation discoverer ({@link NodeKinds}).
 */
import { LRUCache } from '../common/lru.ts';
import type { NodeKindLookup } from './discoverers/relation.ts';
import { Hasher } from './hash.ts';
import { mergeExtra, mergeNode } from './node-merge.ts';
import { SEP, type NamedEntry, type NodeExtra, type NodeRow, type Rows, type Sink } from './records.ts';
import { DISCOVERED, NODE_KEY_MAX, TABLES, type Table } from './tables.ts';
import { storable } from './writer.ts';

export interface PendingRow<T extends Table = Table> {
  bk_biz_id: number;
  app_name: string;
  row: Rows[T];
  /** µs. */
  first: number;
  /** µs. */
  last: number;
}

/**
 * Rows handed to the writer, per table, with the touch interval they were deduplicated with: the writer
 * leaves a stored row alone when its seen times are within it (writer.ts), as this sink does.
 */
export type Snapshot = { [T in Table]: PendingRow<T>[] } & { touchIntervalMs: number };

export interface DedupeOptions {
  maxKeys: number;
  ttlMs: number;
  touchIntervalMs: number;
  nodeKinds: NodeKinds;
}

/** Per-table sighting counts since the last {@link DedupeSink.counts} call. */
export interface SightingCounts {
  hits: Record<Table, number>;
  misses: Record<Table, number>;
}

const zeroCounts = (): Record<Table, number> => Object.fromEntries(TABLES.map((t) => [t, 0])) as Record<Table, number>;

const TABLE_SEED = new Map<Table, number>(TABLES.map((t, i) => [t, i + 1]));

function beginRow(h: Hasher, table: Table, bkBizId: number, appName: string): void {
  h.begin(TABLE_SEED.get(table) ?? 0);
  h.num(bkBizId);
  h.str(appName);
}

/**
 * The hash (with `h`) of a row's natural key — its table's key columns, in order — with its table,
 * business and app. For a topo node contribution that is the node's identity (its pending row).
 */
function rowKey(h: Hasher, table: Table, bkBizId: number, appName: string, row: Rows[Table]): number {
  beginRow(h, table, bkBizId, appName);
  const record = row as unknown as Record<string, unknown>;
  for (const c of DISCOVERED[table].key) h.value(record[c.name]);
  return h.end();
}

function entry(h: Hasher, e: NamedEntry): void {
  h.str(e.name);
  for (const k in e.extra_data) {
    h.str(k);
    h.value(e.extra_data[k]);
  }
}

/** The hash (with `h`) of everything a node contribution says (its node key and each value). */
function nodeContributionKey(h: Hasher, bkBizId: number, appName: string, r: NodeRow): number {
  beginRow(h, 'node', bkBizId, appName);
  h.str(r.topo_key);
  const e = r.extra;
  if (e) {
    h.str(e.category);
    h.str(e.kind);
    h.value(e.predicate_value);
    h.value(e.service_language);
  }
  h.num(r.system?.length ?? -1);
  if (r.system) for (const x of r.system) entry(h, x);
  h.num(r.platform ? 1 : 0);
  if (r.platform) entry(h, r.platform);
  h.num(r.sdk?.length ?? -1);
  if (r.sdk) for (const x of r.sdk) entry(h, x);
  return h.end();
}

export class DedupeSink implements Sink {
  readonly #cache: LRUCache<number, number>;
  readonly #touchS: number;
  readonly #nodeKinds: NodeKinds;
  /** Hashes every key (reused). */
  readonly #hash = new Hasher();
  #pending: { [T in Table]: Map<number, PendingRow<T>> } = DedupeSink.#empty();
  #pendingRows = 0;
  #hits = zeroCounts();
  #misses = zeroCounts();

  constructor(options: DedupeOptions) {
    this.#cache = new LRUCache<number, number>({ max: options.maxKeys, ttl: options.ttlMs, ttlAutopurge: false, updateAgeOnGet: false });
    this.#touchS = Math.floor(options.touchIntervalMs / 1000);
    this.#nodeKinds = options.nodeKinds;
  }

  static #empty(): { [T in Table]: Map<number, PendingRow<T>> } {
    return Object.fromEntries(TABLES.map((t) => [t, new Map()])) as unknown as { [T in Table]: Map<number, PendingRow<T>> };
  }

  emit<T extends Table>(table: T, bkBizId: number, appName: string, row: Rows[T], timeUs: number): void {
    const node = table === 'node';
    const key = node ? nodeContributionKey(this.#hash, bkBizId, appName, row as NodeRow) : rowKey(this.#hash, table, bkBizId, appName, row);
    const seconds = Math.floor(timeUs / 1_000_000);
    const written = this.#cache.get(key);
    if (written !== undefined && seconds <= written + this.#touchS) {
      this.#hits[table]++;
      return;
    }
    this.#misses[table]++;
    this.#cache.set(key, written === undefined ? seconds : Math.max(written, seconds));
    if (node) {
      const r = row as NodeRow;
      if (r.extra) this.#nodeKinds.merge(bkBizId, appName, r.topo_key, r.extra);
      this.#queue('node', rowKey(this.#hash, 'node', bkBizId, appName, r), bkBizId, appName, r, timeUs);
    } else {
      this.#queue(table, key, bkBizId, appName, row, timeUs);
    }
  }

  #queue<T extends Table>(table: T, key: number, bkBizId: number, appName: string, row: Rows[T], timeUs: number): void {
    const map = this.#pending[table];
    const p = map.get(key);
    if (p) {
      if (timeUs < p.first) p.first = timeUs;
      if (timeUs > p.last) p.last = timeUs;
      if (table === 'node') p.row = mergeNode(p.row as NodeRow, row as unknown as NodeRow) as Rows[T];
      return;
    }
    map.set(key, { bk_biz_id: bkBizId, app_name: appName, row, first: timeUs, last: timeUs });
    this.#pendingRows++;
  }

  /** Rows queued and not yet handed to the writer. */
  pendingRows(): number {
    return this.#pendingRows;
  }

  /** Keys in the dedupe cache. */
  cachedKeys(): number {
    return this.#cache.size;
  }

  /** Hands every queued row to the caller and starts a new queue. */
  take(): Snapshot {
    const taken = this.#pending;
    this.#pending = DedupeSink.#empty();
    this.#pendingRows = 0;
    const snapshot = Object.fromEntries(TABLES.map((t) => [t, [...taken[t].values()]])) as unknown as Snapshot;
    snapshot.touchIntervalMs = this.#touchS * 1000;
    return snapshot;
  }

  /** Puts rows back after a failed write (coalescing with what was queued meanwhile). */
  restore(snapshot: Snapshot): void {
    for (const table of TABLES) {
      for (const p of snapshot[table] as PendingRow[]) {
        const key = rowKey(this.#hash, table, p.bk_biz_id, p.app_name, p.row);
        this.#queue(table, key, p.bk_biz_id, p.app_name, p.row, p.first);
        this.#queue(table, key, p.bk_biz_id, p.app_name, p.row, p.last);
      }
    }
  }

  /** Sighting counts since the previous call. */
  counts(): SightingCounts {
    const out = { hits: this.#hits, misses: this.#misses };
    this.#hits = zeroCounts();
    this.#misses = zeroCounts();
    return out;
  }

  /** Drops stale entries (call on an interval: lru-cache's autopurge arms a timer per entry). */
  purgeStale(): void {
    this.#cache.purgeStale();
  }
}

/**
 * The best known kind/category of each topo node, for the relation discoverer: fed by node sightings,
 * by the nodes written, and by what the store holds for an app when it is first seen. Bounded (LRU).
 */
export class NodeKinds implements NodeKindLookup {
  readonly #nodes: LRUCache<string, NodeExtra>;
  #version = 0;

  constructor(maxNodes: number) {
    this.#nodes = new LRUCache<string, NodeExtra>({ max: maxNodes });
  }

  /** Changes whenever the kind or category known for some node changes. */
  get version(): number {
    return this.#version;
  }

  /** Nodes are known by their key as stored (cut to the node key's length), as the store loads them. */
  static #key(bkBizId: number, appName: string, topoKey: string): string {
    return bkBizId + SEP + appName + SEP + storable(topoKey, NODE_KEY_MAX);
  }

  merge(bkBizId: number, appName: string, topoKey: string, extra: NodeExtra): void {
    const key = NodeKinds.#key(bkBizId, appName, topoKey);
    const seen = this.#nodes.get(key);
    const merged = mergeExtra(seen, extra) as NodeExtra;
    if (merged === seen) return;
    this.#nodes.set(key, merged);
    if (merged.kind !== seen?.kind || merged.category !== seen.category) this.#version++;
  }

  nodeKind(bkBizId: number, appName: string, topoKey: string): { kind: string; category: string } | undefined {
    return this.#nodes.get(NodeKinds.#key(bkBizId, appName, topoKey));
  }
}
