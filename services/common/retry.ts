/**
 * The one retry helper: exponential backoff with full jitter, a bounded number of attempts, an abort
 * signal, and a predicate deciding what is retriable (by default {@link isRetriable}).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isRetriable } from './errors.ts';

export interface RetryOptions {
  /** Retries after the first attempt (so `retries: 3` means up to 4 calls). Default 5. */
  retries?: number;
  /** Delay before the first retry, before jitter. Default 100 ms (10 ms when NODE_ENV=test). */
  initialDelayMs?: number;
  /** Upper bound of any single delay. Default 30 000 ms (200 ms when NODE_ENV=test). */
  maxDelayMs?: number;
  /** Growth per retry. Default 2. */
  factor?: number;
  /** 0 = no jitter, 1 = full jitter (delay uniform in [0, d]). Default 1. */
  jitter?: number;
  /** Which errors are worth another attempt. Default {@link isRetriable}. */
  retryOn?: (err: unknown) => boolean;
  /** Called before each retry with the error and the delay chosen. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Stops waiting and rethrows the last error when aborted. */
  signal?: AbortSignal;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

const testMode = process.env.NODE_ENV === 'test';

export const retryDefaults = Object.freeze({
  retries: 5,
  initialDelayMs: testMode ? 10 : 100,
  maxDelayMs: testMode ? 200 : 30_000,
  factor: 2,
  jitter: 1,
});

/** The delay before retry number `attempt` (1-based), with jitter applied. */
export function backoffDelay(attempt: number, options: RetryOptions = {}): number {
  const initial = options.initialDelayMs ?? retryDefaults.initialDelayMs;
  const max = options.maxDelayMs ?? retryDefaults.maxDelayMs;
  const factor = options.factor ?? retryDefaults.factor;
  const jitter = options.jitter ?? retryDefaults.jitter;
  const random = options.random ?? Math.random;
  const base = Math.min(max, initial * factor ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - jitter) + base * jitter * random());
}

/** Runs `fn` until it succeeds, fails with a non-retriable error, or the retries are spent. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? retryDefaults.retries;
  const retryOn = options.retryOn ?? isRetriable;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= retries || !retryOn(err) || options.signal?.aborted) throw err;
      const delayMs = backoffDelay(attempt + 1, options);
      options.onRetry?.(err, attempt + 1, delayMs);
      try {
        await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : undefined);
      } catch {
        throw err; // aborted while waiting: report the real failure, not the abort
      }
    }
  }
}

export interface DrainLoopOptions {
  /** Whether to go on (false ends the loop). */
  running: () => boolean;
  /** Sends one batch of what is pending; returns how many it sent. Throwing is retried with backoff. */
  drainOnce: () => Promise<number>;
  /** Whether to drain again at once after a batch of this size (more is likely pending). */
  more: (sent: number) => boolean;
  /** Waits before the next drain when nothing more is pending (a poll interval, or until woken). */
  idle: () => Promise<void>;
  /** Aborts the backoff sleep (stop). */
  signal: AbortSignal;
  /** Told of each failure and how many came in a row. */
  onError: (err: unknown, failures: number) => void;
}

/**
 * The loop of an outbox publisher: drain, go on at once while batches come full, idle otherwise; a failed
 * drain is retried with backoff (200 ms doubling to 10 s) until one succeeds. Ends when `running()` is false.
 */
export async function drainLoop(o: DrainLoopOptions): Promise<void> {
  let failures = 0;
  while (o.running()) {
    let sent: number;
    try {
      sent = await o.drainOnce();
      failures = 0;
    } catch (err) {
      failures++;
      o.onError(err, failures);
      await sleep(backoffDelay(failures, { initialDelayMs: 200, maxDelayMs: 10_000 }), undefined, { signal: o.signal }).catch(() => undefined);
      continue;
    }
    if (o.more(sent)) continue;
    await o.idle();
  }
}
