/**
 * The daemon scheduler's first check time of a job (reference StroedIntervalJob.Init, §A2.1 and errata
 * 1–2, 10):
 *
 * 1. start from now;
 * 2. if the state store has `task_<type>_<taskID>_check_time` (RFC 3339, seconds) that is not in the
 *    future and at most one period old, continue from it: stored + period;
 * 3. align: truncate to a multiple of the period counted the way Go's `Time.Truncate` counts — from
 *    0001-01-01T00:00:00Z, not from the Unix epoch (errata 1: equal only when the period divides
 *    62 135 596 800 s) — then add `(taskID + truncated.Second()) mod 30` seconds, in int32 arithmetic with
 *    Go's sign-keeping remainder. For periods under a minute the offset moves from window to window and
 *    may exceed the period; the reference does not correct it (errata 2) and neither does this.
 *
 * The key is per type and task id, not per ident, so an edited task keeps its cadence (errata 10).
 */

/** Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch. */
export const GO_EPOCH_OFFSET_MS = 62_135_596_800_000;

/** Go's `t.Truncate(d)` for a time in ms since the Unix epoch and a duration in ms (> 0). */
export function goTruncate(tMs: number, periodMs: number): number {
  if (periodMs <= 0) return tMs;
  const abs = tMs + GO_EPOCH_OFFSET_MS;
  const rem = ((abs % periodMs) + periodMs) % periodMs;
  return tMs - rem;
}

/** The reference's per-task second offset added after truncation. */
export function alignOffsetMs(taskId: number, truncatedMs: number): number {
  const second = new Date(truncatedMs).getUTCSeconds();
  const sum = (taskId + second) | 0; // int32 addition, wrapping like Go's
  return (sum % 30) * 1_000; // Go's %: the sign of the dividend
}

/** `task_<type>_<taskID>_check_time`. */
export function checkTimeKey(type: string, taskId: number): string {
  return `task_${type}_${taskId}_check_time`;
}

/** RFC 3339 with whole seconds in UTC (Go's layout `2006-01-02T15:04:05Z07:00`). */
export function formatCheckTime(ms: number): string {
  return new Date(Math.floor(ms / 1_000) * 1_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The stored check time in ms, or undefined when absent or not RFC 3339. */
export function parseCheckTime(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The first check time of a job (steps 1–3 above). */
export function initialCheckTime(nowMs: number, periodMs: number, taskId: number, stored: string | undefined): number {
  let check = nowMs;
  const last = parseCheckTime(stored);
  if (last !== undefined && !(nowMs < last) && nowMs - last <= periodMs) check = last + periodMs;
  const truncated = goTruncate(check, periodMs);
  return truncated + alignOffsetMs(taskId, truncated);
}
