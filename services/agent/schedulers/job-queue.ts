/**
 * The daemon scheduler's job queue: a binary min-heap by next check time, ties in insertion order — the
 * order the reference's sorted linked list gives (stable sort of pushes).
 */

export interface Timed {
  /** ms since the epoch. */
  checkTime: number;
}

interface Slot<T> {
  item: T;
  seq: number;
}

export class JobQueue<T extends Timed> {
  readonly #heap: Slot<T>[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(...items: T[]): void {
    for (const item of items) {
      this.#heap.push({ item, seq: this.#seq++ });
      this.#up(this.#heap.length - 1);
    }
  }

  /** The earliest job, not removed. */
  peek(): T | undefined {
    return this.#heap[0]?.item;
  }

  /** Removes and returns every job whose check time is ≤ `now`, earliest first (reference PopUntil). */
  popUntil(now: number): T[] {
    const out: T[] = [];
    while (this.#heap.length > 0 && (this.#heap[0] as Slot<T>).item.checkTime <= now) out.push(this.#pop());
    return out;
  }

  /** Removes and returns every job, earliest first. */
  popAll(): T[] {
    const out: T[] = [];
    while (this.#heap.length > 0) out.push(this.#pop());
    return out;
  }

  #less(a: Slot<T>, b: Slot<T>): boolean {
    return a.item.checkTime < b.item.checkTime || (a.item.checkTime === b.item.checkTime && a.seq < b.seq);
  }

  #pop(): T {
    const top = this.#heap[0] as Slot<T>;
    const last = this.#heap.pop() as Slot<T>;
    if (this.#heap.length > 0) {
      this.#heap[0] = last;
      this.#down(0);
    }
    return top.item;
  }

  #up(i: number): void {
    const h = this.#heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i] as Slot<T>, h[p] as Slot<T>)) break;
      [h[i], h[p]] = [h[p] as Slot<T>, h[i] as Slot<T>];
      i = p;
    }
  }

  #down(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l] as Slot<T>, h[m] as Slot<T>)) m = l;
      if (r < h.length && this.#less(h[r] as Slot<T>, h[m] as Slot<T>)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m] as Slot<T>, h[i] as Slot<T>];
      i = m;
    }
  }
}
