/** The trace search form as storage's BaseQuery filters (pure). */

export interface TraceFilters {
  service?: string | undefined;
  endpoint?: string | undefined;
  /** ms */
  minDurationMs?: number | undefined;
  status?: 'error' | 'ok' | undefined;
  /** `key=value` */
  attribute?: string | undefined;
}

/** The search form's filters as storage's BaseQuery filter list (trace listing). */
export function traceFilters(f: TraceFilters): unknown[] {
  const out: unknown[] = [];
  if (f.service) out.push({ key: 'resource.service.name', operator: 'equal', value: [f.service] });
  if (f.endpoint) out.push({ key: 'span_name', operator: 'equal', value: [f.endpoint] });
  if (f.minDurationMs !== undefined && f.minDurationMs > 0) out.push({ key: 'trace_duration', operator: 'gte', value: [Math.round(f.minDurationMs * 1000)] });
  if (f.status === 'error') out.push({ key: 'error', operator: 'equal', value: [true] });
  if (f.status === 'ok') out.push({ key: 'error', operator: 'equal', value: [false] });
  if (f.attribute) {
    const eq = f.attribute.indexOf('=');
    const key = (eq >= 0 ? f.attribute.slice(0, eq) : f.attribute).trim();
    const value = eq >= 0 ? f.attribute.slice(eq + 1).trim() : '';
    const name = key.startsWith('attributes.') || key.startsWith('resource.') ? key : `attributes.${key}`;
    out.push(eq >= 0 ? { key: name, operator: 'equal', value: [value] } : { key: name, operator: 'exists', value: [] });
  }
  return out;
}
