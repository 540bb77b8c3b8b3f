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
import { isUtf8 } from 'node:buffer';
import iconv from 'iconv-lite';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { goRegExp, subexpNames } from '../host/goregexp.ts';
import { MAX_SCAN_BYTES, MAX_SCAN_LITERALS, LineScanner } from '../tail/bytescan.ts';
import { countLines, sharedInput, type LineBatch, type TailInput, type TailSubscriber } from '../tail/input.ts';
import type { BaseTaskConfig, EventOutput, Task, TaskContext, TaskType } from '../task.ts';

export interface KeywordRule {
  readonly name: string;
  readonly pattern: string;
  readonly re: RegExp;
  /** Named groups by index (Go SubexpNames), '' for unnamed. */
  readonly groups: readonly string[];
  /** A substring every match contains (a cheap pre-check before the regex), '' if none is known. */
  readonly literal: string;
  /** The pattern is nothing but `literal`: it matches exactly the lines containing it. */
  readonly exact: boolean;
}

/** A filter pattern with its pre-check literal. */
export interface Filter {
  readonly re: RegExp;
  readonly literal: string;
  readonly exact: boolean;
}

/** Escaped characters that stand for themselves in both Go and JavaScript patterns. */
const LITERAL_ESCAPES = '.*+?^${}()|[]\\/-';
/** A counted repetition `{n}`, `{n,}`, `{n,m}` (anything else after `{` is a literal `{` in Go and JS). */
const REPEAT = /^\{\d+(?:,\d*)?\}/;

/** The index after the quantifier at `i` (with its lazy `?`), or `i` when there is none. */
function quantifierEnd(p: string, i: number): number {
  let j = i;
  const c = p[i];
  if (c === '*' || c === '+' || c === '?') j = i + 1;
  else if (c === '{') {
    const m = REPEAT.exec(p.slice(i, i + 24));
    if (!m) return i;
    j = i + m[0].length;
  } else return i;
  return p[j] === '?' ? j + 1 : j;
}

/** The index after the closing `close` from `j`, or the end of the pattern. */
function past(p: string, j: number, close: string): number {
  const e = p.indexOf(close, j);
  return e < 0 ? p.length : e + close.length;
}

/** The index after a non-literal escape at `i` (`\\d`, `\\x41`, `\\x{263a}`, `\\pL`, `\\p{Greek}`, `\\123`, …). */
function escapeEnd(p: string, i: number): number {
  const e = p[i + 1] as string;
  let j = i + 2;
  if (e === 'x' || e === 'u' || e === 'p' || e === 'P') {
    if (p[j] === '{') return past(p, j, '}');
    if (e === 'p' || e === 'P') return j + 1;
    const max = e === 'x' ? 2 : 4;
    while (j < i + 2 + max && /[0-9a-fA-F]/.test(p[j] ?? '')) j++;
    return j;
  }
  if (e === 'c') return /[A-Za-z]/.test(p[j] ?? '') ? j + 1 : j;
  if (e === 'k' && p[j] === '<') return past(p, j, '>');
  if (e >= '0' && e <= '9') while (/[0-9]/.test(p[j] ?? '')) j++;
  return j;
}

/** The index after the character class opening at `i` (Go syntax: `[]a]`, `[^]a]`, `[[:digit:]]`), or -1. */
function classEnd(p: string, i: number): number {
  let j = i + 1;
  if (p[j] === '^') j++;
  if (p[j] === ']') j++;
  while (j < p.length) {
    const c = p[j];
    if (c === '\\') j += 2;
    else if (c === '[' && p[j + 1] === ':') {
      const e = p.indexOf(':]', j + 2);
      j = e < 0 ? j + 1 : e + 2;
    } else if (c === ']') return j + 1;
    else j++;
  }
  return -1;
}

/** The index after the group opening at `i` (its nested groups, classes and escapes included), or -1. */
function groupEnd(p: string, i: number): number {
  let depth = 0;
  let j = i;
  while (j < p.length) {
    const c = p[j];
    if (c === '\\') j += 2;
    else if (c === '[') {
      j = classEnd(p, j);
      if (j < 0) return -1;
    } else {
      if (c === '(') depth++;
      else if (c === ')' && --depth === 0) return j + 1;
      j++;
    }
  }
  return -1;
}

