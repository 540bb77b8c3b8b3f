/**
 * The reference's query time range (`BaseQuery.get_retention_time_range`): seconds in, milliseconds out.
 *
 * - `earliest = now − retention days`;
 * - no end (or 0): `end = now + 5 s` (the trace being looked up may still be arriving); an end given is
 *   never in the future: `min(now, end)`;
 * - no start (or 0): `start = earliest`;
 * - an end before the earliest retained time keeps a window of the retention's length before it:
 *   `start = max(end − retention, start)`; otherwise `start = max(earliest, start)`.
 */
export const TIME_PADDING_S = 5;

export function retentionTimeRange(retentionDays: number, startS: number | undefined, endS: number | undefined, nowMs: number): { startMs: number; endMs: number } {
  const now = Math.floor(nowMs / 1000);
  const retentionS = retentionDays * 86_400;
  const earliest = now - retentionS;
  const end = endS ? Math.min(now, endS) : now + TIME_PADDING_S;
  let start = startS || earliest;
  start = end < earliest ? Math.max(end - retentionS, start) : Math.max(earliest, start);
  return { startMs: start * 1000, endMs: end * 1000 };
}
