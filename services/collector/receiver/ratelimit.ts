/**
 * Token-bucket rate limiting as the reference's `rate_limiter` (type `token_bucket`): one bucket of the
 * global configuration shared by every application without a limit of its own, and one bucket per
 * application that has one (the reference's per-token sub-configs; here `apm_application.rate_limit_qps`
 * / `rate_limit_burst`). Each Export request takes one token from the bucket of its application, which
 * holds `burst` tokens and refills at `qps` per second. `qps` 0 = unlimited, `qps` < 0 = reject
 * everything, and a `burst` smaller than `qps` is raised to `qps + 1` (all as the reference does).
 *
 * Per-application buckets live in a bounded LRU (an evicted bucket starts full again, which only forgives
 * a little); the shared one is never evicted.
 */
import { LRUCache } from '../../common/lru.ts';

export interface RateLimit {
  /** Requests per second; 0 = unlimited, < 0 = none allowed. */
  qps: number;
  /** Requests allowed at once after a quiet period. */
  burst: number;
}

interface Bucket {
  tokens: number;
  last: number;
  qps: number;
  burst: number;
}

export interface LimiterOptions {
  /** Buckets kept at most. Default 10 000. */
  maxBuckets?: number;
  /** Clock in ms (tests). Default `performance.now`. */
  now?: () => number;
}

/** Key of the bucket shared by the applications without a limit of their own. */
export const SHARED_BUCKET = '';

/** What decides an application's bucket: its own limits (undefined = none). */
export interface AppLimits {
  id: number;
  rateLimitQps: number | undefined;
  rateLimitBurst: number | undefined;
}

export interface BucketChoice {
  /** {@link SHARED_BUCKET}, or the application's own bucket. */
  key: string;
  limit: RateLimit;
  shared: boolean;
}

/**
 * The bucket of an application: its own when it sets either limit (the other one then comes from the
 * global configuration), else the shared one with the global limits.
 */
export function bucketOf(app: AppLimits, global: RateLimit): BucketChoice {
  if (app.rateLimitQps === undefined && app.rateLimitBurst === undefined) return { key: SHARED_BUCKET, limit: global, shared: true };
  return { key: `app:${app.id}`, limit: { qps: app.rateLimitQps ?? global.qps, burst: app.rateLimitBurst ?? global.burst }, shared: false };
}

/** The limit actually applied: burst raised to qps + 1 when smaller than qps. */
export function effectiveLimit(limit: RateLimit): RateLimit {
  if (limit.qps > 0 && limit.burst < limit.qps) return { qps: limit.qps, burst: limit.qps + 1 };
  return limit;
}

export class RateLimiter {
  readonly #buckets: LRUCache<string, Bucket>;
  readonly #now: () => number;
  #shared: Bucket | undefined;

  constructor(options: LimiterOptions = {}) {
    this.#buckets = new LRUCache<string, Bucket>({ max: options.maxBuckets ?? 10_000 });
    this.#now = options.now ?? (() => performance.now());
  }

  /** Takes one request from `key`'s bucket ({@link SHARED_BUCKET}: the shared one); false when the limit is reached. */
  take(key: string, limit: RateLimit): boolean {
    const { qps, burst } = effectiveLimit(limit);
    if (qps === 0) return true;
    if (qps < 0) return false;
    const now = this.#now();
    let b = key === SHARED_BUCKET ? this.#shared : this.#buckets.get(key);
    if (!b || b.qps !== qps || b.burst !== burst) {
      b = { tokens: burst, last: now, qps, burst };
      if (key === SHARED_BUCKET) this.#shared = b;
      else this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.last) * qps) / 1000);
      b.last = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
