/** The span view: what it reads equals what avsc decodes, it rejects what avsc rejects, and shape keys from bytes. */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { Codec, codecFor, SchemaRegistry } from '../../services/common/avro/index.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError } from '../../services/common/errors.ts';
import type { Span } from '../../services/common/records.ts';
import { rulesWith, defaultRules } from './helpers.ts';
import { classify } from '../../services/discovery/classify.ts';
import { discoverEndpoint } from '../../services/discovery/discoverers/endpoint.ts';
import { discoverHost } from '../../services/discovery/discoverers/host.ts';
import { discoverInstance } from '../../services/discovery/discoverers/instance.ts';
import { discoverNode } from '../../services/discovery/discoverers/node.ts';
import { discoverSingleSpanRelation } from '../../services/discovery/discoverers/relation.ts';
import type { DiscoverySpan } from '../../services/discovery/fields.ts';
import { Hasher } from '../../services/discovery/hash.ts';
import { ResourceMemo, shapeFacts, shapeKey, shapeSpan } from '../../services/discovery/shape.ts';
import { spanBatchReader } from '../../services/discovery/span-codec.ts';
import { Slot, spanBatchView, type KeyNames, type SpanView } from '../../services/discovery/span-view.ts';
import { sampleMetricBatch, sampleSpan, sampleSpanBatch } from '../helpers/records.ts';
import { RecordingSink } from './recording-sink.ts';

const codec = codecFor('SpanBatch');
const views = spanBatchView();
const projected = spanBatchReader();

/** Spans decoded by avsc through the discovery projection, as plain objects (avsc's are of a record class). */
function projectedSpans(buf: Buffer): DiscoverySpan[] {
  return projected.decode(buf).spans.map((s) => ({ ...s }));
}

function viewOf(spans: Span[]): SpanView {
  return views.decode(codec.encode({ spans }));
}

/** Key names that know every key: the view then decodes whole maps. */
class EveryKey implements KeyNames {
  readonly #names: string[] = [];
  find(buf: Buffer, at: number, length: number): number {
    return this.#names.push(buf.toString('utf8', at, at + length)) - 1;
  }
  name(index: number): string {
    return this.#names[index] as string;
  }
}

/** Every span of a view decoded whole, through what production reads spans with (`spanReading`). */
function spansOf(view: SpanView): DiscoverySpan[] {
  return Array.from({ length: view.count }, (_, i) => view.spanReading(i, new EveryKey(), new EveryKey()));
}

/** Everything the per-span discoverers emit for a span, and its shape's pairing facts (no serials or times). */
function discoverAll(s: DiscoverySpan, r: typeof defaultRules): unknown {
  const lookups = { host: () => ({ bk_cloud_id: 0, bk_host_id: 7 }), nodeKind: () => ({ kind: 'service', category: 'http' }) };
  const sink = new RecordingSink();
  const c = classify(s, r);
  discoverEndpoint(c, sink);
  discoverHost(c, lookups, sink);
  discoverInstance(c, sink);
  discoverNode(c, sink);
  discoverSingleSpanRelation(c, lookups, sink);
  const { seenS: _, serial: _serial, ...facts } = shapeFacts(c, 0);
  return { rows: sink.sightings, facts };
}

