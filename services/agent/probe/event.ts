/**
 * The uptime-check event shared by http, tcp and udp (reference tasks/event.go `Event` / `SimpleEvent`,
 * §A5.1) and its `custom_report` conversion to the time-series shape.
 *
 * Body fields, names and types as the reference's `AsMapStr`: `dataid`, `bk_biz_id`, `task_id`,
 * `timestamp` (run start, unix seconds), `task_type`, `status` (0 ok, 1 error, -1 unknown; http uses the
 * step index), `error_code`, `available` (1 / 0), `task_duration` (ms, integer), `group_info` (the task's
 * label groups, `[]` when none); tcp/udp add `target_host`, `target_port`, `resolved_ip`; udp adds `times`
 * and `max_times`; http adds its own (tasks/http.ts). The publisher adds the envelope (§A4).
 *
 * Durations are measured on the monotonic clock (`performance.now()`), since they time real network I/O;
 * timestamps come from the task's clock (`ctx.now()`).
 */
import { performance } from 'node:perf_hooks';
import type { BaseTaskConfig, EventOutput, HostIdentity, MetricsOutput, TaskContext, TaskOutput } from '../task.ts';
import { Codes, type NamedCode } from '../tasks/gather-up.ts';

/** Reference GatherStatus values. */
export const GatherStatus = { OK: 0, Error: 1, Unknown: -1 } as const;

/** The result of one probe of one target (reference `tasks.Event`). */
export class UptimeEvent {
  readonly config: BaseTaskConfig;
  /** ms since the epoch (task clock) of the start. */
  startMs: number;
  /** Monotonic start and end (ms). */
  startMono: number;
  endMono: number | undefined;
  status: number = GatherStatus.Unknown;
  code: NamedCode = Codes.Unknown;
  available = 0;

  constructor(config: BaseTaskConfig, nowMs: number) {
    this.config = config;
    this.startMs = nowMs;
    this.startMono = performance.now();
  }

  /** Restarts the clock of the event (udp attempts). */
  restart(nowMs: number): void {
    this.startMs = nowMs;
    this.startMono = performance.now();
    this.endMono = undefined;
  }

  /** Marks the end now (unless `keep` and an end is already set). */
  end(keep = false): void {
    if (keep && this.endMono !== undefined) return;
    this.endMono = performance.now();
  }

  fail(code: NamedCode): void {
    this.status = GatherStatus.Error;
    this.code = code;
    this.available = 0;
    this.end();
  }

  succeed(): void {
    this.status = GatherStatus.OK;
    this.code = Codes.OK;
    this.available = 1;
    this.end();
  }

  /**
   * Success, unless the probe took longer than `available_duration` (then `Timeout`, code 3). The end
   * already marked (e.g. right after the handshake) is kept.
   */
  successOrTimeout(): void {
    this.end(true);
    const limit = this.config.availableDurationMs;
    if (limit > 0 && (this.endMono as number) - this.startMono > limit) {
      this.fail(Codes.Timeout);
      return;
    }
    const end = this.endMono;
    this.succeed();
    this.endMono = end;
  }

  /** `task_duration`: whole ms between start and end (0 before the end is marked). */
  get durationMs(): number {
    return this.endMono === undefined ? 0 : Math.max(0, Math.trunc(this.endMono - this.startMono));
  }

  /** The reference's base map. */
  baseBody(): Record<string, unknown> {
    const c = this.config;
    return {
      dataid: c.dataId,
      bk_biz_id: c.bkBizId,
      task_id: c.taskId,
      timestamp: Math.floor(this.startMs / 1_000),
      task_type: c.type,
      status: this.status,
      error_code: this.code.code,
      available: this.available,
      task_duration: this.durationMs,
      group_info: c.labels.map((g) => ({ ...g })),
    };
  }
}

/** tcp / udp: the target fields of `SimpleEvent`. */
export interface SimpleTarget {
  readonly targetHost: string;
  readonly targetPort: number;
  /** The IP probed ('' when none, e.g. a failed lookup). */
  readonly resolvedIp: string;
}

/** The body of a tcp/udp event (`SimpleEvent.AsMapStr`) plus `extra` (udp's times). */
export function simpleBody(event: UptimeEvent, target: SimpleTarget, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...event.baseBody(), target_host: target.targetHost, target_port: target.targetPort, resolved_ip: target.resolvedIp, ...extra };
}

/** The reference document as an `AgentEvent` output. */
export function uptimeOutput(event: UptimeEvent, body: Record<string, unknown>, dimensions: Record<string, string>): EventOutput {
  const c = event.config;
  return {
    kind: 'event',
    eventType: c.type,
    dataId: c.dataId,
    bkBizId: c.bkBizId,
    taskId: c.taskId,
    timestampMs: event.startMs,
    status: event.status,
    dimensions,
    metrics: { available: event.available, task_duration: event.durationMs },
    body,
  };
}

/** The host fields every custom report record carries (reference gse.GetAgentInfo). */
export function hostReportDimensions(host: HostIdentity): Record<string, string> {
  return { node_id: `${host.bkCloudId}:${host.ip}`, ip: host.ip, bk_cloud_id: String(host.bkCloudId), bk_agent_id: host.bkAgentId };
}

/** Multiplies records by label groups, each group's keys merged into (and overriding) the dimensions (reference CustomEvent). */
export function withLabelGroups<R extends { dimensions: Readonly<Record<string, string>> }>(records: readonly R[], labels: BaseTaskConfig['labels']): R[] {
  if (labels.length === 0) return [...records];
  const out: R[] = [];
  for (const r of records) for (const g of labels) out.push({ ...r, dimensions: { ...r.dimensions, ...g } });
  return out;
}

/**
 * `custom_report: true`: one event as the time-series shape (reference NewCustomEventBySimpleEvent /
 * NewCustomEventByHttpEvent): metrics `available`, `task_duration`; the given dimensions plus the host's;
 * timestamp = start (whole seconds, in ms); one record per label group.
 */
export function customReportOutput(event: UptimeEvent, target: string, dimensions: Record<string, string>, host: HostIdentity): MetricsOutput {
  const c = event.config;
  const record = {
    timestamp: Math.floor(event.startMs / 1_000) * 1_000,
    metrics: { available: event.available, task_duration: event.durationMs },
    dimensions: { ...dimensions, ...hostReportDimensions(host) },
  };
  return { kind: 'metrics', eventType: c.type, dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, target, records: withLabelGroups([record], c.labels) };
}

/** The dimensions of a tcp/udp custom report (reference NewCustomEventBySimpleEvent, host fields added later). */
export function simpleReportDimensions(event: UptimeEvent, target: SimpleTarget): Record<string, string> {
  const c = event.config;
  return {
    bk_biz_id: String(c.bkBizId),
    target_host: target.targetHost,
    target_port: String(target.targetPort),
    task_id: String(c.taskId),
    task_type: c.type,
    status: String(event.status),
    resolved_ip: target.resolvedIp,
    error_code: String(event.code.code),
  };
}

/**
 * Emits an output; a failure (the agent shutting down, the channel closed) is logged and swallowed so
 * one target's output never stops the others.
 */
export async function emitSafely(ctx: Pick<TaskContext, 'emit' | 'logger'>, output: TaskOutput): Promise<void> {
  try {
    await ctx.emit(output);
  } catch (err) {
    ctx.logger.warn('probe result not emitted', { event_type: output.eventType, data_id: output.dataId, err: (err as Error).message });
  }
}
