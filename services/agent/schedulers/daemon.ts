/**
 * The daemon scheduler (reference scheduler/daemon, §A2.1): jobs ordered by next check time; a ticker
 * of `check_interval` (500 ms); on every tick every job whose check time has come is started without
 * waiting for it (one run per job per tick), then advanced by exactly one period — previous + period, so
 * a job that fell behind runs on consecutive ticks until it has caught up. Each advance stores the check
 * time (`task_<type>_<id>_check_time`, TTL 2 × period) so a restart keeps the schedule; first check
 * times are aligned as align.ts describes.
 *
 * Each run gets its own signal, aborted when the task is stopped or replaced or when the run reaches its
 * deadline (the task's timeout, or 2 × period for single-instance tasks without one); a throwing or
 * hanging run is counted and never touches the other jobs. Runs of one task may overlap, as in the
 * reference, unless its type sets `skipIfRunning` (the reference's own guard in those tasks).
 */
import type { Logger } from '../../common/log.ts';
import type { TimerHandle } from '../clock.ts';
import type { ConfiguredTask } from '../config-engine.ts';
import type { StateStore, Task } from '../task.ts';
import { checkTimeKey, formatCheckTime, initialCheckTime } from './align.ts';
import { JobQueue } from './job-queue.ts';
import { startRun, type RunEnv } from './runner.ts';
import { settleWithin, type Scheduler } from './scheduler.ts';

/** The deadline of one main-scheduler run. */
export function runDeadlineMs(config: { timeoutMs: number; periodMs: number }): number {
  return config.timeoutMs > 0 ? config.timeoutMs : 2 * config.periodMs;
}

interface Job {
  entry: ConfiguredTask;
  task: Task;
  /** Aborts every run of this task instance (replacement, removal, stop). */
  ctl: AbortController;
  checkTime: number;
  readonly key: string;
  /** Runs not past their outcome (for skipIfRunning). */
  active: number;
}

export interface DaemonOptions {
  env: RunEnv;
  state: StateStore;
  checkIntervalMs: number;
  logger: Logger;
}

export class DaemonScheduler implements Scheduler {
  readonly kind = 'daemon';
  readonly #env: RunEnv;
  readonly #state: StateStore;
  readonly #log: Logger;
  readonly #checkIntervalMs: number;
  #queue = new JobQueue<Job>();
  readonly #jobs = new Map<string, Job>();
  readonly #settling = new Set<Promise<void>>();
  #ticker: TimerHandle | undefined;
  #origin = 0;
  #running = false;

  constructor(options: DaemonOptions) {
    this.#env = options.env;
    this.#state = options.state;
    this.#log = options.logger.child({ component: 'agent.daemon' });
    this.#checkIntervalMs = options.checkIntervalMs;
  }

  start(tasks: readonly ConfiguredTask[]): void {
    if (this.#running) return;
    this.#running = true;
    for (const entry of tasks) this.#add(entry);
    this.#origin = this.#env.clock.now();
    this.#scheduleTick();
    this.#log.info('daemon scheduler started', { tasks: this.#jobs.size, check_interval_ms: this.#checkIntervalMs });
  }

  reload(tasks: readonly ConfiguredTask[]): void {
    const incoming = new Map(tasks.map((t) => [t.config.ident, t]));
    const jobs = this.#queue.popAll();
    const kept: Job[] = [];
    let replaced = 0;
    let removed = 0;
    for (const job of jobs) {
      const next = incoming.get(job.entry.config.ident);
      if (!next) {
        this.#stopTask(job);
        this.#jobs.delete(job.entry.config.ident);
        removed++;
        continue;
      }
      incoming.delete(job.entry.config.ident);
      if (next.fingerprint !== job.entry.fingerprint) {
        // Same identity, new config (single-instance types keep their type name as ident): the job and its
        // check time stay, the task object is rebuilt (the reference copies the config into it and reloads).
        this.#stopTask(job);
        job.entry = next;
        job.task = next.type.create(next.config);
        job.ctl = new AbortController();
        replaced++;
      }
      kept.push(job);
    }
    this.#queue.push(...kept);
    for (const entry of incoming.values()) this.#add(entry);
    this.#log.info('daemon scheduler reloaded', { kept: kept.length - replaced, replaced, removed, added: incoming.size });
  }

  async stop(deadlineMs: number): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#ticker?.cancel();
    this.#ticker = undefined;
    for (const job of this.#queue.popAll()) this.#stopTask(job);
    this.#jobs.clear();
    const all = await settleWithin(this.#settling, deadlineMs);
    if (!all) this.#log.warn('runs still going at the stop deadline; abandoned', { runs: this.#settling.size, deadline_ms: deadlineMs });
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const job of this.#jobs.values()) out[job.entry.config.type] = (out[job.entry.config.type] ?? 0) + 1;
    return out;
  }

  /** The next check time of each job (tests, check mode). */
  schedule(): { ident: string; type: string; taskId: number; checkTime: number }[] {
    return [...this.#jobs.values()]
      .map((j) => ({ ident: j.entry.config.ident, type: j.entry.config.type, taskId: j.entry.config.taskId, checkTime: j.checkTime }))
      .sort((a, b) => a.checkTime - b.checkTime);
  }

  #add(entry: ConfiguredTask): void {
    const { type, taskId, periodMs } = entry.config;
    const key = checkTimeKey(type, taskId);
    const job: Job = {
      entry,
      task: entry.type.create(entry.config),
      ctl: new AbortController(),
      checkTime: initialCheckTime(this.#env.clock.now(), periodMs, taskId, this.#state.get(key)),
      key,
      active: 0,
    };
    this.#jobs.set(entry.config.ident, job);
    this.#queue.push(job);
  }

  #scheduleTick(): void {
    const now = this.#env.clock.now();
    const interval = this.#checkIntervalMs;
    // Go's ticker: fixed cadence from the start; ticks missed while the process stalled are dropped.
    const delay = interval - ((now - this.#origin) % interval);
    this.#ticker = this.#env.clock.setTimer(delay, () => {
      if (!this.#running) return;
      this.#tick();
      this.#scheduleTick();
    });
  }

  #tick(): void {
    const due = this.#queue.popUntil(this.#env.clock.now());
    if (due.length === 0) return;
    for (const job of due) this.#run(job);
    for (const job of due) {
      this.#state.set(job.key, formatCheckTime(job.checkTime), 2 * job.entry.config.periodMs);
      job.checkTime += job.entry.config.periodMs;
    }
    this.#queue.push(...due);
  }

  #run(job: Job): void {
    const { config } = job.entry;
    if (job.entry.type.skipIfRunning && job.active > 0) {
      this.#env.observe(config.type, 'skipped', 0);
      return;
    }
    job.active++;
    const handle = startRun(this.#env, job.task, job.ctl.signal, runDeadlineMs(config));
    void handle.outcome.then(() => {
      job.active--;
    });
    const settled = handle.settled.finally(() => this.#settling.delete(settled));
    this.#settling.add(settled);
  }

  #stopTask(job: Job): void {
    job.ctl.abort(new DOMException('task stopped', 'AbortError'));
    const task = job.task;
    if (task.stop) {
      const stopping = task.stop().catch((err: unknown) => {
        this.#log.warn('task stop failed', { task_type: task.config.type, task_id: task.config.taskId, err });
      });
      const tracked = stopping.finally(() => this.#settling.delete(tracked));
      this.#settling.add(tracked);
    }
  }
}
