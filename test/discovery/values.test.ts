/**
 * What discovery stores of span values, on PGlite and PostgreSQL alike (README: Differences from the
 * reference): over-long values cut by characters and named alike in every table that refers to a cut
 * node; raw typed values in node data; a missing SDK language stored as null. Spans go through
 * production (span view, pipeline, discoverers, window) and the rows through the dedupe sink and the
 * writer.
 */
import test from 'ava';
import { silentLogger } from '../../services/common/log.ts';
import type { Span } from '../../services/common/records.ts';
import type { Store } from '../../services/common/store/index.ts';
import { DedupeSink, NodeKinds } from '../../services/discovery/dedupe.ts';
import { jsonValue } from '../../services/discovery/fields.ts';
import { mergeNode } from '../../services/discovery/node-merge.ts';
import { NODE_KEY_MAX } from '../../services/discovery/tables.ts';
import { cutCodePoints, storable } from '../../services/discovery/storable.ts';
import { Writer } from '../../services/discovery/writer.ts';
import { storeContract } from '../helpers/store.ts';
import { discover, rulesWith, span, type DiscoverOptions } from './helpers.ts';

/** Discovers the spans and writes every row they make, as the flusher does. */
async function discoverAndWrite(store: Store, spans: readonly Span[], options: DiscoverOptions = {}): Promise<void> {
  const recorded = await discover(spans, options);
  const sink = new DedupeSink({ maxKeys: 1_000, ttlMs: 60_000, touchIntervalMs: 60_000, nodeKinds: new NodeKinds(100) });
  for (const s of recorded.sightings) sink.emit(s.table, s.bk_biz_id, s.app_name, s.row, s.timeUs);
  const result = await new Writer({ store, logger: silentLogger }).write(sink.take());
  if (Object.keys(result.rejected).length > 0) throw new Error(`rows rejected: ${JSON.stringify(result.rejected)}`);
}

interface StoredNode {
  topo_key: string;
  extra_data: Record<string, unknown>;
  system: { name: string; extra_data: Record<string, unknown> }[];
  platform: { name?: string; extra_data?: Record<string, unknown> };
  sdk: { name: string; extra_data: Record<string, unknown> }[];
  source: string[];
}

async function storedNodes(store: Store): Promise<Map<string, StoredNode>> {
  const { rows } = await store.query<StoredNode>('SELECT topo_key, extra_data, system, platform, sdk, source FROM apm_topo_node');
  return new Map(rows.map((r) => [r.topo_key, r]));
}

async function column(store: Store, table: string, name: string): Promise<string[]> {
  const { rows } = await store.query<Record<string, string>>(`SELECT DISTINCT ${name} AS v FROM ${table}`);
  return rows.map((r) => r.v as string).sort();
}

const codePoints = (s: string): number => [...s].length;

test('cutting counts code points and never splits a surrogate pair; lone surrogates become U+FFFD as the store would hold them', (t) => {
  const emoji = '😀'.repeat(300);
  t.is(cutCodePoints(emoji, 255), '😀'.repeat(255));
  t.is(cutCodePoints(`a${emoji}`, 2), 'a😀');
  t.is(cutCodePoints('short', 255), 'short');
  t.is(storable(`x\0${'😀'.repeat(3)}`, 3), 'x😀😀');
  t.is(storable('ok\uD800', 10), 'ok\uFFFD');
  const cut = storable(`${'é'.repeat(200)}${'𝒳'.repeat(100)}`, 255);
  t.is(codePoints(cut), 255);
  t.true(cut.isWellFormed());
});

test('node data values are the raw typed values: booleans and numbers stay JSON, arrays are JSON arrays', (t) => {
  t.is(jsonValue(true), true);
  t.is(jsonValue(7), 7);
  t.is(jsonValue(0.5), 0.5);
  t.is(jsonValue('7'), '7');
  t.is(jsonValue(undefined), null);
  t.is(jsonValue(Number.NaN), 'NaN');
  t.deepEqual(jsonValue(['a', 2, false]), ['a', 2, false]);
  t.is(jsonValue(Buffer.from('bytes')), 'bytes');
  // The merge orders typed values deterministically (commutative whatever their types).
  const a = { topo_key: 'n', extra: { category: 'custom', kind: 'service', predicate_value: 7, service_language: null } };
  const b = { topo_key: 'n', extra: { category: 'custom', kind: 'service', predicate_value: '7', service_language: null } };
  t.deepEqual(mergeNode(a, b), mergeNode(b, a));
});

