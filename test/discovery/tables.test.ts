/**
 * The discovered tables are declared once (services/discovery/tables.ts). What derives from the
 * declaration, each checked here:
 * - the table list and row types (records.ts), the per-table metric labels (service.ts);
 * - the dedupe key (dedupe.ts): every key column, and nothing else, tells two rows apart;
 * - the writer's upserts (writer.ts `UPSERTS`) and the node merge;
 * - the query API's listings and filters (api.ts `LISTINGS`);
 * - the sweep's tables and retention (sweep.ts `SWEPT`);
 * and the declaration matches the migrated schema, on PGlite and PostgreSQL alike, with a row of every
 * table going through the writer, the API (filtered on every key column) and the sweep.
 */
import test from 'ava';
import { silentLogger } from '../../services/common/log.ts';
import type { Store } from '../../services/common/store/index.ts';
import { LISTINGS, queryRoutes } from '../../services/discovery/api.ts';
import { DedupeSink, NodeKinds, type Snapshot } from '../../services/discovery/dedupe.ts';
import type { Rows } from '../../services/discovery/records.ts';
import { SWEPT, sweepOnce } from '../../services/discovery/sweep.ts';
import { APP_NAME_MAX, DISCOVERED, TABLES, UPSERT_TABLES, type Table } from '../../services/discovery/tables.ts';
import { UPSERTS, Writer } from '../../services/discovery/writer.ts';
import { storeContract } from '../helpers/store.ts';

/** One row of every table, each key column with a value of its type. */
const SAMPLES: { [T in Table]: Rows[T] } = {
  endpoint: { endpoint_name: 'GET /orders', service_name: 'order-svc', category_id: 'http', category_kind_key: 'http.method', category_kind_value: 'GET', span_kind: 2 },
  host: { bk_cloud_id: 0, bk_host_id: null, ip: '10.0.0.1', topo_node_key: 'order-svc' },
  instance: {
    topo_node_key: 'order-svc-mysql', instance_id: 'mysql:db.local::3306', instance_topo_kind: 'component', component_instance_category: 'db',
    component_instance_predicate_value: 'mysql', sdk_name: 'opentelemetry', sdk_version: null, sdk_language: 'go',
  },
  node: { topo_key: 'order-svc' },
  relation: { from_topo_key: 'order-svc', to_topo_key: 'order-svc-mysql', kind: 'sync', to_topo_key_kind: 'component', to_topo_key_category: 'db' },
  remote_service_relation: { topo_node_key: 'http:payment-gw', from_endpoint_name: 'GET /checkout', category: 'http' },
  root_endpoint: { endpoint_name: 'GET /checkout', service_name: 'gateway', category_id: 'http' },
};

/** A different value of a key column (string, number or null). */
function other(v: unknown): unknown {
  if (v === null) return 'x';
  if (typeof v === 'number') return v + 1;
  return `${v as string}-other`;
}

