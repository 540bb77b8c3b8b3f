/**
 * The state machine's bounds and housekeeping (the conformance file covers its decisions): state expires
 * after its TTLs, the budget evicts the least recently written traces of any table, buffered payloads are
 * retained copies, a policy change keeps the state, clear() drops everything.
 */
import test from 'ava';
import type { DocObject } from '../../services/sampler/document.ts';
import { parseUserArgs } from '../../services/sampler/policy.ts';
import { bucketOf, rocksDbKeyOrder, StateBudget, TraceTable, type Emitted } from '../../services/sampler/sampler.ts';
import { docObject } from './json-document.ts';

const MIN = 60_000;
const policy = (over: Record<string, unknown> = {}) =>
  parseUserArgs({ trace_session_gap_min: 1, trace_mark_timeout_min: 2, max_span_count: 100, random_sampling_ratio: 0, sampling_conditions: [{ key: 'status.code', method: 'eq', value: ['2'] }], ...over });
const plain: DocObject = docObject({ status: { code: 0 } });
const error: DocObject = docObject({ status: { code: 2 } });

function offer<P>(table: TraceTable<P>, traceId: string, spanId: string, now: number, payload: P, doc = plain, bytes = 10): Emitted<P>[] {
  const out: Emitted<P>[] = [];
  table.offer({ traceId, spanId, time: now, payload, bytes, document: () => doc }, now, (e) => out.push(e));
  return out;
}

test('md5 buckets and RocksDB key order', (t) => {
  t.is(bucketOf('00050005000500050005000500050005'), 9);
  t.is(bucketOf('00960096009600960096009600960096'), 99);
  t.deepEqual(['b2', 'a10', 'a9', 'c', ''].sort(rocksDbKeyOrder), ['', 'c', 'a9', 'b2', 'a10']);
});

test('state is freed once all its TTLs passed, and the spans that expired unflushed are counted', (t) => {
  const budget = new StateBudget({ maxTraces: 100, maxBufferedBytes: 1e9 });
  const table = new TraceTable<string>(policy(), budget);
  offer(table, 't1', 's1', 0, 'x');
  offer(table, 't2', 's2', 30_000, 'y');
  t.is(budget.traces, 2);
  t.is(budget.bufferedSpans, 2);
  t.is(table.expire(2 * MIN - 1), 0, 'the tags live trace_mark_timeout_min after their write');
  t.is(table.expire(2 * MIN), 1);
  t.is(budget.traces, 1);
  t.is(table.expire(2 * MIN + 30_000), 1);
  t.is(budget.traces, 0);
  t.is(budget.bufferedSpans, 0);
  t.is(budget.bufferedBytes, 0);
});

test('spans past their buffer TTL are freed when the trace buffers again', (t) => {
  const budget = new StateBudget({ maxTraces: 100, maxBufferedBytes: 1e9 });
  const table = new TraceTable<string>(policy({ trace_mark_timeout_min: 60 }), budget);
  offer(table, 't1', 's1', 0, 'x');
  offer(table, 't1', 's2', MIN, 'y');
  t.is(budget.bufferedSpans, 1);
  t.is(table.expire(MIN), 1, 's1 expired unflushed');
});

test('the budget evicts the least recently written traces of any table', (t) => {
  const budget = new StateBudget({ maxTraces: 3, maxBufferedBytes: 25 });
  const a = new TraceTable<string>(policy(), budget);
  const b = new TraceTable<string>(policy(), budget);
  offer(a, 't1', 's1', 1, 'x');
  offer(b, 't2', 's2', 2, 'x');
  t.is(budget.bufferedBytes, 20);
  offer(a, 't3', 's3', 3, 'x');
  t.is(budget.evictedTraces, 1, 'over 25 bytes: t1 (the oldest write) goes');
  t.is(budget.evictedSpans, 1);
  t.is(a.size, 1);
  offer(b, 't2', 's4', 4, 'x', plain, 1);
  offer(a, 't5', 's5', 5, 'x', plain, 1);
  offer(b, 't6', 's6', 6, 'x', plain, 1);
  t.true(budget.traces <= 3);
  t.true(budget.bufferedBytes <= 25);
  t.is(a.size + b.size, budget.traces);
});

test('buffered payloads are what retain makes of them; a policy change keeps the state', (t) => {
  const budget = new StateBudget({ maxTraces: 100, maxBufferedBytes: 1e9 });
  const table = new TraceTable<Buffer>(policy(), budget, { retain: (p) => Buffer.from(p) });
  const shared = Buffer.from('span-1');
  offer(table, 't1', 's1', 0, shared);
  shared.write('XXXX');
  table.setPolicy(policy({ random_sampling_ratio: 0 }));
  const out = offer(table, 't1', 's2', 1_000, Buffer.from('span-2'), error);
  t.deepEqual(out.map((e) => e.payload.toString()), ['span-2', 'span-1']);
  t.is(table.clear(), 0);
  t.is(budget.traces, 0);
});

test('clear drops every trace and says how many buffered spans went with them', (t) => {
  const budget = new StateBudget({ maxTraces: 100, maxBufferedBytes: 1e9 });
  const table = new TraceTable<string>(policy(), budget);
  offer(table, 't1', 's1', 0, 'x');
  offer(table, 't1', 's2', 0, 'x');
  offer(table, 't2', 's3', 0, 'x');
  t.is(table.clear(), 3);
  t.is(budget.traces, 0);
  t.is(budget.bufferedBytes, 0);
});
