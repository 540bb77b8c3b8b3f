/**
 * The receiver's own errors. How any error reaches a client is the shared table of
 * services/common/errors.ts (`EDGE_STATUS`, `edgeStatusOf`); for the receiver that is (OTLP spec
 * "Failures"; the collector README, "Failure behaviour"):
 *
 * | error | outcome | gRPC | HTTP | OTLP clients |
 * | --- | --- | --- | --- | --- |
 * | ValidationError (malformed body, every span invalid) | invalid_argument | INVALID_ARGUMENT | 400 | drop |
 * | {@link UnauthenticatedError} (no token, unknown token) | unauthenticated | UNAUTHENTICATED | 401 | drop |
 * | {@link RateLimitedError} | rate_limited | RESOURCE_EXHAUSTED | 429 + Retry-After | retry later |
 * | PayloadTooLargeError | too_large | RESOURCE_EXHAUSTED | 413 | drop |
 * | UnsupportedMediaTypeError (HTTP only) | unsupported_media_type | INVALID_ARGUMENT | 415 | drop |
 * | {@link OverloadedError} (in-flight bytes, producer queue) | overloaded | UNAVAILABLE | 503 + Retry-After | retry |
 * | retriable (Kafka down or slow, store down) | unavailable | UNAVAILABLE | 503 + Retry-After | retry |
 * | anything else (a bug) | internal | INTERNAL | 500 | drop |
 */
import { BkError, isRetriable } from '../../common/errors.ts';

export class UnauthenticatedError extends BkError {
  constructor(message: string) {
    super('unauthenticated', message, false);
  }
}

/** The application's rate limit is reached; worth retrying after `retryAfterS`. */
export class RateLimitedError extends BkError {
  readonly retryAfterS: number;
  constructor(message: string, retryAfterS = 1) {
    super('rate_limited', message, true);
    this.retryAfterS = retryAfterS;
  }
}

/** The receiver's own bounds are reached (in-flight bytes, producer queue): the client should retry. */
export class OverloadedError extends BkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('overloaded', message, true, options);
  }
}

/**
 * Whether an error says Kafka is unhealthy (what the publishing breaker counts): retriable failures,
 * except our own queue being full, which is back-pressure and not a sign that Kafka is down.
 */
export function isKafkaFailure(err: unknown): boolean {
  return !(err instanceof OverloadedError) && isRetriable(err);
}
