/**
 * The agent's core (reference beater.MonitorBeater without its output): loads the configuration, keeps
 * the host identity, routes tasks to the three schedulers (the main one chosen by `mode`, the listen one,
 * the keyword one), runs the heartbeat, and reloads by task identity on request.
 *
 * A reload (SIGHUP, `POST /-/reload`, or a task asking — procconf/procsync after writing child files)
 * re-reads the main file and the child files; if the main file has problems the running state is kept
 * and the problems are returned. Reloads are applied one at a time.
 */
import { ConfigError, type ConfigProblem } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { sleep, type Clock } from './clock.ts';
import { globalSettings, loadAgentConfig, type ConfiguredTask, type LoadedConfig } from './config-engine.ts';
import { HostIdentitySource } from './host-identity.ts';
import type { AgentMetrics } from './metrics.ts';
import type { StatusCounters } from './publisher.ts';
import { CheckScheduler } from './schedulers/check.ts';
import { CronScheduler } from './schedulers/cron.ts';
import { DaemonScheduler } from './schedulers/daemon.ts';
import { keywordScheduler } from './schedulers/keyword.ts';
import { ListenScheduler } from './schedulers/listen.ts';
import type { CheckTaskResult } from './check-mode.ts';
import type { RunEnv } from './schedulers/runner.ts';
import { mergeCounts, type Scheduler } from './schedulers/scheduler.ts';
import { ConcurrencyLimiter, type RunLimiter } from './schedulers/semaphore.ts';
import { CONFIG_ERROR_NO_CHILD_PATH, Heartbeat } from './tasks/heartbeat.ts';
import type { AgentSelf, GlobalSettings, ProbeResources, StateStore, Task, TaskContext, TaskOutput, TaskType } from './task.ts';

