/**
 * flink/tail-sampling/conformance.json — the Flink job's behaviour, case by case, also run by the job's
 * own Maven tests — through the native sampler's policy reader and state machine: the same kept spans
 * (id and output time, in order), the same rejected spans, the same user_args that do not start.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseUserArgs, PolicyError } from '../../services/sampler/policy.ts';
import { StateBudget, TraceTable } from '../../services/sampler/sampler.ts';
import { docObject, parseSpanInfo } from './json-document.ts';

interface SpanIn {
  at_ms: number;
  span_id: string;
  trace?: string;
  dt_ms?: number;
  span?: Record<string, unknown>;
  span_info?: string;
}
interface Kept {
  span_id: string;
  time_ms: number;
}
interface Case {
  name: string;
  errata: string;
  user_args?: Record<string, unknown>;
  config_error?: boolean;
  spans?: SpanIn[];
  kept?: Kept[];
  rejected?: string[];
  rows?: unknown[];
}
interface Conformance {
  base_ms: number;
  traces: Record<string, { id: string; md5_mod_100: number }>;
  defaults: { user_args: Record<string, unknown>; trace: string; span: Record<string, unknown> };
  cases: Case[];
}

export const CONFORMANCE_FILE = resolve(import.meta.dirname, '../../flink/tail-sampling/conformance.json');
const text = readFileSync(CONFORMANCE_FILE, 'utf8');
/** Numbers whose text JavaScript would not write back the same (the Java side would see other text). */
const oddNumbers: string[] = [];
const file = JSON.parse(text, ((_key: string, value: unknown, context?: { source?: string }) => {
  if (typeof value === 'number' && context?.source !== undefined && String(value) !== context.source) oddNumbers.push(context.source);
  return value;
}) as (this: unknown, key: string, value: unknown) => unknown) as Conformance;

test('the file has at least 40 cases with unique names, covering user_args, conditions, matching, state and rows', (t) => {
  t.true(file.cases.length >= 40, `${file.cases.length} cases`);
  t.is(new Set(file.cases.map((c) => c.name)).size, file.cases.length);
  t.deepEqual([...new Set(file.cases.map((c) => c.errata))].sort(), ['1 conditions', '1 matching', '1 output row', '1 per-trace state', '1 user_args']);
  t.deepEqual(oddNumbers, [], 'numbers in span objects are written as JavaScript writes them (use span_info text for others)');
});

function merged(base: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

for (const c of file.cases) {
  test(`conformance: ${c.name}`, (t) => {
    const args = merged(file.defaults.user_args, c.user_args);
    if (c.config_error) {
      t.throws(() => parseUserArgs(args), { instanceOf: PolicyError });
      return;
    }
    const policy = parseUserArgs(args);
    const table = new TraceTable<string>(policy, new StateBudget({ maxTraces: 1_000_000, maxBufferedBytes: 1e12 }));
    const kept: Kept[] = [];
    const rejected: string[] = [];
    for (const s of c.spans ?? []) {
      const traceId = (file.traces[s.trace ?? file.defaults.trace] as { id: string }).id;
      const now = file.base_ms + s.at_ms;
      const document = s.span_info !== undefined
        ? () => parseSpanInfo(s.span_info as string)
        : () => docObject(merged({ ...file.defaults.span, trace_id: traceId, span_id: s.span_id }, s.span));
      const outcome = table.offer(
        { traceId, spanId: s.span_id, time: s.dt_ms === undefined ? now : file.base_ms + s.dt_ms, payload: s.span_id, bytes: 1, document },
        now,
        (e) => kept.push({ span_id: e.spanId, time_ms: e.time - file.base_ms }),
      );
      if (outcome === 'rejected') rejected.push(s.span_id);
    }
    t.deepEqual(kept, c.kept ?? []);
    t.deepEqual(rejected, c.rejected ?? []);
  });
}
