/**
 * The agent's records by data id (GSE routing, issue 20): the sender's sink when routing is on. Each
 * spool record's data id comes from its key (`bk_biz_id:dataid` for events, `bk_biz_id:dataid:target`
 * for time series, envelope.ts) and is resolved when the record is sent, not when it was spooled, so a
 * route change applies to the records still in the spool:
 *
 * - no route: the record's own topic (`<prefix>.events` / `<prefix>.metrics`) on the bus, as without
 *   routing;
 * - a route: every target (cluster, topic, partition); the batch resolves once every target acknowledged,
 *   and only then does the sender acknowledge it in the spool. A target that fails fails the batch: it
 *   stays in the spool and is retried (resolved again: a route change applies) to the targets that have
 *   not acknowledged it yet, and nothing behind it goes out before it — per data id and overall, records
 *   leave in spool order. A copy reaches a target twice only when the agent dies between that target's
 *   acknowledgement and the spool's (the `bk-agent-seq` header tells the copies apart).
 * - a route with no known receiver: the batch fails and waits (never sent to the default instead).
 *
 * Before the first send the routes must be known (read from `<prefix>.gse.routes`): a batch does not go
 * out by a table that is still being read; a missing routes topic means no routes (background-routes.ts).
 */
import { UnavailableError } from '../common/errors.ts';
import type { BackgroundRoutes } from '../common/gse/background-routes.ts';
import type { ReceiverProducers, TopicMessages } from '../common/gse/producers.ts';
import type { DataIdRecords, RoutedPublisher, SendProgress } from '../common/gse/routed-publisher.ts';
import { HEADER_SEQ, type RecordSink } from './sender.ts';

/** The data id of a spool record's key (`bk_biz_id:dataid[:target]`); 0 when there is none (no route has it). */
export function dataIdOfKey(key: string | Buffer | null | undefined): number {
  if (key === null || key === undefined) return 0;
  const text = typeof key === 'string' ? key : key.toString('utf8');
  const first = text.indexOf(':');
  if (first < 0) return 0;
  const second = text.indexOf(':', first + 1);
  const id = Number(text.slice(first + 1, second < 0 ? undefined : second));
  return Number.isSafeInteger(id) && id > 0 ? id : 0;
}

export interface RoutedSinkOptions {
  publisher: RoutedPublisher;
  producers: ReceiverProducers;
  /** The routes being read; undefined = a fixed source (tests). */
  routes?: Pick<BackgroundRoutes, 'ready' | 'state'>;
  /** How long a connect waits for the routes before it fails (and the sender backs off). Default 5 000 ms. */
  routesWaitMs?: number;
}

export class RoutedSink implements RecordSink {
  readonly #o: RoutedSinkOptions;

  constructor(options: RoutedSinkOptions) {
    this.#o = options;
  }

  /** Producers connect on the first send that needs them; this only waits for the routes. */
  async start(): Promise<void> {
    const routes = this.#o.routes;
    if (!routes) return;
    try {
      await routes.ready(AbortSignal.timeout(this.#o.routesWaitMs ?? 5_000));
    } catch (err) {
      const s = routes.state();
      throw new UnavailableError(`GSE routes not read yet (${s.state}${s.problem ? `: ${s.problem}` : ''})`, { cause: err });
    }
  }

  /** Closes every connection (idle, or before a retry); the next send reconnects. */
  stop(): Promise<void> {
    return this.#o.producers.disconnect();
  }

  sendBatch(batches: readonly TopicMessages[], progress?: SendProgress): Promise<void> {
    const items: DataIdRecords[] = [];
    for (const b of batches) {
      for (const m of b.messages) {
        const seq = m.headers?.[HEADER_SEQ];
        items.push({ dataId: dataIdOfKey(m.key), defaultTopic: b.topic, messages: [m], ...(seq === undefined ? {} : { id: seq.toString() }) });
      }
    }
    return this.#o.publisher.sendAll(items, progress);
  }
}
