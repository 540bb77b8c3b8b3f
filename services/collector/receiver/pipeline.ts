/**
 * One Export request, whatever the transport: the reference's synchronous pre-check (token checker and
 * rate limiter), span conversion with the resource filter, then publishing (the collector README,
 * "How it works").
 *
 * 1. Parse: binary OTLP goes through the transcoder; OTLP/JSON through protobufjs and the object path.
 *    Malformed input → {@link ValidationError} before anything is used.
 * 2. Tokens: each resource group's token is its `bk.data.token` resource attribute or else the
 *    request's token; groups without a token or with an unknown one are rejected, the rest keep their
 *    own application (biz/app on every span).
 * 3. Rate limit: one request from each bucket the request's applications use (the shared one, or an
 *    application's own); a limited application's groups are rejected. `X-BK-METADATA` pairs are added to
 *    the accepted groups' resources.
 * 4. Convert: every span of the accepted groups is written as Avro; spans that cannot be keyed or stored
 *    are rejected alone.
 * 5. Publish: spans go to the batch of their trace id's partition; the answer waits for Kafka's
 *    acknowledgement of every batch that holds one of them (through the breaker, which fails fast while
 *    Kafka keeps failing).
 *
 * Nothing accepted → the whole request fails (rate limit first, then token, then invalid spans); part
 * rejected → `partial_success` with the count and a message naming each reason. As the reference: no
 * resource group at all → UNAUTHENTICATED; groups that pass the checks but hold no span → OK.
 */
import type { Breaker } from '../../common/breaker.ts';
import { BkError, UnavailableError, ValidationError } from '../../common/errors.ts';
import type { Application } from '../applications.ts';
import { convertSpan, filterResource, SpanRejection } from './convert.ts';
import { OverloadedError, RateLimitedError, UnauthenticatedError } from './errors.ts';
import { decodeJsonRequest, type OtlpSpan } from '../../common/otlp/index.ts';
import { partitionOf } from '../../common/murmur2.ts';
import { bucketOf, effectiveLimit, type RateLimit, type RateLimiter } from './ratelimit.ts';
import { addMetadata } from './request-meta.ts';
import { AvroWriter } from '../../common/avro/index.ts';
import { SpanWriter } from './span-avro.ts';
import type { SpanBatcher } from './batcher.ts';
import type { TokenPort } from './tokens.ts';
import { groupBytes, scanRequest, SpanTranscoder } from './transcode.ts';
import type { Attributes } from '../../common/records.ts';
import type { Feeds, FeedGroupSink } from '../feeds/feeds.ts';

export type Protocol = 'grpc' | 'http';
export type BodyFormat = 'protobuf' | 'json';

export interface ExportRequest {
  protocol: Protocol;
  format: BodyFormat;
  /** The request body, uncompressed. */
  body: Buffer;
  /** Token from the request's metadata or headers. */
  token: string | undefined;
  /** The client's address (OTLP/HTTP: `X-Forwarded-For`'s first address, else the peer). */
  clientIp: string;
  /** `X-BK-METADATA` pairs, added to each accepted group's resource where it lacks the key. */
  metadata?: Record<string, string> | undefined;
}

export type RejectReason = 'no_token' | 'invalid_token' | 'rate_limited' | 'invalid_span' | 'span_too_large';

export interface ExportResult {
  receivedSpans: number;
  acceptedSpans: number;
  rejectedSpans: number;
  /** Rejected spans by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  /** For `partial_success.error_message`; empty when nothing was rejected. */
  errorMessage: string;
  /** Accepted spans per application. */
  apps: Map<Application, number>;
}

export interface PipelineOptions {
  tokens: TokenPort;
  limiter: RateLimiter;
  /** Limit of the bucket shared by the applications without their own. */
  defaultRateLimit: RateLimit;
  batcher: SpanBatcher;
  /** Partitions of the spans topic; undefined while Kafka has not been reached. */
  partitions: () => number | undefined;
  /** Guards publishing: fails fast while Kafka keeps failing; its timeout bounds the wait for acks. */
  breaker: Breaker;
  /** The GSE feeds of applications with tail sampling or virtual metrics (feeds/); none = no feeds. */
  feeds?: Feeds;
}

/** One resource group, whichever way the body was parsed. */
interface Group {
  resource: Attributes;
  token: string | undefined;
  count: number;
  /** Binary body: offsets of each span message. */
  offsets?: number[];
  /** JSON body: decoded spans. */
  spans?: OtlpSpan[];
}

function parse(req: ExportRequest): Group[] {
  if (req.format === 'protobuf') {
    return scanRequest(req.body).map((g) => ({ resource: g.resource, token: g.token, count: g.spans.length / 2, offsets: g.spans }));
  }
  const message = decodeJsonRequest(req.body);
  return (message.resourceSpans ?? []).map((rs) => {
    const spans = (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? []);
    return { ...filterResource(rs.resource?.attributes), count: spans.length, spans };
  });
}

