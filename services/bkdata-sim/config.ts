/**
 * Configuration of bkdata-sim, the local stand-in for the BKData (bk-base) REST API (README,
 * Configuration). Every fault can also be changed at run time through the admin API.
 * {@link validateSim} checks what no single field can.
 */
import { bool, int, list, num, oneOf, str, type Config, type Spec } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';
import { FAMILIES, type Family } from './faults.ts';

function familyRate(item: string): void {
  const m = /^([a-z]+)=(.+)$/.exec(item);
  if (!m || !(FAMILIES as readonly string[]).includes(m[1] as string)) {
    throw new Error(`must be <family>=<rate> with family one of ${FAMILIES.join(', ')}`);
  }
  const rate = Number(m[2]);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new Error('rate must be a number in [0, 1]');
}

function window(item: string): void {
  const m = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(item);
  if (!m || Number(m[1]) >= Number(m[2])) throw new Error('must be <startSeconds>-<endSeconds> with start < end');
}

export const simSpec = {
  host: str({ env: 'BKDATA_SIM_HOST', default: '127.0.0.1', doc: 'interface the HTTP API listens on' }),
  port: int({ env: 'BKDATA_SIM_PORT', default: 8090, min: 0, max: 65535, doc: 'HTTP port of the BKData API, `/admin/*`, `/metrics`, `/healthz` (0 = any free port)' }),
  persist: oneOf({
    env: 'BKDATA_SIM_PERSIST',
    values: ['memory', 'store'] as const,
    default: 'memory',
    doc: 'where raw data, cleans, flows, grants and resource sets live: process memory, or the store (table bkdata_sim_object)',
  }),
  cleanStartDelayMs: int({
    env: 'BKDATA_SIM_CLEAN_START_DELAY_MS',
    default: 1_000,
    min: 0,
    doc: 'time a started clean stays `starting` before it is `running`, ms',
  }),
  flowStartDelayMs: int({ env: 'BKDATA_SIM_FLOW_START_DELAY_MS', default: 0, min: 0, doc: 'time a started dataflow stays `starting` before it is `running`, ms' }),
  flowStopDelayMs: int({ env: 'BKDATA_SIM_FLOW_STOP_DELAY_MS', default: 0, min: 0, doc: 'time a stopped dataflow stays `stopping` before it is `no-start`, ms' }),
  latencyMs: int({ env: 'BKDATA_SIM_LATENCY_MS', default: 0, min: 0, doc: 'added to every API answer, ms' }),
  latencyJitterMs: int({ env: 'BKDATA_SIM_LATENCY_JITTER_MS', default: 0, min: 0, doc: 'uniform extra latency in [0, jitter], ms' }),
  errorRate: num({ env: 'BKDATA_SIM_ERROR_RATE', default: 0, min: 0, max: 1, doc: 'share of API calls answered with an injected error (every family)' }),
  familyErrorRates: list({
    env: 'BKDATA_SIM_FAMILY_ERROR_RATES',
    default: [],
    item: familyRate,
    doc: `per-family override of the error rate: \`databus=0.2,auth=1\` (families: ${FAMILIES.join(', ')})`,
  }),
  lostAnswerRates: list({
    env: 'BKDATA_SIM_LOST_ANSWER_RATES',
    default: [],
    item: familyRate,
    doc: 'per-family share of calls carried out whose answer is then lost (connection reset): `databus=0.05`',
  }),
  errorMode: oneOf({
    env: 'BKDATA_SIM_ERROR_MODE',
    values: ['http_5xx', 'result_false', 'http_4xx'] as const,
    default: 'http_5xx',
    doc: 'what an injected error looks like: HTTP 503, HTTP 200 with `result=false`, or HTTP 400',
  }),
  outages: list({
    env: 'BKDATA_SIM_OUTAGES',
    default: [],
    item: window,
    doc: 'outage windows in seconds after start, `10-40,90-100`: every API call fails (see BKDATA_SIM_OUTAGE_MODE)',
  }),
  outageMode: oneOf({
    env: 'BKDATA_SIM_OUTAGE_MODE',
    values: ['reset', '503'] as const,
    default: 'reset',
    doc: 'how the API is down during an outage: connections reset, or HTTP 503',
  }),
  stuckCleans: list({
    env: 'BKDATA_SIM_STUCK_CLEANS',
    default: [],
    doc: 'result table ids (`*` wildcards) of cleans that never leave `starting`',
  }),
  runCleans: bool({
    env: 'BKDATA_SIM_RUN_CLEANS',
    default: true,
    doc: 'run the cleans: a running clean consumes its raw data topic on the bus and applies its ETL (README, Cleans)',
  }),
  rawTopic: str({
    env: 'BKDATA_SIM_RAW_TOPIC',
    default: '0bkmonitor_{data_id}0',
    pattern: /\{data_id\}/,
    doc: 'topic of a raw data without a Kafka access config (a GSE data id such as the trace data id): `{data_id}` is its id',
  }),
  resultsMax: int({ env: 'BKDATA_SIM_RESULTS_MAX', default: 1_000, min: 1, max: 1_000_000, doc: 'result-table rows kept per clean (the newest), served by `GET /admin/results/{result_table_id}`' }),
  cleanPollMs: int({ env: 'BKDATA_SIM_CLEAN_POLL_MS', default: 500, min: 10, doc: 'how often the cleans\' statuses are looked at to start or stop their consumers, ms' }),
  callLogMax: int({ env: 'BKDATA_SIM_CALL_LOG_MAX', default: 10_000, min: 0, doc: 'most recent API calls kept for `GET /admin/calls?log=1` (memory bound)' }),
} satisfies Spec;

