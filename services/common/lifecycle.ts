/**
 * One lifecycle contract for every long-lived part: `start()` / `stop()`.
 *
 * - `stop()` is idempotent and safe without `start()`.
 * - A {@link Lifecycle} starts its parts in order and stops them in reverse order (intake first, if
 *   the parts were added source-last), runs every stop even if one fails, and gives each a deadline:
 *   its own (`stopTimeoutMs`), never past the whole stop's (`stopDeadlineMs`, if set). A part whose
 *   stop takes a time budget can ask the lifecycle how much is left ({@link Lifecycle.remainingMs}).
 * - {@link runMain} wires SIGINT/SIGTERM to stop and is the only place that exits the process.
 */
import { ConfigError, errorMessage } from './errors.ts';
import type { Logger } from './log.ts';

export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function withDeadline<T>(name: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: stop did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export interface LifecycleOptions {
  logger: Logger;
  /** The component name (logs, stop failures). Default `lifecycle`. */
  name?: string;
  /** Deadline of each part's stop. Default 10 000 ms. */
  stopTimeoutMs?: number;
  /** Deadline of the whole stop, over all parts; unset = only the per-part deadline. */
  stopDeadlineMs?: number;
}

/** An ordered set of components started and stopped as one. It is itself a Component. */
export class Lifecycle implements Component {
  readonly name: string;
  readonly #parts: Component[] = [];
  readonly #started: Component[] = [];
  readonly #log: Logger;
  readonly #stopTimeoutMs: number;
  readonly #stopDeadlineMs: number | undefined;
  #stopping: Promise<void> | undefined;
  #stopEndsAt = Infinity;

  constructor(options: LifecycleOptions) {
    this.name = options.name ?? 'lifecycle';
    this.#log = options.logger.child({ component: this.name });
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.#stopDeadlineMs = options.stopDeadlineMs;
  }

  /** While stopping: ms left before the whole stop's deadline (the per-part deadline when none is set). */
  remainingMs(): number {
    return Math.max(0, Math.min(this.#stopTimeoutMs, this.#stopEndsAt - Date.now()));
  }

  /** Adds a part; parts start in the order added and stop in reverse. Returns the part. */
  add<C extends Component>(part: C): C {
    this.#parts.push(part);
    return part;
  }

  /** Adds a cleanup step that only has a stop (closing a pool, a timer). */
  onStop(name: string, stop: () => Promise<void> | void): void {
    this.add({ name, start: async () => {}, stop: async () => stop() });
  }

  async start(): Promise<void> {
    for (const part of this.#parts) {
      if (this.#started.includes(part)) continue;
      try {
        await part.start();
      } catch (err) {
        this.#log.error('start failed', { part: part.name, err });
        await this.stop();
        throw err;
      }
      this.#started.push(part);
    }
  }

  /** Stops every started part in reverse order; collects failures and throws one at the end. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopAll().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  async #stopAll(): Promise<void> {
    const failures: string[] = [];
    this.#stopEndsAt = this.#stopDeadlineMs === undefined ? Infinity : Date.now() + this.#stopDeadlineMs;
    while (this.#started.length > 0) {
      const part = this.#started.pop() as Component;
      try {
        await withDeadline(part.name, this.remainingMs(), part.stop());
      } catch (err) {
        failures.push(`${part.name}: ${errorMessage(err)}`);
        this.#log.error('stop failed', { part: part.name, err });
      }
    }
    if (failures.length > 0) throw new Error(`stop failed: ${failures.join('; ')}`);
  }
}

export interface MainOptions {
  name: string;
  /** Builds and starts the service; returns what to stop on a signal. */
  run: () => Promise<Component>;
  logger?: Logger;
}

/**
 * The entry point of a service process: runs `run`, stops on SIGINT/SIGTERM, exits 0 on a clean stop,
 * 1 on failure, 2 on a configuration error (printing every problem).
 */
export function runMain(options: MainOptions): void {
  const fail = (err: unknown): never => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${options.name}: ${err.message}\n`);
      process.exit(2);
    }
    if (options.logger) options.logger.error('fatal', { service: options.name, err });
    else process.stderr.write(`${options.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  };
  options.run().then((component) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      options.logger?.info('stopping', { service: options.name, signal });
      component.stop().then(() => process.exit(0), fail);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  }, fail);
}