/** A request without resource groups: refused as the reference's token checker refuses it ("skip empty record"). */
const NO_GROUPS = 'the request has no resource spans: nothing to authenticate';

const MESSAGES: Record<RejectReason, string> = {
  no_token: 'no application token (x-bk-token header, Bearer authorization, or the bk.data.token resource attribute)',
  invalid_token: 'unknown or disabled application token',
  rate_limited: 'the rate limit is reached',
  invalid_span: 'invalid span',
  span_too_large: 'span larger than a Kafka record may be',
};

class Tally {
  readonly rejected: Partial<Record<RejectReason, number>> = {};
  readonly details = new Map<RejectReason, string>();
  /** Reasons met, span-less groups included. */
  readonly #seen = new Set<RejectReason>();
  total = 0;

  add(reason: RejectReason, n: number, detail?: string): void {
    this.#seen.add(reason);
    if (n <= 0) return;
    this.rejected[reason] = (this.rejected[reason] ?? 0) + n;
    this.total += n;
    if (detail !== undefined && !this.details.has(reason)) this.details.set(reason, detail);
  }

  has(reason: RejectReason): boolean {
    return this.#seen.has(reason);
  }

  message(): string {
    const parts = (Object.keys(this.rejected) as RejectReason[]).map((r) => {
      const detail = this.details.get(r);
      return `${this.rejected[r]} ${MESSAGES[r]}${detail ? ` (${detail})` : ''}`;
    });
    return parts.length === 0 ? '' : `rejected spans: ${parts.join('; ')}`;
  }
}

export class TracePipeline {
  readonly #opts: PipelineOptions;
  readonly #transcoder = new SpanTranscoder();
  readonly #writer = new SpanWriter();
  readonly #pool: AvroWriter[] = [];

  constructor(options: PipelineOptions) {
    this.#opts = options;
  }