test('a view reads the ids, times and app of each span, and decodes each span as the projection reader does', (t) => {
  const batch = sampleSpanBatch(4);
  batch.spans[1] = sampleSpan({ ...batch.spans[1], app_name: 'другое-приложение', bk_biz_id: -7, start_time: 2 ** 52, attributes: {} });
  // Every branch of the attribute value union (null, booleans and strings are read without avsc).
  batch.spans[2] = sampleSpan({
    ...batch.spans[2],
    attributes: { none: null, yes: true, no: false, empty: '', text: 'заказ 🚀 ok', count: 42, big: -(2 ** 40), ratio: 0.25, list: ['a', 1, true, null, 2.5] },
    resource: { ...batch.spans[2]?.resource, 'service.name': '服务', flag: false },
  });
  const buf = codec.encode(batch);
  const view = views.decode(buf);
  t.is(view.count, 4);
  const expected = projectedSpans(buf);
  t.deepEqual(spansOf(view), expected);
  for (let i = 0; i < view.count; i++) {
    const s = expected[i] as (typeof expected)[number];
    t.is(view.at(i, Slot.BIZ), s.bk_biz_id);
    t.is(view.apps[i], s.app_name);
    t.is(view.at(i, Slot.KIND), s.kind);
    t.is(view.at(i, Slot.START_TIME), s.start_time);
    t.is(view.at(i, Slot.END_TIME), s.end_time);
    t.is(view.at(i, Slot.ELAPSED), s.elapsed_time);
    t.is(view.latin1(i, Slot.TRACE_AT), s.trace_id);
    t.is(view.latin1(i, Slot.SPAN_AT), s.span_id);
    t.is(view.latin1(i, Slot.PARENT_AT), s.parent_span_id);
    t.is(view.at(i, Slot.PARENT_LEN), s.parent_span_id.length);
  }
  t.is(view.apps[2], view.apps[3], 'consecutive spans of one app share the string');
  t.is(views.decode(codec.encode({ spans: [] })).count, 0);
});

test('released views give their slots to the next records, which read exactly as fresh ones', (t) => {
  const reader = spanBatchView();
  const big = codec.encode(sampleSpanBatch(6));
  const small = codec.encode({ spans: [sampleSpan({ app_name: 'small-app', span_id: 'aa', kind: 4 })] });
  const first = reader.decode(big);
  const fresh = spansOf(views.decode(small));
  first.release();
  first.release(); // idempotent
  const reused = reader.decode(small);
  t.is(reused.slots, first.slots, 'the released slots are reused');
  t.is(reused.count, 1);
  t.is(reused.apps[0], 'small-app');
  t.deepEqual(spansOf(reused), fresh);
  reused.release();
  const again = reader.decode(big);
  t.deepEqual(spansOf(again), projectedSpans(big), 'a larger record after a smaller one');
});

test('records that do not decode are rejected with the codec errors the bus dead-letters', (t) => {
  const good = codec.encode(sampleSpanBatch(2));
  t.throws(() => views.decode(good.subarray(0, good.length - 3)), { instanceOf: CorruptRecordError });
  t.throws(() => views.decode(Buffer.concat([good, Buffer.from([0])])), { instanceOf: CorruptRecordError, message: /trailing/ });
  t.throws(() => views.decode(Buffer.from([0xc3, 0x01, 1, 2])), { instanceOf: CorruptRecordError });
  t.throws(() => views.decode(Buffer.from('{"spans":[]}')), { instanceOf: CorruptRecordError });
  const unknown = Buffer.from(good);
  unknown[5] = (unknown[5] as number) ^ 0xff;
  t.throws(() => views.decode(unknown), { instanceOf: UnknownSchemaError });
  t.throws(() => views.decode(codecFor('MetricBatch').encode(sampleMetricBatch())), { instanceOf: SchemaMismatchError });
  // A long a double cannot hold exactly (avsc: "potential precision loss").
  const big = codec.encode({ spans: [sampleSpan({ start_time: 2 ** 52 })] }); // zig-zag 2^53: seven 0x80 bytes, then 0x10
  const at = big.indexOf(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]));
  t.true(at > 0);
  big[at + 7] = 0x7f; // 127 · 2^48 ≈ 3.6e16
  t.throws(() => codec.decode(big), { instanceOf: CorruptRecordError });
  t.throws(() => views.decode(big), { instanceOf: CorruptRecordError, message: /safe integer/ });
  // A block count larger than the bytes left (avsc alone would loop on it).
  const huge = Buffer.concat([good.subarray(0, 10), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x0f])]);
  t.throws(() => views.decode(huge), { instanceOf: CorruptRecordError, message: /block count/ });
  // A block count the bytes could hold but the record does not: 100 spans claimed as 5 000.
  const hundred = codec.encode(sampleSpanBatch(100));
  t.deepEqual([...hundred.subarray(10, 12)], [0xc8, 0x01]); // zig-zag 100
  hundred[10] = 0x90;
  hundred[11] = 0x4e; // zig-zag 5 000
  t.throws(() => views.decode(hundred), { instanceOf: CorruptRecordError });
  // A negative block count (-1) whose byte size (0) does not match its one item: avsc's reader ignores
  // the size and its skipper trusts it, so such a record must not be accepted.
  const withEvent = codec.encode({ spans: [sampleSpan({ events: [{ name: 'EVT-NAME', timestamp: 1, attributes: {} }] })] });
  const ev = withEvent.indexOf(Buffer.concat([Buffer.from([0x02, 0x10]), Buffer.from('EVT-NAME')]));
  t.true(ev > 0);
  const sized = Buffer.concat([withEvent.subarray(0, ev), Buffer.from([0x01, 0x00]), withEvent.subarray(ev + 1)]);
  t.throws(() => views.decode(sized), { instanceOf: CorruptRecordError, message: /block size/ });
  // The same block with its true size (name 1 + 8, timestamp 1, empty map 1 = 11 bytes) is fine.
  const rightSize = Buffer.concat([withEvent.subarray(0, ev), Buffer.from([0x01, 0x16]), withEvent.subarray(ev + 1)]);
  t.deepEqual(spansOf(views.decode(rightSize)), projectedSpans(withEvent));
});

