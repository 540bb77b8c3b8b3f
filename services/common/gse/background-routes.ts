/**
 * A publisher's routes, read without holding up its start: {@link BackgroundRoutes} starts a route
 * watcher (watcher.ts) in the background, retrying with backoff until it has caught up, and tells senders
 * when the routes are known ({@link BackgroundRoutes.ready}), so no record is sent by a table that is
 * still being read.
 *
 * - Broker unreachable: `ready()` waits (the records wait with it: in the agent's spool, or the collector's
 *   caller retries); the attempts go on until it answers.
 * - The routes topic does not exist (no GSE registry deployed, or not yet): there are no routes, so every
 *   data id goes to the publisher's default — the default install's routing. `ready()` resolves, a
 *   warning is logged once, and the topic is looked for again every `missingTopicRetryMs`: once it exists
 *   its routes apply.
 * - After the first catch-up the watcher follows the topic by itself (route changes apply without a
 *   restart); a later broker outage keeps the last table.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, MissingTopicsError } from '../errors.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { backoffDelay } from '../retry.ts';
import type { RouteSource, RouteTable } from './routes.ts';

/** What is read in the background (a RouteWatcher, or a test double). */
export interface WatchedSource extends RouteSource {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export type RoutesState = 'reading' | 'ready' | 'topic missing' | 'unavailable' | 'stopped';

export interface BackgroundRoutesOptions {
  source: WatchedSource;
  logger: Logger;
  /** Backoff between attempts while the broker does not answer: first and largest delay. Defaults 500 ms and 5 000 ms. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Between looks for a routes topic that does not exist. Default 30 000 ms. */
  missingTopicRetryMs?: number;
}

export class BackgroundRoutes implements RouteSource, Component {
  readonly name = 'gse-routes';
  readonly #o: Required<BackgroundRoutesOptions>;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  readonly #ready: Promise<void>;
  #resolveReady: () => void = () => undefined;
  #loop: Promise<void> | undefined;
  #state: RoutesState = 'reading';
  #problem: string | undefined;

  constructor(options: BackgroundRoutesOptions) {
    this.#o = { retryInitialMs: 500, retryMaxMs: 5_000, missingTopicRetryMs: 30_000, ...options };
    this.#log = options.logger.child({ component: 'gse.routes' });
    this.#ready = new Promise<void>((resolve) => {
      this.#resolveReady = resolve;
    });
  }

  current(): RouteTable {
    return this.#o.source.current();
  }

  onChange(listener: (table: RouteTable) => void): () => void {
    return this.#o.source.onChange(listener);
  }

  /** Where the routes stand (health). */
  state(): { state: RoutesState; problem?: string } {
    return this.#problem ? { state: this.#state, problem: this.#problem } : { state: this.#state };
  }

  /** Resolves once the routes are known (caught up, or no routes topic), or when `signal` aborts. */
  async ready(signal?: AbortSignal): Promise<void> {
    if (!signal) return this.#ready;
    if (signal.aborted) throw signal.reason as Error;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#ready.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Starts reading in the background; never waits for the broker. */
  async start(): Promise<void> {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#state = 'stopped';
    await this.#o.source.stop().catch((err: unknown) => this.#log.warn('stopping the route watcher failed', { err }));
  }

  async #run(): Promise<void> {
    for (let attempt = 1; !this.#stop.signal.aborted; attempt++) {
      try {
        await this.#o.source.start();
        if (this.#stop.signal.aborted) return;
        this.#state = 'ready';
        this.#problem = undefined;
        this.#resolveReady();
        return;
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        const missing = err instanceof MissingTopicsError;
        if (missing && this.#state !== 'topic missing') {
          this.#log.warn('no GSE routes topic: every data id goes to the default topics until it exists', { err: errorMessage(err) });
        } else if (!missing && (attempt === 1 || attempt % 10 === 0)) {
          this.#log.warn('cannot read the GSE routes yet; records wait', { attempt, err: errorMessage(err) });
        }
        this.#state = missing ? 'topic missing' : 'unavailable';
        this.#problem = errorMessage(err);
        if (missing) this.#resolveReady();
        const delay = missing ? this.#o.missingTopicRetryMs : backoffDelay(attempt, { initialDelayMs: this.#o.retryInitialMs, maxDelayMs: this.#o.retryMaxMs });
        await sleep(delay, undefined, { signal: this.#stop.signal }).catch(() => undefined);
      }
    }
  }
}
