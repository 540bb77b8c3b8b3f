/**
 * The span writer on both stores: spans stored once however often they arrive, trace summaries that
 * end the same whether a trace arrives at once or in pieces over minutes, and the COPY path on
 * PostgreSQL giving the same rows as the unnest path.
 */
import test from 'ava';
import { isRetriable } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { CopyPool } from '../../services/common/store/copy.ts';
import { createStore } from '../../services/common/store/index.ts';
import { dayName, dayOfUs } from '../../services/storage/partitions.ts';
import { SpanWriter } from '../../services/storage/span-writer.ts';
import { storeContract, freshDatabase } from '../helpers/store.ts';
import { addApp, MIN_US, span, writePath } from './helpers.ts';

const NOW_US = Date.now() * 1000;

/** A three-service trace: gateway SERVER root → gateway CLIENT → orders SERVER → orders DB CLIENT (error). */
function trace(id = 't1', t0 = NOW_US - 10 * MIN_US) {
  return [
    span({ trace: id, id: 'a', service: 'gateway', kind: 2, name: 'GET /checkout', start: t0, duration: 50_000, attributes: { 'http.method': 'GET', 'http.status_code': 200 } }),
    span({ trace: id, id: 'b', parent: 'a', service: 'gateway', kind: 3, name: 'POST /orders', start: t0 + 1_000, duration: 40_000, attributes: { 'http.method': 'POST' } }),
    span({ trace: id, id: 'c', parent: 'b', service: 'orders', kind: 2, name: 'POST /orders', start: t0 + 2_000, duration: 30_000, attributes: { 'http.method': 'POST' } }),
    span({ trace: id, id: 'd', parent: 'c', service: 'orders', kind: 3, name: 'SELECT', start: t0 + 3_000, duration: 5_000, error: true, attributes: { 'db.system': 'mysql' } }),
  ];
}

const SUMMARY = `SELECT trace_id, span_count, error_count, error, services, service_count, min_start_time, max_end_time, trace_duration,
  span_max_duration, span_min_duration, root_span_id, root_span_name, root_span_service, root_span_kind, root_service, root_service_span_id,
  root_service_span_name, root_service_kind, root_service_status_code, root_service_category, cat_http, cat_db, cat_other, kind_sync
  FROM storage_trace ORDER BY trace_id`;

storeContract('a trace written at once: stored spans and the summary', async (t, store) => {
  await addApp(store);
  const path = writePath(store);
  const r = await path.write(trace());
  t.like(r, { rows: 4, inserted: 4, tracesCreated: 1, tracesMerged: 0 });
  const { rows } = await store.query(SUMMARY);
  const t0 = NOW_US - 10 * MIN_US;
  t.deepEqual(rows, [{
    trace_id: 't1', span_count: 4, error_count: 1, error: true, services: ['gateway', 'orders'], service_count: 2,
    min_start_time: t0, max_end_time: t0 + 50_000, trace_duration: 50_000, span_max_duration: 50_000, span_min_duration: 5_000,
    root_span_id: 'a', root_span_name: 'GET /checkout', root_span_service: 'gateway', root_span_kind: 2,
    root_service: 'gateway', root_service_span_id: 'a', root_service_span_name: 'GET /checkout', root_service_kind: 2,
    root_service_status_code: 200, root_service_category: 'http', cat_http: 3, cat_db: 1, cat_other: 0, kind_sync: 4,
  }]);
  const spans = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_span');
  t.is(spans.rows[0]?.n, 4);
});

storeContract('a trace arriving in pieces over minutes, children first, ends with the same summary', async (t, store) => {
  await addApp(store);
  const path = writePath(store);
  await path.write(trace('whole'));
  const [a, b, c, d] = trace('pieces');
  // the database span first, the root last: each piece is a separate write minutes apart in event time
  await path.write([d!]);
  await path.write([c!]);
  let { rows } = await store.query<{ root_span_id: string; root_service: string }>("SELECT root_span_id, root_service FROM storage_trace WHERE trace_id = 'pieces'");
  t.like(rows[0], { root_span_id: 'c', root_service: 'orders' }, 'before the root arrives, the best candidates so far');
  const r = await path.write([b!, a!]);
  t.like(r, { inserted: 2, tracesCreated: 0, tracesMerged: 1 });
  ({ rows } = await store.query(SUMMARY));
  t.is(rows.length, 2, 'one summary row per trace');
  const [pieces, whole] = rows as Record<string, unknown>[];
  t.deepEqual({ ...pieces, trace_id: 'x' }, { ...whole, trace_id: 'x' });
});

storeContract('replayed spans are stored once and do not change the summary', async (t, store) => {
  await addApp(store);
  const path = writePath(store);
  await path.write(trace());
  const before = await store.query(SUMMARY);
  const again = await path.write([...trace(), ...trace()]);
  t.like(again, { rows: 8, inserted: 0, tracesCreated: 0, tracesMerged: 0 });
  // half old, half new: only the new half counts
  const extra = span({ trace: 't1', id: 'e', parent: 'c', service: 'stock', kind: 3, start: NOW_US - 10 * MIN_US + 4_000, duration: 1_000 });
  const mixed = await path.write([...trace(), extra]);
  t.like(mixed, { inserted: 1, tracesMerged: 1 });
  const { rows } = await store.query<{ span_count: number; services: string[] }>('SELECT span_count, services FROM storage_trace');
  t.deepEqual(rows, [{ span_count: 5, services: ['gateway', 'orders', 'stock'] }]);
  const spans = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_span');
  t.is(spans.rows[0]?.n, 5);
  t.is(before.rows.length, 1);
});

