/**
 * Publishes flow.status: drains the transactional outbox (bkdata_flow_outbox, written in the same
 * transaction as each transition) to Kafka, oldest first, keyed by flow key, and deletes what the broker
 * acknowledged. A crash between the send and the delete re-sends those records once the claim lapses
 * (at-least-once; a consumer can drop repeats by `(flow_key, at, step, status, attempt)`). A broker
 * outage leaves records in the outbox (bounded by the store, not by memory) until it comes back.
 */
import type { BusProducer } from '../common/bus/index.ts';
import type { Codec } from '../common/avro/index.ts';
import { errorMessage } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { FlowStatus } from '../common/records.ts';
import { drainLoop } from '../common/retry.ts';
import type { FlowStore } from './flow-store.ts';
import type { OrchestratorMetrics } from './metrics.ts';
import { Waker } from './waker.ts';

export interface PublisherOptions {
  flows: FlowStore;
  producer: BusProducer;
  codec: Codec<FlowStatus>;
  topic: string;
  owner: string;
  logger: Logger;
  metrics: Pick<OrchestratorMetrics, 'statusPublished'>;
  /** Records per Kafka request. Default 500. */
  batchSize?: number;
  /** Look at the outbox at least this often, ms. Default 1 000. */
  pollIntervalMs?: number;
  /** How long claimed records stay ours before another publisher may send them, ms. Default 30 000. */
  claimMs?: number;
}

export class StatusPublisher implements Component {
  readonly name = 'flow-status-publisher';
  readonly #o: PublisherOptions;
  readonly #log: Logger;
  #running = false;
  #loop: Promise<void> | undefined;
  readonly #waker = new Waker();
  /** Cuts a backoff short at stop (Kafka may be away for long: the backoff must not hold the stop). */
  #stopped = new AbortController();

  constructor(options: PublisherOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'status-publisher', topic: options.topic });
  }

  wake(): void {
    this.#waker.wake();
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#stopped = new AbortController();
    this.#loop = this.#run();
  }

  /** Stops the loop after one last drain (records left behind go out with the next start). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#stopped.abort();
    this.wake();
    await this.#loop;
    await this.#drainOnce().catch((err: unknown) => this.#log.warn('final flow.status drain failed', { err: errorMessage(err) }));
  }

  async #run(): Promise<void> {
    await drainLoop({
      running: () => this.#running,
      drainOnce: () => this.#drainOnce(),
      more: (sent) => sent === (this.#o.batchSize ?? 500),
      idle: () => this.#waker.sleep(this.#o.pollIntervalMs ?? 1_000),
      signal: this.#stopped.signal,
      onError: (err, failures) => this.#log.warn('publishing flow.status failed; will retry', { err: errorMessage(err), failures }),
    });
  }

  /** Sends one batch; returns how many records went out. */
  async #drainOnce(): Promise<number> {
    const batch = await this.#o.flows.claimOutbox(this.#o.owner, this.#o.batchSize ?? 500, this.#o.claimMs ?? 30_000);
    if (batch.length === 0) return 0;
    const ids = batch.map((r) => r.id);
    try {
      await this.#o.producer.send(this.#o.topic, batch.map((r) => ({ key: r.flow_key, value: this.#o.codec.encode(r.payload) })));
    } catch (err) {
      await this.#o.flows.unclaimOutbox(ids).catch(() => undefined);
      throw err;
    }
    await this.#o.flows.deleteOutbox(ids);
    this.#o.metrics.statusPublished.inc(batch.length);
    return batch.length;
  }
}
