/**
 * Flushes the pending rows on an interval (or earlier when many are queued) and tells each consumed
 * batch when its work is durable.
 *
 * A batch gets a {@link Ticket}: held while the batch is processed and while any window entry it
 * created is unsettled; once every hold is released the ticket waits for the next flush to complete and
 * then resolves, and only then does the bus commit the batch's offsets. A failed flush puts its rows
 * back and is retried with backoff; tickets keep waiting (the bus pauses partitions that run too far
 * ahead), so a store outage delays commits but loses nothing.
 */
import { errorMessage } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { backoffDelay } from '../common/retry.ts';
import type { DedupeSink, Snapshot } from './dedupe.ts';
import type { Hold } from './window.ts';
import type { WriteResult } from './writer.ts';

export class Ticket implements Hold {
  readonly done: Promise<void>;
  #holds = 1;
  #resolve!: () => void;
  #reject!: (err: unknown) => void;
  readonly #whenSettled: (resolve: () => void) => void;

  /** Starts with one hold (the batch being processed). */
  constructor(whenSettled: (resolve: () => void) => void) {
    this.#whenSettled = whenSettled;
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** The batch could not be processed: the bus reads its partition again from here. */
  fail(err: unknown): void {
    this.#reject(err);
  }

  hold(): void {
    this.#holds++;
  }

  release(): void {
    if (--this.#holds === 0) this.#whenSettled(this.#resolve);
  }
}

export interface FlusherOptions {
  pending: DedupeSink;
  write: (snapshot: Snapshot) => Promise<WriteResult>;
  intervalMs: number;
  maxRows: number;
  logger: Logger;
  /** Called after every successful flush. */
  onFlushed?: (result: WriteResult, seconds: number) => void;
  onFailed?: (err: unknown) => void;
}

export class Flusher implements Component {
  readonly name = 'discovery-flusher';
  readonly #opts: FlusherOptions;
  readonly #log: Logger;
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #failures = 0;
  #retryAt = 0;

  constructor(options: FlusherOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'discovery.flusher' });
  }

  /** A ticket whose settling waits for the next flush. */
  ticket(): Ticket {
    return new Ticket((resolve) => {
      this.#waiters.push(resolve);
    });
  }

  async start(): Promise<void> {
    this.#timer ??= setInterval(() => this.trigger(), this.#opts.intervalMs);
  }

  /** Flushes soon when enough rows are queued. */
  nudge(): void {
    if (this.#opts.pending.pendingRows() >= this.#opts.maxRows) this.trigger();
  }

  /** Starts a flush now (or right after the running one), unless backing off after a failure. */
  trigger(): void {
    if (Date.now() < this.#retryAt) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#opts.pending.pendingRows() === 0 && this.#waiters.length === 0) return;
    this.#running = this.#cycle().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.trigger();
      }
    });
  }

  /** Flushes everything queued now; resolves when done (rejects if the store failed). */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
    this.#retryAt = 0;
    await this.#cycle(true);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    while (this.#running) await this.#running;
    try {
      await this.#cycle(true);
    } catch (err) {
      this.#log.error('final flush failed; the batches it covers were not committed and will be read again', { err });
    }
  }

  async #cycle(rethrow = false): Promise<void> {
    const waiters = this.#waiters;
    this.#waiters = [];
    const snapshot = this.#opts.pending.take();
    const started = performance.now();
    try {
      const result = await this.#opts.write(snapshot);
      this.#failures = 0;
      this.#retryAt = 0;
      this.#opts.onFlushed?.(result, (performance.now() - started) / 1000);
      for (const resolve of waiters) resolve();
    } catch (err) {
      this.#opts.pending.restore(snapshot);
      this.#waiters.unshift(...waiters);
      this.#failures++;
      const delayMs = backoffDelay(this.#failures, { initialDelayMs: 200, maxDelayMs: 10_000 });
      this.#retryAt = Date.now() + delayMs;
      this.#opts.onFailed?.(err);
      this.#log.warn('flush failed; rows kept for the next attempt', { error: errorMessage(err), failures: this.#failures, retryInMs: delayMs });
      if (rethrow) throw err;
    }
  }
}
