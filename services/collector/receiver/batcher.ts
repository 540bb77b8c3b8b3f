/**
 * Collects Avro spans per partition of the spans topic into `SpanBatch` records (a batch of spans that
 * share a partition: the collector README, "Interfaces") and sends them, like the Kafka Java producer's
 * record accumulator:
 *
 * - Each partition has one open batch; it is closed when the next span would take it past
 *   `maxBatchBytes` (a record must stay under the broker's `message.max.bytes`, 1 MiB by default).
 * - A sender keeps at most `maxInFlightSends` produce requests in flight. Each request carries at most one
 *   record per partition (so no partition's record batch can exceed the broker's limit) and takes the
 *   closed batches first, then the open ones. While requests are in flight, batches keep filling: under
 *   load records grow up to `maxBatchBytes`; when idle a request's spans go out at once (after
 *   `lingerMs`, default 0: the next turn of the event loop, so concurrent requests share records).
 * - Everything accepted and not yet acknowledged (open, closed, in flight) is bounded by
 *   `maxQueuedBytes`: callers ask {@link SpanBatcher.hasRoom} first and refuse the request when full.
 * - `add` returns the promise of the span's batch, settled when Kafka acknowledged its record — or
 *   rejected with a {@link DependencyUnavailableError} ("the Kafka broker is unavailable", the cause kept
 *   for the logs) when the send failed.
 * - Record key: the trace id of the batch's first span. Every span of the batch hashes to the record's
 *   partition, so the key does too: a copy keyed the same way (replay) lands on the same partition of a
 *   topic with as many partitions. The partition is also set explicitly.
 */
import type { OutMessage } from '../../common/bus/index.ts';
import { DependencyUnavailableError } from '../../common/errors.ts';
import { assembleBatch } from './span-avro.ts';

/** Where records go: BusProducer#send, or a recording double in tests. */
export interface RecordSender {
  /** Sends records to one topic; resolves when Kafka acknowledged all of them. */
  send(topic: string, messages: readonly OutMessage[]): Promise<void>;
}

export interface SpanBatcherOptions {
  topic: string;
  /** Single-object header of the SpanBatch schema. */
  header: Buffer;
  sender: RecordSender;
  /** Largest record value (bytes). */
  maxBatchBytes: number;
  /** Bytes accepted and not yet acknowledged, at most. */
  maxQueuedBytes: number;
  /** Produce requests in flight at most. */
  maxInFlightSends: number;
  /** How long an idle batcher waits after a span before sending. Default 0 (next event-loop turn). */
  lingerMs?: number;
  /** Told about every record once it is acknowledged or refused. */
  onRecord?: (spans: number, bytes: number, err?: unknown) => void;
}

interface Batch {
  partition: number;
  arena: Buffer;
  used: number;
  count: number;
  key: string;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

const noop = (): void => {};

export class SpanBatcher {
  readonly #opts: SpanBatcherOptions;
  readonly #open = new Map<number, Batch>();
  /** Closed batches waiting for a produce request, per partition, oldest first. */
  readonly #closed = new Map<number, Batch[]>();
  /** Arenas of sent batches, one per partition, reused (their bytes were copied into the record). */
  readonly #spare = new Map<number, Buffer>();
  readonly #inFlight = new Set<Promise<void>>();
  #queuedBytes = 0;
  #scheduled = false;

  constructor(options: SpanBatcherOptions) {
    this.#opts = options;
  }

  /** Largest span that fits a record. */
  maxSpanBytes(): number {
    return this.#opts.maxBatchBytes - this.#opts.header.length - 16;
  }

  /** Bytes accepted and not acknowledged yet (open, closed and in-flight batches). */
  queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Produce requests in flight. */
  inFlightSends(): number {
    return this.#inFlight.size;
  }

  /** Whether `bytes` more may be accepted now. */
  hasRoom(bytes: number): boolean {
    return this.#queuedBytes + bytes <= this.#opts.maxQueuedBytes;
  }

