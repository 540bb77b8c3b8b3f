/**
 * `ping` (reference tasks/ping, §A5.6, errata 5; template `icmp`, data id 1100003, max_timeout 100s):
 * real ICMP echo through the system `ping` (probe/pinger.ts).
 *
 * Targets (`target` + `target_type` ip|domain, per-target `labels`) are resolved first: a domain by the
 * system resolver restricted to `target_ip_type`, the first address with `dns_check_mode: single`, all
 * with `all`; a domain that does not resolve produces no event (as the reference). IPs are deduplicated:
 * each is pinged once (`total_num` echoes, `max_rtt` each, `ping_size` bytes) whatever the number of
 * targets naming it, all concurrently within the agent's process and socket bounds, the whole bounded by
 * the run's `timeout` (echoes not answered by then are lost).
 *
 * One event per (target, IP) — reference `PingEvent`: `{dataid, time, metrics: {available, loss_percent
 * (a fraction), max_rtt, min_rtt, avg_rtt (ms over the replies), task_duration (= avg_rtt)}, dimensions:
 * {target, target_type, error_code "0", bk_biz_id, resolved_ip ("" for ip targets, errata 5), the target's
 * labels (not overriding), bk_host_id, task_id}, group_info, bk_biz_id}`, without `bk_cmdb_level`; its
 * status (0) is the beater's `not_uptimecheck` status. With `custom_report`, events are converted in batches
 * of 512 to the time-series shape (host fields added, one record per task label group), published as one
 * `MetricBatch` per target of a batch (the batch schema carries one target).
 *
 * `max_rtt` and `send_interval` must be durations (the reference fails each run instead); a run whose
 * `ping` cannot be started sends the reference's failure status event (swallowed by the publisher,
 * counted as a failure). `not_privileged` and `batch_size` are accepted and have no effect (the system
 * `ping` chooses its socket; the reference never reads `batch_size`); `send_interval` only paces the
 * reference's single socket and is not needed with one process per IP.
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields, isMap } from '../config-fields.ts';
import { parseDurationValue } from '../duration.ts';
import { probesOf } from '../probe/budget.ts';
import { emitSafely, hostReportDimensions, withLabelGroups } from '../probe/event.ts';
import { ping, type PingResult } from '../probe/pinger.ts';
import { isStopped } from '../probe/run.ts';
import { currentResolver, ipFamily, type DnsCheckMode, type IpType } from '../probe/targets.ts';
import type { BaseTaskConfig, EventOutput, MetricsOutput, Task, TaskContext, TaskType } from '../task.ts';

/** Reference custom-report batch size. */
export const CUSTOM_REPORT_BATCH = 512;

export interface PingTarget {
  readonly target: string;
  readonly targetType: 'ip' | 'domain';
  readonly labels: Readonly<Record<string, string>>;
}

export interface PingTaskConfig extends BaseTaskConfig {
  readonly targets: readonly PingTarget[];
  readonly maxRttMs: number;
  readonly totalNum: number;
  readonly pingSize: number;
  readonly ipType: IpType;
  readonly dnsCheckMode: DnsCheckMode;
  readonly customReport: boolean;
}

function parsePing(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): PingTaskConfig {
  const f = fields(raw, problems, '');
  const targets: PingTarget[] = [];
  const list = raw.targets;
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) f.problem('targets', 'must be a list');
    else {
      for (const [i, item] of list.entries()) {
        if (!isMap(item)) {
          f.problem(`targets[${i}]`, 'must be a mapping');
          continue;
        }
        const tf = fields(item, problems, `targets[${i}]`);
        const type = tf.str('target_type');
        if (type !== 'ip' && type !== 'domain') {
          tf.problem('target_type', `must be ip or domain, got ${JSON.stringify(type)} (reference config error 138)`);
          continue;
        }
        targets.push({ target: tf.str('target'), targetType: type, labels: tf.stringMap('labels') });
      }
    }
  }
  const duration = (key: string, def: string): number => {
    const v = raw[key];
    const text = v === undefined || v === null || v === '' ? def : v;
    try {
      const ms = parseDurationValue(typeof text === 'number' ? `${text}s` : text);
      if (ms <= 0) throw new Error(`must be positive, got ${JSON.stringify(text)}`);
      return ms;
    } catch (err) {
      f.problem(key, (err as Error).message);
      return parseDurationValue(def);
    }
  };
  const maxRttMs = duration('max_rtt', '1s');
  duration('send_interval', '500us');
  const totalNum = f.int('total_num', { default: 2, min: 0, max: 10_000 });
  const pingSize = f.int('ping_size', { default: 56, max: 65_507 });
  const ipType = f.int('target_ip_type', { default: 0 });
  if (ipType !== 0 && ipType !== 4 && ipType !== 6) f.problem('target_ip_type', `must be 0, 4 or 6, got ${ipType}`);
  const mode = f.str('dns_check_mode') || 'single';
  if (mode !== 'single' && mode !== 'all') f.problem('dns_check_mode', `must be single or all, got ${JSON.stringify(mode)}`);
  f.bool('not_privileged', false);
  f.int('batch_size', { default: 0 });
  return {
    ...base,
    targets,
    maxRttMs,
    totalNum: totalNum === 0 ? 2 : totalNum,
    pingSize: pingSize < 8 ? 56 : pingSize,
    ipType: ipType === 4 || ipType === 6 ? ipType : 0,
    dnsCheckMode: mode === 'all' ? 'all' : 'single',
    customReport: f.bool('custom_report', false),
  };
}

