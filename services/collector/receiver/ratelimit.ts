/**
 * Token-bucket rate limiting per application token (reference `rate_limiter`, type `token_bucket`):
 * each Export request takes one token from its application's bucket, which holds `burst` tokens and
 * refills at `qps` per second. `qps` 0 = unlimited, `qps` < 0 = reject everything, and a `burst`
 * smaller than `qps` is raised to `qps + 1` (all as the reference does).
 *
 * Buckets live in a bounded LRU (an evicted bucket starts full again, which only forgives a little).
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

/** The limit actually applied: burst raised to qps + 1 when smaller than qps. */
export function effectiveLimit(limit: RateLimit): RateLimit {
  if (limit.qps > 0 && limit.burst < limit.qps) return { qps: limit.qps, burst: limit.qps + 1 };
  return limit;
}

export class RateLimiter {
  readonly #buckets: LRUCache<string, Bucket>;
  readonly #now: () => number;

  constructor(options: LimiterOptions = {}) {
    this.#buckets = new LRUCache<string, Bucket>({ max: options.maxBuckets ?? 10_000 });
    this.#now = options.now ?? (() => performance.now());
  }

  /** Takes one request from `key`'s bucket; false when the limit is reached. */
  take(key: string, limit: RateLimit): boolean {
    const { qps, burst } = effectiveLimit(limit);
    if (qps === 0) return true;
    if (qps < 0) return false;
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (!b || b.qps !== qps || b.burst !== burst) {
      b = { tokens: burst, last: now, qps, burst };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.last) * qps) / 1000);
      b.last = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