export interface AgentOptions {
  /** The main file (bkmonitorbeat.conf). */
  configFile: string;
  types: readonly TaskType[];
  clock: Clock;
  logger: Logger;
  state: StateStore;
  /** Queues a task output (the channel's push: waits while it is full). */
  emit: (output: TaskOutput) => Promise<void>;
  paths: GlobalSettings['paths'];
  /** AGENT_HOST_IP. */
  ipOverride?: string;
  version: string;
  /** The publisher's status counts (heartbeat `published` / `errors`). */
  statusCounters: () => StatusCounters;
  metrics?: AgentMetrics;
  /** Listen / keyword restart delay (10 s). */
  listenRestartDelayMs?: number;
  /** The probes' agent-wide bounds (AGENT_PROBE_*, AGENT_PING_PATH); absent: probe/budget.ts's defaults. */
  probes?: ProbeResources;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly reason: string;
  readonly tasks: number;
  readonly problems: readonly ConfigProblem[];
  readonly childFiles: LoadedConfig['children'];
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #log: Logger;
  readonly startedAtMs: number;
  #loaded!: LoadedConfig;
  #host!: HostIdentitySource;
  #global!: GlobalSettings;
  #limiter!: ConcurrencyLimiter;
  #main!: Scheduler;
  #listen!: ListenScheduler;
  #keyword!: ListenScheduler;
  #heartbeat: Heartbeat | undefined;
  #reloads = 0;
  #configLoadAtMs: number;
  #reloading: Promise<unknown> = Promise.resolve();
  #started = false;
  /** Check mode: what each task emitted, by ident (for the printed results). */
  readonly #checkOutputs = new Map<string, TaskOutput[]>();
  readonly self: AgentSelf;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'agent' });
    this.startedAtMs = options.clock.now();
    this.#configLoadAtMs = this.startedAtMs;
    this.self = {
      version: options.version,
      startedAtMs: this.startedAtMs,
      reloadTotal: () => this.#reloads,
      runningTasks: () => this.runningTasks(),
    };
  }

  /** The configuration in force. */
  get loaded(): LoadedConfig {
    return this.#loaded;
  }

  get host(): HostIdentitySource {
    return this.#host;
  }

  runningTasks(): Record<string, number> {
    if (!this.#started) return {};
    return mergeCounts(this.#main.counts(), this.#listen.counts(), this.#keyword.counts());
  }

  /** Loads the configuration (throws ConfigError listing every problem of the main file) and starts the schedulers. */
  async start(): Promise<void> {
    if (this.#started) return;
    const first = this.#load();
    this.#host = new HostIdentitySource({ config: first.main, logger: this.#o.logger, clock: this.#o.clock, ...(this.#o.ipOverride ? { ipOverride: this.#o.ipOverride } : {}) });
    await this.#host.start();
    this.#loaded = this.#host.staticDataId() ? this.#load() : first;
    for (const w of this.#loaded.warnings) this.#log.warn(w);
    this.#reportChildren(this.#loaded);
    this.#global = globalSettings(this.#loaded.main, this.#o.paths);
    this.#limiter = new ConcurrencyLimiter(this.#loaded.main.concurrencyLimits);
    const env = this.#runEnv();
    const main = this.#loaded.main;
    this.#main = main.mode === 'daemon'
      ? new DaemonScheduler({ env, state: this.#o.state, checkIntervalMs: main.checkIntervalMs, logger: this.#o.logger })
      : main.mode === 'cron'
        ? new CronScheduler({ env, logger: this.#o.logger })
        : new CheckScheduler({ env, logger: this.#o.logger });
    const delay = this.#o.listenRestartDelayMs;
    this.#listen = new ListenScheduler({ env, logger: this.#o.logger, ...(delay === undefined ? {} : { restartDelayMs: delay }) });
    this.#keyword = keywordScheduler({ env, logger: this.#o.logger, ...(delay === undefined ? {} : { restartDelayMs: delay }) });
    this.#started = true;
    this.#route(this.#loaded.tasks, (s, tasks) => s.start(tasks));
    if (main.mode !== 'check') this.#startHeartbeat();
    this.#updateTaskGauge();
    this.#log.info('agent started', { mode: main.mode, tasks: this.#loaded.tasks.length, config: main.file, node_id: this.#host.current().nodeId });
  }

  /**
   * Check mode only: resolves once every main-scheduler task ran once, with each run's outcome and what it
   * emitted; the listen and keyword tasks are listed as `not_run` (check mode does not start them).
   */
  checkFinished(): Promise<CheckTaskResult[]> | undefined {
    if (!(this.#main instanceof CheckScheduler)) return undefined;
    const notRun = this.#loaded.tasks.filter((t) => t.scheduler !== 'main');
    return this.#main.finished().then((runs) => [
      ...runs.map((r) => ({ entry: r.entry, status: r.status, seconds: r.seconds, outputs: this.#checkOutputs.get(r.entry.config.ident) ?? [] })),
      ...notRun.map((entry) => ({ entry, status: 'not_run' as const, seconds: 0, outputs: [] })),
    ]);
  }

  /** Re-reads the configuration and applies it by task identity; on problems keeps the running state. */
  reload(reason: string): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#reload(reason));
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  /** Stops the heartbeat and the schedulers (runs are aborted; waits up to `deadlineMs` for them). */
  async stop(deadlineMs: number): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#heartbeat?.stop();
    this.#host.stop();
    await this.#reloading;
    await Promise.all([this.#main.stop(deadlineMs), this.#listen.stop(deadlineMs), this.#keyword.stop(deadlineMs)]);
    this.#log.info('agent stopped');
  }

  #load(): LoadedConfig {
    const staticDataId = this.#host?.staticDataId();
    return loadAgentConfig(this.#o.configFile, { types: this.#o.types, ...(staticDataId ? { staticDataId } : {}) });
  }

  async #reload(reason: string): Promise<ReloadResult> {
    if (!this.#started) return { ok: false, reason, tasks: 0, problems: [{ key: 'agent', message: 'not running' }], childFiles: [] };
    let next: LoadedConfig;
    try {
      next = this.#load();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.#o.metrics?.reloads.inc({ result: 'failed' });
      this.#log.error('reload refused: the main configuration has problems; the running tasks are kept', { reason, problems: err.problems });
      return { ok: false, reason, tasks: this.#loaded.tasks.length, problems: err.problems, childFiles: this.#loaded.children };
    }
    const prev = this.#loaded.main;
    if (next.main.mode !== prev.mode) this.#log.warn('mode changed; it takes effect at the next start', { from: prev.mode, to: next.main.mode });
    for (const w of next.warnings) this.#log.warn(w);
    this.#reportChildren(next);
    await this.#host.reconfigure(next.main, this.#o.ipOverride);
    this.#loaded = { ...next, main: { ...next.main, mode: prev.mode } };
    this.#global = globalSettings(this.#loaded.main, this.#o.paths);
    this.#limiter.setLimits(next.main.concurrencyLimits);
    this.#route(next.tasks, (s, tasks) => s.reload(tasks));
    const hb = next.main.heartBeat;
    if (this.#heartbeat && (hb.periodMs !== prev.heartBeat.periodMs || hb.globalDataId !== prev.heartBeat.globalDataId)) {
      this.#heartbeat.stop();
      this.#startHeartbeat();
    }
    this.#reloads++;
    this.#configLoadAtMs = this.#o.clock.now();
    this.#o.metrics?.reloads.inc({ result: 'ok' });
    this.#updateTaskGauge();
    this.#log.info('configuration reloaded', { reason, tasks: next.tasks.length });
    return { ok: true, reason, tasks: next.tasks.length, problems: [], childFiles: next.children };
  }

  /** Hands each scheduler its tasks; check mode runs the main-scheduler tasks only (long-running ones are listed, not run). */
  #route(tasks: readonly ConfiguredTask[], apply: (s: Scheduler, tasks: ConfiguredTask[]) => void): void {
    const check = this.#loaded.main.mode === 'check';
    apply(this.#main, tasks.filter((t) => t.scheduler === 'main'));
    apply(this.#listen, check ? [] : tasks.filter((t) => t.scheduler === 'listen'));
    apply(this.#keyword, check ? [] : tasks.filter((t) => t.scheduler === 'keyword'));
  }

  #startHeartbeat(): void {
    const hb = this.#loaded.main.heartBeat;
    this.#heartbeat = new Heartbeat({
      clock: this.#o.clock,
      periodMs: hb.periodMs,
      publishImmediately: hb.publishImmediately,
      logger: this.#log,
      emit: (o) => this.#o.emit(o),
      figures: () => {
        const counters = this.#o.statusCounters();
        return {
          dataId: this.#loaded.main.heartBeat.globalDataId,
          bkHostId: this.#host.current().bkHostId,
          version: this.#o.version,
          startedAtMs: this.startedAtMs,
          tasks: this.#loaded.tasks.length,
          configLoadAtMs: this.#configLoadAtMs,
          published: counters.success,
          errors: counters.fail,
          configErrorCode: this.#loaded.main.include === '' ? CONFIG_ERROR_NO_CHILD_PATH : 0,
          errorTasks: this.#loaded.children.filter((c) => c.status !== 'loaded').length,
        };
      },
    });
    this.#heartbeat.start();
  }

  #reportChildren(loaded: LoadedConfig): void {
    const by = { loaded: 0, skipped: 0, duplicate: 0 };
    for (const c of loaded.children) {
      by[c.status]++;
      if (c.status !== 'loaded') this.#log.error('child config file skipped', { file: c.path, status: c.status, problems: c.problems });
    }
    for (const [status, n] of Object.entries(by)) this.#o.metrics?.childFiles.set({ status }, n);
  }

  #updateTaskGauge(): void {
    const m = this.#o.metrics;
    if (!m) return;
    m.tasks.reset();
    for (const [type, n] of Object.entries(this.runningTasks())) m.tasks.set({ task_type: type }, n);
  }

  #runEnv(): RunEnv {
    const o = this.#o;
    return {
      clock: o.clock,
      logger: this.#log,
      limiter: this.#limiter,
      context: (task, signal, limiter) => this.#context(task, signal, limiter),
      observe: (type, status, seconds) => {
        o.metrics?.taskRuns.inc({ task_type: type, status });
        if (status !== 'skipped') o.metrics?.taskRunSeconds.observe({ task_type: type }, seconds);
      },
    };
  }

  #context(task: Task, signal: AbortSignal, limiter: RunLimiter): TaskContext {
    const o = this.#o;
    const checked = this.#main instanceof CheckScheduler ? this.#checkOutputs : undefined;
    return {
      signal,
      now: () => o.clock.now(),
      sleep: (ms) => sleep(o.clock, ms, signal),
      emit: (output) => {
        if (checked) {
          const list = checked.get(task.config.ident) ?? [];
          list.push(output);
          checked.set(task.config.ident, list);
        }
        return o.emit(output);
      },
      acquire: (n) => limiter.acquire(n, signal),
      requestReload: (reason) => {
        void this.reload(`${task.config.type}: ${reason}`).catch((err: unknown) => this.#log.error('reload failed', { err }));
      },
      state: o.state,
      host: this.#host.current(),
      global: this.#global,
      agent: this.self,
      logger: this.#log.child({ task_type: task.config.type, task_id: task.config.taskId }),
      topology: () => this.#host.topology(),
      ...(o.probes ? { probes: o.probes } : {}),
    };
  }
}
