/**
 * The check scheduler (reference scheduler/checker, `mode: check`, §A2.2): every task once, one after the
 * other in ident order, each bounded by its deadline; then it is finished. Used by `bkstream agent check`
 * and by a service started with `mode: check`. Not a daemon: no heartbeats.
 */
import type { Logger } from '../../common/log.ts';
import type { ConfiguredTask } from '../config-engine.ts';
import { runDeadlineMs } from './daemon.ts';
import { startRun, type RunEnv, type RunStatus } from './runner.ts';
import type { Scheduler } from './scheduler.ts';

export interface CheckResult {
  readonly entry: ConfiguredTask;
  readonly status: RunStatus;
  /** Run time on the scheduler's clock. */
  readonly seconds: number;
}

export class CheckScheduler implements Scheduler {
  readonly kind = 'check';
  readonly #env: RunEnv;
  readonly #log: Logger;
  readonly #ctl = new AbortController();
  #tasks: readonly ConfiguredTask[] = [];
  #done: Promise<CheckResult[]> | undefined;

  constructor(options: { env: RunEnv; logger: Logger }) {
    this.#env = options.env;
    this.#log = options.logger.child({ component: 'agent.check' });
  }

  start(tasks: readonly ConfiguredTask[]): void {
    this.#tasks = tasks;
    this.#done ??= this.#runAll();
  }

  /** Resolves when every task has run once. */
  finished(): Promise<CheckResult[]> {
    this.#done ??= this.#runAll();
    return this.#done;
  }

  /** Check mode runs its tasks once; a reload has nothing to apply. */
  reload(): void {
    this.#log.warn('check mode: reload ignored (the tasks already ran once)');
  }

  async stop(): Promise<void> {
    this.#ctl.abort(new DOMException('stopped', 'AbortError'));
    await this.#done?.catch(() => undefined);
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.#tasks) out[t.config.type] = (out[t.config.type] ?? 0) + 1;
    return out;
  }

  async #runAll(): Promise<CheckResult[]> {
    const ordered = [...this.#tasks].sort((a, b) => (a.config.ident < b.config.ident ? -1 : a.config.ident > b.config.ident ? 1 : 0));
    const results: CheckResult[] = [];
    for (const entry of ordered) {
      if (this.#ctl.signal.aborted) break;
      const task = entry.type.create(entry.config);
      const started = this.#env.clock.now();
      const status = await startRun(this.#env, task, this.#ctl.signal, runDeadlineMs(entry.config)).outcome;
      const seconds = (this.#env.clock.now() - started) / 1_000;
      await task.stop?.().catch((err: unknown) => this.#log.warn('task stop failed', { task_type: entry.config.type, err }));
      results.push({ entry, status, seconds });
    }
    return results;
  }
}
