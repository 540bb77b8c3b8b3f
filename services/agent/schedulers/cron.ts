/**
 * The cron scheduler (reference scheduler/cron, `mode: cron`, §A2.3): every task runs once at start and
 * then every period, gron's `Every(period)` — the next run is the last fire time truncated to the second
 * plus the period. Runs are not awaited and are bounded like the daemon's. A reload stops everything,
 * waits for it, and starts the new task list from scratch (as the reference does). Counts as a daemon for
 * heartbeats.
 *
 * (gron's `Every` is a fixed interval, not a cron expression, so croner — which schedules cron patterns on
 * real timers — is not used: this runs on the injected clock like the other schedulers.)
 */
import type { Logger } from '../../common/log.ts';
import type { TimerHandle } from '../clock.ts';
import type { ConfiguredTask } from '../config-engine.ts';
import type { Task } from '../task.ts';
import { runDeadlineMs } from './daemon.ts';
import { startRun, type RunEnv } from './runner.ts';
import { settleWithin, type Scheduler } from './scheduler.ts';

interface Entry {
  entry: ConfiguredTask;
  task: Task;
  timer: TimerHandle | undefined;
}

export class CronScheduler implements Scheduler {
  readonly kind = 'cron';
  readonly #env: RunEnv;
  readonly #log: Logger;
  #ctl = new AbortController();
  #entries: Entry[] = [];
  readonly #settling = new Set<Promise<void>>();
  #running = false;

  constructor(options: { env: RunEnv; logger: Logger }) {
    this.#env = options.env;
    this.#log = options.logger.child({ component: 'agent.cron' });
  }

  start(tasks: readonly ConfiguredTask[]): void {
    if (this.#running) return;
    this.#running = true;
    this.#ctl = new AbortController();
    this.#entries = tasks.map((entry) => ({ entry, task: entry.type.create(entry.config), timer: undefined }));
    for (const e of this.#entries) {
      this.#fire(e);
    }
    this.#log.info('cron scheduler started', { tasks: tasks.length });
  }

  reload(tasks: readonly ConfiguredTask[]): void {
    void this.#restart(tasks);
  }

  async stop(deadlineMs: number): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#ctl.abort(new DOMException('stopped', 'AbortError'));
    for (const e of this.#entries) {
      e.timer?.cancel();
      if (e.task.stop) this.#track(e.task.stop().catch((err: unknown) => this.#log.warn('task stop failed', { task_type: e.entry.config.type, err })));
    }
    if (!(await settleWithin(this.#settling, deadlineMs))) this.#log.warn('runs still going at the stop deadline; abandoned', { deadline_ms: deadlineMs });
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.#entries) out[e.entry.config.type] = (out[e.entry.config.type] ?? 0) + 1;
    return out;
  }

  async #restart(tasks: readonly ConfiguredTask[]): Promise<void> {
    await this.stop(10_000);
    this.start(tasks);
  }

  #fire(e: Entry): void {
    if (!this.#running) return;
    const h = startRun(this.#env, e.task, this.#ctl.signal, runDeadlineMs(e.entry.config));
    this.#track(h.settled);
    const now = this.#env.clock.now();
    const next = Math.floor(now / 1_000) * 1_000 + e.entry.config.periodMs;
    e.timer = this.#env.clock.setTimer(next - now, () => this.#fire(e));
  }

  #track(p: Promise<void>): void {
    const tracked = p.finally(() => this.#settling.delete(tracked));
    this.#settling.add(tracked);
  }
}
