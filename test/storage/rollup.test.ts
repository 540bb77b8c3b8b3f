/**
 * Per-minute RED rollups on both stores: what the writer merges equals the rollups recomputed from the
 * stored spans (spans arriving in pieces, replayed), aggregations answered from them match the exact
 * ones over the spans (counts, errors, avg, min, max exactly; percentiles within 2.2 %) for aligned and
 * unaligned ranges, time buckets and filters, requests they cannot answer read the spans, and their day
 * partitions go with the spans'.
 */
import test, { type ExecutionContext } from 'ava';
import { createHttpServer } from '../../services/common/http.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { Span } from '../../services/common/records.ts';
import { CopyPool } from '../../services/common/store/copy.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';
import { storageRoutes } from '../../services/storage/api.ts';
import { DAY_MS, listPartitions, PartitionManager } from '../../services/storage/partitions.ts';
import { aggregate, mergeHistogramText, type AggMetric, type AggregateRequest, type Scope } from '../../services/storage/query.ts';
import { Retention } from '../../services/storage/retention.ts';
import { bucketValue, foldRollups, histogramQuantile, LATENCY_BOUNDS, LATENCY_RELATIVE_ERROR, latencyBucket, rollupQuery } from '../../services/storage/rollup.ts';
import { SpanWriter } from '../../services/storage/span-writer.ts';
import { freshDatabase, storeContract } from '../helpers/store.ts';
import { addApp, APP, BIZ, span, writePath } from './helpers.ts';

const NOW_MS = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
const T0 = (NOW_MS - 40 * 60_000) * 1000;

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    return (s >>> 8) % n;
  };
}

/** Spans over 40 minutes: 3 services × 4 names × 2 kinds, log-spread durations (some 0), 5 % errors. */
function dataset(count: number): Span[] {
  const r = rng(5);
  return Array.from({ length: count }, (_, i) => {
    const duration = r(40) === 0 ? 0 : Math.round(10 * 10 ** (r(6_000) / 1_000));
    return span({
      trace: `t${i >> 2}`, id: `s${i}`, service: `svc-${r(3)}`, name: `op-${r(4)}`, kind: 2 + r(2),
      start: T0 + r(40 * 60) * 1_000_000 + r(1_000_000), duration, error: r(20) === 0,
    });
  });
}

const MINUTE_COLS = 'bk_biz_id, app_name, retention_days, service_name, span_name, kind, minute, span_count, error_count, elapsed_sum::text AS elapsed_sum, elapsed_min, elapsed_max, buckets, counts';

async function writeInPieces(store: Store, spans: Span[]): Promise<void> {
  const path = writePath(store);
  // in pieces, a trace's spans apart, with replays of earlier pieces
  for (let i = 0; i < spans.length; i += 300) {
    await path.write(spans.slice(i, i + 300));
    if (i > 0) await path.write(spans.slice(i - 150, i + 50));
  }
}

storeContract('rollups merged by the writer are the rollups of the stored spans, replays included', async (t, store) => {
  await addApp(store);
  const spans = dataset(1_500);
  await writeInPieces(store, spans);
  const merged = await store.query(`SELECT ${MINUTE_COLS} FROM storage_span_minute ORDER BY minute, service_name, span_name, kind`);
  const recomputed = await store.query(`SELECT ${MINUTE_COLS} FROM (${rollupQuery('true')}) r ORDER BY minute, service_name, span_name, kind`);
  t.true(merged.rows.length > 100, `${merged.rows.length} minute rows`);
  t.deepEqual(merged.rows, recomputed.rows);
  const total = await store.query<{ n: number }>('SELECT sum(span_count)::int AS n FROM storage_span_minute');
  t.is(total.rows[0]?.n, spans.length, 'every span counted once');
});

const METRICS: AggMetric[] = ['count', 'error_count', 'error_rate', 'avg', 'min', 'max', 'p50', 'p90', 'p99'];