/** The figures of one (target, IP) (reference gather.go). */
export function pingMetrics(rtts: readonly (number | undefined)[]): Record<string, number> {
  const got = rtts.filter((r): r is number => r !== undefined && r > 0);
  const loss = rtts.length === 0 ? 1 : (rtts.length - got.length) / rtts.length;
  const avg = got.length > 0 ? got.reduce((a, b) => a + b, 0) / got.length : 0;
  return {
    available: 1 - loss,
    loss_percent: loss,
    max_rtt: got.length > 0 ? Math.max(...got) : 0,
    min_rtt: got.length > 0 ? Math.min(...got) : 0,
    avg_rtt: avg,
    task_duration: avg,
  };
}

interface PingRow {
  readonly target: PingTarget;
  readonly ip: string;
  readonly timeMs: number;
  readonly metrics: Record<string, number>;
  readonly dimensions: Record<string, string>;
}

class PingTask implements Task<PingTaskConfig> {
  readonly config: PingTaskConfig;

  constructor(config: PingTaskConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const plan: { target: PingTarget; ips: string[] }[] = [];
    for (const target of c.targets) {
      if (target.targetType === 'ip') {
        plan.push({ target, ips: [target.target] });
        continue;
      }
      const ips = await this.#resolve(ctx, target.target);
      if (ips.length > 0) plan.push({ target, ips });
    }
    const unique = [...new Set(plan.flatMap((p) => p.ips))];
    const results = new Map<string, PingResult>();
    await Promise.all(unique.map(async (ip) => {
      results.set(ip, await ping({ ip, count: c.totalNum, maxRttMs: c.maxRttMs, size: c.pingSize, signal: ctx.signal, resources: probesOf(ctx) }));
    }));
    if (isStopped(ctx.signal)) return;
    const failed = [...results.values()].find((r) => r.error !== undefined);
    if (failed) {
      ctx.logger.error('ping could not be started', { task_id: c.taskId, err: failed.error });
      await emitSafely(ctx, { kind: 'event', eventType: 'status', dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, status: 1, notUptimeCheck: true, body: { dataid: c.dataId } });
      return;
    }
    for (const [ip, r] of results) if (r.stderr) ctx.logger.debug('ping gave up on a target', { task_id: c.taskId, ip, stderr: r.stderr });
    const rows: PingRow[] = [];
    for (const { target, ips } of plan) {
      for (const ip of new Set(ips)) {
        const dimensions: Record<string, string> = {
          target: target.target,
          target_type: target.targetType,
          error_code: '0',
          bk_biz_id: String(c.bkBizId),
          resolved_ip: target.targetType === 'domain' ? ip : '',
        };
        for (const [k, v] of Object.entries(target.labels)) if (!(k in dimensions)) dimensions[k] = v;
        dimensions.bk_host_id = String(ctx.host.bkHostId);
        dimensions.task_id = String(c.taskId);
        rows.push({ target, ip, timeMs: ctx.now(), metrics: pingMetrics(results.get(ip)?.rtts ?? []), dimensions });
      }
    }
    if (c.customReport) {
      for (let i = 0; i < rows.length; i += CUSTOM_REPORT_BATCH) {
        for (const output of this.#report(ctx, rows.slice(i, i + CUSTOM_REPORT_BATCH))) await emitSafely(ctx, output);
      }
    } else {
      for (const row of rows) await emitSafely(ctx, this.#event(row));
    }
  }

  async #resolve(ctx: TaskContext, name: string): Promise<string[]> {
    const c = this.config;
    let found: string[];
    try {
      found = await currentResolver()(name, ctx.signal);
    } catch (err) {
      ctx.logger.debug('ping target does not resolve; no event', { task_id: c.taskId, target: name, err: (err as Error).message });
      return [];
    }
    const ips = c.ipType === 0 ? found : found.filter((ip) => ipFamily(ip) === c.ipType);
    return c.dnsCheckMode === 'single' ? ips.slice(0, 1) : ips;
  }

  #event(row: PingRow): EventOutput {
    const c = this.config;
    return {
      kind: 'event',
      eventType: 'ping',
      dataId: c.dataId,
      bkBizId: c.bkBizId,
      taskId: c.taskId,
      timestampMs: row.timeMs,
      status: 0,
      notUptimeCheck: true,
      cmdbLevel: false,
      dimensions: row.dimensions,
      metrics: row.metrics,
      body: {
        dataid: c.dataId,
        time: Math.floor(row.timeMs / 1_000),
        metrics: row.metrics,
        group_info: c.labels.map((g) => ({ ...g })),
        dimensions: row.dimensions,
        bk_biz_id: c.bkBizId,
      },
    };
  }

  /** One custom-report batch (reference NewCustomEventByPingEvent), as one MetricsOutput per target. */
  #report(ctx: TaskContext, rows: readonly PingRow[]): MetricsOutput[] {
    const c = this.config;
    const host = hostReportDimensions(ctx.host);
    const byTarget = new Map<string, MetricsOutput['records'][number][]>();
    for (const row of rows) {
      const records = withLabelGroups([{ timestamp: Math.floor(row.timeMs / 1_000) * 1_000, metrics: row.metrics, dimensions: { ...row.dimensions, ...host } }], c.labels);
      const list = byTarget.get(row.target.target) ?? [];
      list.push(...records);
      byTarget.set(row.target.target, list);
    }
    return [...byTarget].map(([target, records]) => ({ kind: 'metrics', eventType: 'ping', dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, target, records }));
  }
}

export const pingType: TaskType<PingTaskConfig> = {
  type: 'ping',
  scheduler: 'main',
  shape: 'list',
  section: 'ping_task',
  parse: parsePing,
  create: (config) => new PingTask(config),
};
