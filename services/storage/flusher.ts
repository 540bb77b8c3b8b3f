/**
 * Collects rows from consumer batches and writes them in bulk: when `maxRows` are pending or the oldest
 * pending row waited `intervalMs`, with at most `concurrency` writes in flight. `add` returns a promise
 * that settles when the rows are durable — what the bus's `{ durable }` contract wants: offsets are
 * committed only after it resolves; a rejection makes the consumer read the records again.
 *
 * A write that fails with a retriable error (store unavailable) is retried with backoff; when the
 * retries are spent its rows' promises reject. A write that fails for any other reason is split in
 * halves until the rows that fail on their own are found: those are dropped (counted, logged) and the
 * rest written, so one bad row never blocks a partition.
 */
import { errorMessage, isRetriable } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { retry } from '../common/retry.ts';

export interface FlusherOptions<R, W> {
  name: string;
  /** Writes rows durably; resolves to a result the callbacks see. */
  write: (rows: R[]) => Promise<W>;
  maxRows: number;
  intervalMs: number;
  concurrency?: number;
  logger: Logger;
  /** Retries of a retriable failure before the rows' promises reject. Default 8. */
  retries?: number;
  onWritten?: (result: W, rows: number, seconds: number) => void;
  /** Rows dropped because they failed on their own with a non-retriable error. */
  onRejected?: (rows: R[], err: unknown) => void;
  /** A write failed (before any retry). */
  onFailed?: (err: unknown) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Flusher<R, W = unknown> implements Component {
  readonly name: string;
  readonly #o: FlusherOptions<R, W>;
  readonly #log: Logger;
  #rows: R[] = [];
  #waiters: Waiter[] = [];
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #queue: { rows: R[]; waiters: Waiter[] }[] = [];
  #idle: (() => void)[] = [];
  #stopping = false;

  constructor(options: FlusherOptions<R, W>) {
    this.name = `flusher:${options.name}`;
    this.#o = options;
    this.#log = options.logger.child({ component: 'flusher', flusher: options.name });
  }

  /** Rows waiting for a write or being written. */
  pending(): number {
    return this.#rows.length + this.#queue.reduce((n, q) => n + q.rows.length, 0);
  }

  /** Queues rows; resolves when they are durable. */
  add(rows: R[]): Promise<void> {
    if (this.#stopping) return Promise.reject(new Error(`${this.name} is stopping`));
    if (rows.length === 0) return Promise.resolve();
    for (const r of rows) this.#rows.push(r);
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (this.#rows.length >= this.#o.maxRows) this.#cut();
    else this.#timer ??= setTimeout(() => this.#cut(), this.#o.intervalMs);
    return done;
  }

  async start(): Promise<void> {
    this.#stopping = false;
  }

  /** Writes what is pending and waits for every write in flight. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#cut();
    await this.drain();
  }

  /** Resolves once nothing is pending or in flight. */
  drain(): Promise<void> {
    if (this.#rows.length > 0) this.#cut();
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #cut(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#rows.length === 0) return;
    this.#queue.push({ rows: this.#rows, waiters: this.#waiters });
    this.#rows = [];
    this.#waiters = [];
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < (this.#o.concurrency ?? 1) && this.#queue.length > 0) {
      const job = this.#queue.shift() as { rows: R[]; waiters: Waiter[] };
      this.#inFlight++;
      void this.#run(job.rows).then(
        () => {
          for (const w of job.waiters) w.resolve();
        },
        (err: unknown) => {
          for (const w of job.waiters) w.reject(err);
        },
      ).finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#inFlight === 0 && this.#queue.length === 0) {
          for (const resolve of this.#idle.splice(0)) resolve();
        }
      });
    }
  }

  async #run(rows: R[]): Promise<void> {
    let first = true;
    await retry(
      async () => {
        try {
          await this.#writeIsolating(rows);
        } catch (err) {
          if (first) this.#o.onFailed?.(err);
          first = false;
          throw err;
        }
      },
      {
        retries: this.#o.retries ?? 8,
        retryOn: (err) => isRetriable(err),
        onRetry: (err, attempt, delayMs) => this.#log.warn('write failed, retrying', { rows: rows.length, attempt, delayMs, err: errorMessage(err) }),
      },
    );
  }

  /** Writes rows; a non-retriable failure is narrowed down by halves to the rows that fail alone. */
  async #writeIsolating(rows: R[]): Promise<void> {
    const started = performance.now();
    try {
      const result = await this.#o.write(rows);
      this.#o.onWritten?.(result, rows.length, (performance.now() - started) / 1000);
    } catch (err) {
      if (isRetriable(err)) throw err;
      if (rows.length === 1) {
        this.#log.warn('row rejected by the store, dropped', { err: errorMessage(err) });
        this.#o.onRejected?.(rows, err);
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.#writeIsolating(rows.slice(0, half));
      await this.#writeIsolating(rows.slice(half));
    }
  }
}
