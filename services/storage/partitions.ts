/**
 * Day partitions (migrations 0400_storage.sql, 0402_storage_rollups.sql): spans, trace summaries and the
 * spans' per-minute rollups by retention class, then by day of event time (µs); metric samples and events
 * by day (ms).
 *
 * - {@link PartitionManager.ensure} makes sure the partitions a batch needs exist (cached; created on a
 *   miss). A partition is created as a plain table and then ATTACHed: ATTACH takes a SHARE UPDATE
 *   EXCLUSIVE lock on the parent, so reads and writes of the other days go on (CREATE … PARTITION OF
 *   would take ACCESS EXCLUSIVE). Creation runs under an advisory lock, so instances do not race.
 * - {@link PartitionManager.maintain} creates today's and the next days' partitions ahead of time and
 *   drops every day partition that lies wholly before its retention (the class's days for spans, traces
 *   and rollups, the configured days for samples and events). Nothing is deleted row by row.
 */
import { errorMessage, UnavailableError } from '../common/errors.ts';
import type { Queryable, Store } from '../common/store/index.ts';

export const DAY_MS = 86_400_000;
export const DAY_US = 86_400_000_000;
/** Arbitrary constant naming the storage service's partition DDL lock. */
const LOCK_ID = 7_290_400;

/** The tables partitioned by day; `classed` ones have a retention-class level above the days. */
export const PARTITIONED = {
  span: { table: 'storage_span', classed: true, unitPerDay: DAY_US },
  trace: { table: 'storage_trace', classed: true, unitPerDay: DAY_US },
  minute: { table: 'storage_span_minute', classed: true, unitPerDay: DAY_US },
  sample: { table: 'storage_metric_sample', classed: false, unitPerDay: DAY_MS },
  event: { table: 'storage_event', classed: false, unitPerDay: DAY_MS },
} as const;
export type PartitionedKind = keyof typeof PARTITIONED;

/** A day number (days since the epoch) as yyyymmdd. */
export function dayName(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '');
}

