/**
 * `exceptionbeat` (reference §A5.10; `exceptionbeat_task`, data id 1000, task_id 102): host alarms —
 * disk space (type 6), read-only mounts (type 3), core files (type 7), OOM kills (type 9) — sent as GSE
 * basic-alarm documents. The reference starts long-lived collectors on its first run; here the task runs
 * on the listen scheduler as one long run (restarted if it ever returns), with the state of the read-only
 * check in the agent's state store.
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { ExceptionbeatRunner, type ExceptionbeatOptions } from '../host/exception/runner.ts';
import { hostPathsFromRoots } from '../host/paths.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';
import { goRegexField, goRegexList } from '../host/config-values.ts';

export interface ExceptionbeatConfig extends BaseTaskConfig {
  readonly options: ExceptionbeatOptions;
}

const METHODS = { C_DISK_SPACE: 'diskSpace', C_DISKRO: 'diskReadOnly', C_DISK_RO: 'diskReadOnly', C_CORE: 'corefile', C_OOM: 'oom' } as const;

/**
 * `check_bit`: `|`-joined methods. Empty means all four. Both `C_DISKRO` (the reference's token) and
 * `C_DISK_RO` (the spelling of its own default, which it then fails to recognise) turn on the read-only
 * check; unknown tokens are ignored, as the reference does.
 */
export function parseCheckBit(text: string): Record<'diskSpace' | 'diskReadOnly' | 'corefile' | 'oom', boolean> {
  const on = { diskSpace: false, diskReadOnly: false, corefile: false, oom: false };
  const tokens = text.trim() === '' ? Object.keys(METHODS) : text.split('|').map((s) => s.trim());
  for (const token of tokens) {
    const m = METHODS[token as keyof typeof METHODS];
    if (m) on[m] = true;
  }
  return on;
}

export function parseExceptionbeat(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): ExceptionbeatConfig {
  const f = fields(raw, problems, '');
  const methods = parseCheckBit(f.str('check_bit'));
  if (!Object.values(methods).some(Boolean)) f.problem('check_bit', 'names no valid method (C_DISK_SPACE, C_DISKRO, C_CORE, C_OOM)');
  // Parsed but unused, as in the reference.
  f.durationMs('check_oom_interval', { default: 3_600_000 });
  f.durationMs('corefile_report_gap', { default: 60_000 });
  const gap = f.durationMs('oom_report_gap', { default: 60_000 });
  const matchRegex = goRegexField(f, 'corefile_match_regex');
  const options: ExceptionbeatOptions = {
    ...methods,
    checkDiskRoIntervalMs: f.durationMs('check_disk_ro_interval', { default: 3_600_000, min: 1_000 }),
    checkDiskSpaceIntervalMs: f.durationMs('check_disk_space_interval', { default: 3_600_000, min: 1_000 }),
    usedMaxDiskSpacePercent: f.int('used_max_disk_space_percent', { default: 90, min: 0, max: 100 }),
    freeMinDiskSpaceGiB: f.int('free_min_disk_space', { default: 10, min: 0 }),
    diskRoWhiteList: goRegexList(f, 'disk_ro_white_list'),
    diskRoBlackList: goRegexList(f, 'disk_ro_black_list'),
    oomReportGapMs: gap <= 0 ? 60_000 : gap,
    corefilePattern: f.str('corefile_pattern'),
    ...(matchRegex ? { corefileMatchRegex: matchRegex } : {}),
  };
  return { ...base, options };
}

class ExceptionbeatTask implements Task<ExceptionbeatConfig> {
  readonly config: ExceptionbeatConfig;
  #running = false;

  constructor(config: ExceptionbeatConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      const runner = new ExceptionbeatRunner(this.config.options, {
        paths: hostPathsFromRoots(ctx.global.paths),
        host: { bizId: ctx.host.bkBizId, cloudId: ctx.host.bkCloudId, ip: ctx.host.ip },
        dataId: this.config.dataId,
        state: ctx.state,
        logger: ctx.logger.child({ task: 'exceptionbeat' }),
        startupMs: ctx.agent.startedAtMs,
      });
      await runner.run({ now: () => ctx.now(), sleep: (ms) => ctx.sleep(ms) }, (body) =>
        ctx.emit({ kind: 'event', eventType: 'exceptionbeat', dataId: this.config.dataId, taskId: this.config.taskId, cmdbLevel: false, body }),
      );
    } finally {
      this.#running = false;
    }
  }
}

export const exceptionbeatType: TaskType<ExceptionbeatConfig> = {
  type: 'exceptionbeat',
  scheduler: 'listen',
  shape: 'single',
  section: 'exceptionbeat_task',
  skipIfRunning: true,
  enabled: (config) => config.dataId !== 0 && Object.values(parseCheckBitOf(config)).some(Boolean),
  parse: (raw, base, problems) => parseExceptionbeat(raw, base, problems),
  create: (config) => new ExceptionbeatTask(config),
};

function parseCheckBitOf(config: ExceptionbeatConfig): Record<string, boolean> {
  const { diskSpace, diskReadOnly, corefile, oom } = config.options;
  return { diskSpace, diskReadOnly, corefile, oom };
}
