/** The writer's upserts and the expiry sweeps, on PGlite and PostgreSQL alike (store contract). */
import type { ExecutionContext } from 'ava';
import { silentLogger } from '../../services/common/log.ts';
import type { Store } from '../../services/common/store/index.ts';
import { DedupeSink, NodeKinds, type Snapshot } from '../../services/discovery/dedupe.ts';
import type { Rows } from '../../services/discovery/records.ts';
import type { Table } from '../../services/discovery/tables.ts';
import { sweepOnce } from '../../services/discovery/sweep.ts';
import { Writer } from '../../services/discovery/writer.ts';
import { storeContract } from '../helpers/store.ts';
import { count, tableRows } from './helpers.ts';

const DAY_US = 86_400_000_000;

/** A snapshot holding the given rows (through the real dedupe sink, with no touch interval unless given). */
function snapshot(rows: { table: Table; app?: string; row: Rows[Table]; at: number }[], touchIntervalMs = 0): Snapshot {
  const sink = new DedupeSink({ maxKeys: 1_000, ttlMs: 60_000, touchIntervalMs, nodeKinds: new NodeKinds(10) });
  for (const r of rows) sink.emit(r.table, 2, r.app ?? 'shop', r.row, r.at);
  return sink.take();
}

const endpoint = (name: string): Rows['endpoint'] => ({ endpoint_name: name, service_name: 's', category_id: 'http', category_kind_key: 'http.method', category_kind_value: 'GET', span_kind: 2 });

async function seen(store: Store, table: string): Promise<{ first: number; last: number }[]> {
  const { rows } = await store.query<{ first_seen: Date; last_seen: Date }>(`SELECT first_seen, last_seen FROM ${table} ORDER BY id`);
  return rows.map((r) => ({ first: r.first_seen.getTime(), last: r.last_seen.getTime() }));
}

storeContract('upserts are idempotent; last_seen never moves back, first_seen only back', async (t: ExecutionContext, store: Store) => {
  const writer = new Writer({ store, logger: silentLogger });
  const now = Date.now() * 1000;
  await writer.write(snapshot([{ table: 'endpoint', row: endpoint('GET /'), at: now }]));
  await writer.write(snapshot([{ table: 'endpoint', row: endpoint('GET /'), at: now }]));
  await writer.write(snapshot([{ table: 'endpoint', row: endpoint('GET /'), at: now - DAY_US }]));
  t.is(await count(store, 'apm_endpoint'), 1);
  t.deepEqual(await seen(store, 'apm_endpoint'), [{ first: Math.floor((now - DAY_US) / 1000), last: Math.floor(now / 1000) }]);
});

storeContract('values are made storable: NUL removed, text cut to the column; rows that become equal are written once', async (t, store) => {
  const writer = new Writer({ store, logger: silentLogger });
  const long = `GET /${'x'.repeat(3_000)}`;
  const result = await writer.write(snapshot([
    { table: 'endpoint', row: endpoint(`${long}a`), at: 1 },
    { table: 'endpoint', row: endpoint(`${long}b`), at: 2 },
    { table: 'endpoint', row: endpoint('nul\0here'), at: 3 },
  ]));
  t.is(result.written.endpoint, 2);
  const names = (await tableRows(store, 'apm_endpoint')).map((r) => r.endpoint_name as string);
  t.deepEqual(names.map((n) => n.length).sort((a, b) => a - b), [7, 2048]);
  t.true(names.includes('nulhere'));
});

storeContract('topo nodes merge with what the store holds, commutatively, keeping other sources', async (t, store) => {
  const writer = new Writer({ store, logger: silentLogger });
  await store.query(`INSERT INTO apm_topo_node (bk_biz_id, app_name, topo_key, extra_data, source, first_seen, last_seen)
    VALUES (2, 'shop', 's', '{"category":"other","kind":"service","predicate_value":null,"service_language":"go","llm":{"product":"x"}}', '["metric"]', now(), now())`);
  const at = Date.now() * 1000;
  await writer.write(snapshot([{ table: 'node', row: { topo_key: 's', extra: { category: 'http', kind: 'service', predicate_value: 'GET', service_language: '' }, sdk: [{ name: 'opentelemetry', extra_data: {} }] }, at }]));
  await writer.write(snapshot([{ table: 'node', row: { topo_key: 's', extra: { category: 'other', kind: 'service', predicate_value: null, service_language: 'go' } }, at }]));
  await writer.write(snapshot([{ table: 'node', row: { topo_key: 'n', extra: { category: 'db', kind: 'component', predicate_value: 'mysql', service_language: 'go' } }, at }]));
  const { rows } = await store.query<{ topo_key: string; extra_data: Record<string, unknown>; sdk: unknown; source: unknown }>('SELECT topo_key, extra_data, sdk, source FROM apm_topo_node ORDER BY topo_key');
  t.deepEqual(rows.map((r) => r.topo_key), ['n', 's']);
  t.deepEqual(rows[1]?.extra_data, { category: 'http', kind: 'service', predicate_value: 'GET', service_language: 'go', llm: { product: 'x' } });
  t.deepEqual(rows[1]?.sdk, [{ name: 'opentelemetry', extra_data: {} }]);
  t.deepEqual(rows[1]?.source, ['metric', 'trace']);
  t.deepEqual(rows[0]?.source, ['trace']);
});