export type SimConfig = Config<typeof simSpec>;

/** The families a `<family>=<rate>` list names more than once. */
function repeatedFamilies(items: readonly string[]): string[] {
  const families = items.map((item) => item.split('=')[0] as string);
  return [...new Set(families.filter((f, i) => families.indexOf(f) !== i))];
}

/** Cross-field checks, run once every field parsed: every contradiction named by the key to change. */
export function validateSim(c: SimConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const field of ['familyErrorRates', 'lostAnswerRates'] as const) {
    const repeated = repeatedFamilies(c[field]);
    if (repeated.length > 0) problems.push({ key: simSpec[field].env, message: `names ${repeated.join(', ')} more than once` });
  }
  // A family all of whose calls fail on purpose never reaches the handler: no answer of it can be lost.
  const errorRates: Record<string, number> = { ...Object.fromEntries(FAMILIES.map((f) => [f, c.errorRate])), ...parseFamilyRates(c.familyErrorRates) };
  const unreachable = Object.entries(parseFamilyRates(c.lostAnswerRates)).filter(([f, rate]) => rate > 0 && errorRates[f] === 1).map(([f]) => f);
  if (unreachable.length > 0) {
    problems.push({ key: simSpec.lostAnswerRates.env, message: `${unreachable.join(', ')}: every call fails with an injected error first (error rate 1), so none can lose its answer` });
  }
  return problems;
}

/** `databus=0.2` items as a map. */
export function parseFamilyRates(items: readonly string[]): Partial<Record<Family, number>> {
  const out: Partial<Record<Family, number>> = {};
  for (const item of items) {
    const [family, rate] = item.split('=') as [Family, string];
    out[family] = Number(rate);
  }
  return out;
}

/** `10-40` items as absolute windows after `startedAt`. */
export function parseWindows(items: readonly string[], startedAt: number): { startAt: number; endAt: number }[] {
  return items.map((item) => {
    const [a, b] = item.split('-').map(Number) as [number, number];
    return { startAt: startedAt + a * 1000, endAt: startedAt + b * 1000 };
  });
}
