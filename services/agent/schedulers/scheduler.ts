/** What the agent asks of every scheduler (reference define.Scheduler). */
import type { ConfiguredTask } from '../config-engine.ts';

export interface Scheduler {
  /** `daemon`, `check`, `cron`, `listen`, `keyword`. */
  readonly kind: string;
  /** Starts running `tasks`. */
  start(tasks: readonly ConfiguredTask[]): void;
  /**
   * Applies a new task list by identity: unchanged tasks (same ident and fingerprint) keep running and keep
   * their schedule; a task whose ident stayed but whose config changed is rebuilt in place (its schedule
   * kept); tasks that disappeared are stopped; new ones are added.
   */
  reload(tasks: readonly ConfiguredTask[]): void;
  /** Stops intake, aborts running runs, calls each task's stop, waits for runs up to `deadlineMs`. Idempotent. */
  stop(deadlineMs: number): Promise<void>;
  /** Configured tasks per type. */
  counts(): Record<string, number>;
}

/** Adds the counts of several schedulers. */
export function mergeCounts(...counts: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of counts) for (const [k, v] of Object.entries(c)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Waits for `promises` or `ms` on real time, whichever first; returns whether all settled. */
export async function settleWithin(promises: Iterable<Promise<unknown>>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const all = Promise.allSettled([...promises]).then(() => true);
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([all, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
