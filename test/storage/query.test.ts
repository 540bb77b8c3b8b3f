/**
 * The query API on both stores with prepared spans: every filter operator (span and trace lists),
 * retention clamping at each boundary, keyset paging without gaps or repeats while spans keep arriving,
 * trace detail in waterfall order, field options, aggregations, 400s naming the bad field, 404 for an
 * unknown application, and partitions dropped by retention.
 */
import test, { type ExecutionContext } from 'ava';
import { edgeStatusOf } from '../../services/common/errors.ts';
import { createHttpServer } from '../../services/common/http.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { connectionOptions, CopyPool } from '../../services/common/store/copy.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';
import { storageRoutes } from '../../services/storage/api.ts';
import { DAY_MS, listPartitions } from '../../services/storage/partitions.ts';
import { QueryTimeoutError, withTimeout } from '../../services/storage/query.ts';
import { Retention } from '../../services/storage/retention.ts';
import { retentionTimeRange } from '../../services/storage/time-range.ts';
import { freshDatabase, storeContract } from '../helpers/store.ts';
import { addApp, APP, BIZ, MIN_US, span, writePath } from './helpers.ts';

const NOW_MS = Date.now();
const T0 = (NOW_MS - 30 * 60_000) * 1000;

/** Four spans in three traces, with attributes of every type. */
function dataset() {
  return [
    span({ trace: 'T1', id: 's1', service: 'api', name: 'GET /a', kind: 2, start: T0, duration: 1_000, attributes: { 'http.method': 'GET', 'http.status_code': 200, tag: 'alpha' } }),
    span({ trace: 'T1', id: 's2', parent: 's1', service: 'db', name: 'SELECT', kind: 3, start: T0 + 100, duration: 5_000, error: true, attributes: { 'db.system': 'mysql', rows: 10, tag: '' } }),
    span({ trace: 'T2', id: 's3', service: 'api', name: 'POST /b', kind: 2, start: T0 + 1_000, duration: 20_000, attributes: { 'http.method': 'POST', 'http.status_code': 500, tag: 'beta-x' } }),
    span({ trace: 'T3', id: 's4', service: 'worker', name: 'consume', kind: 5, start: T0 + 2_000, duration: 300, attributes: { 'messaging.system': 'kafka' } }),
  ];
}

