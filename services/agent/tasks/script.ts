/**
 * `script` (reference §A5.7, tasks/script, utils/pipes.go; child type `script`, main scheduler): runs a
 * command, reads the Prometheus / OpenMetrics lines it prints, and publishes them as time series.
 *
 * Command line: shell words, not a shell (as the reference, go-shellwords): words split on blanks, single
 * and double quotes, backslash escapes, `$VAR` / `${VAR}` expanded from `user_env` first, then the agent's
 * environment (unquoted expansions are split into words again), and `|` pipelines — every stage its own
 * process group, stdout of a stage piped into the next. Other shell syntax (`;`, `&`, `&&`, `<`, `>`,
 * back-quotes, `$(`) is rejected when the config is read: wrap such commands in `sh -c '…'`. Every
 * executable is looked up on the agent's PATH before anything is started (a missing one → 2301).
 *
 * Run: `user_env` is added to the agent's environment; `work_dir` (bkstream's addition) is the working
 * directory; `username` runs the stages as that user (needs root; an unknown user runs as the agent, as in
 * the reference). stdout of the last stage and stderr of every stage are parsed line by line (per stream,
 * so two streams never interleave inside a line). On timeout every stage's process group is killed with
 * SIGKILL (children that outlive the script die with it), up to 2 s are given for the pipes to close, and
 * only the gather-up code 2304 is sent.
 *
 * Output: the flat per-group map of the reference (errata 13): samples grouped by (timestamp in
 * `timestamp_unit`, sorted labels + exemplar labels); each group is one record with all its metrics, the
 * labels and `bk_biz_id` as dimensions, and the exemplar's `bk_trace_id` / `bk_span_id` /
 * `bk_trace_timestamp` / `bk_trace_value` added to the dimensions (the MetricBatch record has no exemplar
 * field). One MetricBatch per run (split into records of `metrics_batch_size` groups, 1 024 by default, when
 * bigger), each record repeated once per label group with the group's keys (the reference's `group_info`,
 * which its pipeline expands the same way). Gather-up (§A7.2): 2304 timeout, 2301 exec failure (including a
 * non-zero exit), 2303 blank output, 2502 when any line failed to parse (the good lines are still sent),
 * else 0 with value = groups + 1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { isSkippableLine, parseSampleLine, type Sample } from '../exposition/parse.ts';
import { DEFAULT_TIME_OFFSET_MS, nsToUnit, resolveTimestampNs, unitToMs, type TimestampUnit } from '../exposition/timestamp.ts';
import type { BaseTaskConfig, MetricsOutput, Task, TaskContext, TaskType } from '../task.ts';
import { Codes, emitGatherUp, type NamedCode } from './gather-up.ts';

export interface ScriptConfig extends BaseTaskConfig {
  readonly command: string;
  readonly userEnv: Readonly<Record<string, string>>;
  readonly username: string;
  /** `s` (default), `ms` or `ns`; anything else falls back to `ms` as in the reference. */
  readonly timestampUnit: TimestampUnit;
  readonly timeOffsetMs: number;
  /** bkstream's addition: the working directory ('' = the agent's). */
  readonly workDir: string;
}

/** Grace given to killed stages to close their pipes (reference: 2 s sleep after the kill). */
export const KILL_GRACE_MS = 2_000;

// ---------------------------------------------------------------------------------------------------
// Command line

export class CommandLineError extends Error {}

/**
 * Splits a command line into pipeline stages of words (go-shellwords semantics, see the file comment).
 * `getenv` resolves `$VAR`. Throws {@link CommandLineError} on unsupported or unbalanced syntax.
 */