test('mutated records: whenever the view accepts one, avsc decodes it to the same spans (and whatever avsc rejects, the view rejects)', (t) => {
  const good = codec.encode(sampleSpanBatch(3));
  let seed = 42;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed % n;
  };
  let accepted = 0;
  let rejected = 0;
  for (let round = 0; round < 3_000; round++) {
    const buf = Buffer.from(good);
    for (let k = 1 + rand(3); k > 0; k--) buf[10 + rand(buf.length - 10)] = rand(256);
    let viewSpans: unknown;
    try {
      viewSpans = spansOf(views.decode(buf));
    } catch (err) {
      t.true(err instanceof CorruptRecordError, String(err));
      rejected++;
      continue;
    }
    accepted++;
    t.deepEqual(viewSpans, projectedSpans(buf));
  }
  t.log(`accepted ${accepted}, rejected ${rejected}`);
  t.true(accepted > 100 && rejected > 100, `accepted ${accepted}, rejected ${rejected}`);
});

test('records of an older registered version are read through schema resolution', (t) => {
  const registry = SchemaRegistry.load();
  const latest = registry.get('SpanBatch');
  const schema = JSON.parse(readFileSync(latest.file, 'utf8')) as { fields: [{ type: { items: { fields: { name: string }[] } } }] };
  const span = schema.fields[0].type.items;
  // v0 had no parent_span_id, trace_state, events, links or client_ip (all have defaults in v1).
  span.fields = span.fields.filter((f) => !['parent_span_id', 'trace_state', 'events', 'links', 'client_ip'].includes(f.name));
  registry.add(JSON.stringify(schema), 0, 'span.v0 (test)');
  const old = new Codec<{ spans: Omit<Span, 'parent_span_id' | 'trace_state' | 'events' | 'links' | 'client_ip'>[] }>('SpanBatch', { registry, version: 0 });
  const { parent_span_id: _p, trace_state: _t, events: _e, links: _l, client_ip: _c, ...v0 } = sampleSpan();
  const view = spanBatchView(registry).decode(old.encode({ spans: [v0, { ...v0, span_id: 'ff' }] }));
  t.is(view.count, 2);
  t.is(view.latin1(1, Slot.SPAN_AT), 'ff');
  t.is(view.at(0, Slot.PARENT_LEN), 0);
  t.deepEqual(spansOf(view)[0]?.attributes, v0.attributes);
});