storeContract('sweeps delete rows past the app retention (default 7 days; nodes 180 unless permanent) and trim each app to the cap, oldest first', async (t, store) => {
  const writer = new Writer({ store, logger: silentLogger });
  const now = Date.now();
  const at = (days: number): number => (now - days * 86_400_000) * 1000;
  await store.query("INSERT INTO apm_application (bk_biz_id, app_name, trace_retention_days) VALUES (2, 'long', 30)");
  await writer.write(snapshot([
    { table: 'endpoint', row: endpoint('fresh'), at: at(1) },
    { table: 'endpoint', row: endpoint('old'), at: at(8) },
    { table: 'endpoint', app: 'long', row: endpoint('old but kept'), at: at(8) },
    { table: 'node', row: { topo_key: 'recent' }, at: at(100) },
    { table: 'node', row: { topo_key: 'ancient' }, at: at(200) },
    { table: 'node', row: { topo_key: 'permanent' }, at: at(200) },
    ...['a', 'b', 'c'].map((n, i) => ({ table: 'root_endpoint' as const, row: { endpoint_name: n, service_name: 's', category_id: 'http' }, at: at(3 - i) })),
  ]));
  await store.query("UPDATE apm_topo_node SET is_permanent = true WHERE topo_key = 'permanent'");
  const result = await sweepOnce({ store, defaultRetentionDays: 7, topoNodeRetentionDays: 180, maxRowsPerApp: 2, now: () => now });
  t.deepEqual(result, { expired: { apm_endpoint: 1, apm_topo_node: 1 }, overflow: { apm_root_endpoint: 1 } });
  t.deepEqual((await tableRows(store, 'apm_endpoint')).map((r) => r.endpoint_name).sort(), ['fresh', 'old but kept']);
  t.deepEqual((await tableRows(store, 'apm_topo_node')).map((r) => r.topo_key).sort(), ['permanent', 'recent']);
  t.deepEqual((await tableRows(store, 'apm_root_endpoint')).map((r) => r.endpoint_name).sort(), ['b', 'c'], 'the oldest root endpoint was trimmed');
  t.deepEqual(await sweepOnce({ store, defaultRetentionDays: 7, topoNodeRetentionDays: 180, maxRowsPerApp: 2, now: () => now }), { expired: {}, overflow: {} });
});

storeContract('rows another writer already stored are not written again (seen times within the touch interval): only rows the store changes count as written', async (t, store) => {
  const touch = 60_000;
  const a = new Writer({ store, logger: silentLogger });
  const b = new Writer({ store, logger: silentLogger });
  const now = Date.now() * 1000;
  const node = (language: string | null): Rows['node'] => ({ topo_key: 's', extra: { category: 'http', kind: 'service', predicate_value: 'GET', service_language: language } });
  const rows = (at: number, language: string | null = 'go'): Snapshot => snapshot([{ table: 'endpoint', row: endpoint('GET /'), at }, { table: 'node', row: node(language), at }], touch);
  t.like(await a.write(rows(now)), { written: { endpoint: 1, node: 1 }, unchanged: {} });
  const updatedAt = async (): Promise<string[]> => (await store.query<{ u: Date }>('SELECT updated_at AS u FROM apm_endpoint UNION ALL SELECT updated_at FROM apm_topo_node')).rows.map((r) => r.u.toISOString());
  const before = await updatedAt();
  // The same rows from another instance, seen within the touch interval: nothing changes.
  t.like(await b.write(rows(now + 30_000_000)), { written: {}, unchanged: { endpoint: 1, node: 1 } });
  t.deepEqual(await updatedAt(), before, 'no row was updated');
  // Seen past the touch interval, or earlier than the interval before first_seen: written.
  t.like(await b.write(rows(now + 61_000_000)), { written: { endpoint: 1, node: 1 }, unchanged: {} });
  t.like(await a.write(rows(now - 61_000_000)), { written: { endpoint: 1, node: 1 } });
  // A node whose data changes is written whatever its times.
  const withSdk: Rows['node'] = { ...node('go'), sdk: [{ name: 'opentelemetry', extra_data: {} }] };
  const sdkWritten = await a.write(snapshot([{ table: 'node', row: withSdk, at: now }], touch));
  t.like(sdkWritten, { written: { node: 1 } });
  t.is(await count(store, 'apm_endpoint'), 1);
  t.deepEqual(await seen(store, 'apm_endpoint'), [{ first: Math.floor((now - 61_000_000) / 1000), last: Math.floor((now + 61_000_000) / 1000) }]);
});
