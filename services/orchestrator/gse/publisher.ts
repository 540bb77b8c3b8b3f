/**
 * Publishes the GSE registry to the compacted topic `<prefix>.gse.routes` (records: common/gse/records.ts).
 *
 * - Every change marks its key pending in the store, in the change's transaction (gse_routes_pending);
 *   this publisher sends each pending key's **current** value (a tombstone when the object is gone), then
 *   reads the value again and sends once more if it changed meanwhile, so the last record of a key is the
 *   store's state even when two instances publish the same key at once; then it clears the key unless it
 *   was changed again. A crash or a broker outage leaves keys pending (in the store, not in memory) for
 *   the next attempt, here or on another instance.
 * - At start it re-publishes the whole registry (a lost or emptied topic is rebuilt) and tombstones the
 *   keys the topic holds that the store does not (a delete whose tombstone never went out).
 * - The API publishes its change at once ({@link GseRoutesPublisher.publishNow}) and waits a moment for it,
 *   so a watcher has it about as soon as the caller has its answer; the loop catches up with the rest.
 */
import type { FollowedRecord } from '../../common/bus/index.ts';
import { errorMessage } from '../../common/errors.ts';
import { parseRoutesKey } from '../../common/gse/records.ts';
import type { FollowerSource } from '../../common/gse/watcher.ts';
import type { Component } from '../../common/lifecycle.ts';
import type { Logger } from '../../common/log.ts';
import { drainLoop } from '../../common/retry.ts';
import type { OrchestratorMetrics } from '../metrics.ts';
import { Waker } from '../waker.ts';
import type { GseStore } from './store.ts';

/** What the publisher sends with (the orchestrator's producer). */
export interface RoutesProducer {
  send(topic: string, messages: readonly { key: string; value: Buffer | null }[]): Promise<void>;
}

export interface GsePublisherOptions {
  store: GseStore;
  producer: RoutesProducer;
  /** Reads the topic at start (the bus). */
  bus: FollowerSource;
  topic: string;
  logger: Logger;
  metrics: Pick<OrchestratorMetrics, 'gseRoutesPublished' | 'gseRoutesPending'>;
  /** Look at the pending keys at least this often, ms. Default 1 000. */
  pollIntervalMs?: number;
}

/** Sends of one key before giving up on it for this round (it changes faster than it can be sent). */
const MAX_SENDS_PER_KEY = 5;

export class GseRoutesPublisher implements Component {
  readonly name = 'gse-routes-publisher';
  readonly #o: GsePublisherOptions;
  readonly #log: Logger;
  readonly #waker = new Waker();
  #running = false;
  #loop: Promise<void> | undefined;
  #stopped = new AbortController();

  constructor(options: GsePublisherOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'gse-routes-publisher', topic: options.topic });
  }

  /** Whether the publisher runs (the topic was read and the full publish started). */
  running(): boolean {
    return this.#running;
  }

  wake(): void {
    this.#waker.wake();
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const onTopic = await this.#keysOnTopic();
    const inStore = await this.#o.store.allKeys();
    const stale = [...onTopic].filter((k) => !inStore.includes(k));
    await this.#o.store.markPending([...inStore, ...stale]);
    this.#log.info('re-publishing the GSE registry', { keys: inStore.length, tombstones: stale.length });
    this.#running = true;
    this.#stopped = new AbortController();
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#stopped.abort();
    this.wake();
    await this.#loop;
  }

  /**
   * Publishes one key now (what an API call does after its change); resolves true once the topic has the
   * key's current value, false when that did not happen within `timeoutMs` (the key stays pending and the
   * loop sends it).
   */
  async publishNow(key: string, timeoutMs: number): Promise<boolean> {
    if (!this.#running) return false;
    const attempt = (async () => {
      const seq = await this.#o.store.pendingSeq(key);
      if (seq === undefined) return true; // the loop got there first
      await this.#publishKey(key);
      await this.#o.store.published(key, seq);
      return true;
    })().catch((err: unknown) => {
      this.#log.warn('publishing a GSE registry change failed; it stays pending', { key, err: errorMessage(err) });
      this.wake();
      return false;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([attempt, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Keys whose last record on the topic is a value (not a tombstone). */
  async #keysOnTopic(): Promise<Set<string>> {
    const live = new Set<string>();
    const follower = this.#o.bus.follower({
      topic: this.#o.topic,
      groupPrefix: 'bkstream-gse-publisher',
      onRecords: (records: readonly FollowedRecord[]) => {
        for (const r of records) {
          const key = r.key?.toString('utf8') ?? '';
          try {
            parseRoutesKey(key);
          } catch {
            continue; // not ours: left alone
          }
          if (r.value === null || r.value.length === 0) live.delete(key);
          else live.add(key);
        }
      },
    });
    try {
      await follower.start();
    } finally {
      await follower.stop();
    }
    return live;
  }

  async #run(): Promise<void> {
    await drainLoop({
      running: () => this.#running,
      drainOnce: () => this.#drainOnce(),
      more: (sent) => sent > 0,
      idle: () => this.#waker.sleep(this.#o.pollIntervalMs ?? 1_000),
      signal: this.#stopped.signal,
      onError: (err, failures) => this.#log.warn('publishing the GSE registry failed; will retry', { err: errorMessage(err), failures }),
    });
  }

  /** Publishes up to 100 pending keys; returns how many. */
  async #drainOnce(): Promise<number> {
    const pending = await this.#o.store.pending(100);
    this.#o.metrics.gseRoutesPending.set(pending.length);
    for (const { key, seq } of pending) {
      if (!this.#running) break;
      await this.#publishKey(key);
      await this.#o.store.published(key, seq);
    }
    return pending.length;
  }

  /** Sends the key's current value until the store still holds what was sent last. */
  async #publishKey(key: string): Promise<void> {
    const kind = key.startsWith('route:') ? 'route' : 'stream_to';
    let value = await this.#o.store.topicValue(key);
    for (let sends = 1; ; sends++) {
      await this.#o.producer.send(this.#o.topic, [{ key, value: value === null ? null : Buffer.from(value) }]);
      this.#o.metrics.gseRoutesPublished.inc({ kind, op: value === null ? 'delete' : 'set' });
      const now = await this.#o.store.topicValue(key);
      if (now === value) return;
      if (sends >= MAX_SENDS_PER_KEY) throw new Error(`${key} changed ${sends} times while it was being published`);
      value = now;
    }
  }
}
