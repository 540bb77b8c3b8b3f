/**
 * `keyword` (reference §A5.11, tasks/keyword; keyword scheduler): counts log lines matching keyword rules
 * in files matched by globs, and reports the counts with the last matching line every `report_period`.
 *
 * All keyword tasks share one file input (tail/input.ts: rotation, truncation, inode tracking, offsets in
 * the state store). Per task: lines are decoded in `encoding` (`utf-8`; `gbk` is read as GB18030 like the
 * reference; any other ASCII-compatible iconv-lite encoding also works), lines matching a
 * `filter_patterns` regex are ignored, and every `keywords` rule whose regex matches yields a hit keyed by
 * (file, rule, the rule's named groups). Every `report_period` (and when the task stops) each key becomes
 * one AgentEvent whose body is the reference's document
 * `{dataid, data: [{event_name: rule, event: {count, content: last line}, dimension: {<groups>, file_path},
 * target, timestamp: now in time_unit}]}` — one document per key, as the reference sends them — and the
 * input is told the task has published everything read so far (its offsets become durable).
 *
 * `labels` (the CMDB target labels): the reference expands each record once per label whose topology it
 * resolves through the hostid file (adding `bk_target_ip`, `bk_target_cloud_id`, `bk_<level>_id`, …). The
 * task context carries no topology, so each distinct label (host, dynamic node or service-instance label)
 * is merged into a copy of the record as written — `bk_collect_config_id`, `bk_target_topo_level`,
 * `bk_target_topo_id`, `bk_target_cloud_id`, `bk_target_ip`, `bk_target_service_category_id`,
 * `bk_target_service_instance_id` — without the resolved topology levels; with no usable label the record
 * is sent once as it is.
 */
import iconv from 'iconv-lite';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { goRegExp, subexpNames } from '../host/goregexp.ts';
import { sharedInput, type TailInput, type TailSubscriber } from '../tail/input.ts';
import type { BaseTaskConfig, EventOutput, Task, TaskContext, TaskType } from '../task.ts';

export interface KeywordRule {
  readonly name: string;
  readonly pattern: string;
  readonly re: RegExp;
  /** Named groups by index (Go SubexpNames), '' for unnamed. */
  readonly groups: readonly string[];
  /** A substring every match contains (a cheap pre-check before the regex), '' if none is known. */
  readonly literal: string;
}

/** A filter pattern with its pre-check literal. */
export interface Filter {
  readonly re: RegExp;
  readonly literal: string;
}

/**
 * A literal substring that every match of the (Go) pattern must contain, or '' when none can be told
 * safely: the longest run of plain characters at the top level of a pattern without top-level
 * alternation or flags, leaving out a character followed by a quantifier. Used as `line.includes(lit)`
 * before running the regex (the match result is the same; non-matching lines are rejected faster).
 */
export function requiredLiteral(pattern: string): string {
  if (/\(\?[a-zA-Z-]*\)/.test(pattern) || pattern.includes('\\Q')) return '';
  let depth = 0;
  let inClass = false;
  let best = '';
  let run = '';
  const endRun = (): void => {
    if (run.length > best.length) best = run;
    run = '';
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    const next = pattern[i + 1];
    const quantified = (j: number): boolean => ['*', '+', '?', '{'].includes(pattern[j] ?? '');
    if (inClass) {
      if (c === '\\') i++;
      else if (c === ']') inClass = false;
      continue;
    }
    if (c === '\\') {
      if (next !== undefined && /[.*+?^${}()|[\]\\\/-]/.test(next) && depth === 0) {
        if (quantified(i + 2)) endRun();
        else run += next;
      } else endRun();
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      endRun();
      continue;
    }
    if (c === '(') {
      depth++;
      endRun();
      continue;
    }
    if (c === ')') {
      depth--;
      endRun();
      continue;
    }
    if (c === '|') {
      if (depth === 0) return '';
      endRun();
      continue;
    }
    if ('.^$*+?{}'.includes(c)) {
      endRun();
      continue;
    }
    if (depth > 0) continue;
    if (quantified(i + 1)) {
      endRun();
      continue;
    }
    run += c;
  }
  endRun();
  return best.length >= 2 ? best : '';
}

export interface KeywordConfig extends BaseTaskConfig {
  readonly paths: readonly string[];
  readonly excludeFiles: readonly RegExp[];
  readonly encoding: string;
  readonly closeInactiveMs: number;
  readonly reportPeriodMs: number;
  readonly filterPatterns: readonly Filter[];
  readonly rules: readonly KeywordRule[];
  readonly target: string;
  readonly timeUnit: 's' | 'ms' | 'us' | 'ns';
  readonly retainFileBytes: number;
  /** bkstream's addition: how often the globs are rescanned (reference: 5 s). */
  readonly scanFrequencyMs: number;
}

