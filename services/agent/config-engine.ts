/**
 * The config engine (reference beater/configengine.go, §A3): the main file plus the child task files
 * of its `include` directory, turned into the list of tasks the schedulers run.
 *
 * - Main file: every problem (the `bkmonitorbeat:` keys and the task sections in it) is collected and
 *   thrown as one {@link ConfigError}, each naming its key — start-up stops, a reload keeps the old state.
 * - Child files: every file of the directory whatever its name (errata 6; sub-directories only with
 *   `multi_child_dir`), in name order. A file that cannot be read, parsed or cleaned, has no `name` /
 *   `version`, or names an unknown `type`, is skipped and reported, never fatal.
 * - Identity and duplicates: child-file idents are re-hashed with the file's name, type and version; a file
 *   any of whose idents was already seen in an earlier child file is dropped whole; finally main-file and
 *   child tasks are deduplicated by ident, first wins.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, type ConfigProblem } from '../common/errors.ts';
import { fields, isMap, joinKey, type RawMap } from './config-fields.ts';
import { formatDuration } from './duration.ts';
import { parseMainConfig, type MainConfig } from './main-config.ts';
import type { BaseTaskConfig, GlobalSettings, SchedulerKind, TaskType } from './task.ts';
import { canonicalJson, childIdent, cleanTiming, DEFAULT_PERIOD_MS, labelBizId, readBase, readMeta, sha1, taskIdent, type RawBase } from './task-config.ts';

/** One task ready to be scheduled. */
export interface ConfiguredTask {
  readonly type: TaskType;
  readonly config: BaseTaskConfig;
  readonly scheduler: SchedulerKind;
  /**
   * Hash of everything the task was built from (its entry, its section or file, the gather-up data id):
   * two tasks with the same ident but different fingerprints (single-instance types keep their type name
   * as ident) are the same job with a new config.
   */
  readonly fingerprint: string;
}

export type ChildStatus = 'loaded' | 'skipped' | 'duplicate';

export interface ChildFileReport {
  readonly path: string;
  readonly status: ChildStatus;
  readonly tasks: number;
  readonly problems: readonly ConfigProblem[];
}

export interface LoadedConfig {
  readonly main: MainConfig;
  readonly tasks: readonly ConfiguredTask[];
  readonly children: readonly ChildFileReport[];
  /** Ignored settings (one line each) and defaults applied where the reference would misbehave. */
  readonly warnings: readonly string[];
}

export interface LoadOptions {
  types: readonly TaskType[];
  /** The hostid file's GSE static data id: overrides static tasks' data id (reference StaticTaskConfig.InitIdent). */
  staticDataId?: number;
}

/** Loads the main file and its child files. Throws ConfigError listing every problem of the main file. */
export function loadAgentConfig(file: string, options: LoadOptions): LoadedConfig {
  const path = resolve(file);
  const problems: ConfigProblem[] = [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ key: 'AGENT_CONFIG', message: `cannot read ${path}: ${(err as Error).message}` }]);
  }
  const bySection = new Map(options.types.filter((t) => t.section).map((t) => [t.section as string, t]));
  const isTaskSection = (key: string): boolean => bySection.has(key) || key.endsWith('_task');
  const { config: main, warnings } = parseMainConfig(text, path, problems, isTaskSection);
  const tasks: ConfiguredTask[] = [];
  if (main) {
    for (const [key, value] of Object.entries(main.raw)) {
      if (!isTaskSection(key) || value === null || value === undefined) continue;
      const type = bySection.get(key);
      if (!type) {
        warnings.push(`bkmonitorbeat.${key}: this task type is not built in bkstream yet; ignored`);
        continue;
      }
      if (!isMap(value)) {
        problems.push({ key: `bkmonitorbeat.${key}`, message: 'must be a mapping' });
        continue;
      }
      const origin: Origin = { problems, prefix: `bkmonitorbeat.${key}`, source: `main:${key}` };
      tasks.push(...(type.shape === 'list' ? listTasks(type, value, origin, main, options) : singleTask(type, value, origin, main, options, warnings)));
    }
  }
  if (!main || problems.length > 0) throw new ConfigError(problems);

  const children: ChildFileReport[] = [];
  const seen = new Set<string>();
  for (const childPath of childFiles(main, warnings)) {
    const report = loadChildFile(childPath, main, options, seen);
    children.push(report.report);
    tasks.push(...report.tasks);
  }
  const unique = new Map<string, ConfiguredTask>();
  for (const t of tasks) if (!unique.has(t.config.ident)) unique.set(t.config.ident, t);
  return { main, tasks: [...unique.values()], children, warnings };
}

