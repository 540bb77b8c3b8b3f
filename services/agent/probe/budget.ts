/**
 * The agent's budget of probe sockets in flight: every http request, tcp connection, udp socket and ping
 * process takes one unit before it opens and gives it back when closed, so a task with thousands of
 * targets (or many such tasks at once) waits for sockets instead of running out of file descriptors.
 * The per-type concurrency limits (`ctx.acquire`, reference §A2.6) still apply first; this budget is
 * bkstream's addition, shared by every probe type of the process.
 *
 * The agent makes one budget of `AGENT_PROBE_MAX_SOCKETS` (config.ts) and hands it to the probes through
 * `ctx.probes` ({@link ProbeResources}); a run without it (a test, a benchmark) uses the
 * process-wide {@link socketBudget} of {@link DEFAULT_MAX_SOCKETS}. Waiters are served in arrival order
 * and leave the queue when their signal aborts. The same class bounds the ping processes.
 */

/**
 * The agent-wide bounds of the uptime probes (bkstream's; AGENT_PROBE_MAX_SOCKETS,
 * AGENT_PROBE_MAX_PING_PROCESSES, AGENT_PING_PATH): one set per agent, shared by every probe run.
 */
export interface ProbeResources {
  /** Probe sockets in flight: every http connection, tcp connection, udp attempt and ping process holds one. */
  readonly sockets: SocketBudget;
  /** Concurrent `ping` processes. */
  readonly pingProcesses: SocketBudget;
  /** The `ping` binary (a name looked up on PATH, or a path). */
  readonly pingPath: string;
}

/** Default number of probe sockets in flight per agent (AGENT_PROBE_MAX_SOCKETS). */
export const DEFAULT_MAX_SOCKETS = 1024;

/** Default bound of concurrent ping processes per agent (AGENT_PROBE_MAX_PING_PROCESSES). */
export const DEFAULT_MAX_PING_PROCESSES = 64;

/** Default `ping` binary (AGENT_PING_PATH): `ping` from PATH. */
export const DEFAULT_PING_PATH = 'ping';

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

/** The process-wide budget of runs whose context carries none (tests, benchmarks). */
export const socketBudget = new SocketBudget(DEFAULT_MAX_SOCKETS);

/** The probe resources of runs whose context carries none. */
export const defaultProbeResources: ProbeResources = {
  sockets: socketBudget,
  pingProcesses: new SocketBudget(DEFAULT_MAX_PING_PROCESSES),
  pingPath: DEFAULT_PING_PATH,
};

/** Makes an agent's probe resources from its settings (config.ts). */
export function probeResources(settings: { maxSockets: number; maxPingProcesses: number; pingPath: string }): ProbeResources {
  return { sockets: new SocketBudget(settings.maxSockets), pingProcesses: new SocketBudget(settings.maxPingProcesses), pingPath: settings.pingPath };
}

/** The resources a run's probes use: the agent's, else the process defaults. */
export function probesOf(ctx: { readonly probes?: ProbeResources | undefined }): ProbeResources {
  return ctx.probes ?? defaultProbeResources;
}
