/**
 * The discoverers (README: How it works › Discoverers), checked through what production runs: spans
 * encoded into a SpanBatch record, read by the span view and processed by the pipeline (shapes,
 * classification, the per-span discoverers, the partition window for pairs and root endpoints).
 * Fixtures from the reference's examples and bkmonitor/apm/tests/test_toponode_discover.py.
 */
import test from 'ava';
import type { CmdbLookup } from '../../services/discovery/discoverers/host.ts';
import type { NodeKindLookup } from '../../services/discovery/discoverers/relation.ts';
import { mergeNode } from '../../services/discovery/node-merge.ts';
import type { NodeRow } from '../../services/discovery/records.ts';
import { discover, span, T0 } from './helpers.ts';
import type { RecordingSink } from './recording-sink.ts';

const noCmdb: CmdbLookup = { host: () => undefined };

/** All node contributions merged per key (what the store ends up with). */
function nodes(sink: RecordingSink): Map<string, NodeRow> {
  const out = new Map<string, NodeRow>();
  for (const r of sink.rows('node')) {
    const seen = out.get(r.topo_key);
    out.set(r.topo_key, seen ? mergeNode(seen, r) : r);
  }
  return out;
}

test('endpoint: rule endpoint key, category kind by key presence, span kind; only SERVER/CLIENT/PRODUCER/CONSUMER spans', async (t) => {
  const sink = await discover([
    span({ kind: 2, span_name: 'GET /orders', attributes: { 'http.method': 'GET' } }),
    span({ kind: 3, span_name: 'SELECT', attributes: { 'db.system': 'mysql', 'http.method': 'GET' } }),
    span({ kind: 3, span_name: 'call', attributes: { 'rpc.system': '' } }),
    span({ kind: 1, span_name: 'internal', attributes: { 'http.method': 'GET' } }),
  ]);
  t.deepEqual(sink.rows('endpoint'), [
    { endpoint_name: 'GET /orders', service_name: 'order-svc', category_id: 'http', category_kind_key: 'http.method', category_kind_value: 'GET', span_kind: 2 },
    { endpoint_name: 'SELECT', service_name: 'order-svc', category_id: 'db', category_kind_key: 'db.system', category_kind_value: 'mysql', span_kind: 3 },
    // rpc.system is present but empty: the kind key is taken by presence, the category by truthiness.
    { endpoint_name: 'call', service_name: 'order-svc', category_id: 'other', category_kind_key: 'rpc.system', category_kind_value: '', span_kind: 3 },
  ]);
});

test('endpoint: peer.service adds the same endpoint under the remote-service node', async (t) => {
  const sink = await discover([span({ kind: 3, span_name: 'POST /charge', attributes: { 'http.method': 'POST', 'peer.service': 'payment-gw' } })]);
  t.deepEqual(sink.rows('endpoint').map((r) => r.service_name), ['order-svc', 'http:payment-gw']);
});

test('host: IP from resource, else attributes; CMDB miss gives -1/null, a hit the ids; negative businesses never match', async (t) => {
  const cmdb: CmdbLookup = { host: (biz, ip) => (biz === 2 && ip === '10.0.0.2' ? { bk_cloud_id: 0, bk_host_id: 42 } : undefined) };
  const sink = await discover([
    span({ resource: { 'service.name': 'a', 'net.host.ip': '10.0.0.1' } }),
    span({ attributes: { 'net.host.ip': '10.0.0.2' }, resource: { 'service.name': 'a', 'net.host.ip': '' } }),
    span({ resource: { 'net.host.ip': '10.0.0.3' } }),
    span({ bk_biz_id: -5, resource: { 'service.name': 'a', 'net.host.ip': '10.0.0.2' } }),
  ], { cmdb });
  t.deepEqual(sink.rows('host'), [
    { bk_cloud_id: -1, bk_host_id: null, ip: '10.0.0.1', topo_node_key: 'a' },
    { bk_cloud_id: 0, bk_host_id: 42, ip: '10.0.0.2', topo_node_key: 'a' },
    { bk_cloud_id: -1, bk_host_id: null, ip: '10.0.0.2', topo_node_key: 'a' },
  ]);
  const again = await discover([span({ resource: { 'service.name': 'a', 'net.host.ip': '10.0.0.1' } })], { cmdb: noCmdb });
  t.is(again.rows('host').length, 1);
});