/** The settings tasks see (`ctx.global`). */
export function globalSettings(main: MainConfig, paths: GlobalSettings['paths']): GlobalSettings {
  return Object.freeze({
    mode: main.mode,
    gatherUpDataId: main.gatherUpDataId,
    disableNetlink: main.disableNetlink,
    keepOneDimension: main.keepOneDimension,
    hostIdPath: main.hostIdPath,
    include: main.include,
    paths,
    raw: main.raw,
  });
}

/** The child files, in name order (sub-directories only with multi_child_dir). A missing directory has none. */
function childFiles(main: MainConfig, warnings: string[]): string[] {
  if (main.include === '') return [];
  try {
    if (!statSync(main.include).isDirectory()) {
      warnings.push(`bkmonitorbeat.include: ${main.include} is not a directory; no child tasks`);
      return [];
    }
  } catch {
    warnings.push(`bkmonitorbeat.include: ${main.include} does not exist; no child tasks`);
    return [];
  }
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      warnings.push(`bkmonitorbeat.include: cannot list ${dir}: ${(err as Error).message}`);
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (main.multiChildDir) walk(p);
      } else {
        out.push(p);
      }
    }
  };
  walk(main.include);
  return out;
}

function loadChildFile(path: string, main: MainConfig, options: LoadOptions, seen: Set<string>): { report: ChildFileReport; tasks: ConfiguredTask[] } {
  const problems: ConfigProblem[] = [];
  const skip = (message?: string): { report: ChildFileReport; tasks: ConfiguredTask[] } => {
    if (message) problems.push({ key: path, message });
    return { report: { path, status: 'skipped', tasks: 0, problems }, tasks: [] };
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return skip(`cannot read: ${(err as Error).message}`);
  }
  if (text.trim() === '') return skip('is empty');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return skip(`cannot parse YAML: ${(err as Error).message}`);
  }
  if (!isMap(doc)) return skip('must be a YAML mapping');
  const f = fields(doc, problems, `${path}:`);
  const typeName = f.str('type');
  if (typeName === '') return skip('has no type');
  const type = options.types.find((t) => t.type === typeName);
  if (!type) return skip(`unknown task type ${JSON.stringify(typeName)}`);
  const name = f.str('name');
  const version = f.str('version');
  if (name === '') f.problem('name', 'is required');
  if (version === '') f.problem('version', 'is required');
  const warnings: string[] = [];
  const origin: Origin = { problems, prefix: `${path}:`, source: path };
  const built = type.shape === 'list' ? listTasks(type, doc, origin, main, options) : singleTask(type, doc, origin, main, options, warnings);
  if (problems.length > 0) return skip();
  const tasks = built.map((t) => {
    const ident = childIdent(t.config.ident, name, typeName, version);
    return { ...t, config: { ...t.config, ident }, fingerprint: sha1(`${t.fingerprint}:${ident}`) };
  });
  let duplicate = false;
  for (const t of tasks) {
    if (seen.has(t.config.ident)) duplicate = true;
    seen.add(t.config.ident);
  }
  if (duplicate) {
    return { report: { path, status: 'duplicate', tasks: 0, problems: [{ key: path, message: 'a task of this file is already configured by an earlier file; the whole file is skipped' }] }, tasks: [] };
  }
  return { report: { path, status: 'loaded', tasks: tasks.length, problems: warnings.map((message) => ({ key: path, message })) }, tasks };
}

function baseBizId(raw: RawBase): number {
  return labelBizId(raw.labels) ?? raw.bizIdField;
}

function staticOverride(type: TaskType, dataId: number, options: LoadOptions): number {
  return type.type === 'static' && options.staticDataId ? options.staticDataId : dataId;
}

/** Where a section's or file's problems go, and the key prefix they carry (`bkmonitorbeat.tcp_task`, `<file>:`). */
interface Origin {
  readonly problems: ConfigProblem[];
  readonly prefix: string;
  /** `main:<section>` or the file path. */
  readonly source: string;
}

