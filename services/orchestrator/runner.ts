/**
 * The worker loop: claims due flows (up to `maxConcurrentFlows` at a time) under a lease, runs each with
 * the engine, renews the leases of the flows it runs, and sleeps until the next flow is due, something
 * wakes it (a command, a breaker letting calls through, a flow giving its slot back) or the poll
 * interval passes (flows of other instances whose lease lapsed).
 *
 * Start takes back the leases a previous incarnation of the same instance id left behind (a crash);
 * leases of other instances are taken over only once they expire. Stop lets every running flow finish
 * its current attempt, then gives every lease back.
 */
import { errorMessage } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { FlowEngine } from './engine.ts';
import type { FlowStore } from './flow-store.ts';
import type { OrchestratorMetrics } from './metrics.ts';
import { Waker } from './waker.ts';

export interface RunnerOptions {
  flows: FlowStore;
  engine: FlowEngine;
  owner: string;
  maxConcurrentFlows: number;
  leaseMs: number;
  pollIntervalMs: number;
  logger: Logger;
  metrics: Pick<OrchestratorMetrics, 'activeFlows'>;
  /** Called whenever a flow run gives its slot back (its saves may have written flow.status records). */
  onFlowReleased?: () => void;
}

export class FlowRunner implements Component {
  readonly name = 'flow-runner';
  readonly #o: RunnerOptions;
  readonly #log: Logger;
  readonly #active = new Map<number, Promise<void>>();
  #running = false;
  #loop: Promise<void> | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  readonly #waker = new Waker();

  constructor(options: RunnerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'runner', owner: options.owner });
  }

  /** Flows being run by this instance now. */
  activeCount(): number {
    return this.#active.size;
  }

  /** Ask the loop to look for due flows now. */
  wake(): void {
    this.#waker.wake();
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const taken = await this.#o.flows.releaseAll(this.#o.owner);
    if (taken > 0) this.#log.warn('released leases left by a previous run of this instance', { flows: taken });
    this.#running = true;
    this.#renewTimer = setInterval(() => this.#renew(), Math.max(100, Math.floor(this.#o.leaseMs / 3)));
    this.#loop = this.#run();
    this.#log.info('started', { max_concurrent_flows: this.#o.maxConcurrentFlows, lease_ms: this.#o.leaseMs });
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.wake();
    await this.#loop;
    await Promise.allSettled([...this.#active.values()]);
    clearInterval(this.#renewTimer);
    await this.#o.flows.releaseAll(this.#o.owner).catch((err: unknown) => this.#log.warn('could not release leases', { err }));
    this.#log.info('stopped');
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let sleepMs = this.#o.pollIntervalMs;
      try {
        const free = this.#o.maxConcurrentFlows - this.#active.size;
        if (free > 0) {
          const claimed = await this.#o.flows.claim(this.#o.owner, free, this.#o.leaseMs);
          for (const flow of claimed) this.#launch(flow.id, flow);
          if (claimed.length === free) continue; // maybe more are due: claim again once a slot frees
          const untilDue = await this.#o.flows.msUntilNextDue();
          if (untilDue !== undefined) sleepMs = Math.min(sleepMs, Math.max(untilDue, 5));
        }
      } catch (err) {
        this.#log.warn('claiming flows failed', { err: errorMessage(err) });
      }
      if (!this.#running) break;
      if (this.#active.size >= this.#o.maxConcurrentFlows) sleepMs = this.#o.pollIntervalMs;
      await this.#waker.sleep(sleepMs);
    }
  }

  #launch(id: number, flow: Parameters<FlowEngine['run']>[0]): void {
    const run = this.#o.engine
      .run(flow, () => !this.#running)
      .then((end) => {
        if (end === 'superseded') this.#log.debug('flow got a new command while running', { flow: id });
      })
      .catch((err: unknown) => {
        // A failed save (store down): the lease lapses and the flow is picked up again.
        this.#log.error('flow run failed', { flow: id, err });
      })
      .finally(() => {
        this.#active.delete(id);
        this.#o.metrics.activeFlows.set(this.#active.size);
        this.wake();
        this.#o.onFlowReleased?.();
      });
    this.#active.set(id, run);
    this.#o.metrics.activeFlows.set(this.#active.size);
  }

  #renew(): void {
    const ids = [...this.#active.keys()];
    if (ids.length === 0) return;
    this.#o.flows.renew(this.#o.owner, ids, this.#o.leaseMs).then(
      (held) => {
        if (held.length < ids.length) this.#log.warn('leases lost', { flows: ids.filter((id) => !held.includes(id)) });
      },
      (err: unknown) => this.#log.warn('lease renewal failed', { err: errorMessage(err) }),
    );
  }
}
