/**
 * Check mode for operators testing a configuration (reference `mode: check`, §A2.2): load the main file
 * and its child files, run every main-scheduler task once, one after the other, each bounded by its
 * deadline, and hand back what each produced — nothing is published and the agent's state directory is
 * not touched (an in-memory state store is used). Long-running tasks (listen and keyword schedulers) are
 * listed, not run. This is `bkstream agent check`; a service started with `mode: check` runs its tasks the
 * same way through its own agent (publishing them), prints the same report ({@link formatCheckReport}) and
 * ends (service.ts).
 */
import type { Logger } from '../common/log.ts';
import { sleep, systemClock, type Clock } from './clock.ts';
import { globalSettings, loadAgentConfig, type ConfiguredTask, type LoadedConfig } from './config-engine.ts';
import { HostIdentitySource } from './host-identity.ts';
import { CheckScheduler } from './schedulers/check.ts';
import type { RunStatus } from './schedulers/runner.ts';
import { ConcurrencyLimiter } from './schedulers/semaphore.ts';
import { MemoryStateStore } from './state-store.ts';
import type { GlobalSettings, HostIdentity, ProbeResources, TaskOutput, TaskType } from './task.ts';

export interface CheckTaskResult {
  readonly entry: ConfiguredTask;
  readonly status: RunStatus | 'not_run';
  readonly seconds: number;
  readonly outputs: readonly TaskOutput[];
}

export interface CheckReport {
  readonly loaded: LoadedConfig;
  readonly host: HostIdentity;
  readonly results: readonly CheckTaskResult[];
}

export interface CheckOptions {
  types: readonly TaskType[];
  logger: Logger;
  paths: GlobalSettings['paths'];
  ipOverride?: string;
  clock?: Clock;
  version?: string;
  /** The probes' bounds and `ping` binary; default: probe/budget.ts's. */
  probes?: ProbeResources;
}

/** Runs every main-scheduler task of `configFile` once. Throws ConfigError when the main file has problems. */
export async function runCheck(configFile: string, options: CheckOptions): Promise<CheckReport> {
  const clock = options.clock ?? systemClock;
  const loaded = loadAgentConfig(configFile, { types: options.types });
  const hostSource = new HostIdentitySource({ config: loaded.main, logger: options.logger, clock, ...(options.ipOverride ? { ipOverride: options.ipOverride } : {}) });
  await hostSource.start();
  hostSource.stop();
  const host = hostSource.current();
  const state = new MemoryStateStore(clock);
  const global = globalSettings({ ...loaded.main, mode: 'check' }, options.paths);
  const outputs = new Map<string, TaskOutput[]>();
  const startedAtMs = clock.now();
  const limiter = new ConcurrencyLimiter(loaded.main.concurrencyLimits);
  const scheduler = new CheckScheduler({
    logger: options.logger,
    env: {
      clock,
      logger: options.logger,
      limiter,
      context: (task, signal, runLimiter) => ({
        signal,
        now: () => clock.now(),
        sleep: (ms) => sleep(clock, ms, signal),
        emit: async (o) => {
          const list = outputs.get(task.config.ident) ?? [];
          list.push(o);
          outputs.set(task.config.ident, list);
        },
        acquire: (n) => runLimiter.acquire(n, signal),
        requestReload: (reason) => options.logger.info('check mode: reload requested and ignored', { reason }),
        state,
        host,
        global,
        agent: { version: options.version ?? '', startedAtMs, reloadTotal: () => 0, runningTasks: () => ({}) },
        logger: options.logger.child({ task_type: task.config.type, task_id: task.config.taskId }),
        topology: () => hostSource.topology(),
        ...(options.probes ? { probes: options.probes } : {}),
      }),
      observe: () => undefined,
    },
  });
  const main = loaded.tasks.filter((t) => t.scheduler === 'main');
  scheduler.start(main);
  const results: CheckTaskResult[] = (await scheduler.finished()).map((r) => ({ entry: r.entry, status: r.status, seconds: r.seconds, outputs: outputs.get(r.entry.config.ident) ?? [] }));
  for (const entry of loaded.tasks.filter((t) => t.scheduler !== 'main')) results.push({ entry, status: 'not_run', seconds: 0, outputs: [] });
  await scheduler.stop();
  return { loaded, host, results };
}

/**
 * The printed form of a check report: the configuration, its warnings and child files, each task with its
 * outcome, time and outputs (one JSON line each), and a summary line (`bkstream agent check` and a service
 * started with `mode: check` print the same).
 */
export function formatCheckReport(report: CheckReport): { lines: string[]; failed: number } {
  const { loaded, host, results } = report;
  const lines = [`config  ${loaded.main.file} (mode ${loaded.main.mode}; host ${host.nodeId}, biz ${host.bkBizId})`];
  for (const w of loaded.warnings) lines.push(`warning ${w}`);
  for (const c of loaded.children) {
    lines.push(`child   ${c.path}: ${c.status}${c.status === 'loaded' ? ` (${c.tasks} task${c.tasks === 1 ? '' : 's'})` : ''}`);
    if (c.status !== 'loaded') for (const p of c.problems) lines.push(`          - ${p.key}: ${p.message}`);
  }
  let failed = 0;
  for (const r of results) {
    const c = r.entry.config;
    const head = `task    ${c.type} #${c.taskId} (${c.source ?? ''})`;
    if (r.status === 'not_run') {
      lines.push(`${head}: long-running (${r.entry.scheduler} scheduler), not run in check mode`);
      continue;
    }
    if (r.status !== 'ok') failed++;
    lines.push(`${head}: ${r.status} in ${r.seconds.toFixed(3)} s, ${r.outputs.length} output${r.outputs.length === 1 ? '' : 's'}`);
    for (const o of r.outputs) lines.push(`  ${JSON.stringify(o)}`);
  }
  const ran = results.filter((r) => r.status !== 'not_run').length;
  lines.push(`${ran} task${ran === 1 ? '' : 's'} run, ${failed} failed`);
  return { lines, failed };
}
