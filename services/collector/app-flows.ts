/**
 * What an application's flow settings ask of the orchestrator, as the reference's application
 * create/update does (apm/ `ApmApplication`: tail sampling's `create_or_update_tail_sampling`, the
 * virtual metric's `create_virtual_metric`): pure functions from an application before and after a change
 * to the flow commands it needs.
 *
 * - tail sampling on → `create_or_update` of `tail_sampling` with `data_id` = the traces data id,
 *   `es_retention_days` = the trace retention and the application's tail-sampling keys; off after on → `stop`;
 * - virtual metrics on → `create_or_update` of `virtual_metric` with `data_id` = the metrics data id
 *   (businesses only, bk_biz_id > 0, as the reference); off after on → `stop`;
 * - a switch that stays on sends `create_or_update` again only when its flow config changed;
 * - deleting the application → `delete` of every flow type a `create_or_update` was ever sent for.
 *
 * The config keys are the orchestrator's (services/orchestrator/README.md, "Interfaces"); the checks here
 * mirror its own so that a command queued here is never refused there (test/collector/app-flows.test.ts
 * runs every planned command through the orchestrator's parser).
 */
import { isDeepStrictEqual } from 'node:util';
import type { FlowAction, FlowType } from '../common/records.ts';

/** The flow types an application drives, in the order their commands are queued. */
export const APP_FLOW_TYPES = ['tail_sampling', 'virtual_metric'] as const satisfies readonly FlowType[];

/** The tail-sampling flow's own config keys an application sets (the rest comes from the application). */
export const TAIL_SAMPLING_KEYS = ['tail_percentage', 'tail_trace_session_gap_min', 'tail_trace_mark_timeout', 'tail_conditions'] as const;
export type TailSamplingKey = (typeof TAIL_SAMPLING_KEYS)[number];

export const CONDITION_METHODS = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq', 'reg', 'nreg'] as const;

export interface TailCondition {
  /** How it joins the conditions before it; optional on the first one. */
  condition?: 'and' | 'or';
  key: string;
  method: (typeof CONDITION_METHODS)[number];
  value: string[];
}

/** Tail-sampling settings of an application: the tail-sampling flow's keys, as the orchestrator takes them. */
export interface TailSamplingConfig {
  /** Percentage of traces kept at random besides those the conditions keep, 0–100. */
  tail_percentage?: number;
  /** Minutes of silence that end a trace's session. */
  tail_trace_session_gap_min?: number;
  /** Minutes after which a marked trace is flushed. */
  tail_trace_mark_timeout?: number;
  /** Traces with a span matching these are kept. */
  tail_conditions?: TailCondition[];
}

/** What the flows of an application follow. */
export interface AppFlowSettings {
  bkBizId: number;
  traceRetentionDays: number;
  tracesDataId: number;
  metricsDataId: number;
  tailSampling: boolean;
  tailSamplingConfig: TailSamplingConfig;
  virtualMetric: boolean;
  /** Flow types a create_or_update was ever queued for. */
  provisionedFlows: readonly FlowType[];
}

/** A flow command to queue (the outbox adds command_id, requested_at, the identity and the operator). */
export interface PlannedCommand {
  action: FlowAction;
  flow_type: FlowType;
  config: Record<string, unknown>;
}

/**
 * Checks tail-sampling keys (an object of {@link TAIL_SAMPLING_KEYS}) as the orchestrator's tail-sampling
 * kind does; pushes every problem, named `<at>.<key>`.
 */
