/**
 * `basereport` (reference §A5.9; `basereport_task`, data id 1001, period 1m, task_id 101): the host's
 * performance document — cpu, mem, net, disk, load, system, env — sampled several times per period.
 * The first run after start is a warm-up that sends nothing; a run is skipped while the previous one
 * still samples; with a 1-minute period at most one report is sent per wall-clock minute (KV
 * `last_publish_time`, kept across restarts).
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { BasereportCollector, basereportDocument, type BasereportOptions } from '../host/basereport.ts';
import { hostPathsFromRoots } from '../host/paths.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';
import { goRegexList } from '../host/config-values.ts';

export interface BasereportConfig extends BaseTaskConfig {
  readonly options: BasereportOptions;
}

/** KV key of the last report's time (unix seconds), as the reference names it. */
export const LAST_PUBLISH_KEY = 'last_publish_time';

export function parseBasereport(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): BasereportConfig {
  const f = fields(raw, problems, '');
  const positive = (key: string, def: number): number => {
    const v = f.int(key, { default: def });
    return v <= 0 ? def : v;
  };
  // Accepted for compatibility; on Linux the reference does not use them.
  f.durationMs('cpu.info_period', { default: 60_000 });
  f.durationMs('cpu.info_timeout', { default: 30_000 });
  const options: BasereportOptions = {
    periodMs: base.periodMs,
    cpu: { statTimes: positive('cpu.stat_times', 4), reportFlag: f.bool('cpu.report_flag', false) },
    mem: { infoTimes: positive('mem.info_times', 1), specialSource: f.bool('mem.special_source', false) },
    net: {
      statTimes: positive('net.stat_times', 4),
      revertProtectNumber: f.int('net.revert_protect_number', { default: 100 }),
      skipVirtualInterface: f.bool('net.skip_virtual_interface', false),
      whiteList: goRegexList(f, 'net.interface_white_list'),
      blackList: goRegexList(f, 'net.interface_black_list'),
      forceReportList: goRegexList(f, 'net.force_report_list'),
    },
    disk: {
      statTimes: positive('disk.stat_times', 1),
      collectAllDevice: f.bool('disk.collect_all_device', false),
      dropDuplicateDevice: f.bool('disk.drop_duplicate_device', false),
      ioSkipPartition: f.bool('disk.io_skip_partition', false),
      diskWhiteList: goRegexList(f, 'disk.disk_white_list'),
      diskBlackList: goRegexList(f, 'disk.disk_black_list'),
      partitionWhiteList: goRegexList(f, 'disk.partition_white_list'),
      partitionBlackList: goRegexList(f, 'disk.partition_black_list'),
      mountpointWhiteList: goRegexList(f, 'disk.mountpoint_white_list'),
      mountpointBlackList: goRegexList(f, 'disk.mountpoint_black_list'),
      fsTypeWhiteList: goRegexList(f, 'disk.fs_type_white_list'),
      fsTypeBlackList: goRegexList(f, 'disk.fs_type_black_list'),
    },
    reportCrontab: f.bool('report_crontab', false),
    reportHosts: f.bool('report_hosts', false),
    reportRoute: f.bool('report_route', false),
    timeTolerateS: f.int('time_tolerate', { default: 59 }),
  };
  return { ...base, options };
}

/** Whether `nowS` is in the same wall-clock minute as `lastS`. */
const sameMinute = (a: number, b: number): boolean => a - (a % 60) === b - (b % 60);

class BasereportTask implements Task<BasereportConfig> {
  readonly config: BasereportConfig;
  #collector: BasereportCollector | undefined;

  constructor(config: BasereportConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    this.#collector ??= new BasereportCollector(this.config.options, {
      paths: hostPathsFromRoots(ctx.global.paths),
      logger: ctx.logger.child({ task: 'basereport' }),
    });
    const startedS = Math.floor(ctx.now() / 1000);
    const data = await this.#collector.collect({ now: () => ctx.now(), sleep: (ms) => ctx.sleep(ms) });
    if (!data) return;
    if (this.config.periodMs === 60_000) {
      const last = Number(ctx.state.get(LAST_PUBLISH_KEY));
      if (Number.isFinite(last) && ctx.state.get(LAST_PUBLISH_KEY) !== undefined && sameMinute(last, Math.floor(ctx.now() / 1000))) {
        ctx.logger.info('basereport already reported in this minute', { task_id: this.config.taskId });
        return;
      }
    }
    await ctx.emit({
      kind: 'event',
      eventType: 'basereport',
      dataId: this.config.dataId,
      taskId: this.config.taskId,
      body: basereportDocument(this.config.dataId, data),
    });
    ctx.state.set(LAST_PUBLISH_KEY, String(startedS));
  }
}

export const basereportType: TaskType<BasereportConfig> = {
  type: 'basereport',
  scheduler: 'main',
  shape: 'single',
  section: 'basereport_task',
  skipIfRunning: true,
  enabled: (config) => config.dataId !== 0,
  parse: (raw, base, problems) => parseBasereport(raw, base, problems),
  create: (config) => new BasereportTask(config),
};