  /**
   * Adds one span (its Avro bytes) to `partition`'s batch; `traceId` is its trace id as hex bytes (the
   * key when it opens the batch). Returns the promise of that batch.
   */
  add(partition: number, traceId: Uint8Array, span: Uint8Array): Promise<void> {
    let b = this.#open.get(partition);
    if (b && b.used + span.length > this.maxSpanBytes()) {
      this.#close(b);
      b = undefined;
    }
    if (!b) {
      let resolve: () => void = noop;
      let reject: (err: Error) => void = noop;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      done.catch(noop); // a batch nobody awaits any more (a request that timed out) must not go unhandled
      const key = Buffer.from(traceId.buffer, traceId.byteOffset, traceId.byteLength).toString('latin1');
      const arena = this.#spare.get(partition) ?? Buffer.allocUnsafe(Math.min(16 * 1024, this.#opts.maxBatchBytes));
      this.#spare.delete(partition);
      b = { partition, arena, used: 0, count: 0, key, done, resolve, reject };
      this.#open.set(partition, b);
    }
    if (b.used + span.length > b.arena.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.#opts.maxBatchBytes, Math.max(b.arena.length * 2, b.used + span.length)));
      b.arena.copy(grown, 0, 0, b.used);
      b.arena = grown;
    }
    b.arena.set(span, b.used);
    b.used += span.length;
    b.count++;
    this.#queuedBytes += span.length;
    this.#schedule();
    return b.done;
  }

  /**
   * Sends everything accepted, then waits until every record is acknowledged or refused, for at most
   * `timeoutMs` (with Kafka gone, kafkajs may keep retrying a send far longer than a stop may take).
   * Resolves true when every record was settled in time.
   */
  async drain(timeoutMs = Infinity): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      for (;;) {
        this.#pump();
        if (this.#inFlight.size === 0) return true;
        if (!(await Promise.race([Promise.race(this.#inFlight).then(() => true), expired]))) return false;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #close(b: Batch): void {
    this.#open.delete(b.partition);
    let list = this.#closed.get(b.partition);
    if (!list) this.#closed.set(b.partition, (list = []));
    list.push(b);
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight.size >= this.#opts.maxInFlightSends) return;
    this.#scheduled = true;
    const run = (): void => {
      this.#scheduled = false;
      this.#pump();
    };
    const linger = this.#opts.lingerMs ?? 0;
    if (linger > 0) setTimeout(run, linger);
    else setImmediate(run);
  }

  /** Starts produce requests while there is room in flight and something to send. */
  #pump(): void {
    while (this.#inFlight.size < this.#opts.maxInFlightSends) {
      const batches: Batch[] = [];
      for (const [partition, list] of this.#closed) {
        const b = list.shift();
        if (b) batches.push(b);
        if (list.length === 0) this.#closed.delete(partition);
      }
      for (const [partition, b] of this.#open) {
        if (batches.some((x) => x.partition === partition)) continue;
        this.#open.delete(partition);
        batches.push(b);
      }
      if (batches.length === 0) return;
      this.#send(batches);
    }
  }

  #send(batches: Batch[]): void {
    const messages: OutMessage[] = batches.map((b) => {
      const value = assembleBatch(this.#opts.header, b.count, b.arena.subarray(0, b.used));
      this.#spare.set(b.partition, b.arena);
      return { key: b.key, value, partition: b.partition };
    });
    const settle = (err?: unknown): void => {
      for (let i = 0; i < batches.length; i++) {
        const b = batches[i] as Batch;
        this.#queuedBytes -= b.used;
        this.#opts.onRecord?.(b.count, (messages[i] as OutMessage).value.length, err);
        if (err === undefined) b.resolve();
        else b.reject(new DependencyUnavailableError('Kafka broker', { cause: err }));
      }
    };
    let sent: Promise<void>;
    try {
      sent = this.#opts.sender.send(this.#opts.topic, messages);
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const done: Promise<void> = sent.then(
      () => settle(),
      (err: unknown) => settle(err),
    );
    this.#inFlight.add(done);
    void done.finally(() => {
      this.#inFlight.delete(done);
      if (this.#open.size > 0 || this.#closed.size > 0) this.#schedule();
    });
  }
}
