/** One-line messages of errors from clients that wrap the reason (fetch, kafkajs). */
import { errorMessage } from '../common/errors.ts';

/**
 * The message of the innermost cause: `connect ECONNREFUSED 127.0.0.1:8082` rather than fetch's
 * `fetch failed`, `no answer in time` for a timeout.
 */
export function innermostMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  const original = (e as { originalError?: unknown } | undefined)?.originalError;
  if (original instanceof Error) e = original;
  if (e instanceof Error && e.name === 'TimeoutError') return 'no answer in time';
  return errorMessage(e);
}
