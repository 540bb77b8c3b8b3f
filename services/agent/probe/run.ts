/**
 * Running a task's probes under its type's concurrency limit (reference §A2.6, errata 3 and 11): each
 * group (an http URL with its IPs, a tcp/udp IP) takes `weight` units through `ctx.acquire` before its
 * probes start, and gives them back when its last probe ends. When an acquire fails (the run's signal
 * aborted — a `per_task` of 0 waits until then, errata 3), no further group starts; the probes already
 * started finish and report (errata 11), and the run ends when they have.
 */
import type { TaskContext } from '../task.ts';

export interface ProbeGroup {
  /** Units to take (the reference: http len(ips) per URL, tcp/udp 1 per IP). */
  readonly weight: number;
  readonly probes: readonly (() => Promise<void>)[];
}

/** Whether the run was stopped (task removed, replaced, agent stopping) rather than reaching its deadline. */
export function isStopped(signal: AbortSignal): boolean {
  if (!signal.aborted) return false;
  const reason: unknown = signal.reason;
  return !(reason instanceof Error && reason.name === 'TimeoutError');
}

/** Whether the run's deadline (not a stop) aborted it. */
export function isDeadline(signal: AbortSignal): boolean {
  return signal.aborted && !isStopped(signal);
}

/** Runs the groups; resolves to false when an acquire failed (the rest were not started). Never rejects. */
export async function runProbes(ctx: Pick<TaskContext, 'acquire' | 'logger' | 'signal'>, groups: readonly ProbeGroup[]): Promise<boolean> {
  const running: Promise<void>[] = [];
  let completed = true;
  for (const group of groups) {
    if (group.probes.length === 0) continue;
    let release: () => void;
    try {
      release = await ctx.acquire(group.weight);
    } catch {
      ctx.logger.warn('probe concurrency limit not acquired before the run ended; remaining targets not probed', { groups_left: groups.length - groups.indexOf(group) });
      completed = false;
      break;
    }
    let left = group.probes.length;
    for (const probe of group.probes) {
      running.push(
        probe()
          .catch((err: unknown) => ctx.logger.warn('probe failed unexpectedly', { err: (err as Error).message }))
          .finally(() => {
            if (--left === 0) release();
          }),
      );
    }
  }
  await Promise.all(running);
  return completed;
}
