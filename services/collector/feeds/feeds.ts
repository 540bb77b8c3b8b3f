/**
 * The feeds BKData flows read (the collector README, "Feeds"): for an application whose tail sampling is
 * on (or whose traces data id has an explicit GSE route), its accepted spans as bk-collector's GSE trace
 * messages on the traces data id; for one whose virtual metric is on (or whose metrics data id has an
 * explicit route), the metrics bk-collector's traces deriver makes of them on the metrics data id.
 *
 * The receiver's pipeline asks {@link Feeds.open} once per Export with its accepted groups: `undefined`
 * unless one of their applications has a feed (a property check per group, and a route lookup when routes
 * are known), so exports of other applications cost nothing more. Otherwise the {@link ExportFeed} is told
 * every span the pipeline kept for those applications, and its {@link ExportFeed.send} runs beside the
 * span publish: the Export is answered after both were acknowledged (a failure or a timeout is
 * UNAVAILABLE, the client retries). The switches are read from the application the token resolved to,
 * so a change applies with the next resolution (the admin API clears the token cache on a change).
 */
import { BkError, UnavailableError } from '../../common/errors.ts';
import { otlpType, type OtlpSpan } from '../../common/otlp/index.ts';
import type { RouteSource } from '../../common/gse/routes.ts';
import type { Attributes } from '../../common/records.ts';
import type { Application } from '../applications.ts';
import { DurationDeriver, type DerivedMetric } from './deriver.ts';
import { FieldNormalizer } from './field-normalizer.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, metricsMessages, tracesMessages, type Packed } from './envelope.ts';
import type { FeedMetrics } from './metrics.ts';
import { feedSpan, platformResource, referenceSpan, type FeedGroupContext, type FeedSpan } from './reference-span.ts';

/** Publishes messages by data id (GSE's job in the reference: the data id's route, or the default topic). */
export interface FeedSender {
  /** Resolves once every message is acknowledged where the data id goes. */
  send(dataId: number, messages: readonly Buffer[]): Promise<void>;
}

/** Whether a data id has an explicit route (a route makes its feed publish even with the switch off). */
export interface RouteLookup {
  hasRoute(dataId: number): boolean;
}

/** A {@link RouteLookup} over the GSE route table. */
export function routeLookup(source: RouteSource): RouteLookup {
  return { hasRoute: (dataId) => source.current().route(dataId) !== undefined };
}

export type FeedKind = 'traces' | 'metrics';

export interface FeedsOptions {
  sender: FeedSender;
  /** Explicit routes; none known = the switches alone decide. */
  routes?: RouteLookup;
  /** Creates a data id's default topic before its first feed goes there (data ids without a route). */
  defaultTopics?: { ensure(dataId: number): Promise<void> };
  /** How long an Export waits for its feed messages to be acknowledged, ms. */
  timeoutMs: number;
  metrics?: FeedMetrics;
  deriver?: DurationDeriver;
  maxMessageBytes?: number;
  now?: () => number;
}

/** What the pipeline hands over of one accepted resource group. */
export interface FeedGroupInput {
  group: { resource: Attributes };
  app: Application;
}

/** Receives the spans the pipeline kept of one group. */
export interface FeedGroupSink {
  /** A span as bytes of the binary request (a Span message at `[start, end)` of `body`). */
  encoded(body: Buffer, start: number, end: number): void;
  /** A span already decoded (OTLP/JSON). */
  span(span: OtlpSpan): void;
}

const SpanType = otlpType('opentelemetry.proto.trace.v1.Span');
/** The traces pipeline's first processor that changes span attributes (field-normalizer.ts). */
const NORMALIZER = new FieldNormalizer();

export class Feeds {
  readonly #opts: FeedsOptions;
  readonly #deriver: DurationDeriver;

  constructor(options: FeedsOptions) {
    this.#opts = options;
    this.#deriver = options.deriver ?? new DurationDeriver();
  }