/**
 * A literal substring that every match of the (Go) pattern must contain, or '' when none can be told
 * safely: the longest run (≥ 2 characters) of consecutive unquantified literal characters (plain, or
 * escaped punctuation) at the top level of a pattern without top-level alternation, flag groups or `\\Q`.
 * Groups, classes, escapes such as `\\d` or `\\x41`, anchors, `.` and quantified characters end a run.
 * Used as `line.includes(lit)` before running the regex (the match result is the same; non-matching lines
 * are rejected faster), and to find the lines worth running at all in {@link KeywordCounter.batch}.
 */
export function requiredLiteral(pattern: string): string {
  return literalOf(pattern).literal;
}

/** {@link requiredLiteral}, and whether the pattern is nothing but that literal. */
export function literalOf(pattern: string): { literal: string; exact: boolean } {
  const none = { literal: '', exact: false };
  if (/\(\?[a-zA-Z-]*\)/.test(pattern) || pattern.includes('\\Q')) return none;
  let best = '';
  let run = '';
  let exact = true;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i] as string;
    let literal: string | undefined;
    if (c === '|' || c === ')') return none;
    if (c === '\\') {
      const e = pattern[i + 1];
      if (e === undefined) return none;
      if (LITERAL_ESCAPES.includes(e)) {
        literal = e;
        i += 2;
      } else i = escapeEnd(pattern, i);
    } else if (c === '[' || c === '(') {
      i = c === '[' ? classEnd(pattern, i) : groupEnd(pattern, i);
      if (i < 0) return none;
    } else {
      if (!'.^$*+?{}'.includes(c)) literal = c;
      i++;
    }
    const q = quantifierEnd(pattern, i);
    if (literal !== undefined && q === i) {
      run += literal;
      continue;
    }
    exact = false;
    i = q;
    if (run.length > best.length) best = run;
    run = '';
  }
  if (run.length > best.length) best = run;
  return best.length >= 2 ? { literal: best, exact } : none;
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
  /** The batch that last set `content`. */
  batch: number;
}

/** A rule as the counter runs it. */
interface CompiledRule {
  readonly rule: KeywordRule;
  /** Indexes of its named groups (then `exec`, else `test`). */
  readonly named: readonly number[];
  /** `rule.re` with its named groups unnamed: the same groups by index, without a `groups` object per match. */
  readonly exec: RegExp;
  /** The bit of its literal in a {@link LineScanner}'s found mask; 0 when the scan does not tell it. */
  readonly bit: number;
}

/**
 * A JavaScript regex source with every named group `(?<name>…)` made a plain group `(…)`: the same match and
 * the same group numbering (JavaScript numbers named and plain groups together, left to right) — for a source
 * without `\\k<name>` backreferences (not Go syntax; the counter keeps such a regex as it is).
 */
export function unnamedGroups(source: string): string {
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    if (c === '\\') {
      out += source.slice(i, i + 2);
      i++;
    } else if (c === '[') {
      let j = i + 1;
      while (j < source.length && source[j] !== ']') j += source[j] === '\\' ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j;
    } else {
      const named = c === '(' ? /^\(\?<[A-Za-z_$][\w$]*>/.exec(source.slice(i, i + 260)) : null;
      if (named) {
        out += '(';
        i += named[0].length - 1;
      } else out += c;
    }
  }
  return out;
}

/**
 * Where a file's hits of one rule were counted this period — a cache in front of the counters' map, whose
 * keys stay the full `<file>||<rule>||<group>=<value>||…` strings (so keys that are equal strings are one
 * counter, exactly as without it): the counter of a rule without named groups, or by the value of its one
 * named group.
 */
interface Slot {
  readonly prefix: string;
  counter: Counter | undefined;
  byValue: Map<string, Counter> | undefined;
}