const LABEL_KEYS = [
  'bk_collect_config_id',
  'bk_target_topo_level',
  'bk_target_topo_id',
  'bk_target_cloud_id',
  'bk_target_ip',
  'bk_target_service_category_id',
  'bk_target_service_instance_id',
] as const;

const UNIT_BASE: Record<KeywordConfig['timeUnit'], number> = { s: 1, ms: 1e3, us: 1e6, ns: 1e9 };

interface Counter {
  rule: string;
  count: number;
  content: string;
  dimension: Record<string, string>;
}

/** The per-task processor + sender: matching lines counted by key until the next report. */
export class KeywordCounter {
  readonly #config: KeywordConfig;
  #cache = new Map<string, Counter>();
  /** Lines seen and matched since start. */
  lines = 0;
  hits = 0;

  constructor(config: KeywordConfig) {
    this.#config = config;
  }

  line(file: string, text: string): void {
    this.lines++;
    const c = this.#config;
    for (const f of c.filterPatterns) if ((f.literal === '' || text.includes(f.literal)) && f.re.test(text)) return;
    for (const rule of c.rules) {
      if (rule.literal !== '' && !text.includes(rule.literal)) continue;
      const m = rule.re.exec(text);
      if (!m) continue;
      this.hits++;
      let key = `${file}||${rule.name}||`;
      const dims: Record<string, string> = {};
      for (let i = 1; i < rule.groups.length; i++) {
        const g = rule.groups[i] as string;
        if (g === '') continue;
        const v = m[i] ?? '';
        dims[g] = v;
        key += `${g}=${v}||`;
      }
      const counter = this.#cache.get(key);
      if (counter) {
        counter.count++;
        counter.content = text;
      } else {
        dims.file_path = file;
        this.#cache.set(key, { rule: rule.name, count: 1, content: text, dimension: dims });
      }
    }
  }

  /** The documents of the counts so far (one per key), and a fresh count. */
  drain(nowMs: number): Record<string, unknown>[] {
    const c = this.#config;
    const timestamp = Math.floor(nowMs / 1000) * UNIT_BASE[c.timeUnit];
    const labels = uniqueLabels(c.labels);
    const docs: Record<string, unknown>[] = [];
    for (const counter of this.#cache.values()) {
      const record = { event_name: counter.rule, event: { count: counter.count, content: counter.content }, dimension: counter.dimension, target: c.target, timestamp };
      const data = labels.length === 0 ? [record] : labels.map((l) => ({ ...record, dimension: { ...counter.dimension, ...l } }));
      docs.push({ dataid: c.dataId, data });
    }
    this.#cache = new Map();
    return docs;
  }
}

/** The distinct usable labels, each as its seven reference keys (reference configs.Label). */
export function uniqueLabels(labels: readonly Readonly<Record<string, string>>[]): Record<string, string>[] {
  const seen = new Set<string>();
  const out: Record<string, string>[] = [];
  for (const l of labels) {
    const v = Object.fromEntries(LABEL_KEYS.map((k) => [k, l[k] ?? ''])) as Record<string, string>;
    const serviceInstance = v.bk_target_service_instance_id !== '';
    const dynamicNode = !serviceInstance && v.bk_target_topo_level !== '' && v.bk_target_topo_id !== '';
    const staticIp = !dynamicNode && !serviceInstance && v.bk_target_ip !== '';
    if (!serviceInstance && !dynamicNode && !staticIp) continue;
    const id = LABEL_KEYS.map((k) => v[k]).join('||');
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(v);
  }
  return out;
}

class KeywordTask implements Task<KeywordConfig> {
  readonly config: KeywordConfig;

