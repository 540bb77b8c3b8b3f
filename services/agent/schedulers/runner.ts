/**
 * One run of one task, the way every scheduler starts it: its own AbortSignal (aborted by the scheduler's
 * stop, the task's removal, or the run's deadline), errors and rejections caught and counted (a throwing
 * task never reaches the scheduler), the concurrency limiter of the run, and the run's metrics.
 */
import { errorMessage } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import { isAbortError, type Clock } from '../clock.ts';
import type { Task, TaskContext } from '../task.ts';
import type { ConcurrencyLimiter, RunLimiter } from './semaphore.ts';

/** How a run ended: `skipped` = not started (the previous run still going, skipIfRunning). */
export type RunStatus = 'ok' | 'error' | 'timeout' | 'cancelled' | 'skipped';

/** What schedulers need from the agent to run tasks. */
export interface RunEnv {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly limiter: ConcurrencyLimiter;
  /** The context of one run. */
  context(task: Task, signal: AbortSignal, limiter: RunLimiter): TaskContext;
  /** Called once per run (and per skipped run) with its outcome and duration. */
  observe(type: string, status: RunStatus, seconds: number): void;
}

export interface RunHandle {
  /** Resolves when the run ended or reached its deadline (whichever first), with the outcome. */
  readonly outcome: Promise<RunStatus>;
  /** Resolves when the task's promise settled (a run that ignores its signal may settle after `outcome`). */
  readonly settled: Promise<void>;
  /** Aborts the run. */
  abort(reason?: Error): void;
}

export class RunTimeoutError extends Error {
  constructor(ms: number) {
    super(`run exceeded its deadline of ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Starts one run of `task`. `parent` aborts it with the scheduler or job; `deadlineMs` (when set) aborts
 * it with a {@link RunTimeoutError} and resolves `outcome` to `timeout` even if the task ignores the signal.
 */
export function startRun(env: RunEnv, task: Task, parent: AbortSignal, deadlineMs?: number): RunHandle {
  const { type, taskId, ident } = task.config;
  const ctl = new AbortController();
  const onParent = (): void => ctl.abort(parent.reason instanceof Error ? parent.reason : new DOMException('stopped', 'AbortError'));
  if (parent.aborted) onParent();
  else parent.addEventListener('abort', onParent, { once: true });
  const startedAt = env.clock.now();
  const limiter = env.limiter.forRun(type, ident);
  let timedOut = false;
  let resolveOutcome!: (s: RunStatus) => void;
  const outcome = new Promise<RunStatus>((r) => (resolveOutcome = r));
  let reported = false;
  const report = (status: RunStatus): void => {
    if (reported) return;
    reported = true;
    env.observe(type, status, Math.max(0, env.clock.now() - startedAt) / 1_000);
    resolveOutcome(status);
  };
  const timer = deadlineMs !== undefined && deadlineMs > 0
    ? env.clock.setTimer(deadlineMs, () => {
        timedOut = true;
        env.logger.warn('task run exceeded its deadline; aborted', { task_type: type, task_id: taskId, deadline_ms: deadlineMs });
        ctl.abort(new RunTimeoutError(deadlineMs));
        report('timeout');
      })
    : undefined;
  const settled = (async () => {
    try {
      await task.run(env.context(task, ctl.signal, limiter));
      report(timedOut ? 'timeout' : 'ok');
    } catch (err) {
      if (timedOut) report('timeout');
      else if (ctl.signal.aborted && isAbortError(err)) report('cancelled');
      else if (ctl.signal.aborted) report('cancelled');
      else {
        env.logger.warn('task run failed', { task_type: type, task_id: taskId, err: errorMessage(err) });
        report('error');
      }
    } finally {
      timer?.cancel();
      parent.removeEventListener('abort', onParent);
      limiter.done();
    }
  })();
  return { outcome, settled, abort: (reason) => ctl.abort(reason ?? new DOMException('stopped', 'AbortError')) };
}