test('instance: service instance from bk.instance.id, component instance `{db.system}:{peer.name}:{peer.ip}:{peer.port}` with the caller SDK', async (t) => {
  const resource = { 'service.name': 'order-svc', 'bk.instance.id': 'go:order-svc:host:10.0.1.5:8080', 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.version': '1.28.0', 'telemetry.sdk.language': 'go' };
  const sink = await discover([
    span({ kind: 3, attributes: { 'db.system': 'mysql', 'net.peer.name': 'db.local', 'net.peer.port': 3306 }, resource }),
    span({ attributes: { 'db.system': 'mysql' }, resource: { 'service.name': 'x', 'bk.instance.id': '::' } }),
    span({ attributes: { 'db.system': 'mysql' }, resource: { 'service.name': 'x' } }),
  ]);
  const sdk = { sdk_name: 'opentelemetry', sdk_version: '1.28.0', sdk_language: 'go' };
  t.deepEqual(sink.rows('instance'), [
    { topo_node_key: 'order-svc', instance_id: 'go:order-svc:host:10.0.1.5:8080', instance_topo_kind: 'service', component_instance_category: null, component_instance_predicate_value: null, ...sdk },
    { topo_node_key: 'order-svc-mysql', instance_id: 'mysql:db.local::3306', instance_topo_kind: 'component', component_instance_category: 'db', component_instance_predicate_value: 'mysql', ...sdk },
  ], 'an id of only colons, or none, yields neither instance');
});

/** The k8s span of bkmonitor/apm/tests/test_toponode_discover.py (build_k8s_other_span). */
const k8sOtherSpan = (): ReturnType<typeof span> => span({
  kind: 3,
  span_name: 'tcaplus',
  start_time: 1782385804613234,
  end_time: 1782385804631576,
  elapsed_time: 18342,
  attributes: { apdex_type: 'satisfied', 'rpc.namespace': 'demo-namespace', 'rpc.env_name': 'demo_env', tableName: 'DemoTable' },
  resource: {
    'bk.instance.id': 'java:demo-service:',
    'k8s.bcs.cluster.id': 'BCS-K8S-DEMO',
    'k8s.namespace.name': 'demo-namespace',
    'k8s.pod.ip': '127.0.0.1',
    'k8s.pod.name': 'demo-service-0',
    'net.host.ip': '127.0.0.1',
    'net.host.name': 'demo-service',
    'net.host.port': '0',
    'service.name': 'demo-service',
    'telemetry.sdk.language': 'java',
    'telemetry.sdk.name': 'opentelemetry',
    'telemetry.sdk.version': '1.24.0',
  },
});

test('node: a k8s span without a category is an `other` service with its k8s platform and opentelemetry sdk (reference test facts)', async (t) => {
  const sink = await discover([k8sOtherSpan()]);
  const node = nodes(sink).get('demo-service');
  t.deepEqual(node?.extra, { category: 'other', kind: 'service', predicate_value: null, service_language: 'java' });
  t.deepEqual(node?.sdk, [{ name: 'opentelemetry', extra_data: { 'resource.telemetry.sdk.name': 'opentelemetry' } }]);
  t.deepEqual(node?.platform, { name: 'k8s', extra_data: { 'resource.k8s.bcs.cluster.id': 'BCS-K8S-DEMO', 'resource.k8s.pod.name': 'demo-service-0', 'resource.k8s.namespace.name': 'demo-namespace' } });
});

test('node: a component span makes the component node and categorises the calling service; `other` never downgrades a category', async (t) => {
  const sink = await discover([
    span({ kind: 3, attributes: { 'db.system': 'redis', 'db.operation': 'GET' }, resource: { 'service.name': 'demo-service', 'telemetry.sdk.language': 'java' } }),
    span({ kind: 2, attributes: { 'rpc.system': 'grpc' }, resource: { 'service.name': 'demo-service', 'telemetry.sdk.language': 'java' } }),
    span({ kind: 3, attributes: { 'db.system': 'mysql', 'http.method': 'GET' }, resource: { 'service.name': 'web' } }),
  ]);
  const all = nodes(sink);
  t.deepEqual(all.get('demo-service-redis')?.extra, { category: 'db', kind: 'component', predicate_value: 'redis', service_language: 'java' });
  t.deepEqual(all.get('demo-service')?.extra, { category: 'rpc', kind: 'service', predicate_value: 'grpc', service_language: 'java' });
  t.deepEqual(all.get('demo-service')?.system, [{ name: 'grpc', extra_data: { 'attributes.rpc.system': 'grpc' } }]);
  t.is(all.get('web')?.extra?.category, 'http', 'a DB span that also carries http.method makes its service http (README: How it works › Discoverers, topo nodes)');
});

test('node: peer.service makes a remote-service node `{category}:{peer}`', async (t) => {
  const sink = await discover([span({ kind: 3, attributes: { 'trpc.namespace': 'P', 'http.method': 'GET', 'peer.service': 'x' } })]);
  t.deepEqual(nodes(sink).get('rpc:x')?.extra, { category: 'rpc', kind: 'remote_service', predicate_value: 'x', service_language: '' });
});

test('relation, single span: peer.service → remote service named by the first present kind key, category always http (README: Differences from the reference, quirks 1 and 2)', async (t) => {
  const sink = await discover([span({ kind: 3, attributes: { 'trpc.namespace': 'P', 'http.method': 'GET', 'peer.service': 'x' } })]);
  t.deepEqual(sink.rows('relation'), [{ from_topo_key: 'order-svc', to_topo_key: 'http:x', kind: 'sync', to_topo_key_kind: 'remote_service', to_topo_key_category: 'http' }]);
});

test('relation, single span: a client calls its component; a consumer is reached from its component with the service node kind', async (t) => {
  const kinds: NodeKindLookup = { nodeKind: (_b, _a, key) => (key === 'billing' ? { kind: 'service', category: 'async_backend' } : undefined) };
  const sink = await discover([
    span({ kind: 3, attributes: { 'db.system': 'mysql' } }),
    span({ kind: 5, attributes: { 'messaging.system': 'kafka' }, resource: { 'service.name': 'billing' } }),
    span({ kind: 5, attributes: { 'messaging.system': 'kafka' }, resource: { 'service.name': 'unknown' } }),
  ], { kinds });
  t.deepEqual(sink.rows('relation'), [
    { from_topo_key: 'order-svc', to_topo_key: 'order-svc-mysql', kind: 'sync', to_topo_key_kind: 'component', to_topo_key_category: 'db' },
    { from_topo_key: 'billing-kafka', to_topo_key: 'billing', kind: 'async', to_topo_key_kind: 'service', to_topo_key_category: 'async_backend' },
    { from_topo_key: 'unknown-kafka', to_topo_key: 'unknown', kind: 'async', to_topo_key_kind: 'service', to_topo_key_category: 'http' },
  ]);
});

test('relation, parent/child: client → server (sync) and producer → middleware → consumer (async)', async (t) => {
  const client = span({ kind: 3, attributes: { 'http.method': 'GET' } });
  const server = span({ kind: 2, parent_span_id: client.span_id, attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'pay-svc' } });
  const producer = span({ kind: 4, attributes: { 'messaging.system': 'kafka', 'messaging.destination': 'orders' } });
  const consumer = span({ kind: 5, parent_span_id: producer.span_id, attributes: { 'messaging.destination': 'orders' }, resource: { 'service.name': 'billing' } });
  const sink = await discover([server, client, consumer, producer]);
  const rows = sink.rows('relation');
  t.true(rows.some((r) => r.from_topo_key === 'order-svc' && r.to_topo_key === 'pay-svc' && r.kind === 'sync' && r.to_topo_key_kind === 'service' && r.to_topo_key_category === 'http'));
  t.true(rows.some((r) => r.from_topo_key === 'order-svc' && r.to_topo_key === 'order-svc-kafka' && r.kind === 'async' && r.to_topo_key_kind === 'component'));
  t.true(rows.some((r) => r.from_topo_key === 'order-svc-kafka' && r.to_topo_key === 'billing' && r.kind === 'async' && r.to_topo_key_category === 'async_backend'));
});

