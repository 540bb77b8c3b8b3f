/** Storage test kit: spans made to order, a store with an application, the writer path without Kafka. */
import type { Attributes, Span } from '../../services/common/records.ts';
import type { Store } from '../../services/common/store/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { Flusher } from '../../services/storage/flusher.ts';
import { PartitionManager } from '../../services/storage/partitions.ts';
import { Retention } from '../../services/storage/retention.ts';
import { SpanIngest } from '../../services/storage/span-ingest.ts';
import type { StoredSpan } from '../../services/storage/span-copy.ts';
import { SpanWriter, type SpanWriteResult } from '../../services/storage/span-writer.ts';

export const BIZ = 2;
export const APP = 'shop';
export const MIN_US = 60_000_000;
export const HOUR_US = 60 * MIN_US;

export interface SpanSpec {
  trace?: string;
  id: string;
  parent?: string;
  name?: string;
  service?: string;
  kind?: number;
  /** µs */
  start: number;
  /** µs */
  duration?: number;
  error?: boolean;
  attributes?: Attributes;
  app?: string;
  biz?: number;
}

export function span(s: SpanSpec): Span {
  const duration = s.duration ?? 1_000;
  return {
    bk_biz_id: s.biz ?? BIZ,
    app_name: s.app ?? APP,
    trace_id: s.trace ?? 't1',
    span_id: s.id,
    parent_span_id: s.parent ?? '',
    span_name: s.name ?? 'GET /',
    kind: s.kind ?? 2,
    start_time: s.start,
    end_time: s.start + duration,
    elapsed_time: duration,
    status: { code: s.error ? 2 : 0, message: s.error ? 'boom' : '' },
    trace_state: '',
    attributes: s.attributes ?? {},
    resource: { 'service.name': s.service ?? 'api', 'bk.instance.id': 'i1' },
    events: [],
    links: [],
    client_ip: '',
  };
}

export async function addApp(store: Store, app = APP, retentionDays = 7, biz = BIZ): Promise<void> {
  await store.query('INSERT INTO apm_application (bk_biz_id, app_name, trace_retention_days) VALUES ($1, $2, $3)', [biz, app, retentionDays]);
}

export interface WritePath {
  ingest: SpanIngest;
  retention: Retention;
  partitions: PartitionManager;
  /** Writes spans now (as one flush). */
  write(spans: Span[]): Promise<SpanWriteResult>;
}

/** The span write path on a store, without Kafka (PGlite: unnest; PostgreSQL: plain statements too). */
export function writePath(store: Store, options: { now?: () => number; writer?: SpanWriter; onDropped?: (reason: 'expired' | 'future', n: number) => void } = {}): WritePath {
  const retention = new Retention({ db: store, defaultDays: 7, ttlMs: 0, ...(options.now ? { now: options.now } : {}) });
  const partitions = new PartitionManager(store);
  const ingest = new SpanIngest({ retention, partitions, writer: options.writer ?? new SpanWriter({ store }), aheadDays: 2, ...(options.now ? { now: options.now } : {}), ...(options.onDropped ? { onDropped: options.onDropped } : {}) });
  return {
    ingest,
    retention,
    partitions,
    async write(spans) {
      const rows = await ingest.rows([{ spans }]);
      return ingest.write(rows);
    },
  };
}

/** A flusher over the write path, as the service builds it. */
export function flusherFor(path: WritePath): Flusher<StoredSpan, SpanWriteResult> {
  const flusher = new Flusher<StoredSpan, SpanWriteResult>({ name: 'spans', write: path.ingest.write, maxRows: 1000, intervalMs: 10, logger: silentLogger });
  path.ingest.flusher = flusher;
  return flusher;
}