function close(t: ExecutionContext, rollup: Record<string, unknown>[], exact: Record<string, unknown>[], what: string): void {
  t.is(rollup.length, exact.length, what);
  rollup.forEach((g, i) => {
    const e = exact[i] as Record<string, unknown>;
    for (const [k, v] of Object.entries(e)) {
      if (k === 'p50' || k === 'p90' || k === 'p99') {
        const want = v as number | null;
        const got = g[k] as number | null;
        if (want === null) t.is(got, null, `${what} ${k}`);
        else t.true(got !== null && Math.abs(got - want) <= LATENCY_RELATIVE_ERROR * Math.abs(want) + 1e-9, `${what} group ${i} ${k}: ${got} vs ${want}`);
      } else {
        t.deepEqual(g[k], v, `${what} group ${i} ${k}`);
      }
    }
  });
}

storeContract('aggregations from the rollups match the spans\' (exact counts, errors, avg, min, max; percentiles within 2.2 %)', async (t, store) => {
  await addApp(store);
  await writeInPieces(store, dataset(2_000));
  const ctx = { store, timeoutMs: 10_000 };
  const scope = (startMs: number, endMs: number): Scope => ({ bkBizId: BIZ, appName: APP, startMs, endMs });
  const cases: [string, Scope, Omit<AggregateRequest, 'metrics' | 'limit'>][] = [
    ['RED by service and name, whole minutes', scope(NOW_MS - 45 * 60_000, NOW_MS - 1), { groupBy: ['resource.service.name', 'span_name'], intervalS: 0, filters: [] }],
    ['unaligned range (partial minutes at both ends)', scope(NOW_MS - 37 * 60_000 + 17_123, NOW_MS - 9 * 60_000 - 4_000), { groupBy: ['resource.service.name', 'span_name'], intervalS: 0, filters: [] }],
    ['no groups', scope(NOW_MS - 30 * 60_000 + 500, NOW_MS), { groupBy: [], intervalS: 0, filters: [] }],
    ['per minute', scope(NOW_MS - 20 * 60_000 + 30_000, NOW_MS), { groupBy: ['kind'], intervalS: 60, filters: [] }],
    ['five-minute buckets, a filter on the service and kind', scope(NOW_MS - 41 * 60_000, NOW_MS), {
      groupBy: ['span_name'], intervalS: 300,
      filters: [{ key: 'resource.service.name', operator: 'not_equal', value: ['svc-1'], options: {} }, { or: [{ key: 'kind', operator: 'equal', value: [2], options: {} }, { key: 'span_name', operator: 'like', value: ['op-3'], options: {} }] }],
    }],
    ['a range with no spans', scope(NOW_MS - 90 * 60_000, NOW_MS - 80 * 60_000), { groupBy: [], intervalS: 0, filters: [] }],
  ];
  for (const [name, sc, req] of cases) {
    const fromRollup = await aggregate(ctx, sc, { ...req, metrics: METRICS, limit: 1_000 });
    const fromSpans = await aggregate(ctx, sc, { ...req, metrics: METRICS, limit: 1_000, exact: true });
    t.is(fromRollup.source, 'rollup', name);
    t.is(fromSpans.source, 'spans', name);
    t.true(fromSpans.groups.length > 0, name);
    close(t, fromRollup.groups, fromSpans.groups, name);
  }
  // what the rollups cannot answer reads the spans
  const whole = scope(NOW_MS - 45 * 60_000, NOW_MS);
  for (const req of [
    { groupBy: ['attributes.http.method'], intervalS: 0, filters: [] },
    { groupBy: [], intervalS: 30, filters: [] },
    { groupBy: [], intervalS: 0, filters: [{ key: 'elapsed_time', operator: 'gt' as const, value: [100], options: {} }] },
    { groupBy: [], intervalS: 0, filters: [{ key: 'resource.bk.instance.id', operator: 'equal' as const, value: ['i1'], options: {} }] },
  ]) {
    t.is((await aggregate(ctx, whole, { ...req, metrics: ['count'], limit: 10 })).source, 'spans', JSON.stringify(req));
  }
  t.is((await aggregate(ctx, scope(NOW_MS - 30_000, NOW_MS), { groupBy: [], intervalS: 0, filters: [], metrics: ['count'], limit: 10 })).source, 'spans', 'no whole minute in the range');
  // limits and truncation as on the spans
  const few = await aggregate(ctx, whole, { groupBy: ['resource.service.name', 'span_name'], intervalS: 0, filters: [], metrics: ['count'], limit: 5 });
  const fewExact = await aggregate(ctx, whole, { groupBy: ['resource.service.name', 'span_name'], intervalS: 0, filters: [], metrics: ['count'], limit: 5, exact: true });
  t.deepEqual(few.groups, fewExact.groups);
  t.true(few.truncated && fewExact.truncated);
});

