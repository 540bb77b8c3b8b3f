/**
 * Sample timestamps as bkmonitorbeat reads them (reference tasks/timestamp.go): the unit of an integer
 * timestamp is detected from its size, a timestamp too far in the past (or 0, or absent) is replaced by
 * the time of the run, one in the future is kept, and the result is expressed in the task's unit.
 *
 * Detection on the number as written (an OpenMetrics float is seconds and is first turned into ms):
 * `< 1e6` minutes, `< 1e12` seconds, `< 1e15` ms, `< 1e18` µs, otherwise ns. (The reference runs the
 * OpenMetrics parser first, which reads every timestamp as float seconds and multiplies by 1 000 before
 * the detection: integers in s, ms and µs come out the same, ns timestamps overflow to "now" and
 * second-timestamps before 2001 land in the far future. Here integers are detected as written, so ns
 * timestamps are honoured; see the README.)
 */
import type { RawTimestamp } from './parse.ts';

/** The units a task may ask for. */
export type TimestampUnit = 's' | 'ms' | 'us' | 'ns';

export const TIMESTAMP_UNITS: readonly TimestampUnit[] = ['s', 'ms', 'us', 'ns'];

/** Default tolerated age of a sample timestamp: two years (reference `time_offset` default). */
export const DEFAULT_TIME_OFFSET_MS = 2 * 365 * 24 * 3_600_000;

const NS_PER: Record<TimestampUnit, number> = { s: 1e9, ms: 1e6, us: 1e3, ns: 1 };

/** ns since the epoch of a timestamp as written (JS numbers: ns values are exact to ~256 ns). */
export function detectTimestampNs(raw: RawTimestamp): number {
  const v = raw.seconds ? Math.trunc(raw.value * 1_000) : raw.value;
  if (v < 1e6) return v * 60e9;
  if (v < 1e12) return v * 1e9;
  if (v < 1e15) return v * 1e6;
  if (v < 1e18) return v * 1e3;
  return v;
}

/**
 * The sample's time in ns: `raw` with its unit detected, or `nowMs` when absent, 0, or older than
 * `offsetMs` before now. Future timestamps are kept.
 */
export function resolveTimestampNs(raw: RawTimestamp | undefined, nowMs: number, offsetMs: number): number {
  const nowNs = nowMs * 1e6;
  if (!raw) return nowNs;
  const ns = detectTimestampNs(raw);
  if (ns === 0 || nowNs - ns > offsetMs * 1e6) return nowNs;
  return ns;
}

/** ns → the unit (truncated toward negative infinity, as Go's integer division does for positive times). */
export function nsToUnit(ns: number, unit: TimestampUnit): number {
  return Math.floor(ns / NS_PER[unit]);
}

/** A value in `unit` → ms (what MetricBatch records carry). */
export function unitToMs(v: number, unit: TimestampUnit): number {
  return Math.floor((v * NS_PER[unit]) / 1e6);
}
