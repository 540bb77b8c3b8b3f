/**
 * The transcoder (span-copy.ts) against the path it replaces on PostgreSQL: for generated and mutated
 * SpanBatch records, the COPY row written from the Avro bytes holds the values of the row `spanRow` makes of
 * the span avsc decodes (text columns equal after COPY's unescaping, JSON columns equal as jsonb reads them:
 * last value of a key wins, key order aside), records avsc refuses are refused, and rows stored through
 * both paths on PostgreSQL are the same rows.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { CorruptRecordError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import type { Attributes, AttributeValue, Span } from '../../services/common/records.ts';
import { CopyPool } from '../../services/common/store/copy.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';
import { listPartitions } from '../../services/storage/partitions.ts';
import { foldRollups } from '../../services/storage/rollup.ts';
import { F, spanCopyDecoder, type SpanCopyBatch } from '../../services/storage/span-copy.ts';
import { clean, copyRowBody, SPAN_COPY_COLUMNS, spanRow } from '../../services/storage/span-rows.ts';
import { SpanWriter } from '../../services/storage/span-writer.ts';
import { freshDatabase } from '../helpers/store.ts';
import { addApp, writePath } from './helpers.ts';

const codec = codecFor('SpanBatch');
const decoder = spanCopyDecoder();
const NOW_US = Date.now() * 1000;

/** A seeded generator (LCG), so a failure names a reproducible case. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    return (s >>> 8) % n;
  };
}

const PIECES = ['a', 'Z', '0', ' ', '.', '"', '\\', '\t', '\n', '\r', '\u0000', '\u0001', '\u001f', '\u007f', 'é', '中文', '😀', '\ud800', '{}', ':', ',', '\\N', '\\.', 'http', 'null'];
const KEYS = ['http.method', 'http.request.method', 'db.system', 'messaging.system', 'messaging.destination', 'rpc.system', 'celery.action', 'celery.task_name', 'http.status_code', 'rpc.grpc.status_code', 'service.name', 'k', 'a.b', '0', '12', '__proto__', 'x\u0000y', 'x', 'y', 'é', ''];

function text(r: (n: number) => number, max = 6): string {
  let s = '';
  for (let i = r(max); i > 0; i--) s += PIECES[r(PIECES.length)];
  return s;
}

function scalar(r: (n: number) => number): AttributeValue {
  switch (r(12)) {
    case 0:
      return null;
    case 1:
      return r(2) === 0;
    case 2:
      return [0, 1, -1, 200, 9_007_199_254_740_990, -4_503_599_627_370_496, 1_700_000_000_000_000][r(7)] as number;
    case 3:
      return [0.5, -0, 1e21, 1e-7, -123.25, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3.141592653589793][r(9)] as number;
    case 4:
      return Buffer.from(text(r), 'utf8').subarray(0, r(8));
    case 5:
      return '';
    default:
      return text(r, 8);
  }
}

function attrs(r: (n: number) => number, max = 6): Attributes {
  const out: Attributes = {};
  for (let i = r(max); i > 0; i--) {
    const key = r(3) === 0 ? text(r, 3) : (KEYS[r(KEYS.length)] as string);
    const value = r(6) === 0 ? Array.from({ length: r(4) }, () => scalar(r) as null) : scalar(r);
    // '__proto__' as an own key (what avsc would write for such a map)
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function genSpan(r: (n: number) => number, i: number): Span {
  const start = NOW_US - r(3_600) * 1_000_000;
  const elapsed = [0, 1, 999, 123_456, -5][r(5)] as number;
  return {
    bk_biz_id: [2, -3, 0][r(3)] as number,
    app_name: r(4) === 0 ? text(r, 3) : 'shop',
    trace_id: `t${i}${text(r, 2)}`,
    span_id: `s${i}`,
    parent_span_id: r(2) === 0 ? '' : text(r, 3),
    span_name: text(r),
    kind: r(6),
    start_time: start,
    end_time: start + elapsed,
    elapsed_time: elapsed,
    status: { code: r(3), message: text(r, 3) },
    trace_state: text(r, 2),
    attributes: attrs(r, 8),
    resource: r(3) === 0 ? { ...attrs(r, 4), 'service.name': r(2) === 0 ? text(r, 3) : 7 } : { 'service.name': text(r, 3), ...attrs(r, 3) },
    events: Array.from({ length: r(3) }, () => ({ name: text(r, 3), timestamp: start + r(1000), attributes: attrs(r, 3) })),
    links: Array.from({ length: r(3) }, () => ({ trace_id: text(r, 2), span_id: text(r, 2), trace_state: text(r, 2), attributes: attrs(r, 3) })),
    client_ip: r(2) === 0 ? '' : '10.0.0.1',
  };
}

/** One COPY text field unescaped. */
function unescape(field: string): string {
  return field.replace(/\\(.)/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

/** JSON as jsonb keeps it: last value of a key, keys sorted. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, canonical(o[k])]));
  }
  return v;
}

const JSON_COLUMNS = new Set(['attributes', 'resource', 'events', 'links']);

/** A COPY row's values by column, JSON parsed. */
function values(line: string): Record<string, unknown> {
  const fields = line.split('\t');
  const out: Record<string, unknown> = {};
  SPAN_COPY_COLUMNS.slice(0, -1).forEach((c, i) => {
    const v = unescape(fields[i] as string);
    out[c] = JSON_COLUMNS.has(c) ? canonical(JSON.parse(v)) : v;
  });
  if (fields.length !== SPAN_COPY_COLUMNS.length - 1) out._fields = fields.length;
  return out;
}

function fastRows(batch: SpanCopyBatch): string[] {
  return Array.from({ length: batch.count }, (_, i) => batch.text.toString('utf8', batch.num(i, F.ROW_AT), batch.num(i, F.ROW_END)));
}

function slowRows(buf: Buffer): string[] {
  return codec.decode(buf).spans.map((s) => copyRowBody(spanRow(s, 0)));
}

/**
 * The rows of both paths, or the error of each. A map with a key `__proto__` whose value is bytes gives
 * the decoded object a Buffer for prototype, on which spanRow throws: the record is dead-lettered either
 * way (a decode error on this path, a handler error record by record on the other).
 */
function both(buf: Buffer): { fast: string[] | Error; slow: string[] | Error } {
  const attempt = (f: () => string[]): string[] | Error => {
    try {
      return f();
    } catch (err) {
      return err as Error;
    }
  };
  return { fast: attempt(() => fastRows(decoder.decode(buf))), slow: attempt(() => slowRows(buf)) };
}

test('generated spans: the transcoded row holds what spanRow makes of the decoded span', (t) => {
  const r = rng(7);
  let spans = 0;
  let refused = 0;
  for (let round = 0; round < 400; round++) {
    const batch = Array.from({ length: 1 + r(5) }, (_, i) => genSpan(r, round * 10 + i));
    const buf = codec.encode({ spans: batch });
    const { fast, slow } = both(buf);
    if (slow instanceof Error || fast instanceof Error) {
      t.is(String(fast), String(slow), `round ${round}: both refuse the record`);
      refused++;
      continue;
    }
    t.is(fast.length, slow.length);
    for (let i = 0; i < slow.length; i++) {
      const [f, s] = [values(fast[i] as string), values(slow[i] as string)];
      if (JSON.stringify(f) !== JSON.stringify(s)) t.deepEqual(f, s, `round ${round} span ${i}`);
    }
    spans += slow.length;
  }
  t.log(`${spans} spans, ${refused} records refused by both`);
  t.true(spans > 1_000);
});

test('apps, biz ids and times beside the rows are the decoded span\'s', (t) => {
  const r = rng(11);
  const batch = Array.from({ length: 20 }, (_, i) => ({ ...genSpan(r, i), attributes: {}, resource: {}, events: [], links: [] }));
  const view = decoder.decode(codec.encode({ spans: batch }));
  t.is(view.count, 20);
  batch.forEach((s, i) => {
    t.is(view.apps[view.num(i, F.APP)], s.app_name);
    t.like(view.facts(i), { bk_biz_id: s.bk_biz_id, app_name: clean(s.app_name), start_time: s.start_time, end_time: s.end_time, trace_id: clean(s.trace_id), span_id: clean(s.span_id) });
  });
});

/** The record with the bytes of `from` (same length) replaced by `to` everywhere after the header. */
function patch(buf: Buffer, from: string, to: string): Buffer {
  const out = Buffer.from(buf);
  const a = Buffer.from(from, 'utf8');
  const b = Buffer.from(to, 'latin1');
  for (let i = out.indexOf(a, 10); i >= 0; i = out.indexOf(a, i + 1)) b.copy(out, i);
  return out;
}

test('bytes no object can hold: duplicate keys (last wins), invalid UTF-8 (decoded as avsc decodes it)', (t) => {
  const span = genSpan(rng(3), 0);
  const base: Span = {
    ...span,
    span_name: 'name-QQ',
    attributes: { 'db.system': 'mysql', 'db.systeA': '', 'k.dupA': 1, 'k.dupB': 'two', 'bad-QQ': 'v-QQ', 'http.method': 'GET' },
    resource: { 'service.name': 'first', 'service.namX': 'svc-QQ', 'k-QQ': ['x-QQ', 'QQ'] },
    events: [{ name: 'e-QQ', timestamp: 1, attributes: { 'k-QQ': 'QQ' } }],
  };
  const good = codec.encode({ spans: [base] });
  const cases: [string, Buffer][] = [
    ['duplicate keys, the later falsy marker wins', patch(patch(patch(good, 'db.systeA', 'db.system'), 'k.dupB', 'k.dupA'), 'service.namX', 'service.name')],
    ['invalid UTF-8 (lone continuation byte)', patch(good, 'QQ', '\u0080Q')],
    ['invalid UTF-8 (truncated sequence before ASCII)', patch(good, 'QQ', '\u00e4Q')],
    ['invalid UTF-8 (overlong, surrogate)', patch(patch(good, 'QQ', '\u00c0\u00af'), 'e-Q', '\u00ed\u00a0\u0080')],
    ['a NUL after a truncated sequence', patch(good, 'QQ', '\u00e2\u0000')],
  ];
  for (const [name, buf] of cases) {
    const fast = fastRows(decoder.decode(buf)).map(values);
    const slow = slowRows(buf).map(values);
    t.deepEqual(fast, slow, name);
  }
  const dup = values(fastRows(decoder.decode(cases[0]?.[1] as Buffer))[0] as string);
  t.is(dup.category, 'http', 'the duplicate db.system key\'s last value (empty) does not make it db');
  t.is(dup.service_name, 'svc-QQ');
});

test('mutated records: whenever the transcoder accepts one, avsc decodes it to the same rows (and whatever avsc rejects, the transcoder rejects)', (t) => {
  const r = rng(42);
  const good = codec.encode({ spans: Array.from({ length: 3 }, (_, i) => genSpan(r, i)) });
  let accepted = 0;
  let rejected = 0;
  for (let round = 0; round < 3_000; round++) {
    const buf = Buffer.from(good);
    for (let k = 1 + r(3); k > 0; k--) buf[10 + r(buf.length - 10)] = r(256);
    const { fast, slow } = both(buf);
    if (fast instanceof Error) {
      t.true(fast instanceof CorruptRecordError || String(fast) === String(slow), String(fast));
      rejected++;
      continue;
    }
    accepted++;
    t.false(slow instanceof Error, `round ${round}: ${String(slow)}`);
    t.deepEqual(fast.map(values), (slow as string[]).map(values), `round ${round}`);
  }
  t.log(`accepted ${accepted}, rejected ${rejected}`);
  t.true(accepted > 100 && rejected > 100, `accepted ${accepted}, rejected ${rejected}`);
});

test.serial('PostgreSQL: spans stored from transcoded rows are the rows stored from span objects (COPY and unnest)', async (t) => {
  const url = await freshDatabase(t);
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 2 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  await addApp(store);
  const copy = new CopyPool(url, { logger: silentLogger });
  await copy.start();
  t.teardown(() => copy.stop());
  const writer = new SpanWriter({ store, copy });
  const viaObjects = writePath(store, { writer });
  const viaUnnest = writePath(store);
  const r = rng(99);
  const batches = Array.from({ length: 60 }, (_, b) => Array.from({ length: 1 + r(40) }, (_, i) => genSpan(r, b * 100 + i)))
    // records the other path's handler refuses (dead-lettered on both paths) are not written
    .filter((spans) => !(both(codec.encode({ spans })).slow instanceof Error));
  const records = batches.map((spans) => codec.encode({ spans }));
  const withApp = (app: string) => (spans: Span[]): Span[] => spans.map((s) => ({ ...s, app_name: `${app}:${s.app_name}` }));
  const recordsOf = (app: string): Buffer[] => batches.map((spans) => codec.encode({ spans: withApp(app)(spans) }));
  // transcoded rows, written by the writer's COPY path
  const transcoded = await viaObjects.ingest.lines(recordsOf('fast').map((buf) => decoder.decode(buf)));
  const rejectedFast = await viaObjects.ingest.write(transcoded).then(() => 0, () => 1);
  // span objects decoded by avsc: COPY of spanRow rows, and PGlite's unnest statement on the same server
  const objects = await viaObjects.ingest.rows(recordsOf('slow').map((buf) => codec.decode(buf)));
  const rejectedSlow = await viaObjects.ingest.write(objects).then(() => 0, () => 1);
  const unnest = await viaUnnest.ingest.rows(recordsOf('unnest').map((buf) => codec.decode(buf)));
  const rejectedUnnest = await viaUnnest.ingest.write(unnest).then(() => 0, () => 1);
  t.deepEqual([rejectedFast, rejectedSlow, rejectedUnnest], [0, 0, 0]);
  t.true(records.length > 0 && transcoded.length > 500, `${transcoded.length} rows`);
  const cols = SPAN_COPY_COLUMNS.filter((c) => c !== 'app_name').join(', ');
  const rows = async (prefix: string): Promise<string[]> =>
    (await store.query<{ r: string }>(`SELECT row_to_json(x)::text AS r FROM (SELECT substr(app_name, ${prefix.length + 2}) AS app, ${cols} FROM storage_span WHERE app_name LIKE '${prefix}:%' ORDER BY 1, trace_id, span_id, end_time) x`)).rows.map((x) => x.r);
  const fast = await rows('fast');
  t.is(fast.length, transcoded.length);
  t.deepEqual(fast, await rows('slow'));
  t.deepEqual(fast, await rows('unnest'));
  await fold(store);
  const minutes = async (prefix: string): Promise<string[]> =>
    (await store.query<{ r: string }>(`SELECT row_to_json(x)::text AS r FROM (SELECT substr(app_name, ${prefix.length + 2}) AS app, minute, service_name, span_name, kind, span_count, error_count, elapsed_sum, elapsed_min, elapsed_max, buckets, counts FROM storage_span_minute WHERE app_name LIKE '${prefix}:%' ORDER BY 1, 2, 3, 4, 5) x`)).rows.map((x) => x.r);
  t.deepEqual(await minutes('fast'), await minutes('slow'), 'the same rollups');
  t.deepEqual(await minutes('fast'), await minutes('unnest'), 'the same rollups as the unnest statement computes');
  t.deepEqual(await summaries(store, 'fast'), await summaries(store, 'unnest'), 'the same trace summaries');
});

/** Folds the rollup pieces the COPY path appended (as the service does every STORAGE_ROLLUP_FOLD_INTERVAL_MS). */
async function fold(store: Store): Promise<void> {
  const parts = (await listPartitions(store)).filter((p) => p.kind === 'minute');
  await foldRollups(store, parts.map((p) => ({ retentionDays: p.retentionDays as number, day: p.day })));
  const left = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_span_minute_pending');
  if (left.rows[0]?.n !== 0) throw new Error('pieces left pending');
}

/** Trace summaries of the app names under `prefix:` (all columns but the time of the last merge). */
async function summaries(store: { query: <R>(sql: string) => Promise<{ rows: R[] }> }, prefix: string): Promise<string[]> {
  const { rows } = await store.query<{ r: string }>(
    `SELECT row_to_json(x)::text AS r FROM (SELECT substr(app_name, ${prefix.length + 2}) AS app, bk_biz_id, retention_days, anchor_time, trace_id, min_start_time, max_end_time,
       trace_duration, span_count, error_count, services, span_max_duration, span_min_duration, root_span_id, root_span_name, root_span_service, root_span_kind,
       root_span_has_parent, root_span_start, root_service, root_service_span_id, root_service_span_name, root_service_kind, root_service_status_code,
       root_service_category, root_service_start, cat_http, cat_rpc, cat_db, cat_messaging, cat_async_backend, cat_other, kind_unspecified, kind_interval, kind_sync, kind_async
     FROM storage_trace WHERE app_name LIKE '${prefix}:%' ORDER BY 1, trace_id, anchor_time) x`,
  );
  return rows.map((x) => x.r);
}

const STATUS_VALUES: AttributeValue[] = ['200', 404, 200.5, 1e21, true, null, '007', '-0', '1234567890', ' 200', Buffer.from([0xd7, 0x6d, 0xf8]), ['500'], Number.NaN, 'x\u0000500', ''];

/** Traces of 1–8 spans with ties on start time, parents missing or NUL, entry spans with status attributes of every type. */
function genTraces(r: (n: number) => number, count: number): Span[] {
  const out: Span[] = [];
  for (let j = 0; j < count; j++) {
    const trace = r(10) === 0 ? `tr${j}\u0000x` : `tr${j}`;
    const t0 = NOW_US - r(1_800) * 1_000_000;
    const n = 1 + r(8);
    for (let k = 0; k < n; k++) {
      const attributes: Attributes = {};
      if (r(2) === 0) attributes['http.status_code'] = STATUS_VALUES[r(STATUS_VALUES.length)] as AttributeValue;
      if (r(3) === 0) attributes['rpc.grpc.status_code'] = STATUS_VALUES[r(STATUS_VALUES.length)] as AttributeValue;
      if (r(3) === 0) attributes[['db.system', 'http.method', 'rpc.system', 'messaging.system', 'celery.action'][r(5)] as string] = r(4) === 0 ? '' : 'x';
      const start = t0 + r(3) * 1_000;
      const elapsed = [0, 7, 1_000, 65_536, 123_457][r(5)] as number;
      out.push({
        bk_biz_id: 2, app_name: 'shop', trace_id: trace, span_id: r(8) === 0 ? `s${r(3)}` : `s${j}-${k}`,
        parent_span_id: k === 0 ? ['', '\u0000', 'missing'][r(3)] as string : `s${j}-${r(k)}`,
        span_name: `op-${r(3)}`, kind: [0, 1, 2, 3, 4, 5, 2, 5][r(8)] as number, start_time: start, end_time: start + elapsed, elapsed_time: elapsed,
        status: { code: r(6) === 0 ? 2 : r(2), message: '' }, trace_state: '', attributes,
        resource: r(6) === 0 ? {} : { 'service.name': ['api', 'db', 'web', '', 'svc\u0000x'][r(5)] as string }, events: [], links: [], client_ip: '',
      });
    }
  }
  return out;
}

test.serial('PostgreSQL: traces written in pieces and replayed end with the summaries and rollups the unnest statement gives', async (t) => {
  const url = await freshDatabase(t);
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 2 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  const copy = new CopyPool(url, { logger: silentLogger });
  await copy.start();
  t.teardown(() => copy.stop());
  const viaCopy = writePath(store, { writer: new SpanWriter({ store, copy }) });
  const viaUnnest = writePath(store);
  const r = rng(1234);
  const spans = genTraces(r, 400);
  // ten writes of spans in any order, each with some spans of the writes before it again (replays)
  const order = spans.map((s, i) => ({ s, k: r(1_000_000) + i / spans.length })).sort((a, b) => a.k - b.k).map((x) => x.s);
  const writes: Span[][] = [];
  for (let w = 0; w < 10; w++) {
    const fresh = order.slice(Math.floor((w * order.length) / 10), Math.floor(((w + 1) * order.length) / 10));
    const again = w > 0 && r(2) === 0 ? order.slice(0, Math.floor((w * order.length) / 10)).filter(() => r(10) === 0) : [];
    writes.push([...fresh, ...again]);
  }
  const as = (app: string, list: Span[]): Span[] => list.map((s) => ({ ...s, app_name: `${app}:${s.app_name}` }));
  // count the writer's transactions: one per write when the COPY takes all rows, two when it falls back
  let transactions = 0;
  const transaction = copy.transaction.bind(copy);
  copy.transaction = (fn) => {
    transactions++;
    return transaction(fn);
  };
  let inserted = 0;
  let given = 0;
  let replaying = 0;
  for (const list of writes) {
    const before = transactions;
    const fast = await viaCopy.ingest.lines([decoder.decode(codec.encode({ spans: as('fast', list) }))]);
    const r1 = await viaCopy.ingest.write(fast);
    inserted += r1.inserted;
    given += r1.rows;
    if (r1.inserted < r1.rows) replaying++;
    t.is(transactions - before, r1.inserted < r1.rows ? 2 : 1, 'the staging statement only when a span was stored already');
    await viaCopy.ingest.write(await viaCopy.ingest.rows([{ spans: as('slow', list) }]));
    await viaUnnest.ingest.write(await viaUnnest.ingest.rows([{ spans: as('unnest', list) }]));
  }
  const stored = await store.query<{ n: number }>("SELECT count(*)::int AS n FROM storage_span WHERE app_name LIKE 'fast:%'");
  t.is(inserted, stored.rows[0]?.n ?? -1, 'each span counted once as inserted');
  t.true(replaying >= 2 && given > inserted, `${replaying} writes with replayed spans`);
  const fastSummaries = await summaries(store, 'fast');
  t.true(fastSummaries.length >= 390, `${fastSummaries.length} summaries`);
  t.deepEqual(fastSummaries, await summaries(store, 'unnest'));
  t.deepEqual(await summaries(store, 'slow'), await summaries(store, 'unnest'));
  await fold(store);
  const minutes = async (prefix: string): Promise<unknown[]> =>
    (await store.query(`SELECT substr(app_name, ${prefix.length + 2}) AS app, minute, service_name, span_name, kind, retention_days, span_count, error_count, elapsed_sum::text AS sum, elapsed_min, elapsed_max, buckets, counts
      FROM storage_span_minute WHERE app_name LIKE '${prefix}:%' ORDER BY 1, 2, 3, 4, 5`)).rows;
  t.deepEqual(await minutes('fast'), await minutes('unnest'));
  const statuses = await store.query<{ n: number }>("SELECT count(DISTINCT root_service_status_code)::int AS n FROM storage_trace WHERE app_name LIKE 'fast:%'");
  t.true((statuses.rows[0]?.n ?? 0) >= 3, 'entry status codes of several kinds were read');
});
