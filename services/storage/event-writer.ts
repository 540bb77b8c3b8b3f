/**
 * Writes agent events by type and time. An event's id is a 52-bit hash of the record's bytes, so a
 * replayed record is stored once (`(event_id, ts)` is the key). Events are few next to spans: they go as
 * `unnest` arrays on both stores. A body that is not JSON is kept as a JSON string.
 */
import type { Batch, HandleResult } from '../common/bus/index.ts';
import type { AgentEvent } from '../common/records.ts';
import type { Store } from '../common/store/index.ts';
import type { Flusher } from './flusher.ts';
import { dayOfMs, type PartitionManager } from './partitions.ts';
import { hash52 } from './series.ts';
import { clean } from './span-rows.ts';

export interface EventRow {
  event_id: number;
  ts: number;
  event_type: string;
  data_id: number;
  bk_biz_id: number;
  task_id: number;
  status: number;
  ip: string;
  bk_cloud_id: number;
  bk_host_id: number;
  hostname: string;
  dimensions: string;
  metrics: string;
  body: string;
}

const COLUMNS: [keyof EventRow, string][] = [
  ['event_id', 'bigint'], ['ts', 'bigint'], ['event_type', 'text'], ['data_id', 'bigint'], ['bk_biz_id', 'bigint'], ['task_id', 'bigint'],
  ['status', 'integer'], ['ip', 'text'], ['bk_cloud_id', 'bigint'], ['bk_host_id', 'bigint'], ['hostname', 'text'],
  ['dimensions', 'jsonb'], ['metrics', 'jsonb'], ['body', 'jsonb'],
];
const INSERT = `INSERT INTO storage_event (${COLUMNS.map(([c]) => c).join(', ')})
  SELECT ${COLUMNS.map(([c, t]) => (t === 'jsonb' ? `u.${c}::jsonb` : `u.${c}`)).join(', ')}
  FROM unnest(${COLUMNS.map(([, t], i) => `$${i + 1}::${t === 'jsonb' ? 'text' : t}[]`).join(', ')}) AS u(${COLUMNS.map(([c]) => c).join(', ')})
  ON CONFLICT DO NOTHING`;

function jsonBody(body: string): string {
  const text = clean(body);
  try {
    JSON.parse(text);
    return text;
  } catch {
    return JSON.stringify(text);
  }
}

function cleanMap<V>(m: Record<string, V>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [k, v] of Object.entries(m)) out[clean(k)] = (typeof v === 'string' ? clean(v) : v) as V;
  return out;
}

export function eventRow(e: AgentEvent, raw: Buffer): EventRow {
  return {
    event_id: hash52(raw),
    ts: e.timestamp,
    event_type: clean(e.event_type),
    data_id: e.data_id,
    bk_biz_id: e.bk_biz_id,
    task_id: e.task_id,
    status: e.status,
    ip: clean(e.agent.ip),
    bk_cloud_id: e.agent.bk_cloud_id,
    bk_host_id: e.agent.bk_host_id,
    hostname: clean(e.agent.hostname),
    dimensions: JSON.stringify(cleanMap(e.dimensions)),
    metrics: JSON.stringify(cleanMap(e.metrics)),
    body: jsonBody(e.body),
  };
}

export interface EventWriterOptions {
  store: Store;
  partitions: PartitionManager;
  retentionDays: number;
  aheadDays: number;
  now?: () => number;
  onDropped?: (reason: 'expired' | 'future', n: number) => void;
}

export class EventWriter {
  readonly #o: EventWriterOptions;
  readonly #now: () => number;
  flusher: Flusher<EventRow, number> | undefined;

  constructor(options: EventWriterOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  rows(events: readonly { value: AgentEvent; raw: Buffer }[]): EventRow[] {
    const today = dayOfMs(this.#now());
    const out: EventRow[] = [];
    let expired = 0;
    let future = 0;
    for (const { value, raw } of events) {
      const day = dayOfMs(value.timestamp);
      if (day < today - this.#o.retentionDays) expired++;
      else if (day > today + this.#o.aheadDays) future++;
      else out.push(eventRow(value, raw));
    }
    if (expired) this.#o.onDropped?.('expired', expired);
    if (future) this.#o.onDropped?.('future', future);
    return out;
  }

  readonly handle = async (batch: Batch<AgentEvent>): Promise<HandleResult> => {
    if (!this.flusher) throw new Error('event writer has no flusher');
    return { durable: this.flusher.add(this.rows(batch.records)) };
  };

  /** Resolves to the events newly stored. */
  readonly write = async (rows: EventRow[]): Promise<number> => {
    const days = new Set(rows.map((r) => dayOfMs(r.ts)));
    await this.#o.partitions.ensure([...days].map((day) => ({ kind: 'event' as const, day })));
    const { rowCount } = await this.#o.partitions.writing(() => this.#o.store.query(INSERT, COLUMNS.map(([c]) => rows.map((r) => r[c]))));
    return rowCount;
  };
}
