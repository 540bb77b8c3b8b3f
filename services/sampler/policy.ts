/**
 * An application's sampling policy: the tail-sampling flow's config (a `bkdata_flow` row's `config`, as
 * `bkstream flows submit … tail_sampling` stores it) turned into the Flink job's `user_args` exactly as the
 * orchestrator builds them (README: How it works), then read as the job reads them: Gson's coercions,
 * the conditions grouped into OR-of-AND groups, and the checks that keep the job from starting.
 */

/** One element of `sampling_conditions`, as Gson binds it (absent fields are null). */
export interface Condition {
  readonly condition: string | null;
  readonly key: string | null;
  readonly method: string | null;
  readonly value: readonly (string | null)[] | null;
}

export interface SamplingPolicy {
  /** Minutes a buffered span lives after it was written (`trace_session_gap_min`). */
  readonly sessionGapMin: number;
  /** Minutes from a trace's first sight after which its tag is forgotten (`trace_mark_timeout_min`). */
  readonly markTimeoutMin: number;
  /** Traces whose md5(trace id) mod 100 is below this are sampled (`random_sampling_ratio`). */
  readonly randomSamplingRatio: number;
  /** Spans a trace emits at most (`max_span_count`). */
  readonly maxSpanCount: number;
  /** OR of AND groups. */
  readonly groups: readonly (readonly Condition[])[];
}

/** The job's defaults where the flow config says nothing (the orchestrator's, reference §6.5). */
export const USER_ARGS_DEFAULTS = { traceSessionGapMin: 30, traceMarkTimeoutMin: 1440, maxSpanCount: 10_000, randomSamplingRatio: 100 } as const;

/**
 * The Flink job's `user_args` for a tail-sampling flow's config, without the table ids (which name BKData
 * result tables and mean nothing here): the orchestrator's mapping, key for key.
 */
export function userArgsOf(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const or = (key: string, fallback: unknown): unknown => (config[key] === undefined || config[key] === null ? fallback : config[key]);
  return {
    trace_session_gap_min: or('tail_trace_session_gap_min', USER_ARGS_DEFAULTS.traceSessionGapMin),
    trace_mark_timeout_min: or('tail_trace_mark_timeout', USER_ARGS_DEFAULTS.traceMarkTimeoutMin),
    sampling_conditions: or('tail_conditions', []),
    max_span_count: USER_ARGS_DEFAULTS.maxSpanCount,
    random_sampling_ratio: or('tail_percentage', USER_ARGS_DEFAULTS.randomSamplingRatio),
  };
}

/** `user_args` the job would refuse to start with; `problems` say why, each naming its key. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('; '));
    this.problems = problems;
  }
}

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;

/** Gson's int/long: a number (or numeric text) with an integral value in range; absent is 0. */
function gsonInteger(args: Record<string, unknown>, key: string, long: boolean, problems: string[]): number {
  const v = args[key];
  if (v === undefined || v === null) return 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  const [min, max] = long ? [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER] : [INT_MIN, INT_MAX];
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(`${key}: expected ${long ? 'a long' : 'an int'}, got ${JSON.stringify(v)}`);
    return 0;
  }
  return n;
}

/** Gson's String: text, or a number's or boolean's text; absent or null is null. */
function gsonString(v: unknown, at: string, problems: string[]): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  problems.push(`${at}: expected a string, got ${JSON.stringify(v)}`);
  return null;
}

function conditionOf(raw: unknown, at: string, problems: string[]): Condition | undefined {
  if (raw === null || raw === undefined) {
    problems.push(`${at} is null`);
    return undefined;
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${at}: expected an object, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  const c = raw as Record<string, unknown>;
  let value: (string | null)[] | null = null;
  if (Array.isArray(c.value)) value = c.value.map((v: unknown, i) => gsonString(v, `${at}.value[${i}]`, problems));
  else if (c.value !== undefined && c.value !== null) problems.push(`${at}.value: expected a list, got ${JSON.stringify(c.value)}`);
  return {
    condition: gsonString(c.condition, `${at}.condition`, problems),
    key: gsonString(c.key, `${at}.key`, problems),
    method: gsonString(c.method, `${at}.method`, problems),
    value,
  };
}

/**
 * Conditions grouped as the job groups them: the first opens the first group whatever its connector;
 * `or` (any case) opens a new group and is itself dropped; `and` (any case) joins the last group.
 */
export function groupConditions(conditions: readonly Condition[], problems: string[]): Condition[][] {
  const groups: Condition[][] = [];
  conditions.forEach((c, i) => {
    const connector = c.condition;
    if (i === 0) groups.push([c]);
    else if (connector === null) problems.push(`sampling_conditions[${i}].condition is missing (and/or)`);
    else if (/^or$/i.test(connector)) groups.push([]);
    else if (/^and$/i.test(connector)) groups[groups.length - 1]?.push(c);
    else problems.push(`sampling_conditions[${i}].condition: unsupported connector ${JSON.stringify(connector)}`);
  });
  return groups;
}

/** Reads `user_args` as the job does; throws {@link PolicyError} where the job would not start. */
export function parseUserArgs(raw: unknown): SamplingPolicy {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new PolicyError([`user_args: expected an object, got ${JSON.stringify(raw)}`]);
  const args = raw as Record<string, unknown>;
  const problems: string[] = [];
  const sessionGapMin = gsonInteger(args, 'trace_session_gap_min', false, problems);
  const markTimeoutMin = gsonInteger(args, 'trace_mark_timeout_min', false, problems);
  const randomSamplingRatio = gsonInteger(args, 'random_sampling_ratio', false, problems);
  const maxSpanCount = gsonInteger(args, 'max_span_count', true, problems);
  const list = args.sampling_conditions;
  let groups: Condition[][] = [];
  if (list === undefined || list === null) problems.push('sampling_conditions is missing');
  else if (!Array.isArray(list)) problems.push(`sampling_conditions: expected a list, got ${JSON.stringify(list)}`);
  else {
    const conditions = list.map((c: unknown, i) => conditionOf(c, `sampling_conditions[${i}]`, problems));
    if (conditions.every((c): c is Condition => c !== undefined)) groups = groupConditions(conditions, problems);
  }
  if (problems.length === 0) {
    // Flink refuses a state TTL that is not positive.
    if (sessionGapMin <= 0) problems.push(`trace_session_gap_min must be positive (a state TTL), got ${sessionGapMin}`);
    if (markTimeoutMin <= 0) problems.push(`trace_mark_timeout_min must be positive (a state TTL), got ${markTimeoutMin}`);
  }
  if (problems.length > 0) throw new PolicyError(problems);
  return { sessionGapMin, markTimeoutMin, randomSamplingRatio, maxSpanCount, groups };
}