storeContract('the API says which was read, and exact=true reads the spans', async (t, store) => {
  await addApp(store);
  await writeInPieces(store, dataset(300));
  const retention = new Retention({ db: store, defaultDays: 7, ttlMs: 0 });
  const http = createHttpServer({
    port: 0, registry: createRegistry(), logger: silentLogger, health: () => ({ ok: true }),
    routes: storageRoutes({ store, timeoutMs: 5_000, retention, maxPageSize: 100, maxTraceSpans: 1_000, maxMetricPoints: 10_000 }),
  });
  await http.start();
  t.teardown(() => http.stop());
  const post = async (body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`http://127.0.0.1:${http.port()}/api/v1/apps/${BIZ}/${APP}/aggregate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    t.is(res.status, 200);
    return (await res.json()) as Record<string, unknown>;
  };
  const range = { start_time: Math.floor(NOW_MS / 1000) - 3600, end_time: Math.floor(NOW_MS / 1000) };
  const red = { ...range, metrics: ['count', 'error_rate', 'p99'], group_by: ['resource.service.name', 'span_name'] };
  const viaRollup = await post(red);
  const viaSpans = await post({ ...red, exact: true });
  t.is(viaRollup.source, 'rollup');
  t.is(viaSpans.source, 'spans');
  close(t, viaRollup.groups as Record<string, unknown>[], viaSpans.groups as Record<string, unknown>[], 'RED');
});

storeContract('rollup partitions are created with the spans\' and dropped whole with them past retention', async (t, store) => {
  await addApp(store, 'short', 1);
  const path = writePath(store);
  await path.write([span({ app: 'short', trace: 'S', id: 'x', start: T0 }), span({ trace: 'L', id: 'y', start: T0 })]);
  await path.retention.refresh(true);
  await path.partitions.maintain(NOW_MS, path.retention.classes(), 2, { metricRetentionDays: 3, eventRetentionDays: 5 });
  const today = new Date(NOW_MS).toISOString().slice(0, 10).replace(/-/g, '');
  const ahead = new Date(NOW_MS + 2 * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '');
  const names = (await listPartitions(store)).map((p) => p.name);
  for (const n of [`storage_span_minute_r1_p${today}`, `storage_span_minute_r7_p${ahead}`]) t.true(names.includes(n), n);
  const later = await path.partitions.maintain(NOW_MS + 3 * DAY_MS, path.retention.classes(), 2, { metricRetentionDays: 1, eventRetentionDays: 5 });
  t.true(later.dropped.includes(`storage_span_minute_r1_p${today}`));
  t.false(later.dropped.includes(`storage_span_minute_r7_p${today}`));
  const { rows } = await store.query<{ app_name: string }>('SELECT DISTINCT app_name FROM storage_span_minute');
  t.deepEqual(rows.map((r) => r.app_name), [APP], 'the short-retention app\'s rollups went with their partition');
});

test('histogram percentiles: within the relative error of percentile_cont, exact at the ends and for one value', (t) => {
  const r = rng(9);
  const bucketOf = (e: number): number => (e > 0 ? Math.floor(Math.log(e) * (16 / Math.LN2)) + 1 : e < 0 ? -(Math.floor(Math.log(-e) * (16 / Math.LN2)) + 1) : 0);
  for (let round = 0; round < 200; round++) {
    const values = Array.from({ length: 1 + r(300) }, () => (r(30) === 0 ? 0 : Math.round(10 ** (r(9_000) / 1_000)))).sort((a, b) => a - b);
    const counts = new Map<number, number>();
    for (const v of values) counts.set(bucketOf(v), (counts.get(bucketOf(v)) ?? 0) + 1);
    const buckets = [...counts.keys()].sort((a, b) => a - b);
    const h = { buckets, counts: buckets.map((b) => counts.get(b) as number), count: values.length, min: values[0] as number, max: values.at(-1) as number };
    for (const q of [0, 0.5, 0.9, 0.99, 1]) {
      const at = q * (values.length - 1);
      const exact = (values[Math.floor(at)] as number) + (at - Math.floor(at)) * ((values[Math.ceil(at)] as number) - (values[Math.floor(at)] as number));
      const got = histogramQuantile(h, q) as number;
      t.true(Math.abs(got - exact) <= LATENCY_RELATIVE_ERROR * exact + 1e-9, `round ${round} q ${q}: ${got} vs ${exact}`);
      if (q === 0) t.is(got, h.min);
      if (q === 1) t.is(got, h.max);
    }
  }
  t.is(histogramQuantile({ buckets: [bucketOf(1234)], counts: [1], count: 1, min: 1234, max: 1234 }, 0.99), 1234);
  t.is(histogramQuantile({ buckets: [], counts: [], count: 0, min: 0, max: 0 }, 0.5), null);
  for (const e of [1, 2, 3, 1000, 1024, 65_536, 123_456_789]) t.true(Math.abs(bucketValue(bucketOf(e)) - e) <= LATENCY_RELATIVE_ERROR * e * (1 + 1e-12), String(e));
});

test.serial('PostgreSQL: rollup pieces the COPY path appends count in aggregations at once, and fold into the minutes they would have merged into', async (t) => {
  const url = await freshDatabase(t);
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 2 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  await addApp(store);
  const copy = new CopyPool(url, { logger: silentLogger });
  await copy.start();
  t.teardown(() => copy.stop());
  const path = writePath(store, { writer: new SpanWriter({ store, copy }) });
  const spans = dataset(1_200);
  for (let i = 0; i < spans.length; i += 200) await path.write(spans.slice(i, i + 200));
  const pending = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_span_minute_pending');
  t.true((pending.rows[0]?.n ?? 0) > 100, 'the COPY path appended pieces');
  const ctx = { store, timeoutMs: 10_000 };
  const sc: Scope = { bkBizId: BIZ, appName: APP, startMs: NOW_MS - 45 * 60_000 + 7_000, endMs: NOW_MS };
  const req = { groupBy: ['resource.service.name', 'span_name'], intervalS: 0, filters: [], metrics: METRICS, limit: 1_000 };
  const exact = await aggregate(ctx, sc, { ...req, exact: true });
  const before = await aggregate(ctx, sc, req);
  t.is(before.source, 'rollup');
  close(t, before.groups, exact.groups, 'before the fold');
  // a piece of a day whose partition is gone (dropped past retention) is dropped by the fold
  await store.query(`INSERT INTO storage_span_minute_pending SELECT bk_biz_id, app_name, retention_days, minute - 40 * 86400000000, service_name, span_name, kind,
    span_count, error_count, elapsed_sum, elapsed_min, elapsed_max, buckets, counts FROM storage_span_minute_pending LIMIT 1`);
  const parts = (await listPartitions(store)).filter((p) => p.kind === 'minute');
  const folded = await foldRollups(store, parts.map((p) => ({ retentionDays: p.retentionDays as number, day: p.day })));
  t.is(folded.dropped, 1);
  t.true(folded.minutes > 100 && folded.pieces > folded.minutes / 2, JSON.stringify(folded));
  t.is((await store.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_span_minute_pending')).rows[0]?.n, 0);
  const merged = await store.query(`SELECT ${MINUTE_COLS} FROM storage_span_minute ORDER BY minute, service_name, span_name, kind`);
  const recomputed = await store.query(`SELECT ${MINUTE_COLS} FROM (${rollupQuery('true')}) r ORDER BY minute, service_name, span_name, kind`);
  t.deepEqual(merged.rows, recomputed.rows, 'the minutes the writer would have merged');
  close(t, (await aggregate(ctx, sc, req)).groups, exact.groups, 'after the fold');
  const again = await foldRollups(store, parts.map((p) => ({ retentionDays: p.retentionDays as number, day: p.day })));
  t.deepEqual(again, { pieces: 0, dropped: 0, minutes: 0 });
});

storeContract('the fold merges pieces whose names a collation orders oddly (case, accents, emoji) into one row per key, over several folds', async (t, store) => {
  const day = Math.floor(NOW_MS / DAY_MS);
  await new PartitionManager(store).ensure([{ kind: 'minute', day, retentionDays: 7 }]);
  const minute = NOW_MS * 1000;
  const names = ['a', 'A', 'é', 'e', 'E\u0301', 'z', '😀', 'Ω'];
  const addPieces = async (count: number): Promise<void> => {
    for (const [i, name] of names.entries()) {
      await store.query(`INSERT INTO storage_span_minute_pending (bk_biz_id, app_name, retention_days, minute, service_name, span_name, kind,
        span_count, error_count, elapsed_sum, elapsed_min, elapsed_max, buckets, counts)
        VALUES ($1, $2, 7, $3, $4, $5, 2, $6, 0, $7, 10, 20, '{17,33}', $8::int[])`, [BIZ, APP, minute, name, names[names.length - 1 - i], count * 2, count * 30, [count, count]]);
    }
  };
  const parts = [{ retentionDays: 7, day }];
  await addPieces(1);
  await addPieces(2);
  t.is((await foldRollups(store, parts)).minutes, names.length);
  await addPieces(4);
  t.deepEqual(await foldRollups(store, parts), { pieces: names.length, dropped: 0, minutes: names.length });
  const { rows } = await store.query<{ service_name: string; span_name: string; span_count: number; counts: number[] }>(
    'SELECT service_name, span_name, span_count, counts FROM storage_span_minute ORDER BY service_name COLLATE "C"');
  t.deepEqual(rows.map((r) => r.service_name), [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
  for (const r of rows) {
    t.is(r.span_name, names[names.length - 1 - names.indexOf(r.service_name)] ?? '');
    t.is(r.span_count, 14, r.service_name);
    t.deepEqual(r.counts, [7, 7], r.service_name);
  }
});

test('histogram pieces as text (PostgreSQL\'s array_to_string, joined by string_agg) add up per bucket', (t) => {
  t.deepEqual(mergeHistogramText('3,5,9:1,2,1;5,9,10:4,1,1;-2:7;0:1'), { buckets: [-2, 0, 3, 5, 9, 10], counts: [7, 1, 1, 6, 2, 1] });
  t.deepEqual(mergeHistogramText('848:123456789;848:1'), { buckets: [848], counts: [123456790] });
  t.deepEqual(mergeHistogramText(':;7:2'), { buckets: [7], counts: [2] }, 'a piece without buckets adds nothing');
  t.deepEqual(mergeHistogramText(''), { buckets: [], counts: [] });
  for (const bad of ['a', '1,x:1', '1:1 ;2:2', '1,,2:1,1', '-:1']) t.throws(() => mergeHistogramText(bad), { message: /histogram text: a number expected/ }, bad);
  // the same as adding the arrays
  const pieces = Array.from({ length: 200 }, (_, i) => {
    const buckets = [...new Set(Array.from({ length: 1 + (i % 9) }, (_, k) => ((i * 37 + k * 101) % 300) - 20))].sort((a, b) => a - b);
    return { buckets, counts: buckets.map((_, k) => 1 + ((i + k) % 5)) };
  });
  const want = new Map<number, number>();
  for (const p of pieces) p.buckets.forEach((b, k) => want.set(b, (want.get(b) ?? 0) + (p.counts[k] as number)));
  const keys = [...want.keys()].sort((a, b) => a - b);
  t.deepEqual(mergeHistogramText(pieces.map((p) => `${p.buckets.join(',')}:${p.counts.join(',')}`).join(';')), { buckets: keys, counts: keys.map((b) => want.get(b) as number) });
});

storeContract('latency buckets: storage_latency_bucket and latencyBucket agree at every bound and either side of it', async (t, store) => {
  const values: number[] = [0, 1, -1, 2, -2, 3, 9_007_199_254_740_991, -9_007_199_254_740_991];
  for (const b of LATENCY_BOUNDS) values.push(b - 1, b, b + 1, -b);
  const { rows } = await store.query<{ e: string; b: number }>('SELECT e::text AS e, storage_latency_bucket(e) AS b FROM unnest($1::bigint[]) AS u(e)', [values]);
  t.is(rows.length, values.length);
  const wrong = rows.filter((r) => r.b !== latencyBucket(Number(r.e)));
  t.deepEqual(wrong, []);
  t.is(latencyBucket(1), 1);
  t.is(latencyBucket(2), 17, 'one doubling is 16 buckets');
  t.is(latencyBucket(-1_000), -latencyBucket(1_000));
});
