/**
 * Starting a part that needs the Kafka broker without making the service wait for it: `start()` returns
 * at once and the part's start is tried in the background, again and again with backoff, until it
 * succeeds (SECURITY.md, "Health": listeners come up first and readiness says not ready meanwhile).
 * `stop()` gives up trying, lets an attempt in progress settle for a moment, and stops the part; an attempt
 * that completes after that stops the part again itself, so nothing it started is left running.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from './errors.ts';
import type { Component } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { backoffDelay } from './retry.ts';

export interface BackgroundOptions {
  logger: Logger;
  /** Backoff between attempts: from this, ms (default 500)… */
  initialDelayMs?: number;
  /** …doubling up to this, ms (default 10 000). */
  maxDelayMs?: number;
  /** How long `stop()` waits for an attempt in progress before stopping the part anyway, ms (default 2 000). */
  settleMs?: number;
}

export class BackgroundStart implements Component {
  readonly name: string;
  readonly #part: Component;
  readonly #opts: BackgroundOptions;
  readonly #log: Logger;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #started = false;
  #problem: string | undefined;
  #error: unknown;

  constructor(part: Component, options: BackgroundOptions) {
    this.#part = part;
    this.#opts = options;
    this.name = `${part.name} (background)`;
    this.#log = options.logger.child({ component: part.name });
  }

  /** Whether the part started. */
  started(): boolean {
    return this.#started;
  }

  /** Why the last attempt failed (for logs), while the part is not started. */
  problem(): string | undefined {
    return this.#started ? undefined : this.#problem;
  }

  /** The error of the last failed attempt, while the part is not started. */
  lastError(): unknown {
    return this.#started ? undefined : this.#error;
  }

  async start(): Promise<void> {
    if (this.#loop) return;
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
  }

  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#abort.abort();
    const settle = new AbortController();
    await Promise.race([loop, sleep(this.#opts.settleMs ?? 2_000, undefined, { signal: settle.signal }).catch(() => undefined)]);
    settle.abort();
    this.#loop = undefined;
    this.#started = false;
    await this.#part.stop();
  }

  async #run(signal: AbortSignal): Promise<void> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await this.#part.start();
        if (signal.aborted) {
          // stop() gave up waiting for this attempt and stopped what had started by then: stop the rest.
          await this.#part.stop().catch((err: unknown) => this.#log.warn('stop after a late start failed', { err }));
          return;
        }
        this.#started = true;
        if (attempt > 1) this.#log.info('started after waiting for its dependencies', { attempts: attempt });
        return;
      } catch (err) {
        this.#error = err;
        this.#problem = errorMessage(err);
        if (attempt === 1 || attempt % 10 === 0) this.#log.warn('cannot start yet; retrying in the background', { attempt, problem: this.#problem });
        await this.#part.stop().catch(() => undefined);
      }
      const delay = backoffDelay(attempt, { initialDelayMs: this.#opts.initialDelayMs ?? 500, maxDelayMs: this.#opts.maxDelayMs ?? 10_000 });
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** Wraps `part` so that it starts in the background (see {@link BackgroundStart}). */
export function startInBackground(part: Component, options: BackgroundOptions): BackgroundStart {
  return new BackgroundStart(part, options);
}