storeContract('spans outside their retention or beyond the partitions ahead are dropped and counted', async (t, store) => {
  await addApp(store, 'shop', 3);
  const dropped: Record<string, number> = {};
  const path = writePath(store, { onDropped: (reason, n) => (dropped[reason] = (dropped[reason] ?? 0) + n) });
  const rows = await path.ingest.rows([{ spans: [
    span({ id: 'old', start: NOW_US - 5 * 24 * 60 * MIN_US }),
    span({ id: 'ok', start: NOW_US - MIN_US }),
    span({ id: 'future', start: NOW_US + 10 * 24 * 60 * MIN_US }),
  ] }]);
  t.deepEqual(rows.map((r) => r.span_id), ['ok']);
  t.is(rows[0]?.retention_days, 3, 'the application\'s retention class');
  t.deepEqual(dropped, { expired: 1, future: 1 });
});

test.serial('PostgreSQL: the COPY path stores what the unnest path stores', async (t) => {
  const url = await freshDatabase(t);
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 2 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  await addApp(store);
  const copy = new CopyPool(url, { logger: silentLogger });
  await copy.start();
  t.teardown(() => copy.stop());
  const viaCopy = writePath(store, { writer: new SpanWriter({ store, copy }) });
  const viaUnnest = writePath(store);
  const odd = span({ trace: 'odd', id: 'x', start: NOW_US - MIN_US, name: 'tab\there\nnew\\line', attributes: { 'a\tb': 'c\nd', nul: 'x\u0000y', bytes: Buffer.from('hi'), list: [1, 'two', true] } });
  t.like(await viaCopy.write([...trace('c1'), odd]), { inserted: 5, tracesCreated: 2 });
  t.like(await viaUnnest.write([...trace('u1'), { ...odd, trace_id: 'odd2' }]), { inserted: 5, tracesCreated: 2 });
  t.like(await viaCopy.write(trace('c1')), { inserted: 0 }, 'COPY path is idempotent too');
  const { rows } = await store.query<{ trace_id: string; span_name: string; attributes: unknown }>("SELECT trace_id, span_name, attributes FROM storage_span WHERE span_id = 'x' ORDER BY trace_id");
  t.is(rows.length, 2);
  t.deepEqual(rows[0]?.attributes, rows[1]?.attributes);
  t.is(rows[0]?.span_name, 'tab\there\nnew\\line');
  t.deepEqual(rows[0]?.attributes, { 'a\tb': 'c\nd', nul: 'xy', bytes: 'aGk=', list: [1, 'two', true] });
  const sums = await store.query("SELECT span_count, services, root_span_id FROM storage_trace WHERE trace_id IN ('c1', 'u1') ORDER BY trace_id");
  t.deepEqual(sums.rows[0], sums.rows[1]);
});

storeContract('a trace whose pieces are minutes apart and cross midnight keeps one summary, in the first piece\'s day partition', async (t, store) => {
  await addApp(store);
  const path = writePath(store);
  const midnight = Math.floor(Date.now() / 86_400_000) * 86_400_000 * 1000; // today 00:00 UTC, µs
  const t0 = midnight - 2 * MIN_US; // yesterday 23:58
  // the client half first (yesterday), the server half four minutes later (today), the root last
  const root = span({ trace: 'mid', id: 'r', service: 'web', kind: 2, start: t0, duration: 6 * MIN_US });
  const client = span({ trace: 'mid', id: 'c', parent: 'r', service: 'web', kind: 3, start: t0 + MIN_US / 2, duration: 5 * MIN_US });
  const server = span({ trace: 'mid', id: 's', parent: 'c', service: 'api', kind: 2, start: midnight + 2 * MIN_US, duration: MIN_US, error: true });
  await path.write([client]);
  await path.write([server]);
  await path.write([root]);
  const { rows } = await store.query<Record<string, unknown>>(
    "SELECT tableoid::regclass::text AS part, span_count, error_count, services, min_start_time, max_end_time, root_span_id, root_service, root_service_span_id FROM storage_trace WHERE trace_id = 'mid'",
  );
  const yesterday = new Date((midnight / 1000) - 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
  t.deepEqual(rows, [{
    part: `storage_trace_r7_p${yesterday}`, span_count: 3, error_count: 1, services: ['api', 'web'], min_start_time: t0, max_end_time: t0 + 6 * MIN_US,
    root_span_id: 'r', root_service: 'web', root_service_span_id: 'r',
  }]);
});

storeContract('a partition another instance dropped is recreated when the write is tried again', async (t, store) => {
  await addApp(store);
  const path = writePath(store);
  const s1 = span({ trace: 'p1', id: 'a', start: NOW_US - MIN_US });
  await path.write([s1]);
  // another instance (say, one whose clock runs days ahead) dropped the partition this one has cached
  await store.exec(`DROP TABLE storage_span_r7_p${dayName(dayOfUs(s1.end_time))}`);
  const s2 = span({ trace: 'p2', id: 'b', start: NOW_US - MIN_US });
  const err = await t.throwsAsync(path.write([s2]));
  t.true(isRetriable(err), 'retried by the flusher, not dropped as a bad row');
  t.like(await path.write([s2]), { inserted: 1 });
});