export function parseCommandLine(line: string, getenv: (name: string) => string): string[][] {
  const stages: string[][] = [];
  let words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const end = (): void => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  const readVar = (): string | undefined => {
    // at line[i] === '$'
    const next = line[i + 1];
    if (next === '{') {
      const close = line.indexOf('}', i + 2);
      if (close < 0) throw new CommandLineError('unterminated ${');
      const name = line.slice(i + 2, close);
      if (!/^\w+$/.test(name)) throw new CommandLineError(`bad variable name \${${name}}`);
      i = close + 1;
      return getenv(name);
    }
    if (next === '(') throw new CommandLineError('command substitution $( ) is not supported; use sh -c');
    const m = /^\w+/.exec(line.slice(i + 1));
    if (!m) return undefined;
    i += 1 + m[0].length;
    return getenv(m[0]);
  };
  while (i < line.length) {
    const c = line[i] as string;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      end();
      i++;
      continue;
    }
    if (c === '|') {
      end();
      if (words.length === 0) throw new CommandLineError('empty pipeline stage');
      stages.push(words);
      words = [];
      i++;
      continue;
    }
    if (c === ';' || c === '&' || c === '<' || c === '>') throw new CommandLineError(`shell operator ${JSON.stringify(c)} is not supported (commands run without a shell); use sh -c`);
    if (c === '`') throw new CommandLineError('back-quote command substitution is not supported; use sh -c');
    if (c === '\\') {
      if (i + 1 >= line.length) throw new CommandLineError('trailing backslash');
      const n = line[i + 1] as string;
      word += n === 't' ? '\t' : n === 'n' ? '\n' : n;
      inWord = true;
      i += 2;
      continue;
    }
    if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new CommandLineError('unterminated single quote');
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
      continue;
    }
    if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= line.length) throw new CommandLineError('unterminated double quote');
        const d = line[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < line.length) {
          const n = line[i + 1] as string;
          word += n === '"' || n === '\\' || n === '$' || n === '`' ? n : `\\${n}`;
          i += 2;
          continue;
        }
        if (d === '$') {
          const v = readVar();
          if (v === undefined) {
            word += '$';
            i++;
          } else word += v;
          continue;
        }
        if (d === '`') throw new CommandLineError('back-quote command substitution is not supported; use sh -c');
        word += d;
        i++;
      }
      continue;
    }
    if (c === '$') {
      const v = readVar();
      if (v === undefined) {
        word += '$';
        inWord = true;
        i++;
        continue;
      }
      // an unquoted expansion is split into words again
      const parts = v.split(/[ \t\r\n]+/);
      for (const [k, part] of parts.entries()) {
        if (k > 0) end();
        if (part !== '') {
          word += part;
          inWord = true;
        }
      }
      continue;
    }
    word += c;
    inWord = true;
    i++;
  }
  end();
  if (words.length === 0) {
    if (stages.length > 0) throw new CommandLineError('empty pipeline stage');
    throw new CommandLineError('empty command');
  }
  stages.push(words);
  return stages;
}