/** An object with its keys sorted (for comparisons that should not depend on key order). */
function sorted(o: object | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function sink(): DedupeSink {
  return new DedupeSink({ maxKeys: 1_000, ttlMs: 60_000, touchIntervalMs: 60_000, nodeKinds: new NodeKinds(10) });
}

test('records and metrics: the tables are the declared ones, in declaration order', (t) => {
  t.deepEqual(TABLES, Object.keys(DISCOVERED));
  t.deepEqual(Object.keys(SAMPLES).sort(), [...TABLES].sort());
  t.deepEqual(UPSERT_TABLES, TABLES.filter((x) => x !== 'node'), 'every table but topo nodes is written by upsert');
});

test('dedupe: every key column, and only the key, tells two rows of a table apart', (t) => {
  for (const table of TABLES) {
    const s = sink();
    const row = SAMPLES[table] as unknown as Record<string, unknown>;
    s.emit(table, 2, 'shop', row as never, 1_000_000);
    t.is(s.pendingRows(), 1);
    s.emit(table, 2, 'shop', { ...row } as never, 1_000_000);
    t.is(s.pendingRows(), 1, `${table}: an equal row is the same key`);
    let pending = 1;
    for (const c of DISCOVERED[table].key) {
      s.emit(table, 2, 'shop', { ...row, [c.name]: other(row[c.name]) } as never, 1_000_000);
      t.is(s.pendingRows(), ++pending, `${table}.${c.name} is part of the key`);
    }
    s.emit(table, 3, 'shop', row as never, 1_000_000);
    s.emit(table, 2, 'other-app', row as never, 1_000_000);
    t.is(s.pendingRows(), pending + 2, `${table}: business and app are part of the key`);
  }
  // Topo nodes: contributions that say different things about one node are one pending row (merged).
  const s = sink();
  s.emit('node', 2, 'shop', { topo_key: 'n', extra: { category: 'http', kind: 'service', predicate_value: 'GET', service_language: 'go' } }, 1_000_000);
  s.emit('node', 2, 'shop', { topo_key: 'n', sdk: [{ name: 'opentelemetry', extra_data: {} }] }, 1_000_000);
  t.is(s.pendingRows(), 1);
  t.is(s.counts().misses.node, 2, 'each contribution is a sighting of its own');
});

test('writer: one upsert per table written by upsert, of its key columns', (t) => {
  t.deepEqual(Object.keys(UPSERTS), UPSERT_TABLES);
  for (const table of UPSERT_TABLES) t.deepEqual(UPSERTS[table], { table: DISCOVERED[table].sql, columns: DISCOVERED[table].key }, table);
});

test('API: one listing per table, filtering on its key and filter columns, with its retention', (t) => {
  t.deepEqual(Object.keys(LISTINGS), TABLES.map((x) => DISCOVERED[x].listing));
  for (const table of TABLES) {
    const d = DISCOVERED[table];
    t.deepEqual(LISTINGS[d.listing], {
      table: d.sql,
      columns: Object.fromEntries([...d.key, ...d.filters].map((c) => [c.name, c.type])),
      retention: d.retention,
    }, table);
  }
  t.deepEqual(Object.keys(LISTINGS.nodes?.columns ?? {}), ['topo_key', 'is_permanent']);
});

test('sweep: every table, those kept for the app\'s retention first, topo nodes by their own', (t) => {
  t.deepEqual(SWEPT.map((s) => s.table).sort(), TABLES.map((x) => DISCOVERED[x].sql).sort());
  t.deepEqual(SWEPT.at(-1), { table: 'apm_topo_node', retention: 'topoNode' });
  t.true(SWEPT.slice(0, -1).every((s) => s.retention === 'app'));
});

const SQL_TYPES = { text: 'character varying', int: 'integer', bigint: 'bigint', bool: 'boolean' } as const;

storeContract('the declaration matches the migrated schema: columns, types, lengths, natural keys', async (t, store: Store) => {
  for (const table of TABLES) {
    const d = DISCOVERED[table];
    const { rows: columns } = await store.query<{ column_name: string; data_type: string; character_maximum_length: number | null; generation_expression: string | null }>(
      'SELECT column_name, data_type, character_maximum_length, generation_expression FROM information_schema.columns WHERE table_name = $1',
      [d.sql],
    );
    const byName = new Map(columns.map((c) => [c.column_name, c]));
    t.like(byName.get('app_name'), { data_type: 'character varying', character_maximum_length: APP_NAME_MAX }, `${d.sql}.app_name`);
    for (const c of [...d.key, ...d.filters]) {
      t.like(byName.get(c.name), { data_type: SQL_TYPES[c.type], character_maximum_length: c.max ?? null }, `${d.sql}.${c.name}`);
    }
    for (const c of ['bk_biz_id', 'first_seen', 'last_seen']) t.true(byName.has(c), `${d.sql}.${c}`);
    const { rows: constraint } = await store.query<{ columns: string }>(
      `SELECT string_agg(a.attname, ',' ORDER BY k.i) AS columns
       FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(n, i)
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
       WHERE c.conname = $1`,
      [`${d.sql}_natural_key`],
    );
    const md5 = byName.get('key_md5')?.generation_expression;
    if (md5) {
      t.is(constraint[0]?.columns, 'bk_biz_id,app_name,key_md5', d.sql);
      const at = d.key.map((c) => md5.indexOf(c.name));
      t.true(at.every((i, k) => i >= 0 && (k === 0 || i > (at[k - 1] as number))), `${d.sql}.key_md5 covers the key columns in order: ${md5}`);
    } else {
      t.is(constraint[0]?.columns, ['bk_biz_id', 'app_name', ...d.key.map((c) => c.name)].join(','), d.sql);
    }
  }
});

storeContract('a row of every table is written, listed with a filter on every key column, and swept after its retention', async (t, store: Store) => {
  const s = sink();
  const now = Date.now();
  for (const table of TABLES) s.emit(table, 2, 'shop', SAMPLES[table], now * 1000);
  const snapshot: Snapshot = s.take();
  const result = await new Writer({ store, logger: silentLogger }).write(snapshot);
  t.deepEqual(sorted(result.written), sorted(Object.fromEntries(TABLES.map((x) => [x, 1]))));
  // The query API answers only for registered applications.
  await store.query("INSERT INTO apm_application (bk_biz_id, app_name) VALUES (2, 'shop') ON CONFLICT DO NOTHING");
  const [route] = queryRoutes({ db: store, defaultRetentionDays: 7, topoNodeRetentionDays: 180, maxPageSize: 100, now: () => now });
  for (const table of TABLES) {
    const d = DISCOVERED[table];
    const row = SAMPLES[table] as unknown as Record<string, unknown>;
    const query = new URLSearchParams(d.key.map((c): [string, string] => [c.name, row[c.name] === null ? 'null' : String(row[c.name] as string | number)]));
    for (const c of d.filters) query.set(c.name, 'false');
    const answer = await route?.handle({ method: 'GET', path: '', query, params: { biz: '2', app: 'shop', kind: d.listing }, headers: {}, body: undefined, raw: undefined as never });
    t.is((answer?.body as { total: number }).total, 1, `${d.listing}?${query.toString()}`);
  }
  const swept = await sweepOnce({ store, defaultRetentionDays: 7, topoNodeRetentionDays: 180, maxRowsPerApp: 100, now: () => now + 200 * 86_400_000 });
  t.deepEqual(sorted(swept?.expired), sorted(Object.fromEntries(TABLES.map((x) => [DISCOVERED[x].sql, 1]))));
});
