/**
 * The {@link FeedSender} over GSE routing (services/common/gse): each data id's messages go where its route
 * says — one or more clusters and topics — or, without a route, to its default topic `0bkmonitor_{dataid}0`
 * on the collector's own cluster. A send waits until the routes are known (the route table caught up), so no
 * message goes by a table still being read; the feed's timeout bounds that wait.
 */
import type { OutMessage } from '../../common/bus/index.ts';
import { dataIdTopic } from './bus-sender.ts';
import type { FeedSender } from './feeds.ts';

/** What the sender needs of the routed publisher (RoutedPublisher). */
export interface DataIdPublisher {
  send(dataId: number, defaultTopic: string, messages: readonly OutMessage[]): Promise<void>;
}

/** What the sender needs of the routes (BackgroundRoutes): resolves once they are known. */
export interface RoutesReady {
  ready(): Promise<void>;
}

export function routedFeedSender(publisher: DataIdPublisher, routes?: RoutesReady): FeedSender {
  return {
    async send(dataId, messages) {
      if (routes) await routes.ready();
      await publisher.send(dataId, dataIdTopic(dataId), messages.map((value) => ({ value })));
    },
  };
}