export interface KeywordCounterOptions {
  /** Skip lines holding none of the rules' literals (default true; the tests compare both). */
  readonly precheck?: boolean;
  /** Search UTF-8 batches in their bytes (default true; false: in their decoded text — the tests compare both). */
  readonly bytes?: boolean;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * A copy of `s` that shares no storage with it: a line sliced from a batch's decoded text would otherwise
 * keep the whole batch's text alive until the report.
 */
function detach(s: string): string {
  return Buffer.from(s, 'utf16le').toString('utf16le');
}

/**
 * `literal` without a lone surrogate at its start or end: the part UTF-8 can encode (a substring of it), or
 * '' when a lone surrogate is left inside.
 */
function encodable(literal: string): string {
  const core = literal.replace(/^(?:[\uD800-\uDBFF](?![\uDC00-\uDFFF])|[\uDC00-\uDFFF])/, '').replace(/(?:[\uD800-\uDBFF]|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])$/, '');
  return core.isWellFormed() ? core : '';
}

/**
 * The per-task processor + sender: matching lines counted by key until the next report.
 *
 * `batch` takes the input's batches. When every rule has a required literal ({@link requiredLiteral}), it
 * searches the batch once for any of them (fewest needed: a literal containing another is dropped) and runs
 * filters and rules only on the lines holding one: every other line fails each rule's literal pre-check, so
 * it could only have been counted as seen. The search also tells which literals each such line holds, so a
 * rule reads its literal's bit instead of searching the line again (an exact rule is decided by it).
 * Otherwise (or with `precheck: false`) every line is split out and run. All paths give the same counts,
 * dimensions, content and document order (tested).
 *
 * UTF-8 batches are searched in their bytes by a {@link LineScanner} for the literals' UTF-8 encodings: it
 * counts the `\n` bytes and reports the lines holding a literal, and only those lines are decoded. A line's
 * bytes hold a literal's encoding exactly when its decoded text holds the literal: each character of
 * decoded UTF-8 other than a replacement U+FFFD comes from its own bytes, adjacent to its neighbours', and a
 * literal's encoding starts with a byte that ends any unfinished sequence before it (no continuation byte)
 * and is itself complete — whether or not the line is valid UTF-8; `\n` and `\r` bytes are never part of a
 * longer sequence, so the lines and their trailing `\r` are the same in bytes and text. Two exceptions:
 * a literal holding U+FFFD also occurs where invalid bytes were replaced, so with such a literal only valid
 * UTF-8 batches (`isUtf8`) are searched in bytes, others in their decoded text; and a literal ending in
 * `\r` is found before a line's stripped `\r`, so its rules search their literal themselves. Other
 * encodings, and batches over {@link MAX_SCAN_BYTES} (a line over 64 KiB), are searched in their decoded text.
 */
export class KeywordCounter {
  readonly #config: KeywordConfig;
  readonly #rules: readonly CompiledRule[];
  /** Finds the next occurrence of any rule literal in decoded text; undefined when some rule has no literal. */
  readonly #text: RegExp | undefined;
  /** The search in UTF-8 bytes (for each literal's {@link encodable} part); undefined when it cannot be made. */
  readonly #scanner: LineScanner | undefined;
  /** A literal holds U+FFFD: only valid UTF-8 batches are searched in bytes. */
  readonly #validOnly: boolean;
  /** No rule can match any line (each literal holds a newline). */
  readonly #none: boolean;
  #cache = new Map<string, Counter>();
  /** Per file, each rule's slot. */
  #slots = new Map<string, Slot[]>();
  #batch = 0;
  readonly #touched: Counter[] = [];
  /** Lines seen and matched since start. */
  lines = 0;
  hits = 0;
  /** Batches searched in their bytes since start. */
  byteBatches = 0;