test('shape keys: ids and times do not count; the values rules read, their presence and the app do', (t) => {
  const base = sampleSpan({ kind: 3, attributes: { 'http.method': 'GET', 'http.url': 'https://x/a', 'noise.key': 1 } });
  const hasher = new Hasher();
  const key = (s: Span, rules = defaultRules): number => shapeKey(viewOf([s]), 0, rules, hasher);
  const k = key(base);
  t.is(key({ ...base, span_id: 'ffffffffffffffff', trace_id: 'b'.repeat(32), start_time: 1, end_time: 2, elapsed_time: 1 }), k);
  t.is(key({ ...base, attributes: { ...base.attributes, 'noise.key': 2, 'other.noise': 'x' } }), k, 'keys no rule reads are left out');
  t.not(key({ ...base, attributes: { ...base.attributes, 'http.method': 'POST' } }), k);
  t.not(key({ ...base, attributes: { ...base.attributes, 'http.method': null } }), k, 'null differs from a value');
  const { 'http.method': _m, ...without } = base.attributes;
  t.not(key({ ...base, attributes: without }), k, 'absence differs from null and from a value');
  t.not(key({ ...base, attributes: { ...without, 'http.method': null } }), key({ ...base, attributes: without }));
  t.not(key({ ...base, app_name: 'other' }), k);
  t.not(key({ ...base, bk_biz_id: 3 }), k);
  t.not(key({ ...base, kind: 2 }), k);
  t.not(key({ ...base, parent_span_id: '00f067aa0ba902b7' }), k);
  t.not(key({ ...base, resource: { ...base.resource, 'service.name': 'pay-svc' } }), k);
  t.not(key({ ...base, span_name: 'other' }), k, 'the built-in rules take endpoints from span_name');
  const route = { ...base, attributes: { ...base.attributes, 'http.route': '/b' } };
  t.is(key(route), key({ ...route, attributes: { ...route.attributes, 'http.route': '/c' } }), 'http.route counts only when a rule reads it');
  const byRoute = rulesWith([{ type: 'category', category_id: 'http', topo_kind: 'service', endpoint_key: 'attributes.http.route', predicate_key: 'attributes.http.method', sort: -1 }]);
  t.not(key(route, byRoute), key({ ...route, attributes: { ...route.attributes, 'http.route': '/c' } }, byRoute));
});

test('shape keys: a resource remembered from the previous span (the same encoding) hashes as it would afresh', (t) => {
  const hasher = new Hasher();
  const other = { ...sampleSpan().resource, 'service.name': 'pay-svc' };
  const longer = { ...sampleSpan().resource, 'service.name': 'order-svc', 'k8s.pod.name': 'p-1' };
  const spans = [sampleSpan(), sampleSpan({ kind: 3 }), sampleSpan({ resource: other }), sampleSpan(), sampleSpan({ resource: longer }), sampleSpan()];
  const view = viewOf(spans);
  const memo = new ResourceMemo();
  for (let i = 0; i < spans.length; i++) {
    t.is(shapeKey(view, i, defaultRules, hasher, memo), shapeKey(view, i, defaultRules, hasher), `span ${i}`);
  }
  const byRoute = rulesWith([{ type: 'category', category_id: 'x', topo_kind: 'service', predicate_key: 'resource.k8s.pod.name', sort: -1 }]);
  t.is(shapeKey(view, 4, byRoute, hasher, memo), shapeKey(view, 4, byRoute, hasher), 'another rule set reads other resource keys');
  t.is(shapeKey(view, 5, defaultRules, hasher, memo), shapeKey(view, 5, defaultRules, hasher));
});