  /** The traces data id `app` feeds, or 0. */
  tracesDataId(app: Application): number {
    const id = app.tracesDataId;
    return id > 0 && (app.tailSampling || this.#opts.routes?.hasRoute(id) === true) ? id : 0;
  }

  /** The metrics data id `app` feeds, or 0. */
  metricsDataId(app: Application): number {
    const id = app.metricsDataId;
    return id > 0 && (app.virtualMetric || this.#opts.routes?.hasRoute(id) === true) ? id : 0;
  }

  /** The feed of one Export, or undefined when none of its applications has one. */
  open(clientIp: string, accepted: readonly FeedGroupInput[]): ExportFeed | undefined {
    for (const { app } of accepted) {
      if (this.tracesDataId(app) > 0 || this.metricsDataId(app) > 0) return new ExportFeed(this, this.#opts, this.#deriver, clientIp);
    }
    return undefined;
  }
}

interface GroupState {
  context: FeedGroupContext;
  tracesDataId: number;
  metricsDataId: number;
  spans: OtlpSpan[];
}

/** The feed messages of one Export. */
export class ExportFeed {
  readonly #feeds: Feeds;
  readonly #opts: FeedsOptions;
  readonly #deriver: DurationDeriver;
  readonly #clientIp: string;
  readonly #groups: GroupState[] = [];

  constructor(feeds: Feeds, options: FeedsOptions, deriver: DurationDeriver, clientIp: string) {
    this.#feeds = feeds;
    this.#opts = options;
    this.#deriver = deriver;
    this.#clientIp = clientIp;
  }

  /** The sink of one accepted group's kept spans, or undefined when its application has no feed. */
  group(input: FeedGroupInput): FeedGroupSink | undefined {
    const { app } = input;
    const tracesDataId = this.#feeds.tracesDataId(app);
    const metricsDataId = this.#feeds.metricsDataId(app);
    if (tracesDataId === 0 && metricsDataId === 0) return undefined;
    const state: GroupState = {
      context: { bkBizId: app.bkBizId, appName: app.appName, clientIp: this.#clientIp, resource: platformResource(input.group.resource) },
      tracesDataId,
      metricsDataId,
      spans: [],
    };
    this.#groups.push(state);
    return {
      encoded: (body, start, end) => state.spans.push(SpanType.decode(body.subarray(start, end)) as unknown as OtlpSpan),
      span: (span) => state.spans.push(span),
    };
  }

  /** The messages per data id and feed (built when asked; exposed for tests). */
  build(): { dataId: number; feed: FeedKind; packed: Packed; items: number }[] {
    const traces = new Map<number, Record<string, unknown>[]>();
    const metrics = new Map<number, DerivedMetric[]>();
    for (const g of this.#groups) {
      for (const span of g.spans) {
        const s: FeedSpan = feedSpan(NORMALIZER.normalize(span), g.context);
        if (g.tracesDataId > 0) push(traces, g.tracesDataId, referenceSpan(s));
        if (g.metricsDataId > 0) {
          const m = this.#deriver.derive(s);
          if (m) push(metrics, g.metricsDataId, m);
        }
      }
    }
    const maxBytes = this.#opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const now = (this.#opts.now ?? Date.now)();
    const out: { dataId: number; feed: FeedKind; packed: Packed; items: number }[] = [];
    for (const [dataId, items] of traces) out.push({ dataId, feed: 'traces', packed: tracesMessages(dataId, items, now, { maxBytes }), items: items.length });
    for (const [dataId, items] of metrics) out.push({ dataId, feed: 'metrics', packed: metricsMessages(dataId, items, { maxBytes }), items: items.length });
    return out;
  }

  /** Sends the messages; resolves once all are acknowledged. Throws {@link UnavailableError} otherwise. */
  async send(): Promise<void> {
    const built = this.#groups.length === 0 ? [] : this.build();
    const metrics = this.#opts.metrics;
    const sends = built.map(async ({ dataId, feed, packed, items }) => {
      if (packed.dropped > 0) metrics?.dropped.inc({ feed, reason: 'too_large' }, packed.dropped);
      if (packed.messages.length === 0) return;
      try {
        const topics = this.#opts.defaultTopics;
        if (topics && this.#opts.routes?.hasRoute(dataId) !== true) await topics.ensure(dataId);
        await this.#opts.sender.send(dataId, packed.messages);
      } catch (err) {
        metrics?.messages.inc({ feed, result: 'failed' }, packed.messages.length);
        throw err;
      }
      metrics?.messages.inc({ feed, result: 'ok' }, packed.messages.length);
      metrics?.items.inc({ feed }, items - packed.dropped);
    });
    if (sends.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UnavailableError(`the feeds were not acknowledged within ${this.#opts.timeoutMs} ms`)), this.#opts.timeoutMs);
    });
    try {
      await Promise.race([Promise.all(sends), timeout]);
    } catch (err) {
      if (err instanceof BkError && err.retriable) throw err;
      throw new UnavailableError('publishing the feeds failed', { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
}

function push<T>(map: Map<number, T[]>, key: number, item: T): void {
  const list = map.get(key);
  if (list) list.push(item);
  else map.set(key, [item]);
}
