/**
 * The receiver's errors and how they reach clients (OTLP spec "Failures"; reference §B6):
 *
 * | error | gRPC | HTTP | OTLP clients |
 * | --- | --- | --- | --- |
 * | {@link ValidationError} (malformed body, every span invalid) | INVALID_ARGUMENT | 400 | drop |
 * | {@link UnauthenticatedError} (no token, unknown token) | UNAUTHENTICATED | 401 | drop |
 * | {@link RateLimitedError} | RESOURCE_EXHAUSTED | 429 + Retry-After | retry later |
 * | {@link PayloadTooLargeError} | RESOURCE_EXHAUSTED | 413 | drop |
 * | retriable (Kafka down or slow, queue full, store down) | UNAVAILABLE | 503 + Retry-After | retry |
 * | anything else (a bug) | INTERNAL | 500 | drop |
 */
import { status } from '@grpc/grpc-js';
import { BkError, isRetriable, ValidationError } from '../../common/errors.ts';

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

export class PayloadTooLargeError extends BkError {
  constructor(message: string) {
    super('payload_too_large', message, false);
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

/** Short, stable label of an outcome for metrics (`ok`, `invalid_argument`, `unavailable`, ...). */
export function outcomeOf(err: unknown): string {
  if (err instanceof ValidationError) return 'invalid_argument';
  if (err instanceof UnauthenticatedError) return 'unauthenticated';
  if (err instanceof RateLimitedError) return 'rate_limited';
  if (err instanceof PayloadTooLargeError) return 'too_large';
  if (err instanceof OverloadedError) return 'overloaded';
  if (isRetriable(err)) return 'unavailable';
  return 'internal';
}

export function grpcCodeOf(err: unknown): status {
  switch (outcomeOf(err)) {
    case 'invalid_argument':
      return status.INVALID_ARGUMENT;
    case 'unauthenticated':
      return status.UNAUTHENTICATED;
    case 'rate_limited':
    case 'too_large':
      return status.RESOURCE_EXHAUSTED;
    case 'overloaded':
    case 'unavailable':
      return status.UNAVAILABLE;
    default:
      return status.INTERNAL;
  }
}

export function httpStatusOf(err: unknown): number {
  switch (outcomeOf(err)) {
    case 'invalid_argument':
      return 400;
    case 'unauthenticated':
      return 401;
    case 'rate_limited':
      return 429;
    case 'too_large':
      return 413;
    case 'overloaded':
    case 'unavailable':
      return 503;
    default:
      return 500;
  }
}

/** What a client may see of an error: our own messages; "internal error" for anything unexpected. */
export function clientMessage(err: unknown): string {
  if (err instanceof BkError) return err.message;
  return 'internal error';
}
