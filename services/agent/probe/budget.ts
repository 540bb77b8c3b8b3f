/**
 * The agent's budget of probe sockets in flight: every http request, tcp connection, udp socket and ping
 * process takes one unit before it opens and gives it back when closed, so a task with thousands of
 * targets (or many such tasks at once) waits for sockets instead of running out of file descriptors.
 * The per-type concurrency limits (`ctx.acquire`, reference §A2.6) still apply first; this budget is
 * bkstream's addition, shared by every probe type of the process.
 *
 * Size: `AGENT_PROBE_MAX_SOCKETS` (default {@link DEFAULT_MAX_SOCKETS}), or {@link setSocketBudget}.
 * Waiters are served in arrival order and leave the queue when their signal aborts.
 */

/** Default number of probe sockets in flight per agent. */
export const DEFAULT_MAX_SOCKETS = 1024;

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

export class SocketBudget {
  #size: number;
  #used = 0;
  #peak = 0;
  readonly #waiters: Waiter[] = [];

  constructor(size: number) {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`socket budget must be a positive integer, got ${size}`);
    this.#size = size;
  }

  get size(): number {
    return this.#size;
  }

  /** Units taken now. */
  get used(): number {
    return this.#used;
  }

  /** The most units ever taken at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Callers waiting for a unit. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Changes the size; waiters are let in if it grew. */
  resize(size: number): void {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`socket budget must be a positive integer, got ${size}`);
    this.#size = size;
    this.#drain();
  }

  /** Takes one unit; resolves to its release (idempotent). Rejects with the signal's reason when it aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.#used < this.#size && this.#waiters.length === 0) return Promise.resolve(this.#take());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(abortReason(signal as AbortSignal));
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #take(): () => void {
    this.#used++;
    if (this.#used > this.#peak) this.#peak = this.#used;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#used--;
      this.#drain();
    };
  }

  #drain(): void {
    while (this.#used < this.#size && this.#waiters.length > 0) {
      const w = this.#waiters.shift() as Waiter;
      w.signal?.removeEventListener('abort', w.onAbort);
      w.resolve(this.#take());
    }
  }
}

/**
 * The budget size `AGENT_PROBE_MAX_SOCKETS` asks for: the default when unset; a problem (and the default)
 * when it is not a positive integer, for the agent's configuration to report.
 */
export function socketBudgetFromEnv(env: NodeJS.ProcessEnv = process.env): { size: number; problem?: string } {
  const raw = env.AGENT_PROBE_MAX_SOCKETS;
  if (raw === undefined || raw.trim() === '') return { size: DEFAULT_MAX_SOCKETS };
  const n = Number(raw.trim());
  if (Number.isInteger(n) && n >= 1) return { size: n };
  return { size: DEFAULT_MAX_SOCKETS, problem: `must be a positive integer, got ${JSON.stringify(raw)}` };
}

/** The process's budget. */
export const socketBudget = new SocketBudget(socketBudgetFromEnv().size);

/** Sets the process's budget size (the agent's configuration, tests). */
export function setSocketBudget(size: number): void {
  socketBudget.resize(size);
}
