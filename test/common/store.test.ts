/**
 * The store contract, run against embedded PGlite and the PostgreSQL server alike.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRetriable, UnavailableError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createStore } from '../../services/common/store/index.ts';
import { loadMigrations, migrate } from '../../services/common/store/migrate.ts';
import { freshDatabase, freshStore, storeContract, DRIVERS } from '../helpers/store.ts';

const DISCOVERED = [
  'apm_endpoint',
  'apm_host_instance',
  'apm_topo_instance',
  'apm_topo_node',
  'apm_topo_relation',
  'apm_remote_service_relation',
  'apm_root_endpoint',
];
const ALL_TABLES = ['apm_application', 'apm_discover_rule', ...DISCOVERED, 'cmdb_host', 'bkdata_flow', 'bkdata_flow_step', 'schema_migrations',
  // orchestrator (0200, 0201)
  'bkdata_flow_command', 'bkdata_flow_outbox', 'bkdata_sim_object',
  // GSE routing (0210)
  'gse_stream_to', 'gse_route', 'gse_route_target', 'gse_routes_pending',
  // collector (0301)
  'apm_application_flow_outbox',
  // security (0500)
  'bkstream_admin_token'];

const UPSERT_ENDPOINT = `
  INSERT INTO apm_endpoint (bk_biz_id, app_name, endpoint_name, service_name, category_id, category_kind_key, category_kind_value, span_kind, first_seen, last_seen)
  SELECT b, a, e, s, c, k, v, sk, t, t
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::timestamptz[]) AS x(b, a, e, s, c, k, v, sk, t)
  ON CONFLICT ON CONSTRAINT apm_endpoint_natural_key DO UPDATE
    SET last_seen = GREATEST(apm_endpoint.last_seen, EXCLUDED.last_seen),
        first_seen = LEAST(apm_endpoint.first_seen, EXCLUDED.first_seen),
        updated_at = now()`;

function endpoints(rows: { name: string; service?: string; at: number }[]): unknown[] {
  return [
    rows.map(() => 2),
    rows.map(() => 'shop'),
    rows.map((r) => r.name),
    rows.map((r) => r.service ?? 'order-svc'),
    rows.map(() => 'http'),
    rows.map(() => 'http.method'),
    rows.map(() => 'GET'),
    rows.map(() => 2),
    rows.map((r) => new Date(r.at)),
  ];
}

for (const driver of DRIVERS) {
  test.serial(`migrations apply from empty and are idempotent [${driver}]`, async (t) => {
    const store = await freshStore(t, driver);
    const first = await store.migrate();
    t.deepEqual(first.applied, loadMigrations().map((m) => m.version));
    const second = await store.migrate();
    t.deepEqual(second.applied, []);
    t.deepEqual(second.skipped, first.applied);
    const { rows } = await store.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    );
    // storage's tables (0400–0499) are its own to list (test/storage): here only that they are there.
    t.deepEqual(rows.map((r) => r.table_name).filter((n) => !n.startsWith('storage_')).sort(), [...ALL_TABLES].sort());
    t.true(rows.some((r) => r.table_name === 'storage_span'));
  });
}

test('concurrent migrations from three instances apply each version once [pg]', async (t) => {
  const url = await freshDatabase(t);
  const stores = [1, 2, 3].map(() => createStore({ databaseUrl: url, logger: silentLogger, poolSize: 2 }));
  t.teardown(() => Promise.all(stores.map((s) => s.stop())).then(() => undefined));
  const results = await Promise.all(stores.map((s) => s.migrate()));
  const applied = results.flatMap((r) => r.applied);
  t.deepEqual(applied.sort(), loadMigrations().map((m) => m.version));
});

test.serial('a failing migration rolls back and names itself [pglite]', async (t) => {
  const store = await freshStore(t, 'pglite');
  const err = await t.throwsAsync(migrate(store, silentLogger, [{ version: 1, name: 'broken', sql: 'CREATE TABLE x (id int); SELECT nope;' }]));
  t.regex(err?.message ?? '', /migration 1_broken failed/);
  const { rows } = await store.query(`SELECT 1 FROM information_schema.tables WHERE table_name = 'x'`);
  t.is(rows.length, 0, 'the partial migration was rolled back');
});

storeContract('the 12 built-in discover rules are seeded', async (t, store) => {
  const { rows } = await store.query<{ type: string; n: number }>('SELECT type, count(*)::int AS n FROM apm_discover_rule WHERE bk_biz_id = 0 GROUP BY type ORDER BY type');
  t.deepEqual(rows.map((r) => ({ ...r })), [
    { type: 'category', n: 7 },
    { type: 'platform', n: 2 },
    { type: 'sdk', n: 1 },
    { type: 'system', n: 2 },
  ]);
});

storeContract('upsert keeps GREATEST(last_seen) and LEAST(first_seen), one row per natural key', async (t, store) => {
  await store.query(UPSERT_ENDPOINT, endpoints([{ name: 'GET /a', at: 2_000_000 }, { name: 'GET /b', at: 2_000_000 }]));
  // an older sighting (a replay) must not move last_seen back, but extends first_seen
  await store.query(UPSERT_ENDPOINT, endpoints([{ name: 'GET /a', at: 1_000_000 }]));
  // a newer one moves it forward
  await store.query(UPSERT_ENDPOINT, endpoints([{ name: 'GET /b', at: 3_000_000 }]));
  const { rows } = await store.query<{ endpoint_name: string; first_seen: Date; last_seen: Date }>(
    'SELECT endpoint_name, first_seen, last_seen FROM apm_endpoint ORDER BY endpoint_name',
  );
  t.deepEqual(rows.map((r) => [r.endpoint_name, r.first_seen.getTime(), r.last_seen.getTime()]), [
    ['GET /a', 1_000_000, 2_000_000],
    ['GET /b', 2_000_000, 3_000_000],
  ]);
});

storeContract('unique natural keys hold, including NULL parts and very long keys', async (t, store) => {
  const long = 'x'.repeat(2048);
  await store.query(UPSERT_ENDPOINT, endpoints([{ name: long, service: long, at: 1 }]));
  await store.query(UPSERT_ENDPOINT, endpoints([{ name: long, service: long, at: 2 }]));
  t.is((await store.query('SELECT 1 FROM apm_endpoint')).rowCount, 1);

  const insertHost = `INSERT INTO apm_host_instance (bk_biz_id, app_name, bk_cloud_id, bk_host_id, ip, topo_node_key, first_seen, last_seen)
    VALUES (2, 'shop', $1, $2, '10.0.0.1', 'order-svc', now(), now())`;
  await store.query(insertHost, [-1, null]);
  await t.throwsAsync(store.query(insertHost, [-1, null]), { message: /apm_host_instance_natural_key/ });
  await store.query(insertHost, [0, 42]); // a different key (the CMDB hit) is a different row
  t.is((await store.query('SELECT 1 FROM apm_host_instance')).rowCount, 2);

  const insertApp = `INSERT INTO apm_application (bk_biz_id, app_name) VALUES (2, 'shop')`;
  await store.query(insertApp);
  await t.throwsAsync(store.query(insertApp), { message: /apm_application_natural_key/ });
});

storeContract('every discovered table has the natural-key constraint and event-time columns', async (t, store) => {
  for (const table of DISCOVERED) {
    const { rows } = await store.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_name = $1`,
      [table],
    );
    const cols = rows.map((r) => r.column_name);
    t.true(cols.includes('first_seen') && cols.includes('last_seen'), table);
    const c = await store.query(`SELECT 1 FROM information_schema.table_constraints WHERE table_name = $1 AND constraint_name = $2 AND constraint_type = 'UNIQUE'`, [
      table,
      `${table}_natural_key`,
    ]);
    t.is(c.rowCount, 1, `${table}_natural_key`);
  }
});

storeContract('transactions commit or roll back as a whole', async (t, store) => {
  await store.transaction(async (tx) => {
    await tx.query(`INSERT INTO apm_application (bk_biz_id, app_name) VALUES (1, 'a')`);
  });
  await t.throwsAsync(
    store.transaction(async (tx) => {
      await tx.query(`INSERT INTO apm_application (bk_biz_id, app_name) VALUES (1, 'b')`);
      throw new Error('abort');
    }),
    { message: 'abort' },
  );
  const { rows } = await store.query<{ app_name: string }>('SELECT app_name FROM apm_application ORDER BY app_name');
  t.deepEqual(rows.map((r) => r.app_name), ['a']);
});

storeContract('int8 comes back as a number and timestamptz as a Date on both drivers', async (t, store) => {
  const { rows } = await store.query<{ n: unknown; at: unknown; j: unknown }>(`SELECT 9007199254740991::bigint AS n, now() AS at, '{"a":[1]}'::jsonb AS j`);
  t.is(rows[0]?.n, 9007199254740991);
  t.true(rows[0]?.at instanceof Date);
  t.deepEqual(rows[0]?.j, { a: [1] });
});

test('a PostgreSQL server that is down gives a clear, retriable error', async (t) => {
  const store = createStore({ databaseUrl: 'postgres://postgres:secret@127.0.0.1:1/nope', logger: silentLogger });
  const err = await t.throwsAsync(store.start());
  t.regex(err?.message ?? '', /cannot connect to PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nope/);
  t.true((err as { retriable?: boolean }).retriable);
  await store.stop();
});

test.serial('PGlite persists to its directory across restarts', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'bkpglite-')), 'db');
  const a = createStore({ dataDir: dir, logger: silentLogger });
  await a.migrate();
  await a.query(`INSERT INTO apm_application (bk_biz_id, app_name) VALUES (3, 'persisted')`);
  await a.stop();
  const b = createStore({ dataDir: dir, logger: silentLogger });
  t.teardown(() => b.stop());
  t.deepEqual((await b.migrate()).applied, []);
  t.is((await b.query(`SELECT 1 FROM apm_application WHERE app_name = 'persisted'`)).rowCount, 1);
});

test.serial('a PGlite directory in use by another process is refused with a clear error', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'bkpglite-')), 'db');
  // pid 1 is always alive and never ours
  writeFileSync(`${dir}.lock`, '1\n');
  const store = createStore({ dataDir: dir, logger: silentLogger });
  const err = await t.throwsAsync(store.start());
  t.regex(err?.message ?? '', /in use by process 1/);
  // a stale lock (dead pid) is taken over
  writeFileSync(`${dir}.lock`, '999999999\n');
  const ok = createStore({ dataDir: dir, logger: silentLogger });
  await ok.start();
  await ok.stop();
  t.pass();
});

test.serial("PGlite's shared_buffers is 32MB by default and set by the option [pglite]", async (t) => {
  const sizes = [undefined, '16MB'] as const;
  const seen: string[] = [];
  for (const size of sizes) {
    const store = createStore({ dataDir: 'memory://', logger: silentLogger, ...(size ? { pgliteSharedBuffers: size } : {}) });
    t.teardown(() => store.stop());
    const { rows } = await store.query<{ shared_buffers: string }>('SHOW shared_buffers');
    seen.push(rows[0]?.shared_buffers ?? '');
    await store.stop();
  }
  t.deepEqual(seen, ['32MB', '16MB']);
});

test('a PGlite statement error keeps PostgreSQL\'s code and detail across the worker thread [pglite]', async (t) => {
  const store = await freshStore(t, 'pglite');
  await store.exec('CREATE TABLE uniq (id int PRIMARY KEY)');
  await store.query('INSERT INTO uniq VALUES (1)');
  const err = await t.throwsAsync(store.query('INSERT INTO uniq VALUES (1)'));
  t.is((err as { code?: unknown }).code, '23505');
  t.regex(String((err as { detail?: unknown }).detail), /Key \(id\)=\(1\) already exists/);
  t.regex(err?.message ?? '', /duplicate key value violates unique constraint/);
  // the database is still usable, and a failed transaction left nothing behind
  await t.throwsAsync(store.transaction(async (tx) => {
    await tx.query('INSERT INTO uniq VALUES (2)');
    await tx.query('INSERT INTO uniq VALUES (1)');
  }));
  t.deepEqual((await store.query<{ id: number }>('SELECT id FROM uniq ORDER BY id')).rows, [{ id: 1 }]);
});

test('the event loop keeps running while PGlite executes a statement [pglite]', async (t) => {
  const store = await freshStore(t, 'pglite');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  t.teardown(() => clearInterval(timer));
  // Long enough to span many timer periods on any machine; before the worker thread, WASM ran on this
  // thread and no timer fired until the statement ended.
  const started = ticks;
  const query = store.query<{ n: number }>('SELECT count(*)::int AS n FROM generate_series(1, 4000000)');
  await new Promise<void>((resolve) => setTimeout(resolve, 50));
  const midway = ticks - started;
  t.deepEqual((await query).rows, [{ n: 4_000_000 }]);
  t.true(midway >= 3, `timers fired ${midway} times in the first 50 ms of the statement`);
});

test.serial('when the PGlite thread dies, its statement fails as retriable and the next one reopens the database [pglite]', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'bkpglite-')), 'db');
  const store = createStore({ dataDir: dir, logger: silentLogger, pgliteHeapLimitMb: 64 });
  t.teardown(() => store.stop());
  await store.exec('CREATE TABLE kept (id int PRIMARY KEY)');
  await store.query('INSERT INTO kept VALUES (1)');
  // ~400 MB of result strings in a thread allowed 64 MB: V8 ends the thread.
  const err = await t.throwsAsync(store.query("SELECT repeat('x', 1000000) AS s FROM generate_series(1, 400)"));
  t.true(err instanceof UnavailableError, String(err));
  t.true(isRetriable(err));
  t.deepEqual((await store.query<{ id: number }>('SELECT id FROM kept')).rows, [{ id: 1 }], 'a new thread opened the directory');
});