  constructor(config: KeywordConfig, options: KeywordCounterOptions = {}) {
    this.#config = config;
    let needed: string[] = [];
    let none = false;
    if (options.precheck !== false && config.rules.every((r) => r.literal !== '' && !r.re.ignoreCase)) {
      // a rule whose literal holds a newline matches no line; a literal containing another is redundant
      const literals = [...new Set(config.rules.map((r) => r.literal))].filter((l) => !l.includes('\n'));
      needed = literals.filter((l) => !literals.some((o) => o !== l && l.includes(o)));
      none = needed.length === 0;
    }
    this.#none = none;
    this.#text = needed.length > 0 ? new RegExp(needed.map(escapeRegExp).join('|'), 'g') : undefined;
    // the byte scan looks for the encodable part of each literal (a pattern such as `😀+` leaves a literal
    // ending in half a surrogate pair): a line holding a literal holds that part
    const cores = [...new Set(needed.map(encodable))];
    const scanned = cores.filter((c) => !cores.some((o) => o !== c && c.includes(o)));
    const bytewise = options.bytes !== false && scanned.length > 0 && scanned.length <= MAX_SCAN_LITERALS && !scanned.includes('');
    this.#scanner = bytewise ? new LineScanner(scanned.map((l) => Buffer.from(l, 'utf8'))) : undefined;
    this.#validOnly = scanned.some((l) => l.includes('\uFFFD'));
    this.#rules = config.rules.map((rule) => {
      const i = rule.literal.endsWith('\r') ? -1 : scanned.indexOf(rule.literal);
      return {
        rule,
        named: rule.groups.flatMap((g, j) => (g === '' ? [] : [j])),
        exec: rule.re.source.includes('\\k') ? rule.re : new RegExp(unnamedGroups(rule.re.source), rule.re.flags),
        bit: i >= 0 && i < MAX_SCAN_LITERALS ? 1 << i : 0,
      };
    });
  }

  /** Whether `batch` runs only the lines holding a rule literal. */
  get prechecked(): boolean {
    return this.#text !== undefined || this.#none;
  }

  /** Whether `batch` searches UTF-8 batches in their bytes. */
  get bytewise(): boolean {
    return this.#scanner !== undefined;
  }

  /** One decoded line of `file` (no trailing newline or `\r`). */
  line(file: string, text: string): void {
    this.lines++;
    this.#match(file, this.#slotsOf(file), text, -1);
    this.#touched.length = 0;
    this.#batch++;
  }

  /** Complete lines of `file` from the input, in order. */
  batch(file: string, batch: LineBatch): void {
    const slots = this.#slotsOf(file);
    const utf8 = batch.encoding === 'utf-8';
    if (this.#none) this.lines += countLines(batch.text());
    else if (this.#text === undefined) {
      const lines = batch.lines();
      this.lines += lines.length;
      for (const text of lines) this.#match(file, slots, text, -1);
    } else if (utf8 && this.#scanner !== undefined && batch.bytes.length <= MAX_SCAN_BYTES && (!this.#validOnly || isUtf8(batch.bytes))) this.#scanBytes(file, slots, batch.bytes, this.#scanner);
    else {
      this.lines += this.#scan(file, slots, batch.text(), this.#text);
      // the contents are slices of the batch's text: copy them out
      for (const c of this.#touched) c.content = detach(c.content);
    }
    this.#touched.length = 0;
    this.#batch++;
  }

  /** Runs the lines of UTF-8 `bytes` that hold a literal, found by `scanner`, each decoded on its own. */
  #scanBytes(file: string, slots: readonly Slot[], bytes: Buffer, scanner: LineScanner): void {
    const n = scanner.scan(bytes);
    this.lines += scanner.newlines + 1;
    this.byteBatches++;
    const records = scanner.records;
    for (let j = 0, at = scanner.at; j < n; j++, at += 3) {
      const start = records[at] as number;
      const end = records[at + 1] as number;
      this.#match(file, slots, bytes.toString('utf8', start, end > start && bytes[end - 1] === 13 ? end - 1 : end), records[at + 2] as number);
    }
  }

  /**
   * Runs the lines of decoded text `s` (lines separated by `\n`) holding a match of `re` (the literal search:
   * global, matches within a line), and returns how many lines `s` has.
   */
  #scan(file: string, slots: readonly Slot[], s: string, re: RegExp): number {
    let lines = 1;
    let start = 0;
    let nl = s.indexOf('\n');
    re.lastIndex = 0;
    while (re.test(s)) {
      // the match's last character (lastIndex - 1) is on the line to run: walk the newlines up to it
      const at = re.lastIndex - 1;
      while (nl >= 0 && nl < at) {
        lines++;
        start = nl + 1;
        nl = s.indexOf('\n', start);
      }
      const end = nl < 0 ? s.length : nl;
      this.#match(file, slots, s.slice(start, end > start && s.charCodeAt(end - 1) === 13 ? end - 1 : end), -1);
      if (nl < 0) return lines;
      re.lastIndex = nl + 1;
    }
    for (; nl >= 0; nl = s.indexOf('\n', nl + 1)) lines++;
    return lines;
  }

  #slotsOf(file: string): Slot[] {
    let slots = this.#slots.get(file);
    if (!slots) {
      slots = this.#config.rules.map((r) => ({ prefix: `${file}||${r.name}||`, counter: undefined, byValue: undefined }));
      this.#slots.set(file, slots);
    }
    return slots;
  }

  /**
   * Filters and rules on one line. `found`: the literals the line holds as bits (a rule with a bit reads
   * it instead of searching its literal), or -1 when not known.
   */
  #match(file: string, slots: readonly Slot[], text: string, found: number): void {
    for (const f of this.#config.filterPatterns) if ((f.literal === '' || text.includes(f.literal)) && (f.exact || f.re.test(text))) return;
    const rules = this.#rules;
    for (let r = 0; r < rules.length; r++) {
      const { rule, named, exec, bit } = rules[r] as CompiledRule;
      if (found >= 0 && bit !== 0 ? (found & bit) === 0 : rule.literal !== '' && !text.includes(rule.literal)) continue;
      const slot = slots[r] as Slot;
      let counter: Counter | undefined;
      if (named.length === 0) {
        if (!rule.exact && !rule.re.test(text)) continue;
        counter = slot.counter ??= this.#counter(slot, rule, named, file, null);
      } else {
        const m = exec.exec(text);
        if (!m) continue;
        if (named.length === 1) {
          const v = m[named[0] as number] ?? '';
          const byValue = (slot.byValue ??= new Map<string, Counter>());
          counter = byValue.get(v);
          if (!counter) byValue.set(v, (counter = this.#counter(slot, rule, named, file, m)));
        } else counter = this.#counter(slot, rule, named, file, m);
      }
      this.hits++;
      counter.count++;
      counter.content = text;
      if (counter.batch !== this.#batch) {
        counter.batch = this.#batch;
        this.#touched.push(counter);
      }
    }
  }

  /**
   * The counter of `rule`'s hit on `file` with groups `m`: the one under the same key string if there is one,
   * else a new one (count 0) with the dimensions — group values by index, then `file_path`.
   */
  #counter(slot: Slot, rule: KeywordRule, named: readonly number[], file: string, m: RegExpExecArray | null): Counter {
    let key = slot.prefix;
    if (m) for (const i of named) key += `${rule.groups[i] as string}=${m[i] ?? ''}||`;
    let counter = this.#cache.get(key);
    if (!counter) {
      const dimension: Record<string, string> = {};
      if (m) for (const i of named) dimension[rule.groups[i] as string] = m[i] ?? '';
      dimension.file_path = file;
      counter = { rule: rule.name, count: 0, content: '', dimension, batch: -1 };
      this.#cache.set(key, counter);
    }
    return counter;
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
    this.#slots = new Map();
    return docs;
  }
}

/** The input subscriber of a keyword task feeding `counter` (the task's own, and the benchmark's). */
export function keywordSubscriber(config: KeywordConfig, counter: KeywordCounter, id: string): TailSubscriber {
  return {
    id,
    paths: config.paths,
    exclude: config.excludeFiles,
    encoding: config.encoding,
    closeInactiveMs: config.closeInactiveMs,
    retainFileBytes: config.retainFileBytes,
    onBatch: (file, batch) => counter.batch(file, batch),
  };
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
    const sub = keywordSubscriber(c, counter, `${c.ident}:${Math.random().toString(36).slice(2)}`);
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
      filterPatterns.push({ re: goRegExp(p), ...literalOf(p) });
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
      rules.push({ name, pattern, re: goRegExp(pattern), groups: subexpNames(pattern), ...literalOf(pattern) });
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
