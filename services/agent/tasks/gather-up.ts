/**
 * The `bkm_gather_up` series (reference §A7.2): one record per task run saying whether it gathered, with
 * the reference's status codes (§A9). Used by script, metricbeat and proccustom runs.
 *
 * Reference document: `{dataid: gather_up_beat.dataid, data: [{metrics: {bkm_gather_up: v}, dimension:
 * {task_id, bk_collect_type, bk_biz_id, bkm_up_code, bkm_up_code_name, <label keys>}, timestamp: ms}]}`
 * (errata 13: no top-level time/timestamp). Published as a `MetricBatch` with an empty target.
 */
import type { BaseTaskConfig, MetricsOutput, TaskContext } from '../task.ts';

/** A status code and its name, as the reference names them (`bkm_up_code`, `bkm_up_code_name`). */
export interface NamedCode {
  readonly code: number;
  readonly name: string;
}

const code = (c: number, name: string): NamedCode => Object.freeze({ code: c, name });

/** The reference's named codes (§A9). */
export const Codes = {
  OK: code(0, 'Ok'),
  Unknown: code(1, 'Unknown'),
  Canceled: code(2, 'Canceled'),
  Timeout: code(3, 'Timeout'),
  ConnFailed: code(1000, 'ConnFailed'),
  ConnTimeout: code(1001, 'ConnTimeout'),
  DNSResolveFailed: code(1004, 'DNSResolveFailed'),
  RequestFailed: code(1100, 'RequestFailed'),
  RequestTimeout: code(1101, 'RequestTimeout'),
  BadRequestParams: code(1103, 'BadRequestParams'),
  ResponseFailed: code(1200, 'ResponseFailed'),
  ResponseNotMatch: code(1202, 'ResponseNotMatch'),
  IPNotFound: code(1211, 'IPNotFound'),
  InvalidURL: code(1213, 'InvalidURL'),
  WriteTempFileFailed: code(1501, 'WriteTempFileFailed'),
  InvalidIP: code(2102, 'InvalidIP'),
  ScriptRunFailed: code(2301, 'ScriptRunFailed'),
  ScriptNoOutput: code(2303, 'ScriptNoOutput'),
  ScriptRunTimeout: code(2304, 'ScriptRunTimeout'),
  ConnRefused: code(2501, 'ConnRefused'),
  InvalidPromFormat: code(2502, 'InvalidPromFormat'),
} as const satisfies Record<string, NamedCode>;

/** Metric name of the series. */
export const GATHER_UP = 'bkm_gather_up';

export interface GatherUpOptions {
  /** Default 1. */
  value?: number;
  /** Extra dimensions; they override the defaults and the labels. */
  dimensions?: Readonly<Record<string, string>>;
  /** ms since the epoch; default `now`. */
  timestampMs?: number;
}

/**
 * The gather-up record of one run of `task`, or undefined when `gather_up_beat.dataid` is 0 (the
 * reference would send data id 0, which its output drops).
 */
export function gatherUpOutput(gatherUpDataId: number, task: BaseTaskConfig, upCode: NamedCode, now: number, options: GatherUpOptions = {}): MetricsOutput | undefined {
  if (gatherUpDataId <= 0) return undefined;
  const dimensions: Record<string, string> = {
    task_id: String(task.taskId),
    bk_collect_type: task.type,
    bk_biz_id: String(task.bkBizId),
    bkm_up_code: String(upCode.code),
    bkm_up_code_name: upCode.name === '' ? 'UnknownCode' : upCode.name,
  };
  for (const group of task.labels) Object.assign(dimensions, group);
  Object.assign(dimensions, options.dimensions ?? {});
  return {
    kind: 'metrics',
    eventType: 'gather_up',
    dataId: gatherUpDataId,
    bkBizId: task.bkBizId,
    taskId: task.taskId,
    target: '',
    records: [{ timestamp: options.timestampMs ?? now, metrics: { [GATHER_UP]: options.value ?? 1 }, dimensions }],
  };
}

/** Emits the gather-up record of this run (nothing when gather-up is not configured). */
export async function emitGatherUp(ctx: TaskContext, task: BaseTaskConfig, upCode: NamedCode, options: GatherUpOptions = {}): Promise<void> {
  const out = gatherUpOutput(ctx.global.gatherUpDataId, task, upCode, ctx.now(), options);
  if (!out) return;
  ctx.logger.debug(`[${task.type}] ${GATHER_UP}{} ${options.value ?? 1}`, { task_id: task.taskId, code: upCode.code });
  await ctx.emit(out);
}