test('shape keys: resources of interleaved instances are remembered by their whole encoding, whichever slot holds them', (t) => {
  const hasher = new Hasher();
  // Six instances of one service: equal lengths, differing in the middle (net.host.ip) or only at the
  // end (bk.instance.id), some with equal tails; more than the memo holds, interleaved and revisited.
  const base = sampleSpan().resource;
  const instance = (ip: string, id: string): Span['resource'] => ({ ...base, 'net.host.ip': ip, 'bk.instance.id': id });
  const resources = [
    instance('10.0.0.1', 'go:svc:a:10.0.0.1:8080'),
    instance('10.0.0.2', 'go:svc:a:10.0.0.1:8080'),
    instance('10.0.0.1', 'go:svc:b:10.0.0.1:8080'),
    instance('10.0.0.3', 'go:svc:c:10.0.0.3:8080'),
    instance('10.0.0.4', 'go:svc:d:10.0.0.4:8081'),
    instance('10.0.0.5', 'go:svc:e:10.0.0.5:8082'),
  ];
  const order = [0, 1, 2, 0, 3, 4, 5, 1, 0, 2, 2, 5, 4, 3, 1, 0];
  const spans = order.map((r, i) => sampleSpan({ kind: 1 + (i % 4), resource: resources[r] as Span['resource'] }));
  const view = viewOf(spans);
  const memo = new ResourceMemo();
  const fresh = spans.map((_, i) => shapeKey(view, i, defaultRules, hasher));
  for (let i = 0; i < spans.length; i++) t.is(shapeKey(view, i, defaultRules, hasher, memo), fresh[i] as number, `span ${i}`);
  t.is(new Set(order.map((r, i) => `${r}:${i % 4}`)).size, new Set(fresh).size, 'distinct resources stay distinct');
});

test('discovery reads nothing outside a shape: spans decoded with only the shape keys discover exactly what full spans do', (t) => {
  const k8s = { 'k8s.bcs.cluster.id': 'BCS-K8S-1', 'k8s.pod.name': 'p-1', 'k8s.namespace.name': 'ns', target: 'tgt' };
  const variants: Partial<Span>[] = [
    {},
    { kind: 3, attributes: { 'db.system': 'mysql', 'net.peer.name': 'db-1', 'net.peer.port': 3306, 'db.statement': 'SELECT 1' } },
    { kind: 4, attributes: { 'messaging.system': 'kafka', 'messaging.destination': 'orders', 'net.peer.name': 'k-0' } },
    { kind: 5, parent_span_id: '00000000000000aa', attributes: { 'messaging.destination': 'orders' } },
    { kind: 3, attributes: { 'rpc.system': 'grpc', 'rpc.method': 'M', 'peer.service': 'payment-gw' } },
    { kind: 2, attributes: { 'trpc.namespace': 'Production', 'http.method': 'GET' }, resource: { ...sampleSpan().resource, ...k8s, 'telemetry.sdk.name': 'galileo' } },
    { kind: 1, attributes: { 'net.host.ip': '10.9.9.9' }, resource: { 'service.name': 'x', 'net.host.ip': '' } },
    { kind: 3, attributes: { 'http.method': 'POST', 'peer.service': '' } },
  ];
  const spans = variants.map((v, i) => sampleSpan({ ...v, span_id: `${i}`.padStart(16, '0') }));
  const rules = [defaultRules, rulesWith([{ type: 'category', category_id: 'db', topo_kind: 'component', predicate_key: 'attributes.db.system', instance_key: 'attributes.db.name,resource.host.id', endpoint_key: 'attributes.db.statement', sort: -1 }])];
  for (const r of rules) {
    const view = viewOf(spans);
    const full = projected.decode(codec.encode({ spans })).spans;
    for (let i = 0; i < spans.length; i++) {
      const reading = shapeSpan(view, i, r);
      t.true(Object.keys(reading.attributes).length <= Object.keys(full[i]?.attributes ?? {}).length);
      t.deepEqual(discoverAll(reading, r), discoverAll(full[i] as DiscoverySpan, r), `span ${i}`);
    }
  }
});

