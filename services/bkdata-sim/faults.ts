/**
 * Fault injection of bkdata-sim: latency, error rate per API family (HTTP 5xx, `result=false` or HTTP
 * 4xx), outage windows (connections reset, or 503) and cleans that never reach `running`. Pure: the
 * server asks {@link decide} what to do with each call.
 */

/** The BKData API families the orchestrator guards with one breaker each. */
export const FAMILIES = ['access', 'databus', 'auth', 'dataflow', 'resourcecenter'] as const;
export type Family = (typeof FAMILIES)[number];

export type ErrorMode = 'http_5xx' | 'result_false' | 'http_4xx';
export type OutageMode = 'reset' | '503';

export interface OutageWindow {
  /** ms since the epoch, inclusive. */
  startAt: number;
  /** ms since the epoch, exclusive. */
  endAt: number;
}

export interface FaultSettings {
  latencyMs: number;
  latencyJitterMs: number;
  /** Share of calls failed on purpose, per family. */
  errorRates: Record<Family, number>;
  /** Share of calls carried out whose answer is then lost (connection reset), per family. */
  lostAnswerRates: Record<Family, number>;
  errorMode: ErrorMode;
  outages: OutageWindow[];
  outageMode: OutageMode;
  /** Result table id patterns (`*` wildcards) of cleans that stay `starting`. */
  stuckCleans: string[];
}

export type FaultDecision =
  | { kind: 'pass'; delayMs: number }
  | { kind: 'error'; mode: ErrorMode; delayMs: number }
  | { kind: 'lose_answer'; delayMs: number }
  | { kind: 'outage'; mode: OutageMode };

export function defaultFaults(): FaultSettings {
  return {
    latencyMs: 0,
    latencyJitterMs: 0,
    errorRates: { access: 0, databus: 0, auth: 0, dataflow: 0, resourcecenter: 0 },
    lostAnswerRates: { access: 0, databus: 0, auth: 0, dataflow: 0, resourcecenter: 0 },
    errorMode: 'http_5xx',
    outages: [],
    outageMode: 'reset',
    stuckCleans: [],
  };
}

/** Whether `now` falls in an outage window. */
export function inOutage(settings: FaultSettings, now: number): boolean {
  return settings.outages.some((w) => now >= w.startAt && now < w.endAt);
}

/** What to do with one API call of `family` arriving at `now`. */
export function decide(settings: FaultSettings, family: Family, now: number, random: () => number = Math.random): FaultDecision {
  if (inOutage(settings, now)) return { kind: 'outage', mode: settings.outageMode };
  const delayMs = settings.latencyMs + (settings.latencyJitterMs > 0 ? Math.round(random() * settings.latencyJitterMs) : 0);
  const rate = settings.errorRates[family];
  if (rate > 0 && random() < rate) return { kind: 'error', mode: settings.errorMode, delayMs };
  const lost = settings.lostAnswerRates[family];
  if (lost > 0 && random() < lost) return { kind: 'lose_answer', delayMs };
  return { kind: 'pass', delayMs };
}

/** Drops windows that ended before `now` (keeps the list short when outages are added at run time). */
export function pruneOutages(settings: FaultSettings, now: number): void {
  settings.outages = settings.outages.filter((w) => w.endAt > now);
}

/** `*` matches any run of characters; everything else is literal. */
export function matchesPattern(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(value);
}

export function isStuck(settings: FaultSettings, resultTableId: string): boolean {
  return settings.stuckCleans.some((p) => matchesPattern(p, resultTableId));
}

/** The family an API path belongs to (`/v3/<family>/...`), or undefined. */
export function familyOf(path: string): Family | undefined {
  const m = /^\/v3\/([a-z]+)\//.exec(`${path}/`);
  const f = m?.[1];
  return (FAMILIES as readonly string[]).includes(f ?? '') ? (f as Family) : undefined;
}

/**
 * Applies a partial update from the admin API (snake_case keys, as an operator would type them);
 * returns the problems found, changing nothing when there are any.
 */
export function updateFaults(settings: FaultSettings, patch: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const next: FaultSettings = structuredClone(settings);
  const nonNegative = (key: string, v: unknown): number | undefined => {
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
    problems.push(`${key} must be a number >= 0`);
    return undefined;
  };
  const rate = (key: string, v: unknown): number | undefined => {
    if (typeof v === 'number' && v >= 0 && v <= 1) return v;
    problems.push(`${key} must be a number in [0, 1]`);
    return undefined;
  };
  /** `{family: rate}` into `target`. */
  const familyRates = (key: string, v: unknown, target: Record<Family, number>): void => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push(`${key} must be an object {family: rate}`);
      return;
    }
    for (const [f, r] of Object.entries(v)) {
      if (!(FAMILIES as readonly string[]).includes(f)) problems.push(`${key}.${f}: unknown family (${FAMILIES.join(', ')})`);
      else target[f as Family] = rate(`${key}.${f}`, r) ?? target[f as Family];
    }
  };
  for (const [key, v] of Object.entries(patch)) {
    switch (key) {
      case 'latency_ms':
        next.latencyMs = nonNegative(key, v) ?? next.latencyMs;
        break;
      case 'latency_jitter_ms':
        next.latencyJitterMs = nonNegative(key, v) ?? next.latencyJitterMs;
        break;
      case 'error_rate': {
        const r = rate(key, v);
        if (r !== undefined) for (const f of FAMILIES) next.errorRates[f] = r;
        break;
      }
      case 'family_error_rates':
        familyRates(key, v, next.errorRates);
        break;
      case 'lost_answer_rates':
        familyRates(key, v, next.lostAnswerRates);
        break;
      case 'error_mode':
        if (v === 'http_5xx' || v === 'result_false' || v === 'http_4xx') next.errorMode = v;
        else problems.push(`${key} must be http_5xx, result_false or http_4xx`);
        break;
      case 'outage_mode':
        if (v === 'reset' || v === '503') next.outageMode = v;
        else problems.push(`${key} must be reset or 503`);
        break;
      case 'stuck_cleans':
        if (Array.isArray(v) && v.every((p) => typeof p === 'string')) next.stuckCleans = v;
        else problems.push(`${key} must be a list of result table id patterns`);
        break;
      default:
        problems.push(`${key}: unknown setting`);
    }
  }
  if (problems.length === 0) Object.assign(settings, next);
  return problems;
}

/** The settings as the admin API shows them. */
export function describeFaults(settings: FaultSettings, now: number): Record<string, unknown> {
  return {
    latency_ms: settings.latencyMs,
    latency_jitter_ms: settings.latencyJitterMs,
    family_error_rates: settings.errorRates,
    lost_answer_rates: settings.lostAnswerRates,
    error_mode: settings.errorMode,
    outage_mode: settings.outageMode,
    in_outage: inOutage(settings, now),
    outages: settings.outages.map((w) => ({ start_at: new Date(w.startAt).toISOString(), end_at: new Date(w.endAt).toISOString() })),
    stuck_cleans: settings.stuckCleans,
  };
}
