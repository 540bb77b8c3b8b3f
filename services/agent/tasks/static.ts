/**
 * `static` (reference §A5.13; `static_task`, data id 1100010, period 1m): the host's static information
 * (CPU, memory, disk capacity, interfaces and addresses, system) — sent at start, again after a random
 * pause under an hour, then every `report_period` (6 h); checked every `check_period` (1 min) in between
 * and sent at once when it changed. Discovery turns `data.net.interface[].addrs` into `cmdb_host` rows.
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { hostPathsFromRoots } from '../host/paths.ts';
import { collectStatic, StaticSchedule, staticDocument, staticHash, type StaticOptions } from '../host/static.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';

export interface StaticConfig extends BaseTaskConfig {
  /** At least 1 min. */
  readonly checkPeriodMs: number;
  /** Under 1 h reads as 6 h. */
  readonly reportPeriodMs: number;
  readonly options: StaticOptions;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;

export function parseStatic(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): StaticConfig {
  const f = fields(raw, problems, '');
  const check = f.durationMs('check_period', { default: MINUTE });
  const report = f.durationMs('report_period', { default: 6 * HOUR });
  return {
    ...base,
    checkPeriodMs: check < MINUTE ? MINUTE : check,
    reportPeriodMs: report < HOUR ? 6 * HOUR : report,
    options: { virtualIfaceWhitelist: f.strings('virtual_iface_whitelist'), virtualIfaceBlacklist: f.strings('virtual_iface_blacklist') },
  };
}

export class StaticTask implements Task<StaticConfig> {
  readonly config: StaticConfig;
  readonly schedule: StaticSchedule;
  #lastHash: string | undefined;

  /** `random` gives the pause before the second report in whole seconds (tests pin it). */
  constructor(config: StaticConfig, random?: () => number) {
    this.config = config;
    this.schedule = new StaticSchedule(config.checkPeriodMs, config.reportPeriodMs, random);
  }

  async run(ctx: TaskContext): Promise<void> {
    const now = ctx.now();
    const report = this.schedule.shouldReport(now);
    if (!report && !this.schedule.shouldCheck(now)) return;
    const data = await collectStatic(
      { paths: hostPathsFromRoots(ctx.global.paths), onError: (part, err) => ctx.logger.warn('static: part not collected', { part, err }) },
      this.config.options,
    );
    const timestampS = Math.floor(ctx.now() / 1000);
    const hash = staticHash(data);
    if (!report) {
      this.schedule.checked(timestampS);
      if (hash === this.#lastHash) return;
    }
    const oper = this.schedule.oper;
    await ctx.emit({
      kind: 'event',
      eventType: 'static',
      dataId: this.config.dataId,
      taskId: this.config.taskId,
      cmdbLevel: false,
      body: staticDocument(this.config.dataId, data, timestampS, oper),
    });
    this.schedule.reported(timestampS);
    this.#lastHash = hash;
  }
}

export const staticType: TaskType<StaticConfig> = {
  type: 'static',
  scheduler: 'main',
  shape: 'list',
  section: 'static_task',
  parse: (raw, base, problems) => parseStatic(raw, base, problems),
  create: (config) => new StaticTask(config),
};