interface Api {
  get(path: string): Promise<{ status: number; body: Record<string, unknown> }>;
  post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

async function api(t: ExecutionContext, store: Store, now: () => number = Date.now): Promise<Api> {
  const retention = new Retention({ db: store, defaultDays: 7, ttlMs: 0, now });
  const http = createHttpServer({
    port: 0,
    registry: createRegistry(),
    logger: silentLogger,
    health: () => ({ ok: true }),
    routes: storageRoutes({ store, timeoutMs: 5_000, retention, maxPageSize: 100, maxTraceSpans: 1_000, maxMetricPoints: 10_000, now }),
  });
  await http.start();
  t.teardown(() => http.stop());
  const base = `http://127.0.0.1:${http.port()}`;
  const call = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return {
    get: (path) => call(path),
    post: (path, body) => call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  };
}

const ids = (body: Record<string, unknown>, key = 'span_id'): string[] => (body.items as Record<string, unknown>[]).map((i) => i[key] as string).sort();
const SPANS = `/api/v1/apps/${BIZ}/${APP}/spans`;
const TRACES = `/api/v1/apps/${BIZ}/${APP}/traces`;

const SPAN_CASES: [string, unknown[], string[]][] = [
  ['equal (one of the values)', [{ key: 'span_name', operator: 'equal', value: ['GET /a', 'SELECT'] }], ['s1', 's2']],
  ['equal with group_relation and', [{ key: 'span_name', operator: 'equal', value: ['GET /a', 'SELECT'], options: { group_relation: 'and' } }], []],
  ['not_equal', [{ key: 'resource.service.name', operator: 'not_equal', value: ['api'] }], ['s2', 's4']],
  ['not_equal with "" also needs the field', [{ key: 'attributes.tag', operator: 'not_equal', value: [''] }], ['s1', 's3']],
  ['exists on a column', [{ key: 'parent_span_id', operator: 'exists', value: [] }], ['s2']],
  ['exists on an attribute', [{ key: 'attributes.http.method', operator: 'exists', value: [] }], ['s1', 's3']],
  ['not exists', [{ key: 'attributes.http.method', operator: 'not exists', value: [] }], ['s2', 's4']],
  ['between (upper bound excluded)', [{ key: 'elapsed_time', operator: 'between', value: [1000, 5000] }], ['s1']],
  ['like (contains)', [{ key: 'span_name', operator: 'like', value: ['GET'] }], ['s1']],
  ['like with is_wildcard', [{ key: 'span_name', operator: 'like', value: ['P*T /?'], options: { is_wildcard: true } }], ['s3']],
  ['not_like', [{ key: 'span_name', operator: 'not_like', value: ['GET'] }], ['s2', 's3', 's4']],
  ['gt', [{ key: 'elapsed_time', operator: 'gt', value: [1000] }], ['s2', 's3']],
  ['gte', [{ key: 'elapsed_time', operator: 'gte', value: ['1000'] }], ['s1', 's2', 's3']],
  ['lt', [{ key: 'elapsed_time', operator: 'lt', value: [1000] }], ['s4']],
  ['lte', [{ key: 'elapsed_time', operator: 'lte', value: [1000] }], ['s1', 's4']],
  ['the duration alias', [{ key: 'duration', operator: 'gt', value: [10000] }], ['s3']],
  ['equal on a number attribute given as a string', [{ key: 'attributes.http.status_code', operator: 'equal', value: ['200'] }], ['s1']],
  ['gt on an attribute', [{ key: 'attributes.http.status_code', operator: 'gt', value: [300] }], ['s3']],
  ['between on an attribute', [{ key: 'attributes.rows', operator: 'between', value: [10, 11] }], ['s2']],
  ['like on an attribute', [{ key: 'attributes.tag', operator: 'like', value: ['beta'] }], ['s3']],
  ['not_like on an attribute (missing ones match)', [{ key: 'attributes.tag', operator: 'not_like', value: ['a'] }], ['s2', 's4']],
  ['status.code', [{ key: 'status.code', operator: 'equal', value: [2] }], ['s2']],
  ['resource key', [{ key: 'resource.bk.instance.id', operator: 'equal', value: ['i1'] }], ['s1', 's2', 's3', 's4']],
  ['filters are AND-ed', [{ key: 'resource.service.name', operator: 'equal', value: ['api'] }, { key: 'kind', operator: 'equal', value: [2] }, { key: 'elapsed_time', operator: 'lt', value: [5000] }], ['s1']],
  ['or groups', [{ or: [{ key: 'span_name', operator: 'equal', value: ['GET /a'] }, { key: 'kind', operator: 'equal', value: [5] }] }], ['s1', 's4']],
  ['and inside or', [{ or: [{ and: [{ key: 'kind', operator: 'equal', value: [2] }, { key: 'attributes.http.method', operator: 'equal', value: ['POST'] }] }, { key: 'span_id', operator: 'equal', value: ['s4'] }] }], ['s3', 's4']],
];

storeContract('span list: every filter operator', async (t, store) => {
  await addApp(store);
  await writePath(store).write(dataset());
  const a = await api(t, store);
  for (const [title, filters, expected] of SPAN_CASES) {
    const r = await a.post(SPANS, { filters });
    t.is(r.status, 200, `${title}: ${JSON.stringify(r.body)}`);
    t.deepEqual(ids(r.body), expected, title);
  }
  // GET with filters as JSON in the query string
  const q = encodeURIComponent(JSON.stringify([{ key: 'span_name', operator: 'equal', value: ['consume'] }]));
  t.deepEqual(ids((await a.get(`${SPANS}?filters=${q}`)).body), ['s4']);
});

storeContract('trace list: the reference fields, trace filters and span fields through the trace\'s spans', async (t, store) => {
  await addApp(store);
  await writePath(store).write(dataset());
  const a = await api(t, store);
  const all = await a.get(TRACES);
  t.is(all.status, 200);
  const t1 = (all.body.items as Record<string, unknown>[]).find((i) => i.trace_id === 'T1');
  t.like(t1, {
    biz_id: BIZ, app_name: APP, trace_id: 'T1', span_count: 2, service_count: 2, hierarchy_count: 2, error: true, error_count: 1,
    min_start_time: T0, max_end_time: T0 + 5_100, trace_duration: 5_100, span_max_duration: 5_000, span_min_duration: 1_000,
    root_service: 'api', root_service_span_id: 's1', root_service_span_name: 'GET /a', root_service_status_code: 200, root_service_category: 'http',
    root_service_kind: 2, root_span_id: 's1', root_span_name: 'GET /a', root_span_service: 'api', root_span_kind: 2,
    category_statistics: { http: 1, rpc: 0, db: 1, messaging: 0, async_backend: 0, other: 0 },
    kind_statistics: { unspecified: 0, interval: 0, sync: 2, async: 0 },
  });
  const cases: [string, unknown[], string[]][] = [
    ['root_service equal', [{ key: 'root_service', operator: 'equal', value: ['api'] }], ['T1', 'T2']],
    ['logic error', [{ key: 'error', operator: 'logic', value: [] }], ['T1']],
    ['duration alias', [{ key: 'duration', operator: 'gte', value: [5100] }], ['T1', 'T2']],
    ['attribute through spans', [{ key: 'attributes.db.system', operator: 'exists', value: [] }], ['T1']],
    ['span field through spans', [{ key: 'span_name', operator: 'equal', value: ['consume'] }], ['T3']],
    ['resource through spans', [{ key: 'resource.service.name', operator: 'equal', value: ['worker'] }], ['T3']],
    ['root_service_status_code', [{ key: 'root_service_status_code', operator: 'gte', value: [500] }], ['T2']],
    ['not exists on a nullable field', [{ key: 'root_service', operator: 'not exists', value: [] }], []],
  ];
  for (const [title, filters, expected] of cases) {
    const r = await a.post(TRACES, { filters });
    t.is(r.status, 200, `${title}: ${JSON.stringify(r.body)}`);
    t.deepEqual(ids(r.body, 'trace_id'), expected, title);
  }
});

storeContract('trace detail: every span in waterfall order; by id without the application', async (t, store) => {
  await addApp(store);
  const t0 = T0;
  // children listed before parents, siblings out of order
  await writePath(store).write([
    span({ trace: 'W', id: 'c2', parent: 'b', start: t0 + 300, duration: 10 }),
    span({ trace: 'W', id: 'c1', parent: 'b', start: t0 + 200, duration: 10 }),
    span({ trace: 'W', id: 'b', parent: 'a', start: t0 + 100, duration: 500 }),
    span({ trace: 'W', id: 'd', parent: 'a', start: t0 + 700, duration: 10 }),
    span({ trace: 'W', id: 'a', start: t0, duration: 1_000 }),
  ]);
  const a = await api(t, store);
  for (const path of [`${TRACES}/W`, '/api/v1/traces/W']) {
    const r = await a.get(path);
    t.is(r.status, 200);
    const spans = r.body.spans as { span_id: string; depth: number; attributes: unknown }[];
    t.deepEqual(spans.map((s) => `${'  '.repeat(s.depth)}${s.span_id}`), ['a', '  b', '    c1', '    c2', '  d']);
    t.deepEqual(spans[0]?.attributes, {});
    t.like(r.body.summary, { span_count: 5, hierarchy_count: 3, root_span_id: 'a' });
    t.false(r.body.truncated);
  }
  t.is((await a.get('/api/v1/traces/nope')).status, 404);
});

storeContract('field options, aggregations (RED per service and endpoint, time buckets)', async (t, store) => {
  await addApp(store);
  await writePath(store).write(dataset());
  const a = await api(t, store);
  const opts = await a.post(`/api/v1/apps/${BIZ}/${APP}/options`, { fields: ['resource.service.name', 'attributes.http.method', 'kind'] });
  t.is(opts.status, 200);
  t.deepEqual((opts.body.options as Record<string, unknown>)['resource.service.name'], [{ value: 'api', count: 2 }, { value: 'db', count: 1 }, { value: 'worker', count: 1 }]);
  t.deepEqual((opts.body.options as Record<string, unknown>)['attributes.http.method'], [{ value: 'GET', count: 1 }, { value: 'POST', count: 1 }]);
  const traceOpts = await a.get(`/api/v1/apps/${BIZ}/${APP}/options?mode=trace&fields=root_service`);
  t.deepEqual((traceOpts.body.options as Record<string, unknown>).root_service, [{ value: 'api', count: 2 }, { value: 'worker', count: 1 }]);

  const red = await a.post(`/api/v1/apps/${BIZ}/${APP}/aggregate`, { metrics: ['count', 'error_rate', 'avg', 'min', 'max', 'p50', 'p90', 'p99', 'error_count'], group_by: ['resource.service.name', 'span_name'] });
  t.is(red.status, 200, JSON.stringify(red.body));
  t.deepEqual(red.body.groups, [
    { 'resource.service.name': 'api', span_name: 'GET /a', count: 1, error_rate: 0, avg: 1000, min: 1000, max: 1000, p50: 1000, p90: 1000, p99: 1000, error_count: 0 },
    { 'resource.service.name': 'api', span_name: 'POST /b', count: 1, error_rate: 0, avg: 20000, min: 20000, max: 20000, p50: 20000, p90: 20000, p99: 20000, error_count: 0 },
    { 'resource.service.name': 'db', span_name: 'SELECT', count: 1, error_rate: 1, avg: 5000, min: 5000, max: 5000, p50: 5000, p90: 5000, p99: 5000, error_count: 1 },
    { 'resource.service.name': 'worker', span_name: 'consume', count: 1, error_rate: 0, avg: 300, min: 300, max: 300, p50: 300, p90: 300, p99: 300, error_count: 0 },
  ]);
  const byTime = await a.post(`/api/v1/apps/${BIZ}/${APP}/aggregate`, { metrics: ['count', 'p50'], interval: 3600, filters: [{ key: 'resource.service.name', operator: 'equal', value: ['api'] }] });
  const groups = byTime.body.groups as { time: number; count: number; p50: number }[];
  t.is(groups.reduce((n, g) => n + g.count, 0), 2);
  for (const g of groups) t.is(g.time % 3_600_000, 0, 'buckets start on the interval');
});

storeContract('400 naming the bad field or parameter, 404 for an unknown application', async (t, store) => {
  await addApp(store);
  const a = await api(t, store);
  const bad: [unknown, RegExp][] = [
    [[{ key: 'nope', operator: 'equal', value: ['x'] }], /filter "nope": unknown field/],
    [[{ key: 'span_name', operator: 'matches', value: ['x'] }], /filter "span_name": unsupported operator "matches"/],
    [[{ key: 'elapsed_time', operator: 'gt', value: ['fast'] }], /filter "elapsed_time": "fast" is not a number/],
    [[{ key: 'attributes.http.status_code', operator: 'lt', value: ['x'] }], /filter "attributes.http.status_code": "x" is not a number/],
    [[{ key: 'elapsed_time', operator: 'between', value: [1] }], /filter "elapsed_time": between needs two values/],
    [[{ key: 'span_name', operator: 'equal', value: [] }], /filter "span_name": equal needs at least one value/],
    [[{ operator: 'equal', value: [] }], /filters\[0\]\.key must be a non-empty string/],
    ['[', /filters must be JSON/],
  ];
  for (const [filters, message] of bad) {
    const r = await a.post(SPANS, { filters });
    t.is(r.status, 400, JSON.stringify(filters));
    t.regex(String(r.body.error), message);
  }
  t.regex(String((await a.get(`${SPANS}?limit=0`)).body.error), /^limit must be an integer from 1 to 100/);
  t.regex(String((await a.get(`${SPANS}?start_time=yesterday`)).body.error), /^start_time must be an integer/);
  t.regex(String((await a.get(`${SPANS}?sort=colour`)).body.error), /sort "colour": expected|unknown field "colour"/);
  t.regex(String((await a.get(`${SPANS}?cursor=zzz`)).body.error), /^cursor is not one this listing returned/);
  t.regex(String((await a.post(`/api/v1/apps/${BIZ}/${APP}/aggregate`, { metrics: ['median'] })).body.error), /^metrics: unknown "median"/);
  t.regex(String((await a.get('/api/v1/metrics/query')).body.error), /^name: the metric name is required/);
  t.regex(String((await a.get('/api/v1/metrics/query?name=x&match=%3D%3D')).body.error), /^match "==": expected/);
  const unknown = await a.get(`/api/v1/apps/${BIZ}/ghost/spans`);
  t.is(unknown.status, 404);
  t.regex(String(unknown.body.error), /no application ghost in business 2/);
  // every per-application route, GET and POST alike: a 404 naming the application, never an empty 200
  for (const [method, path] of [['get', 'traces'], ['post', 'traces'], ['post', 'spans'], ['get', 'traces/T1'], ['get', 'options?fields=span_name'], ['post', 'aggregate']] as const) {
    const r = method === 'get' ? await a.get(`/api/v1/apps/${BIZ}/ghost/${path}`) : await a.post(`/api/v1/apps/${BIZ}/ghost/${path}`, {});
    t.is(r.status, 404, `${method} ${path}`);
    t.deepEqual(r.body, { error: 'no application ghost in business 2', code: 'not_found' }, `${method} ${path}`);
  }
  await store.query('DELETE FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2', [BIZ, APP]);
  t.is((await a.get(`${SPANS}`)).status, 404, 'a deleted application is unknown at once (this API reads the registry with ttlMs 0)');
});

test('retention clamping: get_retention_time_range at each boundary', (t) => {
  const now = 1_800_000_000_000; // ms
  const nowS = now / 1000;
  const day = 86_400;
  const r = (start: number | undefined, end: number | undefined) => retentionTimeRange(7, start, end, now);
  t.deepEqual(r(undefined, undefined), { startMs: (nowS - 7 * day) * 1000, endMs: (nowS + 5) * 1000 }, 'no range: the whole retention, end padded 5 s');
  t.deepEqual(r(0, 0), r(undefined, undefined), '0 counts as absent');
  t.deepEqual(r(nowS - 3600, nowS + 3600), { startMs: (nowS - 3600) * 1000, endMs: now }, 'an end in the future becomes now');
  t.deepEqual(r(nowS - 3600, nowS - 60), { startMs: (nowS - 3600) * 1000, endMs: (nowS - 60) * 1000 }, 'inside the retention: unchanged');
  t.deepEqual(r(nowS - 30 * day, nowS - 60), { startMs: (nowS - 7 * day) * 1000, endMs: (nowS - 60) * 1000 }, 'start before the earliest: the earliest');
  t.deepEqual(r(nowS - 7 * day, nowS - 7 * day), { startMs: (nowS - 7 * day) * 1000, endMs: (nowS - 7 * day) * 1000 }, 'end exactly at the earliest is inside');
  t.deepEqual(r(nowS - 30 * day, nowS - 10 * day), { startMs: (nowS - 17 * day) * 1000, endMs: (nowS - 10 * day) * 1000 }, 'end before the earliest: one retention back from the end');
  t.deepEqual(r(nowS - 12 * day, nowS - 10 * day), { startMs: (nowS - 12 * day) * 1000, endMs: (nowS - 10 * day) * 1000 }, '…unless the start is later');
  t.deepEqual(r(undefined, nowS - 10 * day), { startMs: (nowS - 7 * day) * 1000, endMs: (nowS - 10 * day) * 1000 }, 'no start, old end: the start defaults to the earliest first, so the range is empty (as the reference)');
  t.deepEqual(retentionTimeRange(1, nowS - 2 * day, undefined, now + 999), { startMs: (nowS - day) * 1000, endMs: (nowS + 5) * 1000 }, 'ms of now are dropped');
});

storeContract('retention clamping through the API: the app\'s retention decides what is visible', async (t, store) => {
  await addApp(store, APP, 2);
  await writePath(store).write(dataset());
  // a day later the spans (30 min old) are inside 2 days; three days later they are not
  const later = await api(t, store, () => NOW_MS + DAY_MS);
  const r1 = await later.get(SPANS);
  t.is((r1.body.items as unknown[]).length, 4);
  t.is(r1.body.start_time, Math.floor((NOW_MS + DAY_MS) / 1000) * 1000 - 2 * DAY_MS);
  const muchLater = await api(t, store, () => NOW_MS + 3 * DAY_MS);
  t.deepEqual((await muchLater.get(SPANS)).body.items, []);
  // an explicit range wholly before the retention keeps its end and at most one retention before it
  // (the reference's case 1): rows not dropped yet are still answered
  const old = await muchLater.get(`${SPANS}?start_time=${Math.floor(T0 / 1e6) - 60}&end_time=${Math.floor(T0 / 1e6) + 60}`);
  t.is(old.status, 200);
  t.is((old.body.items as unknown[]).length, 4);
  t.is(old.body.end_time, (Math.floor(T0 / 1e6) + 60) * 1000);
  t.is((await muchLater.get(`${TRACES}/T1`)).status, 404, 'trace detail is clamped too');
});

storeContract('paging: every span exactly once, in order, while newer and older spans keep arriving', async (t, store) => {
  await addApp(store);
  const path = writePath(store);
  const base = T0 - 10 * MIN_US;
  // 120 spans, end times in groups of 5 equal values (ties broken by trace id and span id)
  await path.write(Array.from({ length: 120 }, (_, i) => span({ trace: `P${i % 7}`, id: `p${String(i).padStart(3, '0')}`, start: base + Math.floor(i / 5) * 1_000, duration: 100 + (i % 3) })));
  const a = await api(t, store);
  for (const sort of [undefined, 'elapsed_time asc', '-span_id']) {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    let extra = 0;
    do {
      const r = await a.post(SPANS, { limit: 7, ...(cursor ? { cursor } : {}), ...(sort ? { sort } : {}) });
      t.is(r.status, 200, JSON.stringify(r.body));
      seen.push(...(r.body.items as { span_id: string }[]).map((i) => i.span_id));
      cursor = r.body.next_cursor as string | undefined;
      pages++;
      // spans arriving between pages: newer and older than anything listed so far
      await path.write([
        span({ trace: 'new', id: `n${sort ?? ''}${extra++}`, start: base + 200 * 1_000, duration: 1 }),
        span({ trace: 'old', id: `o${sort ?? ''}${extra++}`, start: base - 200 * 1_000, duration: 1 }),
      ]);
    } while (cursor);
    const originals = seen.filter((id) => id.startsWith('p'));
    t.is(originals.length, 120, `${sort ?? 'default'}: every original span`);
    t.is(new Set(seen).size, seen.length, `${sort ?? 'default'}: no repeats`);
    t.true(pages >= 18);
  }
  // trace list pages too
  const traceIds: string[] = [];
  let cursor: string | undefined;
  do {
    const r = await a.post(TRACES, { limit: 2, ...(cursor ? { cursor } : {}) });
    traceIds.push(...(r.body.items as { trace_id: string }[]).map((i) => i.trace_id));
    cursor = r.body.next_cursor as string | undefined;
  } while (cursor);
  t.deepEqual([...traceIds].sort(), ['P0', 'P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'new', 'old']);
});

storeContract('partitions: created ahead, dropped whole past each application\'s retention and the metric retention', async (t, store) => {
  await addApp(store, 'short', 1);
  await addApp(store, APP, 7);
  const path = writePath(store);
  await path.write([span({ app: 'short', trace: 'S', id: 'x', start: T0 }), span({ trace: 'L', id: 'y', start: T0 })]);
  await path.retention.refresh(true);
  const made = await path.partitions.maintain(NOW_MS, path.retention.classes(), 2, { metricRetentionDays: 3, eventRetentionDays: 5 });
  t.true(made.created.length > 0, 'partitions for the next days');
  const names = (await listPartitions(store)).map((p) => p.name);
  const today = new Date(NOW_MS).toISOString().slice(0, 10).replace(/-/g, '');
  const ahead = new Date(NOW_MS + 2 * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '');
  for (const n of [`storage_span_r1_p${today}`, `storage_span_r7_p${ahead}`, `storage_trace_r7_p${ahead}`, `storage_metric_sample_p${ahead}`, `storage_event_p${ahead}`]) t.true(names.includes(n), n);

  // three days later: the 1-day class's partitions of today go, the 7-day class keeps them; samples (1 day) go, events (5 days) stay
  const later = await path.partitions.maintain(NOW_MS + 3 * DAY_MS, path.retention.classes(), 2, { metricRetentionDays: 1, eventRetentionDays: 5 });
  t.true(later.dropped.includes(`storage_span_r1_p${today}`));
  t.true(later.dropped.includes(`storage_trace_r1_p${today}`));
  t.true(later.dropped.includes(`storage_metric_sample_p${today}`));
  t.false(later.dropped.includes(`storage_span_r7_p${today}`));
  t.false(later.dropped.includes(`storage_event_p${today}`));
  const { rows } = await store.query<{ app_name: string }>('SELECT app_name FROM storage_span ORDER BY app_name');
  t.deepEqual(rows.map((r) => r.app_name), [APP], 'the short-retention app\'s spans went with their partition');
  const traces = await store.query<{ trace_id: string }>('SELECT trace_id FROM storage_trace');
  t.deepEqual(traces.rows.map((r) => r.trace_id), ['L']);
  // a write needing a dropped partition's day again recreates it (the writer ensures partitions)
  await path.write([span({ app: 'short', trace: 'S2', id: 'z', start: T0 + 1 })]);
  t.is((await store.query('SELECT 1 FROM storage_span WHERE trace_id = $1', ['S2'])).rowCount, 1);
});

test.serial('PostgreSQL: a statement past STORAGE_QUERY_TIMEOUT_MS is cancelled and answered 503', async (t) => {
  const url = await freshDatabase(t);
  const reader = new CopyPool(url, { logger: silentLogger, statementTimeoutMs: 200 });
  await reader.start();
  t.teardown(() => reader.stop());
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 1 });
  t.teardown(() => store.stop());
  const started = performance.now();
  const err = await t.throwsAsync(withTimeout({ store, reader, timeoutMs: 200 }, (db) => db.query('SELECT pg_sleep(5)')), { instanceOf: QueryTimeoutError });
  t.true(performance.now() - started < 3_000);
  t.regex(err.message, /took longer than 200 ms \(STORAGE_QUERY_TIMEOUT_MS\)/);
  t.is(edgeStatusOf(err).http, 503);
  t.is((await withTimeout({ store, reader, timeoutMs: 200 }, (db) => db.query<{ one: number }>('SELECT 1 AS one'))).rows[0]?.one, 1);
});

test.serial('PostgreSQL: the query pool\'s connections carry their settings (work_mem, jit); a setting that is not a plain name and value is refused', async (t) => {
  const url = await freshDatabase(t);
  const reader = new CopyPool(url, { logger: silentLogger, statementTimeoutMs: 1_500, settings: { work_mem: '48MB', jit: 'off' } });
  await reader.start();
  t.teardown(() => reader.stop());
  const show = async (name: string): Promise<string> => (await reader.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name] as string;
  t.is(await show('work_mem'), '48MB');
  t.is(await show('jit'), 'off');
  t.is(await show('statement_timeout'), '1500ms');
  t.is(connectionOptions({}), undefined);
  t.is(connectionOptions({ work_mem: '64MB', jit: 'off' }), '-c work_mem=64MB -c jit=off');
  t.throws(() => connectionOptions({ work_mem: '64MB -c log_statement=all' }), { message: /work_mem=64MB -c log_statement=all is not a plain name and value/ });
  t.throws(() => connectionOptions({ 'work_mem;': '1' }), { message: /not a plain name/ });
});

storeContract('paging on a field with NULLs: every trace once, NULLs last in both directions', async (t, store) => {
  await addApp(store);
  // 9 traces: 6 with an entry service (a server span), 3 without (client spans only: root_service NULL)
  await writePath(store).write(Array.from({ length: 9 }, (_, i) => span({ trace: `N${i}`, id: `n${i}`, kind: i % 3 === 0 ? 3 : 2, service: `svc-${i % 2}`, start: T0 + i * 1_000 })));
  const a = await api(t, store);
  for (const sort of ['root_service asc', 'root_service desc']) {
    const seen: (string | null)[] = [];
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const r = await a.post(TRACES, { limit: 2, sort, ...(cursor ? { cursor } : {}) });
      t.is(r.status, 200, JSON.stringify(r.body));
      for (const item of r.body.items as { trace_id: string; root_service: string | null }[]) {
        ids.push(item.trace_id);
        seen.push(item.root_service);
      }
      cursor = r.body.next_cursor as string | undefined;
    } while (cursor);
    t.deepEqual([...ids].sort(), Array.from({ length: 9 }, (_, i) => `N${i}`), sort);
    t.deepEqual(seen.slice(6), [null, null, null], `${sort}: NULLs last`);
    const named = seen.slice(0, 6) as string[];
    t.deepEqual(named, [...named].sort((x, y) => (sort.endsWith('asc') ? x.localeCompare(y) : y.localeCompare(x))), sort);
  }
});
