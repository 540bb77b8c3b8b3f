/**
 * The agent's one bounded channel between tasks and the publisher (reference event channel of
 * `event_buffer_size`, §A1): `push` waits while it is full (back-pressure on the producing task, never a
 * drop), `take` waits while it is empty. After `close`, pushes fail and takers get what is left, then `[]`.
 */

export class ChannelClosedError extends Error {
  constructor() {
    super('channel closed');
    this.name = 'ChannelClosedError';
  }
}

interface Pusher<T> {
  item: T;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class BoundedChannel<T> {
  readonly capacity: number;
  readonly #items: T[] = [];
  readonly #pushers: Pusher<T>[] = [];
  #taker: ((v: void) => void) | undefined;
  #closed = false;

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('channel capacity must be at least 1');
    this.capacity = capacity;
  }

  /** Items queued (not counting pushers waiting for room). */
  get size(): number {
    return this.#items.length;
  }

  /** Pushers waiting for room. */
  get blocked(): number {
    return this.#pushers.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  push(item: T, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    if (this.#items.length < this.capacity) {
      this.#items.push(item);
      this.#wake();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = { item, resolve, reject };
      this.#pushers.push(waiter);
      signal?.addEventListener('abort', () => {
        const i = this.#pushers.indexOf(waiter);
        if (i >= 0) {
          this.#pushers.splice(i, 1);
          reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
        }
      }, { once: true });
    });
  }

  /** Up to `max` items, waiting while there are none; `[]` once closed and drained. */
  async take(max: number): Promise<T[]> {
    while (this.#items.length === 0) {
      if (this.#closed) return [];
      await new Promise<void>((r) => (this.#taker = r));
    }
    const out = this.#items.splice(0, max);
    while (this.#items.length < this.capacity && this.#pushers.length > 0) {
      const p = this.#pushers.shift() as Pusher<T>;
      this.#items.push(p.item);
      p.resolve();
    }
    return out;
  }

  /**
   * No more pushes. Pushers already waiting are let in (their items are queued past the capacity, so
   * nothing a task emitted before the close is lost); takers drain what is queued.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pushers.splice(0)) {
      this.#items.push(p.item);
      p.resolve();
    }
    this.#wake();
  }

  #wake(): void {
    const t = this.#taker;
    this.#taker = undefined;
    t?.();
  }
}
