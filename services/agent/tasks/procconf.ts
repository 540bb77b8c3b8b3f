/**
 * `procconf` (reference §A5.14; `procconf_task`, task_id 103): turns the processes of the CMDB hostid
 * file into the processbeat child file `bkmonitorbeat_processbeat.conf` in `dst_dir` (default: the
 * `include` directory), rewriting it only when its bytes change — which asks the agent to reload.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { hostIdProcesses, processbeatFile } from '../host/process/configfiles.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';

export interface ProcConfConfig extends BaseTaskConfig {
  readonly perfDataId: number;
  readonly portDataId: number;
  readonly topDataId: number;
  readonly convergePid: boolean;
  /** The CMDB hostid file; default `/var/lib/gse/host/hostid`. */
  readonly hostFilePath: string;
  /** Where the processbeat file goes; '' = the `include` directory. */
  readonly dstDir: string;
}

export const PROCESSBEAT_FILE = 'bkmonitorbeat_processbeat.conf';
export const DEFAULT_HOSTID_FILE = '/var/lib/gse/host/hostid';

export function parseProcConf(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): ProcConfConfig {
  const f = fields(raw, problems, '');
  f.bool('disable_netlink', false);
  return {
    ...base,
    perfDataId: f.int('perfdataid', { default: 0 }),
    portDataId: f.int('portdataid', { default: 0 }),
    topDataId: f.int('topdataid', { default: 0 }),
    convergePid: f.bool('converge_pid', false),
    hostFilePath: f.str('hostfilepath', { default: '' }) || DEFAULT_HOSTID_FILE,
    dstDir: f.str('dst_dir'),
  };
}

class ProcConfTask implements Task<ProcConfConfig> {
  readonly config: ProcConfConfig;
  #lastProblem = '';

  constructor(config: ProcConfConfig) {
    this.config = config;
  }

  #problem(ctx: TaskContext, message: string, meta: Record<string, unknown>): void {
    if (this.#lastProblem === message) return;
    this.#lastProblem = message;
    ctx.logger.warn(message, meta);
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const dir = c.dstDir !== '' ? c.dstDir : ctx.global.include;
    if (dir === '') return this.#problem(ctx, 'procconf: no dst_dir and no include directory configured', {});
    let content: string;
    try {
      content = processbeatFile(hostIdProcesses(readFileSync(c.hostFilePath, 'utf8')), {
        periodMs: c.periodMs,
        perfDataId: c.perfDataId,
        topDataId: c.topDataId,
        portDataId: c.portDataId,
        convergePid: c.convergePid,
      });
    } catch (err) {
      return this.#problem(ctx, 'procconf: cannot read the hostid file', { path: c.hostFilePath, err });
    }
    this.#lastProblem = '';
    const file = join(dir, PROCESSBEAT_FILE);
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) return;
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, content);
    ctx.logger.info('procconf: processbeat configuration written', { file });
    ctx.requestReload('procconf');
  }
}

export const procconfType: TaskType<ProcConfConfig> = {
  type: 'procconf',
  scheduler: 'main',
  shape: 'single',
  section: 'procconf_task',
  enabled: (c) => c.portDataId !== 0 || c.topDataId !== 0 || c.perfDataId !== 0,
  parse: (raw, base, problems) => parseProcConf(raw, base, problems),
  create: (config) => new ProcConfTask(config),
};
