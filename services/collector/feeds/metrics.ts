/** The feeds' Prometheus series (the collector README, "Metrics"). */
import { counter, type Counter, type Registry } from '../../common/metrics.ts';

export interface FeedMetrics {
  /** Messages sent by feed (traces, metrics) and result (ok, failed). */
  messages: Counter<'feed' | 'result'>;
  /** Items (spans, metric points) in acknowledged messages, by feed. */
  items: Counter<'feed'>;
  /** Items left out, by feed and reason (too_large: larger than a message may be). */
  dropped: Counter<'feed' | 'reason'>;
}

export function feedMetrics(registry: Registry): FeedMetrics {
  return {
    messages: counter(registry, { name: 'bkstream_collector_feed_messages_total', help: 'GSE feed messages (traces envelopes, derived metrics) by feed and result (ok, failed)', labelNames: ['feed', 'result'] }),
    items: counter(registry, { name: 'bkstream_collector_feed_items_total', help: 'Spans and derived metric points in acknowledged feed messages, by feed', labelNames: ['feed'] }),
    dropped: counter(registry, { name: 'bkstream_collector_feed_dropped_total', help: 'Feed items left out by feed and reason (too_large: one item over the message size)', labelNames: ['feed', 'reason'] }),
  };
}