/** The executable `name` resolves to on `pathEnv` (Go exec.LookPath), or undefined. */
export function lookPath(name: string, pathEnv: string): string | undefined {
  const executable = (p: string): boolean => {
    try {
      if (!statSync(p).isFile()) return false;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes('/')) return executable(name) ? name : undefined;
  for (const dir of pathEnv.split(delimiter)) {
    const p = join(dir === '' ? '.' : dir, name);
    if (executable(p)) return isAbsolute(p) ? p : join(process.cwd(), p);
  }
  return undefined;
}

function lookupUser(username: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === username && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Running

export type ExecOutcome = { kind: 'ok' } | { kind: 'failed'; error: string } | { kind: 'timeout' } | { kind: 'cancelled' };

export interface ExecOptions {
  stages: readonly (readonly string[])[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  user?: { uid: number; gid: number };
  timeoutMs: number;
  signal: AbortSignal;
  /** Each complete output line (stderr of all stages, stdout of the last), as it arrives. */
  onLine: (line: string) => void;
  /** Grace after the kill. Default {@link KILL_GRACE_MS}. */
  killGraceMs?: number;
}

/** Splits a stream's text into lines; the last partial line is given on `flush`. */
class LineSplitter {
  #rest = '';
  readonly #onLine: (line: string) => void;
  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }
  push(text: string): void {
    let start = 0;
    const s = this.#rest === '' ? text : this.#rest + text;
    for (;;) {
      const nl = s.indexOf('\n', start);
      if (nl < 0) break;
      this.#onLine(s.slice(start, nl));
      start = nl + 1;
    }
    this.#rest = s.slice(start);
  }
  flush(): void {
    if (this.#rest !== '') this.#onLine(this.#rest);
    this.#rest = '';
  }
}

/** Runs a pipeline (see the file comment); never throws. */
export function execPipeline(opts: ExecOptions): Promise<ExecOutcome> {
  return new Promise<ExecOutcome>((resolve) => {
    const children: ChildProcess[] = [];
    const splitters: LineSplitter[] = [];
    let settled = false;
    let failure: string | undefined;
    let killedFor: 'timeout' | 'cancelled' | undefined;
    let open = 0;
    let graceTimer: NodeJS.Timeout | undefined;

    const finish = (outcome: ExecOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      opts.signal.removeEventListener('abort', onAbort);
      for (const s of splitters) s.flush();
      for (const c of children) {
        c.stdout?.destroy();
        c.stderr?.destroy();
        c.stdin?.destroy();
      }
      resolve(outcome);
    };
    const killAll = (why: 'timeout' | 'cancelled'): void => {
      if (killedFor) return;
      killedFor = why;
      for (const c of children) {
        if (c.pid === undefined) continue;
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          try {
            c.kill('SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      graceTimer = setTimeout(() => finish({ kind: why }), opts.killGraceMs ?? KILL_GRACE_MS);
    };
    const onAbort = (): void => {
      const reason: unknown = opts.signal.reason;
      killAll(reason instanceof Error && reason.name === 'TimeoutError' ? 'timeout' : 'cancelled');
    };
    if (opts.signal.aborted) {
      settled = true;
      resolve({ kind: 'cancelled' });
      return;
    }
    const timer = setTimeout(() => killAll('timeout'), Math.max(1, opts.timeoutMs));
    opts.signal.addEventListener('abort', onAbort, { once: true });

    const closed = (): void => {
      open--;
      if (open > 0) return;
      if (killedFor) finish({ kind: killedFor });
      else finish(failure === undefined ? { kind: 'ok' } : { kind: 'failed', error: failure });
    };

    const last = opts.stages.length - 1;
    for (const [idx, argv] of opts.stages.entries()) {
      const [file, ...args] = argv as [string, ...string[]];
      let child: ChildProcess;
      try {
        child = spawn(file, args, {
          cwd: opts.cwd,
          env: opts.env,
          detached: true,
          stdio: [idx === 0 ? 'ignore' : 'pipe', 'pipe', 'pipe'],
          ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
        });
      } catch (err) {
        failure ??= `${file}: ${(err as Error).message}`;
        killAll('cancelled');
        finish({ kind: 'failed', error: failure });
        return;
      }
      children.push(child);
      open++;
      const errSplit = new LineSplitter(opts.onLine);
      splitters.push(errSplit);
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (d: string) => errSplit.push(d));
      if (idx === last) {
        const outSplit = new LineSplitter(opts.onLine);
        splitters.push(outSplit);
        child.stdout?.setEncoding('utf8');
        child.stdout?.on('data', (d: string) => outSplit.push(d));
      }
      if (idx > 0) {
        const prev = children[idx - 1] as ChildProcess;
        prev.stdout?.pipe(child.stdin as NodeJS.WritableStream);
        child.stdin?.on('error', () => undefined);
      }
      let done = false;
      const once = (): void => {
        if (done) return;
        done = true;
        closed();
      };
      child.on('error', (err) => {
        failure ??= `${file}: ${err.message}`;
        if (child.pid === undefined) once();
      });
      child.on('close', (code, sig) => {
        if (code !== 0 && failure === undefined) failure = sig ? `${file} killed by ${sig}` : `${file} exited with ${String(code)}`;
        once();
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Output grouping (reference FormatOutput + NewPromEvent)

export interface ScriptGroup {
  /** In `timestamp_unit`. */
  readonly ts: number;
  readonly labels: Record<string, string>;
  readonly metrics: Record<string, number>;
  readonly exemplar?: Readonly<Record<string, string | number>>;
}

function sortedPairs(o: Readonly<Record<string, string>>): string {
  return Object.keys(o)
    .sort()
    .map((k) => `${k}\xff${o[k] as string}\xff`)
    .join('');
}

/** Samples grouped by (timestamp, labels + exemplar labels), in first-seen order. */
export class ScriptOutput {
  readonly #groups = new Map<string, ScriptGroup>();
  readonly #unit: TimestampUnit;
  readonly #nowMs: number;
  readonly #offsetMs: number;
  /** Lines that failed to parse (or carried NaN / ±Inf). */
  badLines = 0;
  firstError: string | undefined;
  /** Whether any non-blank output was seen. */
  sawOutput = false;

  constructor(unit: TimestampUnit, nowMs: number, offsetMs: number) {
    this.#unit = unit;
    this.#nowMs = nowMs;
    this.#offsetMs = offsetMs;
  }

  /** One output line. */
  line(raw: string): void {
    if (!this.sawOutput && raw.trim() !== '') this.sawOutput = true;
    if (raw.length === 0 || raw[0] === '#' || isSkippableLine(raw)) return;
    let s: Sample;
    try {
      s = parseSampleLine(raw);
    } catch (err) {
      this.#bad((err as Error).message);
      return;
    }
    if (!Number.isFinite(s.value)) {
      this.#bad(`value is NaN or Inf: ${raw}`);
      return;
    }
    const ts = nsToUnit(resolveTimestampNs(s.timestamp, this.#nowMs, this.#offsetMs), this.#unit);
    let exemplar: Record<string, string | number> | undefined;
    let exKey = '';
    if (s.exemplar) {
      exKey = sortedPairs(s.exemplar.labels);
      const traceId = s.exemplar.labels.traceID || s.exemplar.labels.trace_id || '';
      const spanId = s.exemplar.labels.spanID || s.exemplar.labels.span_id || '';
      if (traceId !== '' || spanId !== '') {
        exemplar = {};
        if (traceId !== '') exemplar.bk_trace_id = traceId;
        if (spanId !== '') exemplar.bk_span_id = spanId;
        exemplar.bk_trace_timestamp = nsToUnit(resolveTimestampNs(s.exemplar.timestamp, this.#nowMs, this.#offsetMs), this.#unit);
        exemplar.bk_trace_value = s.exemplar.value;
      }
    }
    const key = `${ts}\x00${sortedPairs(s.labels)}\x00${exKey}`;
    const g = this.#groups.get(key);
    if (g) g.metrics[s.name] = s.value;
    else this.#groups.set(key, { ts, labels: { ...s.labels }, metrics: { [s.name]: s.value }, ...(exemplar ? { exemplar } : {}) });
  }

  #bad(message: string): void {
    this.badLines++;
    this.firstError ??= message;
  }

  groups(): ScriptGroup[] {
    return [...this.#groups.values()];
  }
}

/**
 * The reference's `keep_one_dimension` (test mode): per timestamp, a metric name is kept only in the first
 * group whose set of dimension names it appears with; groups left without metrics are dropped.
 */
export function keepOneDimension(groups: readonly ScriptGroup[]): ScriptGroup[] {
  const seen = new Map<number, Set<string>>();
  const out: ScriptGroup[] = [];
  for (const g of groups) {
    let set = seen.get(g.ts);
    if (!set) seen.set(g.ts, (set = new Set()));
    const dimNames = Object.keys(g.labels).sort().join('\xff');
    const metrics: Record<string, number> = {};
    for (const [name, v] of Object.entries(g.metrics)) {
      const k = `${dimNames}\x00${name}`;
      if (set.has(k)) continue;
      set.add(k);
      metrics[name] = v;
    }
    if (Object.keys(metrics).length > 0) out.push({ ...g, metrics });
  }
  return out;
}

/** The MetricBatch records of the groups: per group, one record per label group. */
export function scriptRecords(config: ScriptConfig, groups: readonly ScriptGroup[]): MetricsOutput['records'][number][] {
  const labelGroups = config.labels.length > 0 ? config.labels : [{}];
  const records: MetricsOutput['records'][number][] = [];
  for (const g of groups) {
    const base: Record<string, string> = { ...g.labels, bk_biz_id: String(config.bkBizId) };
    if (g.exemplar) for (const [k, v] of Object.entries(g.exemplar)) base[k] = String(v);
    const timestamp = unitToMs(g.ts, config.timestampUnit);
    for (const lg of labelGroups) records.push({ timestamp, metrics: g.metrics, dimensions: { ...base, ...lg } });
  }
  return records;
}

// ---------------------------------------------------------------------------------------------------
// The task

/** `metrics_batch_size` of the main section (reference default 1 024 when ≤ 0). */
export function metricsBatchSize(raw: Readonly<Record<string, unknown>>): number {
  const n = Number(raw.metrics_batch_size);
  return Number.isInteger(n) && n > 0 ? n : 1024;
}

class ScriptTask implements Task<ScriptConfig> {
  readonly config: ScriptConfig;

  constructor(config: ScriptConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const log = ctx.logger.child({ task_type: 'script', task_id: c.taskId });
    const nowMs = ctx.now();
    const env: NodeJS.ProcessEnv = { ...process.env, ...c.userEnv };
    let stages: string[][];
    try {
      stages = parseCommandLine(c.command, (name) => c.userEnv[name] ?? process.env[name] ?? '');
    } catch (err) {
      log.warn('command line cannot be parsed', { command: c.command, err: (err as Error).message });
      await this.#gatherUp(ctx, Codes.ScriptRunFailed);
      return;
    }
    for (const stage of stages) {
      const resolved = lookPath(stage[0] as string, process.env.PATH ?? '');
      if (!resolved) {
        log.warn('executable not found', { command: c.command, executable: stage[0] });
        await this.#gatherUp(ctx, Codes.ScriptRunFailed);
        return;
      }
      stage[0] = resolved;
    }
    let user: { uid: number; gid: number } | undefined;
    if (c.username !== '') {
      user = lookupUser(c.username);
      if (!user) log.warn('user not found; running as the agent user', { username: c.username });
    }
    const output = new ScriptOutput(c.timestampUnit, nowMs, c.timeOffsetMs);
    const outcome = await execPipeline({
      stages,
      env,
      ...(c.workDir !== '' ? { cwd: c.workDir } : {}),
      ...(user ? { user } : {}),
      timeoutMs: c.timeoutMs,
      signal: ctx.signal,
      onLine: (line) => output.line(line),
    });
    if (outcome.kind === 'cancelled') return;
    if (outcome.kind === 'timeout') {
      log.warn('script timed out; process groups killed', { command: c.command, timeout_ms: c.timeoutMs });
      await this.#gatherUp(ctx, Codes.ScriptRunTimeout);
      return;
    }
    if (outcome.kind === 'failed') {
      log.warn('script failed', { command: c.command, err: outcome.error });
      await this.#gatherUp(ctx, Codes.ScriptRunFailed);
      return;
    }
    if (!output.sawOutput) {
      log.warn('script printed nothing', { command: c.command });
      await this.#gatherUp(ctx, Codes.ScriptNoOutput);
      return;
    }
    let groups = output.groups();
    if (ctx.global.keepOneDimension) groups = keepOneDimension(groups);
    const batch = metricsBatchSize(ctx.global.raw);
    for (let i = 0; i < groups.length; i += batch) {
      await ctx.emit({
        kind: 'metrics',
        eventType: 'script',
        dataId: c.dataId,
        bkBizId: c.bkBizId,
        taskId: c.taskId,
        target: ctx.host.nodeId,
        records: scriptRecords(c, groups.slice(i, i + batch)),
      });
    }
    if (output.badLines > 0) {
      log.warn('script output has invalid lines', { command: c.command, bad_lines: output.badLines, first_error: output.firstError, groups: groups.length });
      await this.#gatherUp(ctx, Codes.InvalidPromFormat);
      return;
    }
    await this.#gatherUp(ctx, Codes.OK, groups.length + 1);
  }

  async #gatherUp(ctx: TaskContext, code: NamedCode, value = 1): Promise<void> {
    await emitGatherUp(ctx, this.config, code, { value });
  }
}

const UNITS: Record<string, TimestampUnit> = { s: 's', ms: 'ms', ns: 'ns' };

export const scriptType: TaskType<ScriptConfig> = {
  type: 'script',
  scheduler: 'main',
  shape: 'list',
  section: 'script_task',
  parse(raw, base, problems: ConfigProblem[]) {
    const f = fields(raw, problems, '');
    if (!f.has('command') || f.str('command').trim() === '') f.problem('command', 'is required');
    const command = f.str('command');
    if (command.trim() !== '') {
      try {
        parseCommandLine(command, () => '');
      } catch (err) {
        f.problem('command', (err as Error).message);
      }
    }
    const unitText = f.str('timestamp_unit', { default: 's' });
    const offset = f.durationMs('time_offset', { default: 0, min: 0 });
    return {
      ...base,
      command,
      userEnv: f.stringMap('user_env'),
      username: f.str('username'),
      timestampUnit: UNITS[unitText === '' ? 's' : unitText] ?? 'ms',
      timeOffsetMs: offset === 0 ? DEFAULT_TIME_OFFSET_MS : offset,
      workDir: f.str('work_dir'),
    };
  },
  create: (config) => new ScriptTask(config),
};