test('shape keys: an instance or endpoint key counts only where a rule that reads it can match, and equal shapes discover equally', (t) => {
  const hasher = new Hasher();
  const bases: Span['attributes'][] = [
    { 'http.method': 'GET' },
    { 'db.system': 'mysql' },
    { 'db.system': '' },
    { 'messaging.system': 'kafka', 'messaging.destination': 'orders' },
    { 'rpc.system': 'grpc' },
    { 'db.system': 'redis', 'http.method': 'GET' },
    {},
  ];
  const varied: Span['attributes'][] = [
    {},
    { 'net.peer.port': 51_000 },
    { 'net.peer.port': 51_001 },
    { 'net.peer.ip': '10.0.0.9', 'net.peer.port': 51_001 },
    { 'net.peer.name': 'db-1' },
    { 'db.name': 'orders', 'db.statement': 'SELECT 1' },
    { 'db.name': 'users', 'db.statement': 'SELECT 2' },
    { 'db.name': 'users', 'cluster.zone': 'a' },
    { 'db.name': 'users', 'cluster.zone': 'b' },
    { 'cluster.zone': 'a', 'db.statement': 'SELECT 1' },
    { 'cluster.zone': 'b', 'db.statement': 'SELECT 2' },
  ];
  const spans: Span[] = [];
  for (const [b, base] of bases.entries()) {
    for (const extra of varied) for (const kind of [2, 3]) spans.push(sampleSpan({ kind, span_id: `${spans.length}`.padStart(16, '0'), attributes: { ...base, ...extra }, resource: { ...sampleSpan().resource, 'service.name': `svc-${b}` } }));
  }
  const rules = [
    defaultRules,
    rulesWith([{ type: 'category', category_id: 'db', topo_kind: 'component', predicate_key: 'attributes.db.system', instance_key: 'attributes.db.name', endpoint_key: 'attributes.db.statement', sort: -1 }]),
    // Two predicate keys: the instance key counts only with both present.
    rulesWith([{ type: 'category', category_id: 'db', topo_kind: 'component', predicate_key: 'attributes.db.system,attributes.db.name', instance_key: 'attributes.cluster.zone', endpoint_key: 'span_name', sort: -1 }]),
    // An app's own `other` rule: the fallback, whose keys are read whether its predicate holds or not.
    rulesWith([{ type: 'category', category_id: 'other', topo_kind: 'service', predicate_key: 'attributes.db.name', instance_key: 'attributes.cluster.zone', endpoint_key: 'attributes.db.statement', sort: -1 }]),
  ];
  const discover = (span: DiscoverySpan, r: typeof defaultRules): string => JSON.stringify(discoverAll(span, r));
  const view = viewOf(spans);
  const full = projected.decode(codec.encode({ spans })).spans;
  for (const [n, r] of rules.entries()) {
    const byShape = new Map<number, string>();
    let shared = 0;
    for (let i = 0; i < spans.length; i++) {
      const key = shapeKey(view, i, r, hasher);
      const found = discover(full[i] as DiscoverySpan, r);
      const seen = byShape.get(key);
      if (seen === undefined) byShape.set(key, found);
      else {
        shared++;
        t.is(found, seen, `rules ${n}, span ${i}: a shape seen before discovers the same`);
      }
    }
    t.true(shared > 0, `rules ${n}: some spans share a shape`);
  }
  const key = (attributes: Span['attributes'], kind = 2, r = defaultRules): number => shapeKey(viewOf([sampleSpan({ kind, attributes })]), 0, r, hasher);
  t.is(key({ 'http.method': 'GET', 'net.peer.port': 51_000 }), key({ 'http.method': 'GET', 'net.peer.port': 51_001 }), "an http server span's client port does not count");
  t.not(key({ 'db.system': 'mysql', 'net.peer.port': 3306 }, 3), key({ 'db.system': 'mysql', 'net.peer.port': 3307 }, 3), "a database span's peer port does (an instance key of the db rule)");
  t.not(key({ 'db.system': 'mysql', 'net.peer.port': 3306 }, 3), key({ 'db.system': 'mysql' }, 3), 'and so does its presence');
  t.is(key({ 'http.method': 'GET', 'net.peer.port': 1 }), key({ 'http.method': 'GET' }), 'but not where no rule reading it can match');
});
