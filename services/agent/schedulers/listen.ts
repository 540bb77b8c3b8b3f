/**
 * The listen scheduler (reference scheduler/listen, §A2.4): for long-running tasks (snmptrap, metricbeat,
 * kubeevent, dmesg). Each task runs in a loop — wait the restart delay (10 s; so the first start is
 * delayed too), run until it returns or throws, repeat — until the task is removed or the scheduler
 * stops. Reload diffs by ident and config: removed or changed tasks are cancelled first, then changed and
 * new ones are started ("delete then add", because listeners hold ports); a task whose config did not
 * change keeps its listener. (The reference restarts a metricbeat task when the global gather-up data id
 * changes; here any change of what a task was built from, gather-up data id included, restarts it.)
 */
import type { Logger } from '../../common/log.ts';
import { isAbortError, sleep } from '../clock.ts';
import type { ConfiguredTask } from '../config-engine.ts';
import type { Task } from '../task.ts';
import { startRun, type RunEnv } from './runner.ts';
import { settleWithin, type Scheduler } from './scheduler.ts';

/** Reference restartInterval. */
export const LISTEN_RESTART_DELAY_MS = 10_000;

interface Listener {
  entry: ConfiguredTask;
  task: Task;
  ctl: AbortController;
  loop: Promise<void>;
}

export interface ListenOptions {
  env: RunEnv;
  logger: Logger;
  /** Delay before each (re)start. Default 10 000 ms. */
  restartDelayMs?: number;
  /** Delay before the first start. Default: the restart delay (the reference sleeps first). */
  initialDelayMs?: number;
  /** Name in logs and `kind`. Default `listen`. */
  kind?: string;
}

export class ListenScheduler implements Scheduler {
  readonly kind: string;
  readonly #env: RunEnv;
  readonly #log: Logger;
  readonly #restartDelayMs: number;
  readonly #initialDelayMs: number;
  readonly #listeners = new Map<string, Listener>();
  readonly #stopping = new Set<Promise<void>>();
  #running = false;

  constructor(options: ListenOptions) {
    this.kind = options.kind ?? 'listen';
    this.#env = options.env;
    this.#log = options.logger.child({ component: `agent.${this.kind}` });
    this.#restartDelayMs = options.restartDelayMs ?? LISTEN_RESTART_DELAY_MS;
    this.#initialDelayMs = options.initialDelayMs ?? this.#restartDelayMs;
  }

  start(tasks: readonly ConfiguredTask[]): void {
    if (this.#running) return;
    this.#running = true;
    for (const entry of tasks) this.#add(entry);
    if (tasks.length > 0) this.#log.info(`${this.kind} scheduler started`, { tasks: tasks.length });
  }

  reload(tasks: readonly ConfiguredTask[]): void {
    const incoming = new Map(tasks.map((t) => [t.config.ident, t]));
    let removed = 0;
    for (const [ident, l] of [...this.#listeners]) {
      const next = incoming.get(ident);
      if (next && next.fingerprint === l.entry.fingerprint) {
        incoming.delete(ident);
        continue;
      }
      this.#remove(ident, l);
      removed++;
    }
    for (const entry of incoming.values()) this.#add(entry);
    this.#log.info(`${this.kind} scheduler reloaded`, { removed, added: incoming.size, running: this.#listeners.size });
  }

  async stop(deadlineMs: number): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (const [ident, l] of [...this.#listeners]) this.#remove(ident, l);
    if (!(await settleWithin(this.#stopping, deadlineMs))) this.#log.warn('listeners still running at the stop deadline; abandoned', { deadline_ms: deadlineMs });
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.#listeners.values()) out[l.entry.config.type] = (out[l.entry.config.type] ?? 0) + 1;
    return out;
  }

  #add(entry: ConfiguredTask): void {
    const ctl = new AbortController();
    const task = entry.type.create(entry.config);
    const listener: Listener = { entry, task, ctl, loop: Promise.resolve() };
    listener.loop = this.#keepListening(listener);
    this.#listeners.set(entry.config.ident, listener);
  }

  #remove(ident: string, l: Listener): void {
    this.#listeners.delete(ident);
    l.ctl.abort(new DOMException('task removed', 'AbortError'));
    const done = l.loop
      .then(() => l.task.stop?.())
      .catch((err: unknown) => this.#log.warn('task stop failed', { task_type: l.entry.config.type, err }))
      .finally(() => this.#stopping.delete(done));
    this.#stopping.add(done);
  }

  async #keepListening(l: Listener): Promise<void> {
    let delay = this.#initialDelayMs;
    const signal = l.ctl.signal;
    while (!signal.aborted) {
      try {
        if (delay > 0) await sleep(this.#env.clock, delay, signal);
      } catch (err) {
        if (isAbortError(err) || signal.aborted) return;
        throw err;
      }
      delay = this.#restartDelayMs;
      const status = await startRun(this.#env, l.task, signal).outcome;
      if (!signal.aborted) this.#log.warn('listener returned; restarting after the delay', { task_type: l.entry.config.type, task_id: l.entry.config.taskId, status, delay_ms: delay });
    }
  }
}
