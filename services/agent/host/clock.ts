/** The time source of a collection: the task context's clock in production, a fake in tests. */
export interface Clock {
  /** ms since the epoch. */
  now(): number;
  /** Waits `ms` (rejects when the run is aborted). */
  sleep(ms: number): Promise<void>;
}

/**
 * Waits for the `n`-th tick of a ticker started at `startMs` with period `intervalMs` (Go's time.Ticker,
 * which keeps its phase however long the work between ticks takes; a tick already past returns at once).
 */
export async function waitTick(clock: Clock, startMs: number, n: number, intervalMs: number): Promise<void> {
  const due = startMs + n * intervalMs;
  const wait = due - clock.now();
  if (wait > 0) await clock.sleep(wait);
}