/** Runs the type's parse; its problems (keys relative to the entry) are reported under `prefix`. */
function parseEntry(type: TaskType, entry: RawMap, base: BaseTaskConfig, meta: RawMap, origin: Origin, prefix: string): BaseTaskConfig | undefined {
  const own: ConfigProblem[] = [];
  const config = type.parse(entry, base, own, meta);
  for (const p of own) origin.problems.push({ key: joinKey(prefix, p.key), message: p.message });
  return own.length > 0 ? undefined : config;
}

/** A list section / child file: meta fields, then each entry of `tasks` cleaned. */
function listTasks(type: TaskType, raw: RawMap, origin: Origin, main: MainConfig, options: LoadOptions): ConfiguredTask[] {
  const f = fields(raw, origin.problems, origin.prefix);
  const meta = readMeta(f, type.metaDefaults);
  const entries = raw.tasks;
  if (entries === undefined || entries === null) return [];
  if (!Array.isArray(entries)) {
    f.problem('tasks', 'must be a list');
    return [];
  }
  const metaRaw = Object.fromEntries(Object.entries(raw).filter(([k]) => k !== 'tasks'));
  const out: ConfiguredTask[] = [];
  for (const [i, entry] of entries.entries()) {
    const prefix = joinKey(origin.prefix, `tasks[${i}]`);
    if (!isMap(entry)) {
      origin.problems.push({ key: prefix, message: 'must be a mapping' });
      continue;
    }
    const before = origin.problems.length;
    const rawBase = readBase(fields(entry, origin.problems, prefix));
    const timing = cleanTiming(rawBase, meta);
    const partial = {
      type: type.type,
      taskId: rawBase.taskId,
      bkBizId: baseBizId(rawBase),
      dataId: staticOverride(type, timing.dataId, options),
      periodMs: timing.periodMs,
      timeoutMs: timing.timeoutMs,
      availableDurationMs: timing.availableDurationMs,
      labels: rawBase.labels,
      tags: rawBase.tags,
    };
    const base: BaseTaskConfig = { ...partial, ident: taskIdent(type.type, partial, entry), source: origin.source };
    const config = parseEntry(type, entry, base, metaRaw, origin, prefix);
    if (!config || origin.problems.length > before) continue;
    out.push({ type, config, scheduler: type.scheduler, fingerprint: fingerprint(config.ident, entry, metaRaw, main) });
  }
  return out;
}

/** A single-instance section / child file: the map itself is the task's config (not cleaned, as the reference). */
function singleTask(type: TaskType, raw: RawMap, origin: Origin, main: MainConfig, options: LoadOptions, warnings: string[]): ConfiguredTask[] {
  const before = origin.problems.length;
  const rawBase = readBase(fields(raw, origin.problems, origin.prefix));
  let periodMs = rawBase.periodMs;
  if (periodMs === 0) {
    periodMs = DEFAULT_PERIOD_MS;
    warnings.push(`${joinKey(origin.prefix, 'period')}: not set; using ${formatDuration(DEFAULT_PERIOD_MS)} (the reference would run the task on every tick)`);
  }
  const partial = {
    type: type.type,
    taskId: rawBase.taskId,
    bkBizId: baseBizId(rawBase),
    dataId: staticOverride(type, rawBase.dataId, options),
    periodMs,
    timeoutMs: rawBase.timeoutMs,
    availableDurationMs: rawBase.availableDurationMs,
    labels: rawBase.labels,
    tags: rawBase.tags,
  };
  const ident = type.fixedIdent === false ? taskIdent(type.type, partial, raw) : type.type;
  const base: BaseTaskConfig = { ...partial, ident, source: origin.source };
  const config = parseEntry(type, raw, base, raw, origin, origin.prefix);
  if (!config || origin.problems.length > before) return [];
  if (type.enabled && !type.enabled(config)) return [];
  return [{ type, config, scheduler: type.scheduler, fingerprint: fingerprint(config.ident, raw, {}, main) }];
}

function fingerprint(ident: string, entry: RawMap, meta: RawMap, main: MainConfig): string {
  return sha1(canonicalJson({ ident, entry, meta, gather_up_dataid: main.gatherUpDataId }));
}