  constructor(config: KeywordConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const log = ctx.logger.child({ task_type: 'keyword', task_id: c.taskId });
    const counter = new KeywordCounter(c);
    const input: TailInput = sharedInput(ctx.state, ctx.logger);
    input.requestScanInterval(c.scanFrequencyMs);
    const sub: TailSubscriber = {
      id: `${c.ident}:${Math.random().toString(36).slice(2)}`,
      paths: c.paths,
      exclude: c.excludeFiles,
      encoding: c.encoding,
      closeInactiveMs: c.closeInactiveMs,
      retainFileBytes: c.retainFileBytes,
      onLines: (file, lines) => {
        for (const l of lines) counter.line(file, l);
      },
    };
    const unsubscribe = input.subscribe(sub);
    log.info('keyword task started', { paths: c.paths, report_period_ms: c.reportPeriodMs });
    const report = async (): Promise<void> => {
      const docs = counter.drain(ctx.now());
      for (const body of docs) {
        const out: EventOutput = { kind: 'event', eventType: 'keyword', dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, timestampMs: ctx.now(), body };
        await ctx.emit(out);
      }
      input.commit(sub.id);
    };
    try {
      for (;;) {
        try {
          await ctx.sleep(c.reportPeriodMs);
        } catch {
          break;
        }
        await report();
      }
    } finally {
      try {
        await report();
      } catch (err) {
        log.warn('final keyword report failed', { err: (err as Error).message });
      }
      await unsubscribe();
    }
  }
}

const ENCODINGS_REFUSED = /^(utf-?16|utf-?32|ucs-?2|utf-?7)/i;

function parseKeyword(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): KeywordConfig {
  const f = fields(raw, problems, '');
  const paths = f.strings('paths').map((p) => p.trim()).filter((p) => p !== '');
  if (paths.length === 0) f.problem('paths', 'needs at least one path');
  const excludeText = f.strings('exclude_files');
  const excludeFiles: RegExp[] = [];
  for (const [i, p] of (excludeText.length > 0 ? excludeText : ['.gz$', '.tar$', '.bz2$']).entries()) {
    try {
      excludeFiles.push(goRegExp(p));
    } catch (err) {
      f.problem(`exclude_files[${i}]`, `is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  let encoding = f.str('encoding', { default: 'utf-8' }).toLowerCase();
  if (encoding === '' || encoding === 'utf8') encoding = 'utf-8';
  if (encoding === 'gbk') encoding = 'gb18030';
  if (encoding !== 'utf-8' && (!iconv.encodingExists(encoding) || ENCODINGS_REFUSED.test(encoding))) f.problem('encoding', `unsupported encoding ${JSON.stringify(encoding)}`);
  const filterPatterns: Filter[] = [];
  for (const [i, p] of f.strings('filter_patterns').entries()) {
    try {
      filterPatterns.push({ re: goRegExp(p), literal: requiredLiteral(p) });
    } catch (err) {
      f.problem(`filter_patterns[${i}]`, `is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const rules: KeywordRule[] = [];
  const rawRules = raw.keywords;
  if (rawRules !== undefined && rawRules !== null && !Array.isArray(rawRules)) f.problem('keywords', 'must be a list of {name, pattern}');
  for (const [i, r] of (Array.isArray(rawRules) ? rawRules : []).entries()) {
    const rf = f.sub(`keywords[${i}]`);
    const rr = (r ?? {}) as Record<string, unknown>;
    const name = typeof rr.name === 'string' || typeof rr.name === 'number' ? String(rr.name) : '';
    const pattern = typeof rr.pattern === 'string' ? rr.pattern : '';
    if (name === '') rf.problem('name', 'is required');
    try {
      rules.push({ name, pattern, re: goRegExp(pattern), groups: subexpNames(pattern), literal: requiredLiteral(pattern) });
    } catch (err) {
      rf.problem('pattern', `is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const outputFormat = f.str('output_format', { default: 'event' });
  if (outputFormat !== 'event' && outputFormat !== '') f.problem('output_format', `only "event" is supported, got ${JSON.stringify(outputFormat)}`);
  const unit = f.str('time_unit', { default: 'ms' });
  const retain = f.int('retain_file_bytes', { default: 0 });
  const closeInactive = f.durationMs('close_inactive', { default: 0, min: 0 });
  return {
    ...base,
    paths,
    excludeFiles,
    encoding,
    closeInactiveMs: closeInactive === 0 ? 3_600_000 : closeInactive,
    reportPeriodMs: f.durationMs('report_period', { default: 60_000, min: 1 }),
    filterPatterns,
    rules,
    target: f.str('target'),
    timeUnit: unit === 's' || unit === 'ms' || unit === 'us' || unit === 'ns' ? unit : 'ms',
    retainFileBytes: retain === 0 ? 1024 * 1024 : Math.max(0, retain),
    scanFrequencyMs: f.durationMs('scan_frequency', { default: 5_000, min: 10 }),
  };
}

export const keywordType: TaskType<KeywordConfig> = {
  type: 'keyword',
  scheduler: 'keyword',
  shape: 'list',
  section: 'keyword_task',
  parse: (raw, base, problems) => parseKeyword(raw, base, problems),
  create: (config) => new KeywordTask(config),
};
