/**
 * The dedupe cache and the rows waiting for the next flush.
 *
 * Every sighting's natural key (its table's key columns as tables.ts declares them, with table, business
 * and app) is looked up in a bounded map with approximate LRU eviction and a TTL ({@link SeenKeys}) that
 * maps it to the event time (s) last written or queued for it.
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
import { storable } from './storable.ts';

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
  /** Wall clock (ms) for the TTL. Default Date.now. */
  now?: () => number;
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
 * Natural keys seen lately, by two 31-bit hash lanes, with the event time (s) last written or queued for
 * each: a bounded map with approximate LRU eviction in two generations (a young and an old table; a key
 * found in the old one moves to the young one; when the young one holds half the bound, the old one is
 * emptied in place and they swap) and a TTL from the last write. A slot is four int32s side by side —
 * lane a, lane b, the event time and the wall-clock time of the last write, both in seconds from
 * {@link EPOCH_S} — so a lookup touches one cache line and nothing is allocated per key: 16 bytes a slot,
 * 2 slots per key at most (the lru-cache it replaces took ~90 bytes of V8 heap per key).
 */
export class SeenKeys {
  readonly #half: number;
  readonly #mask: number;
  readonly #ttlS: number;
  #young: Int32Array;
  #old: Int32Array;
  #youngSize = 0;
  #oldSize = 0;

  constructor(maxKeys: number, ttlMs: number) {
    this.#half = Math.max(1, Math.floor(maxKeys / 2));
    let cap = 256;
    while (cap <= 2 * this.#half) cap *= 2; // at most half full
    this.#mask = cap - 1;
    this.#young = new Int32Array(cap * 4);
    this.#old = new Int32Array(cap * 4);
    this.#ttlS = Math.ceil(ttlMs / 1000);
  }

  /** Keys held (a key moved from the old table may be counted twice until the old table is emptied). */
  get size(): number {
    return this.#youngSize + this.#oldSize;
  }

  /** The slot offset of the key in `table`, or -1 (`-1 - offset` of the empty slot it would take). */
  #find(table: Int32Array, a: number, b: number): number {
    const mask = this.#mask;
    for (let i = slotOf(a, b) & mask; ; i = (i + 1) & mask) {
      const at = i * 4;
      if (table[at + 3] === 0) return -1 - at;
      if (table[at] === a && table[at + 1] === b) return at;
    }
  }

  /** The event time (s from EPOCH_S) last written for the key, or undefined when unknown or older than the TTL. */
  get(a: number, b: number, nowS: number): number | undefined {
    const young = this.#young;
    let at = this.#find(young, a, b);
    if (at >= 0) return nowS - (young[at + 3] as number) > this.#ttlS ? undefined : young[at + 2];
    const old = this.#old;
    at = this.#find(old, a, b);
    if (at < 0 || nowS - (old[at + 3] as number) > this.#ttlS) return undefined;
    const written = old[at + 2] as number;
    this.#insert(a, b, written, old[at + 3] as number);
    return written;
  }

  /** Records the event time written for the key (seconds from EPOCH_S), now (the TTL starts again). */
  set(a: number, b: number, writtenS: number, nowS: number): void {
    const young = this.#young;
    const at = this.#find(young, a, b);
    if (at >= 0) {
      young[at + 2] = writtenS;
      young[at + 3] = nowS;
    } else {
      this.#insert(a, b, writtenS, nowS);
    }
  }

  #insert(a: number, b: number, writtenS: number, nowS: number): void {
    if (this.#youngSize >= this.#half) {
      const old = this.#old;
      old.fill(0);
      this.#old = this.#young;
      this.#young = old;
      this.#oldSize = this.#youngSize;
      this.#youngSize = 0;
    }
    const young = this.#young;
    const found = this.#find(young, a, b);
    const at = found >= 0 ? found : -1 - found;
    if (found < 0) this.#youngSize++;
    young[at] = a;
    young[at + 1] = b;
    young[at + 2] = writtenS;
    young[at + 3] = nowS;
  }
}

/** Times in {@link SeenKeys} are seconds from here (int32 holds ±68 years around it; 0 marks an empty slot). */
const EPOCH_S = 1_600_000_000;

/** A slot index from two lanes (murmur3's finaliser). */
function slotOf(a: number, b: number): number {
  let h = a ^ Math.imul(b, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
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
  readonly #cache: SeenKeys;
  readonly #touchS: number;
  readonly #nodeKinds: NodeKinds;
  readonly #now: () => number;
  /** Hashes every key (reused). */
  readonly #hash = new Hasher();
  #pending: { [T in Table]: Map<number, PendingRow<T>> } = DedupeSink.#empty();
  #pendingRows = 0;
  #hits = zeroCounts();
  #misses = zeroCounts();

  constructor(options: DedupeOptions) {
    this.#cache = new SeenKeys(options.maxKeys, options.ttlMs);
    this.#now = options.now ?? Date.now;
    this.#touchS = Math.floor(options.touchIntervalMs / 1000);
    this.#nodeKinds = options.nodeKinds;
  }

  static #empty(): { [T in Table]: Map<number, PendingRow<T>> } {
    return Object.fromEntries(TABLES.map((t) => [t, new Map()])) as unknown as { [T in Table]: Map<number, PendingRow<T>> };
  }

  emit<T extends Table>(table: T, bkBizId: number, appName: string, row: Rows[T], timeUs: number): void {
    const node = table === 'node';
    const h = this.#hash;
    const key = node ? nodeContributionKey(h, bkBizId, appName, row as NodeRow) : rowKey(h, table, bkBizId, appName, row);
    // The cache takes the lanes as 31-bit small integers (no boxing), times as seconds from EPOCH_S.
    const a = h.a >> 1;
    const b = h.b >> 1;
    const seconds = Math.floor(timeUs / 1_000_000) - EPOCH_S;
    const wall = Math.floor(this.#now() / 1000) - EPOCH_S;
    const nowS = wall === 0 ? -1 : wall; // 0 marks an empty slot
    const written = this.#cache.get(a, b, nowS);
    if (written !== undefined && seconds <= written + this.#touchS) {
      this.#hits[table]++;
      return;
    }
    this.#misses[table]++;
    this.#cache.set(a, b, written === undefined ? seconds : Math.max(written, seconds), nowS);
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

  /** Stale entries are ignored when read and their slots reused; nothing to drop (kept for the service's timers). */
  purgeStale(): void {}
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
