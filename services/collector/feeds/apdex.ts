/**
 * The platform's `apdex_calculator/standard` on traces (bk-monitor `apm/core/platform_config.py`
 * `get_apdex_config`: one rule per span kind, UNSPECIFIED to CONSUMER, no predicate key, `apdex_t` =
 * `APM_APDEX_T_VALUE`, 800 ms; bkmonitor-datalink `processor/apdexcalculator`): the span's duration in ns
 * against the threshold, written to the span attribute `apdex_type` before the converter and the traces
 * deriver run, so the trace feed's spans carry it and the derived metrics have it as a dimension.
 */

/** The attribute the calculator writes (the rule's `destination`). */
export const APDEX_ATTRIBUTE = 'apdex_type';
/** The platform default threshold, ms (`APM_APDEX_T_VALUE`). */
export const APDEX_T_MS = 800;

/** satisfied ≤ T < tolerating ≤ 4T < frustrated; undefined for a kind without a rule (outside 0–5). */
export function apdexType(kind: number, durationNs: number, apdexTMs: number = APDEX_T_MS): string | undefined {
  if (!(Number.isInteger(kind) && kind >= 0 && kind <= 5)) return undefined;
  const threshold = apdexTMs * 1e6;
  if (durationNs <= threshold) return 'satisfied';
  if (durationNs <= 4 * threshold) return 'tolerating';
  return 'frustrated';
}