// A service name of 250 emoji fits the node key (255 characters) but is 500 UTF-16 units: cut by units it
// ended in half a pair, and the node lost its data. Its component node `{service}-mysql` is 256
// characters and is cut; so is every name of the 300-character service.
const FITS = '😀'.repeat(250);
const LONG = '𝒳'.repeat(300);

storeContract('over-long values are cut by characters, and a cut node keeps its data and is named alike in every table', async (t, store) => {
  const res = (svc: string): Span['resource'] => ({ 'service.name': svc, 'net.host.ip': '10.0.0.1', 'bk.instance.id': `go:${svc}:h1`, 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.language': 'go' });
  const trace = 'c'.repeat(32);
  const entry = span({ trace_id: trace, kind: 2, span_name: 'GET /x', attributes: { 'http.method': 'GET' }, resource: res(LONG) });
  const call = span({ trace_id: trace, kind: 3, parent_span_id: entry.span_id, span_name: 'GET /y', attributes: { 'http.method': 'GET', 'rpc.system': 'grpc' }, resource: res(LONG) });
  const server = span({ trace_id: trace, kind: 2, parent_span_id: call.span_id, span_name: 'GET /y', attributes: { 'http.method': 'GET' }, resource: res(FITS) });
  const db = span({ trace_id: trace, kind: 3, parent_span_id: server.span_id, span_name: 'SELECT', attributes: { 'db.system': 'mysql', 'net.peer.name': 'db' }, resource: res(FITS) });
  await discoverAndWrite(store, [entry, call, server, db]);

  const nodes = await storedNodes(store);
  const longKey = cutCodePoints(LONG, NODE_KEY_MAX);
  const componentKey = cutCodePoints(`${FITS}-mysql`, NODE_KEY_MAX);
  t.deepEqual([...nodes.keys()].sort(), [longKey, FITS, componentKey].sort());
  for (const key of nodes.keys()) {
    t.true(codePoints(key) <= NODE_KEY_MAX && key.isWellFormed() && !key.includes('\uFFFD'), 'no half pair, no replacement character');
  }
  t.is(componentKey, `${FITS}-mysq`);
  // Every node keeps what the spans said about it.
  t.like(nodes.get(longKey), { extra_data: { category: 'rpc', kind: 'service', predicate_value: 'grpc', service_language: 'go' }, source: ['trace'], platform: { name: 'node' } });
  t.deepEqual(nodes.get(longKey)?.system, [{ name: 'grpc', extra_data: { 'attributes.rpc.system': 'grpc' } }]);
  t.deepEqual(nodes.get(longKey)?.sdk.map((x) => x.name), ['opentelemetry']);
  t.like(nodes.get(FITS), { extra_data: { category: 'http', kind: 'service', service_language: 'go' }, source: ['trace'], platform: { name: 'node' } });
  t.like(nodes.get(componentKey), { extra_data: { category: 'db', kind: 'component', predicate_value: 'mysql' }, source: ['trace'] });

  // The same cut key wherever a table names the node (the endpoint's service_name column is longer).
  t.deepEqual(await column(store, 'apm_endpoint', 'service_name'), [longKey, FITS].sort());
  t.deepEqual(await column(store, 'apm_root_endpoint', 'service_name'), [longKey]);
  t.deepEqual(await column(store, 'apm_host_instance', 'topo_node_key'), [longKey, FITS].sort());
  t.deepEqual(await column(store, 'apm_topo_instance', 'topo_node_key'), [longKey, FITS, componentKey].sort());
  const { rows: relations } = await store.query<{ from_topo_key: string; to_topo_key: string }>('SELECT from_topo_key, to_topo_key FROM apm_topo_relation');
  t.deepEqual(relations.map((r) => `${r.from_topo_key === longKey ? 'LONG' : r.from_topo_key === FITS ? 'FITS' : '?'} → ${r.to_topo_key === FITS ? 'FITS' : r.to_topo_key === componentKey ? 'COMPONENT' : '?'}`).sort(),
    ['FITS → COMPONENT', 'LONG → FITS']);
  // Instance ids made of the long name are cut by characters too.
  const { rows: ids } = await store.query<{ instance_id: string }>('SELECT instance_id FROM apm_topo_instance');
  for (const { instance_id: id } of ids) t.true(codePoints(id) <= 255 && id.isWellFormed() && !id.includes('\uFFFD'), 'instance ids cut by characters');
});

storeContract('node extra_data and system entries hold the raw typed values (JSON boolean, number, array)', async (t, store) => {
  const rules = rulesWith([
    { type: 'category', category_id: 'cache', topo_kind: 'service', predicate_key: 'attributes.cache.enabled', instance_key: 'resource.service.name', endpoint_key: 'span_name', sort: 0 },
    { type: 'system', category_id: 'shard', topo_kind: 'service', predicate_key: 'attributes.shard.id', instance_key: 'attributes.shard.id,attributes.shard.tags', sort: 0 },
  ]);
  await discoverAndWrite(store, [
    span({ kind: 2, attributes: { 'cache.enabled': true, 'shard.id': 7, 'shard.tags': ['a', 'b'] }, resource: { 'service.name': 'cache-svc', 'telemetry.sdk.language': 'go' } }),
    span({ kind: 3, attributes: { 'peer.service': 'ext', 'http.method': 'GET' }, resource: { 'service.name': 'caller', 'telemetry.sdk.language': 'go' } }),
  ], { rules });
  const nodes = await storedNodes(store);
  t.deepEqual(nodes.get('cache-svc')?.extra_data, { category: 'cache', kind: 'service', predicate_value: true, service_language: 'go' });
  t.deepEqual(nodes.get('cache-svc')?.system, [{ name: 'shard', extra_data: { 'attributes.shard.id': 7, 'attributes.shard.tags': ['a', 'b'] } }]);
  t.is(nodes.get('http:ext')?.extra_data.predicate_value, 'ext');
  // JSON types in the store itself, not just after the driver's parsing.
  const { rows } = await store.query<{ p: string; s: string; tags: string }>(
    `SELECT jsonb_typeof(extra_data->'predicate_value') AS p, jsonb_typeof(system->0->'extra_data'->'attributes.shard.id') AS s,
       jsonb_typeof(system->0->'extra_data'->'attributes.shard.tags') AS tags FROM apm_topo_node WHERE topo_key = 'cache-svc'`,
  );
  t.deepEqual(rows[0], { p: 'boolean', s: 'number', tags: 'array' });
});

storeContract('a span without an SDK language gives service_language null on topo nodes, as on instances', async (t, store) => {
  const res = { 'service.name': 'bare-svc', 'bk.instance.id': 'bare-svc:h1', 'telemetry.sdk.name': 'opentelemetry' };
  await discoverAndWrite(store, [
    span({ kind: 2, attributes: { 'http.method': 'GET' }, resource: res }),
    span({ kind: 3, attributes: { 'db.system': 'mysql', 'net.peer.name': 'db' }, resource: res }),
  ]);
  const nodes = await storedNodes(store);
  t.is(nodes.get('bare-svc')?.extra_data.service_language, null);
  t.is(nodes.get('bare-svc-mysql')?.extra_data.service_language, null);
  t.true(Object.hasOwn(nodes.get('bare-svc')?.extra_data ?? {}, 'service_language'), 'the key is there, with null');
  const { rows } = await store.query<{ sdk_language: string | null }>('SELECT DISTINCT sdk_language FROM apm_topo_instance');
  t.deepEqual(rows, [{ sdk_language: null }]);
  // A language seen later fills it in; null never overwrites a language.
  await discoverAndWrite(store, [span({ kind: 2, attributes: { 'http.method': 'GET' }, resource: { ...res, 'telemetry.sdk.language': 'go' } })]);
  await discoverAndWrite(store, [span({ kind: 2, attributes: { 'http.method': 'GET' }, resource: res })]);
  t.is((await storedNodes(store)).get('bare-svc')?.extra_data.service_language, 'go');
});