export function dayOfMs(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

export function dayOfUs(us: number): number {
  return Math.floor(us / DAY_US);
}

export function partitionName(kind: PartitionedKind, day: number, retentionDays?: number): string {
  const def = PARTITIONED[kind];
  return def.classed ? `${def.table}_r${retentionDays}_p${dayName(day)}` : `${def.table}_p${dayName(day)}`;
}

/** A partition a batch needs: its kind, its day, and (spans, traces, rollups) its retention class. */
export interface PartitionNeed {
  kind: PartitionedKind;
  day: number;
  retentionDays?: number;
}

const NAME = /^(storage_span|storage_trace|storage_span_minute)_r(\d+)_p(\d{8})$|^(storage_metric_sample|storage_event)_p(\d{8})$/;
const CLASSED_KIND: Record<string, PartitionedKind> = { storage_span: 'span', storage_trace: 'trace', storage_span_minute: 'minute' };

/** Day number of a yyyymmdd string. */
function dayOfName(yyyymmdd: string): number {
  return Date.UTC(Number(yyyymmdd.slice(0, 4)), Number(yyyymmdd.slice(4, 6)) - 1, Number(yyyymmdd.slice(6, 8))) / DAY_MS;
}

export interface ExistingPartition {
  name: string;
  kind: PartitionedKind;
  day: number;
  retentionDays: number | undefined;
}

/** The day partitions that exist now. */
export async function listPartitions(db: Queryable): Promise<ExistingPartition[]> {
  const { rows } = await db.query<{ relname: string }>(
    `SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND pg_table_is_visible(c.oid)
       AND c.relname ~ '^storage_(span|trace|span_minute)_r[0-9]+_p[0-9]{8}$|^storage_(metric_sample|event)_p[0-9]{8}$'`,
  );
  const out: ExistingPartition[] = [];
  for (const { relname } of rows) {
    const m = NAME.exec(relname);
    if (!m) continue;
    if (m[1]) out.push({ name: relname, kind: CLASSED_KIND[m[1]] as PartitionedKind, retentionDays: Number(m[2]), day: dayOfName(m[3] as string) });
    else out.push({ name: relname, kind: m[4] === 'storage_event' ? 'event' : 'sample', retentionDays: undefined, day: dayOfName(m[5] as string) });
  }
  return out;
}

export interface RetentionSettings {
  metricRetentionDays: number;
  eventRetentionDays: number;
}

export interface MaintainResult {
  created: string[];
  dropped: string[];
}

export class PartitionManager {
  readonly #store: Store;
  readonly #known = new Set<string>();

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * Runs a write that needs partitions: when the store says a row has no partition (another instance
   * dropped one this one still had cached), the cache is cleared and the write fails as retriable, so it
   * is tried again and {@link ensure} recreates what is missing.
   */
  async writing<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if ((err as { code?: unknown }).code === '23514' && /no partition/i.test(errorMessage(err))) {
        this.#known.clear();
        throw new UnavailableError(`a partition was missing: ${errorMessage(err)}`, { cause: err });
      }
      throw err;
    }
  }

  /** Creates the partitions in `needs` that do not exist yet. */
  async ensure(needs: Iterable<PartitionNeed>): Promise<string[]> {
    const missing = new Map<string, PartitionNeed>();
    for (const need of needs) {
      const name = partitionName(need.kind, need.day, need.retentionDays);
      if (!this.#known.has(name)) missing.set(name, need);
    }
    if (missing.size === 0) return [];
    const created = await this.#store.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
      const existing = new Set((await listPartitions(tx)).map((p) => p.name));
      const made: string[] = [];
      for (const [name, need] of missing) {
        if (existing.has(name)) continue;
        await createPartition(tx, name, need);
        made.push(name);
      }
      return made;
    });
    for (const name of missing.keys()) this.#known.add(name);
    return created;
  }

  /**
   * Creates partitions for today and `aheadDays` days after it (spans, traces and rollups for every
   * retention class in `classes`), and drops the day partitions past their retention. `now` in ms.
   */
  async maintain(now: number, classes: Iterable<number>, aheadDays: number, settings: RetentionSettings): Promise<MaintainResult> {
    const today = dayOfMs(now);
    const existing = await listPartitions(this.#store);
    const allClasses = new Set<number>(classes);
    for (const p of existing) if (p.retentionDays !== undefined) allClasses.add(p.retentionDays);
    const needs: PartitionNeed[] = [];
    for (let day = today; day <= today + aheadDays; day++) {
      for (const retentionDays of allClasses) {
        needs.push({ kind: 'span', day, retentionDays }, { kind: 'trace', day, retentionDays }, { kind: 'minute', day, retentionDays });
      }
      needs.push({ kind: 'sample', day }, { kind: 'event', day });
    }
    const created = await this.ensure(needs);
    const dropped: string[] = [];
    for (const p of existing) {
      const days = p.kind === 'sample' ? settings.metricRetentionDays : p.kind === 'event' ? settings.eventRetentionDays : (p.retentionDays as number);
      // The partition holds [day, day + 1): it goes once all of it is older than now − retention.
      if ((p.day + 1) * DAY_MS > now - days * DAY_MS) continue;
      await this.#store.exec(`DROP TABLE IF EXISTS ${p.name}`);
      this.#known.delete(p.name);
      dropped.push(p.name);
    }
    return { created, dropped };
  }
}

async function createPartition(tx: Queryable, name: string, need: PartitionNeed): Promise<void> {
  const def = PARTITIONED[need.kind];
  const from = need.day * def.unitPerDay;
  const to = (need.day + 1) * def.unitPerDay;
  let parent: string = def.table;
  if (def.classed) {
    parent = `${def.table}_r${need.retentionDays}`;
    const key = need.kind === 'span' ? 'end_time' : need.kind === 'trace' ? 'anchor_time' : 'minute';
    await tx.exec(`CREATE TABLE IF NOT EXISTS ${parent} PARTITION OF ${def.table} FOR VALUES IN (${need.retentionDays}) PARTITION BY RANGE (${key})`);
  }
  await tx.exec(`CREATE TABLE ${name} (LIKE ${def.table} INCLUDING DEFAULTS INCLUDING GENERATED)`);
  await tx.exec(`ALTER TABLE ${parent} ATTACH PARTITION ${name} FOR VALUES FROM (${from}) TO (${to})`);
}
