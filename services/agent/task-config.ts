/**
 * The common task fields (reference `BaseTaskParam` / `BaseTaskMetaParam`, §A3.3): reading, the
 * reference's cleaning order (defaults → max_timeout clamp → min_period clamp → timeout ≤ period → meta
 * data id), and the task identity.
 *
 * Identity: the reference hashes a gob encoding of the cleaned Go struct (labels flattened and sorted);
 * here it is SHA-1 over a canonical JSON of the same content — the cleaned base fields, the labels as
 * sorted pairs, and every other key of the raw entry with its keys sorted — so an edit of any field gives a
 * new ident and a reordering of keys or labels does not. Child-file tasks are hashed once more with the
 * file's name, type and version (reference ChildTaskConfig).
 */
import { createHash } from 'node:crypto';
import type { FieldReader, RawMap } from './config-fields.ts';
import type { BaseTaskConfig } from './task.ts';

/** Reference define.DefaultTimeout. */
export const DEFAULT_TIMEOUT_MS = 3_000;
/** Reference define.DefaultPeriod. */
export const DEFAULT_PERIOD_MS = 10_000;
/** The `period` validation of BaseTaskParam (`min=1s`). */
export const MIN_PERIOD_MS = 1_000;

/** Keys of a task entry that the base owns (everything else belongs to the type). */
const BASE_KEYS = new Set(['task_id', 'bk_biz_id', 'dataid', 'period', 'timeout', 'available_duration', 'labels', 'tags', 'ident']);

/** The base fields as written (before cleaning). */
export interface RawBase {
  taskId: number;
  bizIdField: number;
  dataId: number;
  periodMs: number;
  timeoutMs: number;
  availableDurationMs: number;
  labels: Record<string, string>[];
  tags: Record<string, string>;
}

/**
 * Reads the base fields of one task entry. `task_id` is required; `period`, when given, must be ≥ 1 s;
 * `bk_biz_id` in the labels must be an integer and agree across groups.
 */
export function readBase(f: FieldReader): RawBase {
  if (!f.has('task_id')) f.problem('task_id', 'is required');
  const taskId = f.int('task_id', { default: 0, min: -2_147_483_648, max: 2_147_483_647 });
  const periodMs = f.durationMs('period', { default: 0 });
  if (periodMs > 0 && periodMs < MIN_PERIOD_MS) f.problem('period', `must be at least 1s, got ${String(f.raw.period)}`);
  if (periodMs < 0) f.problem('period', `must not be negative, got ${String(f.raw.period)}`);
  const labels = f.stringMaps('labels');
  labelBizId(labels, f);
  return {
    taskId,
    bizIdField: f.int('bk_biz_id', { default: 0 }),
    dataId: f.int('dataid', { default: 0 }),
    periodMs: Math.max(0, periodMs),
    timeoutMs: Math.max(0, f.durationMs('timeout', { default: 0 })),
    availableDurationMs: Math.max(0, f.durationMs('available_duration', { default: 0 })),
    labels,
    tags: f.stringMap('tags'),
  };
}

/** The `bk_biz_id` the labels name, if any (reference resolveLabelBizID); pushes a problem on bad or conflicting values. */
export function labelBizId(labels: readonly Readonly<Record<string, string>>[], f?: FieldReader): number | undefined {
  let found: number | undefined;
  for (const group of labels) {
    const v = group.bk_biz_id;
    if (v === undefined) continue;
    if (!/^[-+]?\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) {
      f?.problem('labels', `invalid bk_biz_id in labels: ${JSON.stringify(v)}`);
      return undefined;
    }
    const n = Number(v);
    if (found !== undefined && found !== n) {
      f?.problem('labels', 'conflicting bk_biz_id in labels');
      return undefined;
    }
    found = n;
  }
  return found;
}

/** Meta-level fields of a list section or child file (reference BaseTaskMetaParam). */
export interface MetaParams {
  dataId: number;
  maxTimeoutMs: number;
  minPeriodMs: number;
}

/** Reads and cleans the meta fields: `dataid` is required; `max_timeout` / `min_period` under 1 s fall back to the type's defaults. */
export function readMeta(f: FieldReader, defaults: { maxTimeoutMs?: number; minPeriodMs?: number } = {}): MetaParams {
  if (!f.has('dataid')) f.problem('dataid', 'is required');
  const maxTimeoutMs = f.durationMs('max_timeout', { default: 0 });
  const minPeriodMs = f.durationMs('min_period', { default: 0 });
  return {
    dataId: f.int('dataid', { default: 0 }),
    maxTimeoutMs: maxTimeoutMs < 1_000 ? (defaults.maxTimeoutMs ?? DEFAULT_TIMEOUT_MS) : maxTimeoutMs,
    minPeriodMs: minPeriodMs < 1_000 ? (defaults.minPeriodMs ?? DEFAULT_PERIOD_MS) : minPeriodMs,
  };
}

/** The cleaned numbers of a list task (reference CleanParams then CleanTask, in that order). */
export function cleanTiming(base: Pick<RawBase, 'periodMs' | 'timeoutMs' | 'availableDurationMs' | 'dataId'>, meta: MetaParams): { periodMs: number; timeoutMs: number; availableDurationMs: number; dataId: number } {
  // CleanParams: defaults.
  let timeoutMs = base.timeoutMs > 0 ? base.timeoutMs : DEFAULT_TIMEOUT_MS;
  const availableDurationMs = base.availableDurationMs > 0 ? base.availableDurationMs : timeoutMs;
  let periodMs = base.periodMs > 0 ? base.periodMs : DEFAULT_PERIOD_MS;
  // CleanTask: clamps.
  if (meta.maxTimeoutMs < timeoutMs || timeoutMs === 0) timeoutMs = meta.maxTimeoutMs;
  if (meta.minPeriodMs > periodMs) periodMs = meta.minPeriodMs;
  if (periodMs < timeoutMs) timeoutMs = periodMs;
  return { periodMs, timeoutMs, availableDurationMs, dataId: base.dataId === 0 ? meta.dataId : base.dataId };
}

/** JSON with object keys sorted at every level (RegExp and other non-plain values by their string form). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof RegExp) return v.source;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

export function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** The ident of a task entry: its cleaned base, labels as sorted pairs, and its own fields. */
export function taskIdent(type: string, base: Omit<BaseTaskConfig, 'ident' | 'source'>, raw: RawMap): string {
  const pairs = base.labels.flatMap((g) => Object.entries(g)).sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : av > bv ? 1 : 0) : ak < bk ? -1 : 1));
  const own = Object.fromEntries(Object.entries(raw).filter(([k]) => !BASE_KEYS.has(k)));
  return sha1(canonicalJson({
    type,
    task_id: base.taskId,
    bk_biz_id: base.bkBizId,
    dataid: base.dataId,
    period_ms: base.periodMs,
    timeout_ms: base.timeoutMs,
    available_duration_ms: base.availableDurationMs,
    tags: base.tags,
    labels: pairs,
    own,
  }));
}

/** A child-file task's ident: the task's ident hashed with the file's name, type and version (reference ChildTaskConfig). */
export function childIdent(preIdent: string, name: string, type: string, version: string): string {
  return sha1(canonicalJson({ pre_ident: preIdent, name, type, version }));
}