export function checkTailSamplingConfig(value: unknown, problems: string[], at = 'tail_sampling_config'): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${at} must be an object of ${TAIL_SAMPLING_KEYS.join(', ')}`);
    return;
  }
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!(TAIL_SAMPLING_KEYS as readonly string[]).includes(k)) problems.push(`${at}.${k}: unknown key (one of ${TAIL_SAMPLING_KEYS.join(', ')})`);
  const int = (key: TailSamplingKey, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    const v = obj[key];
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max)) {
      problems.push(`${at}.${key} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` from ${min} to ${max}`}`);
    }
  };
  int('tail_percentage', 0, 100);
  int('tail_trace_session_gap_min', 1);
  int('tail_trace_mark_timeout', 1);
  const conditions = obj.tail_conditions;
  if (conditions === undefined) return;
  if (!Array.isArray(conditions)) {
    problems.push(`${at}.tail_conditions must be a list`);
    return;
  }
  conditions.forEach((c: unknown, i) => {
    const where = `${at}.tail_conditions[${i}]`;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) {
      problems.push(`${where} must be an object {condition?, key, method, value}`);
      return;
    }
    const cond = c as Record<string, unknown>;
    // The first condition's connector is ignored, and may be left out (as the orchestrator and the reference take it).
    if (cond.condition === undefined) {
      if (i > 0) problems.push(`${where}.condition is required after the first condition ("and" or "or")`);
    } else if (cond.condition !== 'and' && cond.condition !== 'or') problems.push(`${where}.condition must be "and" or "or"`);
    if (typeof cond.key !== 'string' || cond.key === '') problems.push(`${where}.key must be a non-empty string`);
    if (!(CONDITION_METHODS as readonly unknown[]).includes(cond.method)) problems.push(`${where}.method must be one of ${CONDITION_METHODS.join(', ')}`);
    if (!Array.isArray(cond.value) || !cond.value.every((x) => typeof x === 'string')) problems.push(`${where}.value must be a list of strings`);
  });
}

/** Checks that the switched-on flows have what they need (data ids, a business); pushes every problem. */
export function checkFlowSettings(s: Omit<AppFlowSettings, 'provisionedFlows'>, problems: string[]): void {
  checkTailSamplingConfig(s.tailSamplingConfig, problems);
  if (s.tailSampling && !(s.tracesDataId > 0)) problems.push('tail sampling needs the traces data id (traces_data_id > 0)');
  if (s.virtualMetric && !(s.metricsDataId > 0)) problems.push('virtual metrics need the metrics data id (metrics_data_id > 0)');
  if (s.virtualMetric && !(s.bkBizId > 0)) problems.push('virtual metrics run for businesses only (bk_biz_id > 0), as the reference');
}

/** The config of `type`'s `create_or_update` for these settings, or undefined when the switch is off. */
export function flowConfigOf(s: Omit<AppFlowSettings, 'provisionedFlows'>, type: FlowType): Record<string, unknown> | undefined {
  if (type === 'tail_sampling') {
    if (!s.tailSampling) return undefined;
    const config: Record<string, unknown> = { data_id: s.tracesDataId, es_retention_days: s.traceRetentionDays };
    for (const k of TAIL_SAMPLING_KEYS) if (s.tailSamplingConfig[k] !== undefined) config[k] = s.tailSamplingConfig[k];
    return config;
  }
  return s.virtualMetric ? { data_id: s.metricsDataId } : undefined;
}

/**
 * The commands that take the flows from `before` to `after` (undefined: the application is new, or
 * deleted), in {@link APP_FLOW_TYPES} order.
 */
export function planFlowCommands(before: AppFlowSettings | undefined, after: Omit<AppFlowSettings, 'provisionedFlows'> | undefined): PlannedCommand[] {
  const out: PlannedCommand[] = [];
  for (const type of APP_FLOW_TYPES) {
    if (!after) {
      if (before?.provisionedFlows.includes(type)) out.push({ action: 'delete', flow_type: type, config: {} });
      continue;
    }
    const want = flowConfigOf(after, type);
    const had = before ? flowConfigOf(before, type) : undefined;
    if (want && !isDeepStrictEqual(want, had)) out.push({ action: 'create_or_update', flow_type: type, config: want });
    else if (!want && had) out.push({ action: 'stop', flow_type: type, config: {} });
  }
  return out;
}

/** `provisioned` plus the flow types `commands` create. */
export function provisionedAfter(provisioned: readonly FlowType[], commands: readonly PlannedCommand[]): FlowType[] {
  const out = new Set(provisioned);
  for (const c of commands) if (c.action === 'create_or_update') out.add(c.flow_type);
  return APP_FLOW_TYPES.filter((t) => out.has(t));
}
