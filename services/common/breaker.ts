/**
 * Circuit breakers over opossum. One breaker guards one dependency (e.g. one BKData API family); any
 * call to that dependency goes through `breaker.fire(signal => call(signal))`.
 *
 * - Each call gets its own AbortSignal, aborted when the call times out, so timed-out requests are
 *   cancelled instead of left running.
 * - Only failures that say something about the dependency's health count (by default: retriable
 *   errors, i.e. 5xx, timeouts, connection errors). Business errors (4xx, `result=false`) pass through
 *   without counting — opossum's `errorFilter`.
 * - When open, calls fail fast with {@link BreakerOpenError} (retriable); after `resetTimeoutMs` exactly
 *   one trial call is let through (half-open); its success closes the breaker.
 * - State is exported as `bkstream_breaker_state{breaker}` (0 closed, 1 half-open, 2 open).
 */
import CircuitBreaker from 'opossum';
import { BkError, isRetriable } from './errors.ts';
import type { Logger } from './log.ts';
import { counter, gauge, type Registry } from './metrics.ts';

export type BreakerState = 'closed' | 'half_open' | 'open';

export class BreakerOpenError extends BkError {
  constructor(name: string) {
    super('breaker_open', `circuit breaker ${name} is open`, true, { details: { breaker: name } });
  }
}

export class CallTimeoutError extends BkError {
  constructor(name: string, ms: number) {
    super('timeout', `call through ${name} timed out after ${ms} ms`, true, { details: { breaker: name } });
  }
}

export interface BreakerOptions {
  name: string;
  /** Per-call timeout; the call's signal is aborted. Default 10 000 ms. */
  timeoutMs?: number;
  /** Time open before a half-open trial. Default 30 000 ms. */
  resetTimeoutMs?: number;
  /** Failure percentage over the rolling window that opens it. Default 50. */
  errorThresholdPercentage?: number;
  /** Calls in the window before it may open at all. Default 5. */
  volumeThreshold?: number;
  /** Rolling statistics window. Default 10 000 ms (10 buckets). */
  rollingWindowMs?: number;
  /** Which errors count against the dependency's health. Default {@link isRetriable}. */
  isFailure?: (err: unknown) => boolean;
  registry?: Registry;
  logger?: Logger;
}

export interface Breaker {
  readonly name: string;
  fire<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T>;
  state(): BreakerState;
  /** Listen to state changes. */
  onStateChange(listener: (state: BreakerState) => void): void;
  /** Clears timers; later calls fail. */
  shutdown(): void;
}

const STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export function createBreaker(options: BreakerOptions): Breaker {
  const { name } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const isFailure = options.isFailure ?? isRetriable;
  const rollingWindowMs = options.rollingWindowMs ?? 10_000;
  const inner = new CircuitBreaker(
    async (call: (signal: AbortSignal) => Promise<unknown>) => {
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // reject first: aborting may settle the call itself in the same tick
          reject(new CallTimeoutError(name, timeoutMs));
          controller.abort();
        }, timeoutMs);
      });
      try {
        return await Promise.race([call(controller.signal), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    {
      name,
      timeout: false,
      resetTimeout: options.resetTimeoutMs ?? 30_000,
      errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
      volumeThreshold: options.volumeThreshold ?? 5,
      rollingCountTimeout: rollingWindowMs,
      rollingCountBuckets: 10,
      errorFilter: (err: unknown) => !isFailure(err),
    },
  );

  const state = (): BreakerState => (inner.opened ? 'open' : inner.halfOpen ? 'half_open' : 'closed');
  const listeners: ((s: BreakerState) => void)[] = [];
  const log = options.logger?.child({ component: 'breaker', breaker: name });

  if (options.registry) {
    const stateGauge = gauge(options.registry, {
      name: 'bkstream_breaker_state',
      help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open',
      labelNames: ['breaker'],
    });
    stateGauge.set({ breaker: name }, 0);
    listeners.push((s) => stateGauge.set({ breaker: name }, STATE_VALUE[s]));
    const calls = counter(options.registry, {
      name: 'bkstream_breaker_calls_total',
      help: 'Calls through a circuit breaker by result (success, failure, rejected, timeout)',
      labelNames: ['breaker', 'result'],
    });
    inner.on('success', () => calls.inc({ breaker: name, result: 'success' }));
    inner.on('failure', (err: unknown) =>
      calls.inc({ breaker: name, result: err instanceof CallTimeoutError ? 'timeout' : 'failure' }));
    inner.on('reject', () => calls.inc({ breaker: name, result: 'rejected' }));
  }
  const changed = (): void => {
    const s = state();
    log?.warn('breaker state changed', { state: s });
    for (const l of listeners) l(s);
  };
  inner.on('open', changed);
  inner.on('halfOpen', changed);
  inner.on('close', changed);

  return {
    name,
    async fire<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
      try {
        return (await inner.fire(call)) as T;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'EOPENBREAKER') throw new BreakerOpenError(name);
        if (code === 'ESHUTDOWN') throw new BkError('breaker_shutdown', `circuit breaker ${name} is shut down`, false);
        throw err;
      }
    },
    state,
    onStateChange(listener) {
      listeners.push(listener);
    },
    shutdown() {
      inner.shutdown();
    },
  };
}
