/**
 * Per-type concurrency limits (reference §A2.6, tasks/semaphore.go): `concurrency_limit.task.<type>`
 * gives every task of the type a two-level weighted semaphore — `<type>_per_instance`, shared by all tasks
 * of the type, and `<type>_per_task_<ident>` — and acquiring takes from both (giving the first back if the
 * second fails). The per-task semaphore is dropped when no run of its task is active. A semaphore's size is
 * fixed by the first config that creates it (reference: "weight at first config wins").
 *
 * The semaphores are Go's `x/sync/semaphore.Weighted`: FIFO (a large request waiting blocks smaller ones
 * behind it), and a request larger than the size waits until it is aborted.
 */
import type { ConcurrencyLimit } from '../main-config.ts';

interface Waiter {
  n: number;
  resolve: () => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

export class WeightedSemaphore {
  readonly size: number;
  #cur = 0;
  readonly #waiters: Waiter[] = [];

  constructor(size: number) {
    this.size = size;
  }

  /** Taken now. */
  get used(): number {
    return this.#cur;
  }

  tryAcquire(n: number): boolean {
    if (this.size - this.#cur >= n && this.#waiters.length === 0) {
      this.#cur += n;
      return true;
    }
    return false;
  }

  acquire(n: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.tryAcquire(n)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) {
          this.#waiters.splice(i, 1);
          // the head leaving may let the next ones in (Go's semaphore notifies on cancel too)
          if (i === 0) this.#notify();
        }
        reject(abortError(signal as AbortSignal));
      };
      const waiter: Waiter = { n, resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  release(n: number): void {
    this.#cur -= n;
    if (this.#cur < 0) throw new Error('semaphore released more than held');
    this.#notify();
  }

  #notify(): void {
    for (;;) {
      const next = this.#waiters[0];
      if (!next || this.size - this.#cur < next.n) return;
      this.#cur += next.n;
      this.#waiters.shift();
      next.cleanup();
      next.resolve();
    }
  }
}

/** What a run uses: `acquire(n)` resolves to the release. */
export interface RunLimiter {
  acquire(n: number, signal: AbortSignal): Promise<() => void>;
  /** Called when the run ends (drops the per-task semaphore when no other run of the task is active). */
  done(): void;
}

const noop: RunLimiter = {
  acquire: async () => () => undefined,
  done: () => undefined,
};

/** The pool of semaphores of one agent (reference DefaultSemaphorePool). */
export class ConcurrencyLimiter {
  readonly #semaphores = new Map<string, WeightedSemaphore>();
  readonly #active = new Map<string, number>();
  #limits: Readonly<Record<string, ConcurrencyLimit>>;

  constructor(limits: Readonly<Record<string, ConcurrencyLimit>>) {
    this.#limits = limits;
  }

  /** Reload: new tasks use the new limits; existing semaphores keep their size (first config wins). */
  setLimits(limits: Readonly<Record<string, ConcurrencyLimit>>): void {
    this.#limits = limits;
  }

  /** The limiter of one run of the task (type, ident); a type without a limit gets one that never waits. */
  forRun(type: string, ident: string): RunLimiter {
    const limit = this.#limits[type];
    if (!limit) return noop;
    const instanceKey = `${type}_per_instance`;
    const taskKey = `${type}_per_task_${ident}`;
    const s1 = this.#get(instanceKey, limit.perInstance);
    const s2 = this.#get(taskKey, limit.perTask);
    this.#active.set(taskKey, (this.#active.get(taskKey) ?? 0) + 1);
    let finished = false;
    return {
      acquire: async (n, signal) => {
        await s1.acquire(n, signal);
        try {
          await s2.acquire(n, signal);
        } catch (err) {
          s1.release(n);
          throw err;
        }
        let released = false;
        return () => {
          if (released) return;
          released = true;
          s1.release(n);
          s2.release(n);
        };
      },
      done: () => {
        if (finished) return;
        finished = true;
        const left = (this.#active.get(taskKey) ?? 1) - 1;
        if (left <= 0) {
          this.#active.delete(taskKey);
          this.#semaphores.delete(taskKey);
        } else {
          this.#active.set(taskKey, left);
        }
      },
    };
  }

  /** The semaphore under `key`, if any (tests, metrics). */
  semaphore(key: string): WeightedSemaphore | undefined {
    return this.#semaphores.get(key);
  }

  #get(key: string, size: number): WeightedSemaphore {
    let s = this.#semaphores.get(key);
    if (!s) {
      s = new WeightedSemaphore(size);
      this.#semaphores.set(key, s);
    }
    return s;
  }
}