test('remote-service relation: a child with peer.service and a parent without it; the parent\'s endpoint and category', async (t) => {
  const parent = span({ kind: 2, span_name: 'GET /checkout', attributes: { 'http.method': 'GET' } });
  const child = span({ kind: 3, parent_span_id: parent.span_id, span_name: 'POST /charge', attributes: { 'http.method': 'POST', 'peer.service': 'payment-gw' } });
  const orphan = span({ kind: 3, parent_span_id: 'ffffffffffffffff', attributes: { 'peer.service': 'other' } });
  const peerParent = span({ kind: 3, attributes: { 'peer.service': 'a' } });
  const peerChild = span({ kind: 3, parent_span_id: peerParent.span_id, attributes: { 'peer.service': 'b' } });
  const sink = await discover([child, parent, orphan, peerParent, peerChild]);
  t.deepEqual(sink.rows('remote_service_relation'), [{ topo_node_key: 'http:payment-gw', from_endpoint_name: 'GET /checkout', category: 'http' }]);
});

test('root endpoint: per trace the first SERVER/PRODUCER span by start time, then the longest', async (t) => {
  const trace = 'c'.repeat(32);
  const sink = await discover([
    span({ trace_id: trace, kind: 2, span_name: 'inner', start_time: T0 + 10, elapsed_time: 5, attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'b' } }),
    span({ trace_id: trace, kind: 3, span_name: 'client first', start_time: T0 }),
    span({ trace_id: trace, kind: 2, span_name: 'short', start_time: T0 + 1, elapsed_time: 10, attributes: { 'http.method': 'GET' } }),
    span({ trace_id: trace, kind: 2, span_name: 'entry', start_time: T0 + 1, elapsed_time: 100, attributes: { 'http.method': 'GET' } }),
    span({ trace_id: 'd'.repeat(32), kind: 1, span_name: 'internal only' }),
  ]);
  t.deepEqual(sink.rows('root_endpoint'), [{ endpoint_name: 'entry', service_name: 'order-svc', category_id: 'http' }]);
});
