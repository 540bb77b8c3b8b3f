/**
 * The OTLP listeners as one part of the service: they bind in turn (a failure closes those already bound)
 * and close together, each letting its requests in flight finish within the same budget.
 */
import type { Component } from '../../common/lifecycle.ts';

/** A transport: GrpcReceiver, HttpReceiver. */
export interface Listener {
  start(): Promise<void>;
  /** Stops taking requests; those in flight get `timeoutMs`. Safe without start. */
  stop(timeoutMs: number): Promise<void>;
}

export class Listeners implements Component {
  readonly name = 'otlp-listeners';
  readonly #listeners: readonly Listener[];
  readonly #budgetMs: () => number;

  /** `budgetMs`: how long requests in flight may take, asked when the stop begins. */
  constructor(listeners: readonly Listener[], budgetMs: () => number) {
    this.#listeners = listeners;
    this.#budgetMs = budgetMs;
  }

  async start(): Promise<void> {
    try {
      for (const listener of this.#listeners) await listener.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    const budget = this.#budgetMs();
    await Promise.all(this.#listeners.map((listener) => listener.stop(budget)));
  }
}