  async export(req: ExportRequest): Promise<ExportResult> {
    const groups = parse(req);
    const received = groups.reduce((n, g) => n + g.count, 0);
    const result: ExportResult = { receivedSpans: received, acceptedSpans: 0, rejectedSpans: 0, rejected: {}, errorMessage: '', apps: new Map() };
    // As the reference's token checker: a request without resource groups has nothing to authenticate.
    if (groups.length === 0) throw new UnauthenticatedError(NO_GROUPS);

    // Tokens and rate limits
    const tally = new Tally();
    const distinct = new Map<string, Promise<Application | undefined>>();
    for (const g of groups) {
      const token = g.token ?? req.token;
      if (token !== undefined && !distinct.has(token)) distinct.set(token, this.#opts.tokens.resolve(token));
    }
    const resolved = await Promise.all(distinct.values());
    const apps = new Map<string, Application | undefined>([...distinct.keys()].map((token, i) => [token, resolved[i]]));
    const allowed = new Map<string, boolean>(); // by bucket: one request from each bucket the request uses
    const accepted: { group: Group; app: Application }[] = [];
    let limitedApp: Application | undefined;
    const global = this.#opts.defaultRateLimit;
    for (const g of groups) {
      const token = g.token ?? req.token;
      if (token === undefined) {
        tally.add('no_token', g.count);
        continue;
      }
      const app = apps.get(token);
      if (!app) {
        tally.add('invalid_token', g.count);
        continue;
      }
      const bucket = bucketOf(app, global);
      let ok = allowed.get(bucket.key);
      if (ok === undefined) {
        ok = this.#opts.limiter.take(bucket.key, bucket.limit);
        allowed.set(bucket.key, ok);
      }
      if (!ok) {
        limitedApp = app;
        tally.add('rate_limited', g.count, `${app.bkBizId}/${app.appName}`);
        continue;
      }
      if (req.metadata) addMetadata(g.resource, req.metadata);
      accepted.push({ group: g, app });
    }

    // Conversion into a staging buffer: nothing reaches a batch unless the whole request parsed.
    const staged = this.#acquireWriter(req.body.length);
    const spans: number[] = []; // start, end, traceAt of each span in `staged`
    const perApp = new Map<Application, number>();
    // Feeds: undefined unless an accepted application has one (then it is told each span kept of it).
    const feed = this.#opts.feeds?.open(req.clientIp, accepted);
    try {
      for (const { group, app } of accepted) {
        const before = spans.length;
        this.#stage(req, group, app, staged, spans, tally, feed?.group({ group, app }));
        if (spans.length > before) perApp.set(app, (perApp.get(app) ?? 0) + (spans.length - before) / 3);
      }
      const count = spans.length / 3;
      // Groups that passed the checks but hold no span: acknowledged, nothing to publish (as the reference).
      if (received === 0 && accepted.length > 0) return result;
      if (count === 0) {
        const err = this.#refusal(tally, limitedApp);
        Object.assign(err.details, { receivedSpans: received, rejected: tally.rejected });
        throw err;
      }
      try {
        await (feed ? Promise.all([this.#publish(staged, spans), feed.send()]) : this.#publish(staged, spans));
      } catch (err) {
        if (err instanceof BkError) Object.assign(err.details, { receivedSpans: received, rejected: tally.rejected, spans: count });
        throw err;
      }
      result.apps = perApp;
      result.acceptedSpans = count;
      result.rejectedSpans = tally.total;
      result.rejected = tally.rejected;
      result.errorMessage = tally.message();
      return result;
    } finally {
      this.#releaseWriter(staged);
    }
  }

  /** Converts one accepted group's spans into `staged`; rejected spans are tallied. */
  #stage(req: ExportRequest, group: Group, app: Application, staged: AvroWriter, spans: number[], tally: Tally, feed?: FeedGroupSink): void {
    const maxSpanBytes = this.#opts.batcher.maxSpanBytes();
    const keep = (start: number, traceAt: number): boolean => {
      if (staged.pos - start > maxSpanBytes) {
        staged.pos = start;
        tally.add('span_too_large', 1, `${maxSpanBytes} bytes at most`);
        return false;
      }
      spans.push(start, staged.pos, traceAt);
      return true;
    };
    if (group.offsets) {
      const shared = groupBytes(app.bkBizId, app.appName, group.resource, req.clientIp);
      const offsets = group.offsets;
      for (let i = 0; i < offsets.length; i += 2) {
        const start = staged.pos;
        const r = this.#transcoder.write(req.body, offsets[i] as number, offsets[i + 1] as number, shared, staged);
        if (typeof r === 'string') tally.add('invalid_span', 1, r);
        else if (keep(start, r)) feed?.encoded(req.body, offsets[i] as number, offsets[i + 1] as number);
      }
      return;
    }
    const ctx = { bkBizId: app.bkBizId, appName: app.appName, clientIp: req.clientIp, resource: group.resource };
    for (const otlp of group.spans ?? []) {
      const start = staged.pos;
      let traceAt: number;
      try {
        traceAt = this.#writer.writeTo(convertSpan(otlp, ctx), staged);
      } catch (err) {
        staged.pos = start;
        if (!(err instanceof SpanRejection)) throw err;
        tally.add('invalid_span', 1, err.message);
        continue;
      }
      if (keep(start, traceAt)) feed?.span(otlp);
    }
  }

  /**
   * Hands the staged spans to the batches of their partitions and waits for Kafka's acknowledgement of
   * each batch, through the breaker (fails fast while Kafka keeps failing; bounds the wait).
   */
  async #publish(staged: AvroWriter, spans: readonly number[]): Promise<void> {
    const partitions = this.#opts.partitions();
    if (partitions === undefined) throw new UnavailableError('the receiver has not reached Kafka yet');
    const batcher = this.#opts.batcher;
    const bytes = staged.pos;
    if (!batcher.hasRoom(bytes)) {
      throw new OverloadedError(`the queue to Kafka is full (${batcher.queuedBytes()} bytes waiting for acknowledgement): retry later`);
    }
    await this.#opts.breaker.fire(async () => {
      const buf = staged.buf;
      const batches = new Set<Promise<void>>();
      for (let i = 0; i < spans.length; i += 3) {
        const traceAt = spans[i + 2] as number;
        const partition = partitionOf(buf, partitions, traceAt, traceAt + 32);
        batches.add(batcher.add(partition, buf.subarray(traceAt, traceAt + 32), buf.subarray(spans[i], spans[i + 1])));
      }
      await Promise.all(batches);
    });
  }

  /** Staging buffers are reused: a request's spans are copied into their batches before it waits. */
  #acquireWriter(bodyBytes: number): AvroWriter {
    const w = this.#pool.pop() ?? new AvroWriter(Math.max(64 * 1024, bodyBytes * 2));
    w.reset();
    return w;
  }

  #releaseWriter(w: AvroWriter): void {
    if (this.#pool.length < 64 && w.buf.length <= 4 * 1024 * 1024) this.#pool.push(w);
  }

  /** The error of a request none of whose spans was accepted: rate limit first, then token, then invalid. */
  #refusal(tally: Tally, limitedApp: Application | undefined): BkError {
    if (tally.has('rate_limited') && limitedApp) {
      const bucket = bucketOf(limitedApp, this.#opts.defaultRateLimit);
      const limit = effectiveLimit(bucket.limit);
      const which = bucket.shared ? 'shared rate limit (applications without their own)' : 'rate limit';
      return new RateLimitedError(`${which} of application ${limitedApp.bkBizId}/${limitedApp.appName} reached (${limit.qps} requests/s, burst ${limit.burst})`);
    }
    if (tally.has('invalid_token')) return new UnauthenticatedError(MESSAGES.invalid_token);
    if (tally.has('no_token')) return new UnauthenticatedError(MESSAGES.no_token);
    return new ValidationError(tally.message());
  }
}
