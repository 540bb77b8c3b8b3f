/**
 * `procsync` (reference §A5.14; custom process sync): every legacy file of `<dir(dst_dir)>/processbeat/`
 * becomes a `proccustom` child file of the same name in `dst_dir` (task id from the file's XXH64); when
 * the name-sorted list of written files differs from what is there, the old files are removed, the new
 * ones written and the agent reloads.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { type ConfFile, filesDiffer, proccustomFile } from '../host/process/configfiles.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';

export interface ProcSyncConfig extends BaseTaskConfig {
  /** Where the proccustom files go; '' = the `include` directory. Sources are read from `<dirname>/processbeat`. */
  readonly dstDir: string;
}

export function parseProcSync(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): ProcSyncConfig {
  const f = fields(raw, problems, '');
  return { ...base, dstDir: f.str('dst_dir') };
}

const byName = (a: ConfFile, b: ConfFile): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The files to write from the sources (unparseable sources are skipped and reported). */
export function sourceFiles(srcDir: string, onSkip: (file: string, error: string) => void): ConfFile[] | undefined {
  let names: string[];
  try {
    names = readdirSync(srcDir);
  } catch {
    return undefined;
  }
  const out: ConfFile[] = [];
  for (const name of names) {
    const path = join(srcDir, name);
    try {
      if (statSync(path).isDirectory()) continue;
      const converted = proccustomFile(readFileSync(path));
      if (typeof converted === 'string') out.push({ name, content: converted });
      else onSkip(name, converted.error);
    } catch (err) {
      onSkip(name, (err as Error).message);
    }
  }
  return out.sort(byName);
}

/**
 * The files procsync owns in `dstDir`: `monitor_process*` and any file named like a source (the
 * reference only looks at `monitor_process*`, so a source named otherwise was rewritten on every run).
 */
export function destinationFiles(dstDir: string, sourceNames: ReadonlySet<string>): ConfFile[] {
  let names: string[];
  try {
    names = readdirSync(dstDir);
  } catch {
    return [];
  }
  const out: ConfFile[] = [];
  for (const name of names) {
    if (!name.startsWith('monitor_process') && !sourceNames.has(name)) continue;
    try {
      out.push({ name, content: readFileSync(join(dstDir, name), 'utf8') });
    } catch {
      // vanished or unreadable: it will be rewritten
    }
  }
  return out.sort(byName);
}

class ProcSyncTask implements Task<ProcSyncConfig> {
  readonly config: ProcSyncConfig;
  readonly #skipped = new Set<string>();

  constructor(config: ProcSyncConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const dst = this.config.dstDir !== '' ? this.config.dstDir : ctx.global.include;
    if (dst === '') return;
    const src = sourceFiles(join(dirname(dst), 'processbeat'), (file, error) => {
      if (this.#skipped.has(`${file}\n${error}`)) return;
      this.#skipped.add(`${file}\n${error}`);
      ctx.logger.warn('procsync: legacy process file skipped', { file, error });
    });
    if (!src || src.length === 0) return;
    const current = destinationFiles(dst, new Set(src.map((f) => f.name)));
    if (!filesDiffer(src, current)) return;
    mkdirSync(dst, { recursive: true });
    for (const f of current) rmSync(join(dst, f.name), { force: true });
    for (const f of src) writeFileSync(join(dst, f.name), f.content);
    ctx.logger.info('procsync: custom process configurations written', { files: src.map((f) => f.name) });
    ctx.requestReload('procsync');
  }
}

export const procsyncType: TaskType<ProcSyncConfig> = {
  type: 'procsync',
  scheduler: 'main',
  shape: 'single',
  section: 'procsync_task',
  enabled: (c) => c.taskId !== 0,
  parse: (raw, base, problems) => parseProcSync(raw, base, problems),
  create: (config) => new ProcSyncTask(config),
};
