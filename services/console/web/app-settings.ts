/**
 * An application's flow settings as a form (pure): the form's fields from the collector's application,
 * the PATCH body from the form (only what changed; what the user typed is sent as typed so that the
 * collector, not the console, judges it), and the collector's 400 message split onto the fields it names.
 *
 * The settings are the collector's (services/collector/app-flows.ts, apps-api.ts): trace retention, the
 * traces and metrics data ids the flows run on, the tail-sampling switch with its keys (percentage,
 * session gap, mark timeout, conditions) and the virtual-metric switch.
 */

/** The condition methods the collector and the orchestrator accept (test/console/model.test.ts checks they match the collector's list). */
export const CONDITION_METHODS = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq', 'reg', 'nreg'] as const;
export type ConditionMethod = (typeof CONDITION_METHODS)[number];

/** The tail-sampling keys the form edits besides the conditions: body key → form field. */
export const TAIL_NUMBER_KEYS = ['tail_percentage', 'tail_trace_session_gap_min', 'tail_trace_mark_timeout'] as const;
export type TailNumberKey = (typeof TAIL_NUMBER_KEYS)[number];

/** One tail-sampling condition as the collector keeps it. */
export interface TailCondition {
  condition?: 'and' | 'or';
  key: string;
  method: string;
  value: string[];
}

/** What the settings form reads of an application (the collector admin API's fields). */
export interface AppFlowFields {
  traceRetentionDays: number;
  tracesDataId: number;
  metricsDataId: number;
  tailSampling: boolean;
  tailSamplingConfig: Partial<Record<TailNumberKey, number>> & { tail_conditions?: TailCondition[] };
  virtualMetric: boolean;
}

/** A condition row of the form: the values as one comma-separated text. */
export interface ConditionRow {
  connector: 'and' | 'or';
  key: string;
  method: string;
  values: string;
}

/** The form: every field as the user typed it. */
export interface SettingsForm {
  trace_retention_days: string;
  traces_data_id: string;
  metrics_data_id: string;
  tail_sampling: boolean;
  tail_percentage: string;
  tail_trace_session_gap_min: string;
  tail_trace_mark_timeout: string;
  conditions: ConditionRow[];
  virtual_metric: boolean;
}

const text = (n: number | undefined): string => (n === undefined || n === null ? '' : String(n));

/** The form of an application's current settings. */
export function formOf(app: AppFlowFields): SettingsForm {
  const cfg = app.tailSamplingConfig ?? {};
  return {
    trace_retention_days: text(app.traceRetentionDays),
    traces_data_id: text(app.tracesDataId),
    metrics_data_id: text(app.metricsDataId),
    tail_sampling: app.tailSampling,
    tail_percentage: text(cfg.tail_percentage),
    tail_trace_session_gap_min: text(cfg.tail_trace_session_gap_min),
    tail_trace_mark_timeout: text(cfg.tail_trace_mark_timeout),
    conditions: (cfg.tail_conditions ?? []).map((c) => ({ connector: c.condition === 'or' ? 'or' : 'and', key: c.key, method: c.method, values: c.value.join(', ') })),
    virtual_metric: app.virtualMetric,
  };
}

/** A new, empty condition row. */
export function newCondition(): ConditionRow {
  return { connector: 'and', key: '', method: 'eq', values: '' };
}

/** `"12"` → 12; anything that is not a plain integer stays the text (the collector says what is wrong with it). */
function numberOrText(s: string): number | string {
  const t = s.trim();
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

/** `"a, b ,c"` → `["a", "b", "c"]` (empty items dropped). */
export function splitValues(s: string): string[] {
  return s.split(',').map((v) => v.trim()).filter((v) => v !== '');
}

/** The conditions of the form as the collector takes them (the first one without a connector). */
export function conditionsOf(rows: readonly ConditionRow[]): TailCondition[] {
  return rows.map((r, i) => ({ ...(i > 0 ? { condition: r.connector } : {}), key: r.key.trim(), method: r.method, value: splitValues(r.values) }));
}

/**
 * The PATCH body (snake_case, as the collector admin API takes it) that takes `app` to `form`: only the
 * fields that changed; a tail-sampling number left empty is `null` (back to the flow's default), as are
 * conditions all removed. Empty when nothing changed.
 */
export function patchOf(app: AppFlowFields, form: SettingsForm): Record<string, unknown> {
  const before = formOf(app);
  const body: Record<string, unknown> = {};
  for (const k of ['trace_retention_days', 'traces_data_id', 'metrics_data_id'] as const) {
    if (form[k].trim() !== before[k]) body[k] = numberOrText(form[k]);
  }
  if (form.tail_sampling !== before.tail_sampling) body.tail_sampling = form.tail_sampling;
  if (form.virtual_metric !== before.virtual_metric) body.virtual_metric = form.virtual_metric;
  const tail: Record<string, unknown> = {};
  for (const k of TAIL_NUMBER_KEYS) {
    if (form[k].trim() !== before[k]) tail[k] = form[k].trim() === '' ? null : numberOrText(form[k]);
  }
  const wanted = conditionsOf(form.conditions);
  if (JSON.stringify(wanted) !== JSON.stringify(conditionsOf(before.conditions))) tail.tail_conditions = wanted.length > 0 ? wanted : null;
  if (Object.keys(tail).length > 0) body.tail_sampling_config = tail;
  return body;
}

/** Where a message is shown: a field of the form, a condition's part (`tail_conditions.0.method`), or the form as a whole. */
export type FieldKey = string;
export const FORM = 'form';

/** Which field a message of the collector names, by its wording (services/collector/applications.ts, app-flows.ts, apps-api.ts). */
function fieldOfMessage(m: string): FieldKey {
  const cond = /^tail_sampling_config\.tail_conditions\[(\d+)\](?:\.(condition|key|method|value))?/.exec(m);
  if (cond) return cond[2] ? `tail_conditions.${cond[1]}.${cond[2] === 'condition' ? 'connector' : cond[2] === 'value' ? 'values' : cond[2]}` : `tail_conditions.${cond[1]}`;
  if (m.startsWith('tail_sampling_config.tail_conditions')) return 'tail_conditions';
  const tail = /^tail_sampling_config\.(tail_percentage|tail_trace_session_gap_min|tail_trace_mark_timeout)\b/.exec(m);
  if (tail) return tail[1] as string;
  if (/^trace[_ ]retention/.test(m)) return 'trace_retention_days';
  if (/^traces[_ ]data[_ ]id/.test(m)) return 'traces_data_id';
  if (/^metrics[_ ]data[_ ]id/.test(m)) return 'metrics_data_id';
  if (/^tail[_ ]sampling\b/.test(m) && !m.startsWith('tail_sampling_config')) return 'tail_sampling';
  if (/^virtual[_ ]metric/.test(m)) return 'virtual_metric';
  return FORM;
}

/**
 * The collector's error text (its problems joined with `; `, maybe behind the console's `collector: `
 * prefix and followed by ` (400)`) → the messages per field; what names no field goes under {@link FORM}.
 */
export function fieldErrors(message: string): Record<FieldKey, string[]> {
  const bare = message.replace(/^collector: /, '').replace(/ \(\d{3}\)$/, '');
  const out: Record<FieldKey, string[]> = {};
  for (const part of bare.split('; ')) {
    const m = part.trim();
    if (m === '') continue;
    const key = fieldOfMessage(m);
    (out[key] ??= []).push(m);
  }
  return out;
}
